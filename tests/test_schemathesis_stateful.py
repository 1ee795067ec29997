"""A stateful schemathesis run of the REST API as a second, non-admin account (issue 16).

schemathesis's state machine chains operations along OpenAPI links: a collection created by one
step is read, listed, given metadata, attached to and ruled by the next ones; a rule made by one
step is read, updated, moved and deleted by the next. The server declares no links, so this test
adds them to the document it loads (``LINKS``; the app is untouched) and turns schemathesis's own
link inference off, so that the graph walked is the one written here.

The run is authenticated as ``carina``, an account root creates through the API, with a scope of
her own, on a lake where root also holds public data and hidden data: a dataset under embargo
(one of its files also attached to a public dataset) and a file in an embargoed scope. The path
parameters ``scope``, ``account``, ``rse`` (and ``name`` of reads) also draw from the names of that
lake, so that generated requests reach real objects, carina's and root's.

Every answer must be no server error, have a documented status, headers and body, and never name
a hidden DID that the request did not name itself; a request that does name one must be answered
exactly as the same request naming a DID that does not exist (status, ``ExceptionClass`` and
message with the name substituted), as docs/permissions.md says.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis import Case, CheckContext, Response

from tests import test_schemathesis as plain_run
from tests.conftest import ROOT_PASSWORD, RunningServer, reset_catalog
from tests.test_schemathesis import openapi_document

CALLS = 300
"""Calls per backend, in scenarios (sequences of linked calls) of at most ``STEPS``."""
STEPS = 8
"""At most this many calls per scenario."""

SECOND = "carina"
PASSWORD = "carina-password-for-tests"
ROOT_SCOPES = ("virgo", "sealed")
HIDDEN = ("hush-ds", "hush-f0", "hush-f1", "hush-g0")
"""Root's hidden DIDs: dataset virgo:hush-ds under embargo with files hush-f0 and hush-f1
(hush-f1 also in the public dataset virgo:ds), and sealed:hush-g0 in the embargoed scope."""
PUBLIC = ("ds", "f0", "f1", "box")

Link = tuple[str, str, str, str, dict[str, Any]]
"""(source operation, status, target operation, link name, link fields)."""

LISTINGS = [
    "GET /dids/{scope}/",
    "GET /dids/{scope}/dids/search",
    "GET /dids/{scope}/{name}/dids",
    "GET /dids/{scope}/{name}/files",
    "GET /dids/{scope}/{name}/parents",
    "GET /dids/{scope}/{name}/associated_rules",
    "POST /dids/bulkmeta",
    "GET /rules/",
    "GET /accounts/{account}/rules",
    "GET /rules/{scope}/{name}/history",
    "GET /locks/{scope}/{name}",
    "GET /replicas/rse/{rse}",
    "POST /replicas/list",
    "GET /replicas/{scope}/{name}/datasets",
    "GET /transfers/",
    "GET /integrity/history/{scope}/{name}",
]
"""Reads that list DIDs: after each change, one of them looks around (with generated, steered
parameters: the second account's scope or root's)."""

_DID = {"scope": "$request.path.scope", "name": "$request.path.name"}
_RULE = {"rule_id": "$response.body#/0"}
_SAME_DID = {"parameters": _DID}
LINKS: list[Link] = [
    *[
        ("POST /dids/{scope}/{name}", "201", target, name, _SAME_DID)
        for name, target in [
            ("Read", "GET /dids/{scope}/{name}"),
            ("Content", "GET /dids/{scope}/{name}/dids"),
            ("Files", "GET /dids/{scope}/{name}/files"),
            ("Parents", "GET /dids/{scope}/{name}/parents"),
            ("Meta", "POST /dids/{scope}/{name}/meta"),
            ("Attach", "POST /dids/{scope}/{name}/dids"),
            ("Close", "PUT /dids/{scope}/{name}/status"),
            ("Embargo", "PUT /dids/{scope}/{name}/embargo"),
            ("Rules", "GET /dids/{scope}/{name}/rules"),
        ]
    ],
    (
        "POST /dids/{scope}/{name}",
        "201",
        "POST /rules/",
        "Rule",
        {"requestBody": {"dids": [_DID], "rse_expression": "BETA_DISK"}},
    ),
    (
        "POST /dids/{scope}/{name}/dids",
        "201",
        "GET /dids/{scope}/{name}/dids",
        "Content",
        _SAME_DID,
    ),
    ("POST /dids/{scope}/{name}/meta", "201", "GET /dids/{scope}/{name}/meta", "Meta", _SAME_DID),
    ("PUT /dids/{scope}/{name}/embargo", "200", "GET /dids/{scope}/{name}", "Read", _SAME_DID),
    # A read of any DID, hidden ones included, may be followed by a rule on it (issue 16, point 4)
    (
        "GET /dids/{scope}/{name}",
        "4XX",
        "POST /rules/",
        "Rule",
        {"requestBody": {"dids": [_DID], "rse_expression": "BETA_DISK"}},
    ),
    *[
        ("POST /rules/", "201", target, name, {"parameters": _RULE})
        for name, target in [
            ("Read", "GET /rules/{rule_id}"),
            ("Locks", "GET /rules/{rule_id}/locks"),
            ("History", "GET /rules/{rule_id}/history"),
            ("Analysis", "GET /rules/{rule_id}/analysis"),
            ("Update", "PUT /rules/{rule_id}"),
            ("Move", "POST /rules/{rule_id}/move"),
            ("Reduce", "POST /rules/{rule_id}/reduce"),
            ("Delete", "DELETE /rules/{rule_id}"),
        ]
    ],
    *[
        (source, "201", target, f"Look{index}", {})
        for source in ("POST /dids/{scope}/{name}", "POST /rules/")
        for index, target in enumerate(LISTINGS)
    ],
    (
        "POST /subscriptions/{account}/{name}",
        "201",
        "GET /subscriptions/{account}/{name}",
        "Read",
        {"parameters": {"account": "$request.path.account", "name": "$request.path.name"}},
    ),
    (
        "POST /subscriptions/{account}/{name}",
        "201",
        "GET /subscriptions/{account}/{name}/rules",
        "Rules",
        {"parameters": {"account": "$request.path.account", "name": "$request.path.name"}},
    ),
]
"""The links declared for the run: what one step makes, later steps use."""


CREATIONS = ("POST /dids/{scope}/{name}", "POST /subscriptions/{account}/{name}")
NAME = {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._+-]{0,15}$"}
"""A valid DID name (``naming``): what a creation draws, where no link gives one."""


def _steered(method: str, path: str) -> dict[str, dict[str, Any]]:
    """Schemas of path parameters steered to the lake's real names (negative cases still leave
    them): scopes, accounts and RSEs that exist; DIDs that exist, root's hidden ones included,
    for reads; valid new names for the rest."""
    scopes = [SECOND, *ROOT_SCOPES] if method == "get" else [SECOND, ROOT_SCOPES[0]]
    steered: dict[str, dict[str, Any]] = {
        "scope": {"type": "string", "enum": scopes},
        "account": {"type": "string", "enum": [SECOND, "root"]},
        "rse": {"type": "string", "enum": ["ALPHA_DISK", "BETA_DISK"]},
        "name": NAME,
    }
    if method == "get" and path.startswith(("/dids/", "/replicas/", "/locks/", "/rules/{scope}")):
        steered["name"] = {"type": "string", "enum": [*PUBLIC, *HIDDEN]}
    return steered


def stateful_document() -> dict[str, Any]:
    """The served document with ``LINKS`` and steered path parameters."""
    document = copy.deepcopy(openapi_document())
    paths = document["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            steered = _steered(method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in steered:
                    parameter["schema"] = steered[parameter["name"]]
    models = document["components"]["schemas"]
    models["DIDRef"]["properties"].update(
        scope={"type": "string", "enum": [SECOND, *ROOT_SCOPES]},
        name={"type": "string", "enum": [*PUBLIC, *HIDDEN]},
    )
    for model in models.values():
        if "properties" in model:  # the server ignores other fields: generate the ones it reads
            model.setdefault("additionalProperties", False)
    for source, status, target, name, fields in LINKS:
        method, path = source.split(" ", 1)
        target_method, target_path = target.split(" ", 1)
        response = paths[path][method.lower()]["responses"][status]
        operation_id = paths[target_path][target_method.lower()]["operationId"]
        response.setdefault("links", {})[name] = {"operationId": operation_id, **fields}
    return document


_GENERATION = {"allow-x00": False, "codec": "ascii"}
_config = schemathesis.Config.from_dict(
    {
        "generation": _GENERATION,
        "phases": {"stateful": {"generation": _GENERATION, "inference": {"algorithms": []}}},
    }
)
"""Printable requests (the plain run tests the rest), and only the links of ``LINKS``."""
schema = schemathesis.openapi.from_dict(stateful_document(), config=_config).exclude(path="/events")
"""The event stream answers for as long as the client listens (tests/test_events.py has it)."""


@dataclass
class Seeded:
    url: str
    token: str
    """The second account's."""


def _request_text(case: Case) -> str:
    parts = [case.formatted_path, case.query, case.body, case.path_parameters]
    return json.dumps(parts, default=str)


def _named(text: str) -> list[str]:
    return [name for name in HIDDEN if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text)]


def _exception(response: Response | httpx.Response) -> tuple[int, str, str]:
    headers = {key.lower(): value for key, value in response.headers.items()}

    def first(key: str) -> str:
        value = headers.get(key, "")
        return value[0] if isinstance(value, list) else value

    return response.status_code, first("exceptionclass"), first("exceptionmessage")


def hidden_stays_hidden(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No answer names a hidden DID the request did not name; one that does is answered as the
    same request about a DID that does not exist."""
    asked = _named(_request_text(case))
    answer = response.content.decode(errors="replace") + str(dict(response.headers))
    leaked = [name for name in _named(answer) if name not in asked]
    if leaked:
        raise AssertionError(f"{case.method} {case.formatted_path} named hidden {leaked}")
    if not asked or not any(scope in _request_text(case) for scope in ROOT_SCOPES):
        return True
    request = response.request
    sent = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
    url, missing = request.url, {name: f"nowhere-{name}" for name in asked}
    for name in asked:
        url, sent = url.replace(name, missing[name]), sent.replace(name, missing[name])
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    replay = httpx.request(request.method, url, headers=headers, content=sent)
    expected = _exception(replay)
    got = _exception(response)
    for name in asked:
        got = (got[0], got[1], got[2].replace(name, missing[name]))
    assert got == expected, (
        f"{case.method} {case.formatted_path}: hidden {got} vs missing {expected}"
    )
    return True


CHECKS = [*plain_run.CHECKS, hidden_stays_hidden]
"""The plain run's checks, and no hidden DID named."""


def _file(scope: str, name: str) -> dict[str, object]:
    adler32 = f"{zlib.adler32(name.encode()) & 0xFFFFFFFF:08x}"
    return {"scope": scope, "name": name, "bytes": len(name), "adler32": adler32}


def _replicas(scope: str, names: list[str], dataset: str | None) -> dict[str, object]:
    files = [_file(scope, name) for name in names]
    body: dict[str, object] = {"rse": "ALPHA_DISK", "files": files}
    if dataset is not None:
        body["dataset"] = {"scope": scope, "name": dataset}
    return body


def _ref(scope: str, name: str) -> dict[str, str]:
    return {"scope": scope, "name": name}


ROOT_SEED: list[tuple[str, str, object]] = [
    ("POST", "/accounts/root/scopes/virgo", None),
    ("POST", "/accounts/root/scopes/sealed", None),
    ("POST", "/replicas", _replicas("virgo", ["f0", "f1"], "ds")),
    ("POST", "/replicas", _replicas("virgo", ["hush-f0", "hush-f1"], "hush-ds")),
    ("POST", "/replicas", _replicas("sealed", ["hush-g0"], None)),
    ("POST", "/dids/virgo/ds/dids", {"dids": [_ref("virgo", "hush-f1")]}),
    ("POST", "/dids/virgo/box", {"type": "container"}),
    ("POST", "/dids/virgo/box/dids", {"dids": [_ref("virgo", "ds"), _ref("virgo", "hush-ds")]}),
    ("POST", "/dids/virgo/ds/meta", {"meta": {"run": 7}}),
    ("POST", "/dids/virgo/hush-ds/meta", {"meta": {"run": 7}}),
    ("POST", "/rules/", {"dids": [_ref("virgo", "ds")], "rse_expression": "BETA_DISK"}),
    ("POST", "/rules/", {"dids": [_ref("virgo", "hush-ds")], "rse_expression": "BETA_DISK"}),
    ("POST", "/rules/", {"dids": [_ref("sealed", "hush-g0")], "rse_expression": "BETA_DISK"}),
    ("PUT", "/dids/virgo/hush-ds/embargo", {"embargoed": True}),
    ("PUT", "/scopes/sealed/embargo", {"embargoed": True}),
    ("POST", f"/accounts/{SECOND}", {"type": "USER", "password": PASSWORD}),
    ("POST", f"/accounts/{SECOND}/scopes/{SECOND}", None),
]
"""Root's data, public and hidden, and the second account with her scope."""


def _token(url: str, account: str, password: str) -> str:
    headers = {
        "X-Rucio-Account": account,
        "X-Rucio-Username": account,
        "X-Rucio-Password": password,
    }
    login = httpx.get(f"{url}/auth/userpass", headers=headers)
    assert login.status_code == 200, login.headers.get("ExceptionMessage")
    return login.headers["X-Rucio-Auth-Token"]


@pytest.fixture(scope="module")
def seeded(session_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Root's lake seeded once per backend over REST, and the second account's token."""
    session_server.lake.pause_daemons()  # the replicas have no bytes: nobody may copy them
    reset_catalog(session_server.lake, tmp_path_factory.mktemp("rses"))
    url = session_server.url
    root = _token(url, "root", ROOT_PASSWORD)
    with httpx.Client(base_url=url, headers={"X-Rucio-Auth-Token": root}) as http:
        for method, path, body in ROOT_SEED:
            response = http.request(method, path, json=body)
            assert response.status_code in (200, 201), response.headers.get("ExceptionMessage")
    token = _token(url, SECOND, PASSWORD)
    with httpx.Client(base_url=url, headers={"X-Rucio-Auth-Token": token}) as http:
        assert http.get("/dids/virgo/ds").status_code == 200
        for did in ("virgo/hush-ds", "virgo/hush-f1", "sealed/hush-g0"):
            assert http.get(f"/dids/{did}").status_code == 404, did  # the run has a point
    return Seeded(url=url, token=token)


@dataclass
class Walk:
    """What the run did: each answer's (operation, status), the requests naming a hidden DID,
    and every failed check. Failures are collected, not raised: a scenario cannot be replayed
    against a server whose catalog the earlier scenarios changed, so hypothesis could not shrink
    it (it would only report its own flakiness)."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    serial: Iterator[int] = field(default_factory=itertools.count)
    scenarios: int = 0
    hidden_asked: int = 0
    failures: list[str] = field(default_factory=list)


class SecondAccount(schema.as_state_machine()):  # type: ignore[misc]
    """The state machine, calling as the second account."""

    seeded: ClassVar[Seeded]
    walk: ClassVar[Walk]

    def before_call(self, case: Case) -> None:
        case.headers = {**(case.headers or {}), "X-Rucio-Auth-Token": self.seeded.token}
        name = (case.path_parameters or {}).get("name")
        valid = isinstance(name, str) and re.fullmatch(NAME["pattern"], name)
        if f"{case.method} {case.path}" in CREATIONS and valid:
            # A fresh name each time: a scenario that starts as an earlier one did makes a new
            # collection and gets the same 201, so hypothesis sees the same choices again
            case.path_parameters["name"] = f"{name}.{next(self.walk.serial)}"

    def teardown(self) -> None:
        self.walk.scenarios += 1

    def get_call_kwargs(self, case: Case) -> dict[str, Any]:
        return {"base_url": self.seeded.url}

    def validate_response(  # type: ignore[override]
        self, response: Response, case: Case, *args: Any, **kwargs: Any
    ) -> None:
        self.walk.answers[(f"{case.method} {case.path}", response.status_code)] += 1
        self.walk.hidden_asked += bool(_named(_request_text(case)))
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as failure:
            request = f"{case.method} {case.formatted_path} {_request_text(case)[:300]}"
            self.walk.failures.append(f"{request} -> {response.status_code}: {failure!s:.600}")


_SETTINGS = settings(
    max_examples=10,  # scenarios per run
    stateful_step_count=STEPS,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],  # no replay nor shrinking: the catalog has changed since (see Walk)
    # Hypothesis's "ci" profile (loaded when CI is set) derandomizes: every run would then repeat
    # the first scenario, which the changed catalog makes flaky at once, and the walk would stall
    derandomize=False,
)


def test_linked_requests_of_a_second_account_never_fail_nor_leak(seeded: Seeded) -> None:
    """Scenarios until ``CALLS`` calls are made. Hypothesis stops a run as soon as a scenario goes
    otherwise than an earlier one with the same start (the catalog, and schemathesis's choice of
    links, changed in between): then a new run starts (not derandomized, or it would stop at the
    same place)."""
    SecondAccount.seeded, SecondAccount.walk = seeded, Walk()
    for _ in range(CALLS):
        with contextlib.suppress(Flaky):
            SecondAccount.run(settings=_SETTINGS)
        if SecondAccount.walk.answers.total() >= CALLS:
            break
    walk = SecondAccount.walk
    assert walk.failures == []
    done = {operation for (operation, status), _ in walk.answers.items() if status < 300}
    assert "POST /dids/{scope}/{name}" in done, sorted(walk.answers.items())  # she made some
    reads = {operation for operation in done if operation.startswith("GET ")}
    assert len(reads) >= 5, sorted(walk.answers.items())  # and the links led on to reads
    assert walk.hidden_asked > 0  # and she asked about root's hidden DIDs


def test_no_read_of_a_public_neighbour_names_a_hidden_did(seeded: Seeded) -> None:
    """The walk above draws its reads at random; this one is exhaustive: every GET of the
    document (and the listings sent as POST), with each public DID of root's around the hidden
    ones — the container holding the embargoed dataset, the dataset sharing a hidden file —
    never names a hidden DID to the second account."""
    root = _token(seeded.url, "root", ROOT_PASSWORD)
    with httpx.Client(base_url=seeded.url, headers={"X-Rucio-Auth-Token": root}) as http:
        rules = [rule["id"] for rule in map(json.loads, http.get("/rules/").text.splitlines())]
    values = {
        "scope": ["virgo", "sealed", SECOND],
        "name": list(PUBLIC),
        "account": ["root", SECOND],
        "rse": ["ALPHA_DISK", "BETA_DISK"],
        "rule_id": rules,
    }
    calls = [
        ("POST", "/replicas/list", {"dids": [_ref("virgo", name)], "resolve_parents": True})
        for name in PUBLIC
    ] + [("POST", "/dids/bulkmeta", {"dids": [_ref("virgo", name) for name in PUBLIC]})]
    for path, operations in openapi_document()["paths"].items():
        wanted = re.findall(r"{(\w+)}", path)
        if "get" not in operations or path == "/events" or set(wanted) - set(values):
            continue
        for chosen in itertools.product(*(values[key] for key in wanted)):
            calls.append(("GET", path.format(**dict(zip(wanted, chosen, strict=True))), None))
    leaks = []
    headers = {"X-Rucio-Auth-Token": seeded.token}
    with httpx.Client(base_url=seeded.url, headers=headers) as http:
        for method, path, body in calls:
            response = http.request(method, path, json=body)
            assert response.status_code < 500, f"{method} {path}: {response.status_code}"
            answer = response.text + str(dict(response.headers))
            if named := _named(answer):
                leaks.append(f"{method} {path}: {named}")
    assert len(calls) > 100
    assert leaks == []


def test_the_links_are_the_ones_walked() -> None:
    """Every declared link is valid for schemathesis, and no inferred one is added."""
    assert schema.statistic.transitions.total == len(LINKS)
