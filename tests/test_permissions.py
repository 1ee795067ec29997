"""The permission model, checked against the running server: every operation in /openapi.json
has a row in ``lacus.service.permissions.PERMISSIONS`` (a new endpoint without one fails here),
docs/permissions.md shows the same table, and every operation is called as each role (admin,
the owner of a scope, another account, anonymous) on a seeded lake, with the outcome its row
promises: allowed (2xx, or a 4xx other than 401/403), 403 where denied, 401 without a token.
A DID the caller may not see answers exactly as a missing one: same status, same error class,
same message and body with the name substituted."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from lacus.client import Client
from lacus.server.app import create_app
from lacus.server.dashboard import pages, session
from lacus.service import Lake
from lacus.service.permissions import PERMISSIONS, Access, Permission
from tests.conftest import ROOT_PASSWORD, RunningServer

PASSWORD = "password-of-the-tests"
DOC = Path(__file__).parent.parent / "docs" / "permissions.md"
ROLES = ("anonymous", "other", "owner", "admin")
HIDDEN_DATASET, HIDDEN_FILE, MISSING = "secret-ds", "secret.dat", "nosuch"

UNEXERCISED: dict[str, str] = {}
"""Operations the sweep cannot call, with why (keep this short; each one is a gap): none."""

NOT_CATALOG = {
    "GET /rses/{rse}/lfns2pfns": "computes a path from the name given; reads no DID",
}
"""Operations whose answer depends on the name given but not on the catalog: not compared
hidden against missing (with why)."""

PFNS: dict[str, str] = {}
"""The PFN of each seeded file on ALPHA_DISK (filled by the fixture)."""

Body = Callable[[str, str], Any]
"""The JSON body of a request on DID ``scope:name``."""


def _did(scope: str, name: str) -> dict[str, str]:
    return {"scope": scope, "name": name}


BODIES: dict[str, Body] = {
    "POST /accounts/{account}/limits/local/{rse}": lambda s, n: {"bytes": 10**9},
    "POST /accounts/{account}/limits/global/{expression}": lambda s, n: {"bytes": 10**9},
    "POST /accounts/{account}": lambda s, n: {"type": "USER", "password": PASSWORD},
    "POST /accounts/{account}/identities": lambda s, n: {
        "identity": "sub-1",
        "type": "OIDC",
        "issuer": "https://issuer.example",
    },
    "PUT /scopes/{scope}/embargo": lambda s, n: {"embargoed": False},
    "POST /rses/{rse}": lambda s, n: {"attributes": {"site": "NEW"}},
    "PUT /rses/{rse}": lambda s, n: {"availability_read": True},
    "POST /rses/{rse}/attr/{key}": lambda s, n: {"value": "v"},
    "POST /rses/{rse}/protocols/{scheme}": lambda s, n: {
        "prefix": "/tmp/lacus-permissions-protocol",
        "impl": "posix",
    },
    "POST /rses/{src}/distances/{dest}": lambda s, n: {"distance": 3},
    "PUT /rses/{src}/distances/{dest}": lambda s, n: {"distance": 4},
    "POST /dids": lambda s, n: [
        {"scope": s, "name": f"new-{uuid.uuid4().hex[:8]}", "type": "DATASET"}
    ],
    "POST /dids/attachments": lambda s, n: {
        "attachments": [{"scope": s, "name": "box", "dids": [_did(s, n)]}],
        "ignore_duplicate": True,
    },
    "POST /dids/bulkmeta": lambda s, n: {"dids": [_did(s, n)]},
    "POST /dids/{scope}/{name}": lambda s, n: {"type": "DATASET"},
    "POST /dids/{scope}/{name}/dids": lambda s, n: {
        "dids": [_did(s, "open.dat")],
        "ignore_duplicate": True,
    },
    "DELETE /dids/{scope}/{name}/dids": lambda s, n: {"dids": [_did(s, "other.dat")]},
    "PUT /dids/{scope}/{name}/status": lambda s, n: {"open": False},
    "POST /dids/{scope}/{name}/meta": lambda s, n: {"meta": {"run": 8}},
    "POST /dids/{scope}/{name}/meta/{key}": lambda s, n: {"value": 9},
    "PUT /dids/{scope}/{name}/embargo": lambda s, n: {"embargoed": n == HIDDEN_DATASET},
    "POST /replicas": lambda s, n: {
        "rse": "BETA_DISK",
        "files": [
            {
                "scope": s,
                "name": f"reg-{uuid.uuid4().hex[:8]}",
                "bytes": 3,
                "adler32": "024d0127",
                "state": "C",
            }
        ],
    },
    "PUT /replicas": lambda s, n: {
        "rse": "ALPHA_DISK",
        "files": [{"scope": s, "name": n, "state": "A"}],
    },
    "POST /replicas/list": lambda s, n: {"dids": [_did(s, n)]},
    "POST /replicas/datasets_bulk": lambda s, n: {"dids": [_did(s, n)]},
    "POST /replicas/bad": lambda s, n: {
        "replicas": [{"scope": s, "name": n, "rse": "ALPHA_DISK"}],
        "reason": "test",
    },
    "POST /replicas/bad/dids": lambda s, n: {"dids": [_did(s, n)], "rse": "ALPHA_DISK"},
    "POST /replicas/bad/pfns": lambda s, n: {"pfns": [PFNS[n]], "state": "BAD"},
    "POST /replicas/suspicious": lambda s, n: {
        "replicas": [{"scope": s, "name": n, "rse": "ALPHA_DISK"}],
        "reason": "test",
    },
    "POST /replicas/quarantine": lambda s, n: {
        "rse": "ALPHA_DISK",
        "replicas": [{"path": "dark/x"}],
    },
    "POST /integrity/declarations": lambda s, n: {
        "state": "unavailable",
        "replicas": [{"scope": s, "name": n, "rse": "ALPHA_DISK"}],
        "reason": "test",
    },
    "POST /rules/": lambda s, n: {
        "dids": [_did(s, n)],
        "copies": 1,
        "rse_expression": "ALPHA_DISK",
    },
    "PUT /rules/{rule_id}": lambda s, n: {"options": {"comment": "checked"}},
    "DELETE /rules/{rule_id}": lambda s, n: {"purge_replicas": False},
    "POST /rules/{rule_id}/move": lambda s, n: {"rse_expression": "GAMMA_TAPE"},
    "POST /rules/{rule_id}/reduce": lambda s, n: {"copies": 1},
    "POST /subscriptions/{account}/{name}": lambda s, n: {
        "options": {
            "filter": {"scope": [s], "pattern": "^never"},
            "replication_rules": [{"copies": 1, "rse_expression": "BETA_DISK"}],
        }
    },
    "PUT /subscriptions/{account}/{name}": lambda s, n: {"options": {"comments": "checked"}},
    "POST /policies/": lambda s, n: {
        "name": f"p{uuid.uuid4().hex[:6]}",
        "steps": [{"copies": 1, "rse_expression": "BETA_DISK"}],
    },
    "POST /traces/": lambda s, n: {
        "scope": s,
        "filename": n,
        "rse": "ALPHA_DISK",
        "eventType": "get",
    },
}

QUERIES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "GET /rses/{rse}/lfns2pfns": lambda s, n: {"lfn": f"{s}:{n}"},
    "GET /dids/{scope}/": lambda s, n: {"name": n},
    "DELETE /dids/{scope}/{name}/meta": lambda s, n: {"key": "gone"},
    "GET /transfers/": lambda s, n: {"scope": s, "name": n},
    "GET /events": lambda s, n: {"did": f"{s}:{n}", "after": 0},
    "GET /dids/{scope}/dids/search": lambda s, n: {"name": n},
    "GET /dashboard/dids": lambda s, n: {"scope": s, "name": n},
    "GET /dashboard/events": lambda s, n: {"did": f"{s}:{n}"},
}

FILE_OPERATIONS = {
    "PUT /replicas",
    "POST /replicas/bad",
    "POST /replicas/bad/dids",
    "POST /replicas/bad/pfns",
    "POST /replicas/suspicious",
    "POST /integrity/declarations",
    "GET /integrity/history/{scope}/{name}",
    "GET /replicas/{scope}/{name}/datasets",
    "POST /traces/",
}
"""Operations on a file rather than on a dataset."""

PATH_NAMES: dict[str, dict[str, str]] = {
    "POST /rses/{rse}": {"rse": "NEW_DISK"},
    "POST /accounts/{account}": {"account": "carol"},
    "POST /accounts/{account}/scopes/{scope}": {"scope": "alice2"},
    "POST /dids/{scope}/{name}": {"name": "made-here"},
    "POST /rules/{rule_id}/move": {"rule_id": "move"},
    "POST /rules/{rule_id}/reduce": {"rule_id": "move"},
    "DELETE /rules/{rule_id}": {"rule_id": "delete"},
    "DELETE /rses/{src}/distances/{dest}": {"dest": "GAMMA_TAPE"},
    "PUT /dids/{scope}/{name}/status": {"name": "closing"},
    "DELETE /dids/{scope}/{name}/dids": {"name": "closing"},
}
"""Path parameters of one operation that differ from the lake's fixtures."""

LAST = ("DELETE ", "/move", "/reduce", "PUT /dids/{scope}/{name}/status")
"""Operations that remove or replace what others use: called after all the others."""


@dataclass
class Seeded:
    """The seeded lake: alice owns scope ``alice`` (dataset ``secret-ds`` embargoed, ``pub`` public,
    container ``box``, files ``secret.dat`` in it and ``open.dat`` in pub), with rules and a
    subscription; bob owns nothing there."""

    url: str
    tokens: dict[str, str]
    rules: dict[str, str]
    subscription_id: str
    failures: list[str] = field(default_factory=list)

    def path(self, operation: str, scope: str, name: str, rule: str | None = None) -> str:
        template = operation.split(" ", 1)[1]
        values = {
            "account": "alice",
            "scope": scope,
            "name": name,
            "rse": "ALPHA_DISK",
            "src": "ALPHA_DISK",
            "dest": "BETA_DISK",
            "expression": "ALPHA_DISK",
            "key": "run",
            "scheme": "file",
            "rule_id": self.rules["main"],
            "subscription_id": self.subscription_id,
            "token_id": "0123abcd",
        }
        if "/subscriptions/" in template:
            values["name"] = "sub"
        if template.startswith("/policies/"):
            values["name"] = "pol"
        values.update(PATH_NAMES.get(operation, {}))
        if rule is not None:
            values["rule_id"] = rule
        if values["rule_id"] in self.rules:
            values["rule_id"] = self.rules[values["rule_id"]]
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)

    def call(
        self,
        http: httpx.Client,
        operation: str,
        role: str,
        scope: str,
        name: str,
        rule: str | None = None,
    ) -> httpx.Response:
        method = operation.split(" ", 1)[0]
        headers = {} if role == "anonymous" else {"X-Rucio-Auth-Token": self.tokens[role]}
        if operation == "GET /auth/userpass":  # anyone who knows a password
            headers = {
                "X-Rucio-Account": "bob",
                "X-Rucio-Username": "bob",
                "X-Rucio-Password": PASSWORD,
            }
        body = BODIES.get(operation)
        query = QUERIES.get(operation)
        request = http.build_request(
            method,
            self.path(operation, scope, name, rule),
            headers=headers,
            params=query(scope, name) if query else None,
            json=body(scope, name) if body else None,
        )
        response = http.send(request, stream=True)
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                response._content = b""  # an endless stream: its status says enough
            else:
                response.read()
        finally:
            response.close()
        return response


def _operations(spec: dict[str, Any]) -> list[str]:
    """The operations of /openapi.json and the dashboard's pages (which it leaves out)."""
    served = [f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops]
    for router in (pages.router, session.router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            served.extend(f"{method} {route.path}" for method in sorted(route.methods))
    return served


def _token(url: str, account: str, password: str) -> str:
    response = httpx.get(
        f"{url}/auth/userpass",
        headers={
            "X-Rucio-Account": account,
            "X-Rucio-Username": account,
            "X-Rucio-Password": password,
        },
    )
    assert response.status_code == 200, response.headers.get("ExceptionMessage")
    return response.headers["X-Rucio-Auth-Token"]


@pytest.fixture
def seeded(client: Client, server: RunningServer, tmp_path: Path) -> Seeded:
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)
    client.add_scope("alice", account="alice")
    client.add_policy("pol", [{"copies": 1, "rse_expression": "BETA_DISK"}])
    alice = Client(server.url, account="alice", password=PASSWORD)
    try:
        for name in ("secret.dat", "open.dat", "other.dat"):
            (tmp_path / name).write_bytes(f"bytes of {name}".encode())
        alice.upload(
            [tmp_path / "secret.dat"], rse="ALPHA_DISK", scope="alice", dataset=HIDDEN_DATASET
        )
        alice.upload([tmp_path / "open.dat"], rse="ALPHA_DISK", scope="alice", dataset="pub")
        alice.upload([tmp_path / "other.dat"], rse="ALPHA_DISK", scope="alice", dataset="closing")
        alice.add_container("alice:box")
        alice.attach("alice:box", [f"alice:{HIDDEN_DATASET}", "alice:pub"])
        alice.set_metadata(f"alice:{HIDDEN_DATASET}", {"run": 7})
        alice.set_metadata("alice:pub", {"run": 7})
        (main,) = alice.add_rule("alice:pub", "BETA_DISK")
        (move,) = alice.add_rule("alice:open.dat", "BETA_DISK")
        (delete,) = alice.add_rule("alice:closing", "BETA_DISK")
        (hidden,) = alice.add_rule(f"alice:{HIDDEN_DATASET}", "BETA_DISK")
        subscription_id = alice.add_subscription(
            "sub",
            filter={"scope": ["alice"], "pattern": "^never"},
            rules=[{"copies": 1, "rse_expression": "BETA_DISK"}],
        )
        for name in ("secret.dat", "open.dat", "other.dat", MISSING):
            (pfn,) = alice.session.json(
                "GET", "/rses/ALPHA_DISK/lfns2pfns", params={"lfn": f"alice:{name}"}
            ).values()
            PFNS[name] = pfn
        alice.set_embargo(f"alice:{HIDDEN_DATASET}")
        tokens = {
            "admin": _token(server.url, "root", ROOT_PASSWORD),
            "owner": alice.token(),
            "other": _token(server.url, "bob", PASSWORD),
        }
    finally:
        alice.close()
    return Seeded(
        server.url,
        tokens,
        {"main": main, "move": move, "delete": delete, "hidden": hidden},
        subscription_id,
    )


def _expected(access: Access, role: str) -> str:
    if access is Access.ANYONE:
        return "allowed"
    if role == "anonymous":
        return "401"
    if access is Access.ACCOUNT or role == "admin":
        return "allowed"
    if access is Access.OWNER and role == "owner":
        return "allowed"
    return "403"


def _outcome(operation: str, response: httpx.Response) -> str:
    status = response.status_code
    if status in (401, 403):
        return str(status)
    to_login = "/dashboard/login" in response.headers.get("location", "")
    if status == 303 and to_login and operation != "POST /dashboard/logout":
        return "401"  # a dashboard page sends who has no token to the login form
    if 200 <= status < 300 and "may not declare" in response.text:
        return "403"  # refused per replica, in Rucio's list of what was not declared
    if status < 500:
        return "allowed"
    return f"server error {status}"


def _answer(response: httpx.Response, hidden: str) -> tuple[int, str, str, str]:
    """What a response tells: status, error class, message and body, ``hidden`` → MISSING."""

    def substituted(text: str) -> str:
        if hidden in PFNS:
            text = text.replace(PFNS[hidden], PFNS[MISSING])
        return text.replace(hidden, MISSING)

    if hidden not in (HIDDEN_DATASET, HIDDEN_FILE, MISSING):  # a rule id: compared as a missing id
        return (
            response.status_code,
            response.headers.get("ExceptionClass", ""),
            response.headers.get("ExceptionMessage", "").replace(hidden, "ID"),
            response.text.replace(hidden, "ID"),
        )

    return (
        response.status_code,
        response.headers.get("ExceptionClass", ""),
        substituted(response.headers.get("ExceptionMessage", "")),
        substituted(response.text),
    )


def test_every_operation_has_a_permission(server: RunningServer) -> None:
    served = _operations(httpx.get(f"{server.url}/openapi.json").json())
    assert sorted(set(served) - set(PERMISSIONS)) == [], "routes without a permission row"
    assert sorted(set(PERMISSIONS) - set(served)) == [], "permission rows without a route"
    assert set(UNEXERCISED) <= set(PERMISSIONS)


def test_an_operation_without_a_row_is_refused_to_everyone(lake: Lake) -> None:
    """The gate is closed by default: a route added to the server without a permission row
    answers 403 even to root, and one with a row is gated by it (no check in the route)."""
    app = create_app(lake.settings, lake=lake, daemons=False)
    app.get("/unlisted")(lambda: {"reached": True})
    app.get("/rses/{rse}/secret")(lambda rse: {"reached": rse})
    secret = "GET /rses/{rse}/secret"
    PERMISSIONS[secret] = Permission(secret, "RSEs", Access.ADMIN)
    try:
        asyncio.run(_ask_the_gate(app))
    finally:
        del PERMISSIONS[secret]


async def _ask_the_gate(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://lake"
    ) as http:
        login = {"X-Rucio-Account": "root", "X-Rucio-Username": "root"}
        answer = await http.get(
            "/auth/userpass", headers={**login, "X-Rucio-Password": ROOT_PASSWORD}
        )
        root = {"X-Rucio-Auth-Token": answer.headers["X-Rucio-Auth-Token"]}
        refused = await http.get("/unlisted", headers=root)
        assert (refused.status_code, refused.headers["ExceptionClass"]) == (403, "AccessDenied")
        assert "not in the permission table" in refused.headers["ExceptionMessage"]
        assert (await http.get("/rses/X/secret", headers=root)).json() == {"reached": "X"}
        assert (await http.get("/rses/X/secret")).status_code == 401


def test_the_document_shows_the_table() -> None:
    rows = re.findall(r"^\| `([A-Z]+ [^`]+)` \|(.*)\|\s*$", DOC.read_text(), re.MULTILINE)
    documented = {op: [cell.strip() for cell in cells.split("|")] for op, cells in rows}
    assert sorted(documented) == sorted(PERMISSIONS)
    for operation, cells in documented.items():
        rule = PERMISSIONS[operation]
        expected = [
            _cell(_expected(rule.access, role)) for role in ("admin", "owner", "other", "anonymous")
        ]
        assert cells[:5] == [*expected, "as missing" if rule.hides else ""], operation


def _cell(outcome: str) -> str:
    return "yes" if outcome == "allowed" else outcome


def test_every_role_gets_what_the_table_says(seeded: Seeded) -> None:
    """The sweep: every operation, every role. And, before anything changes, a hidden DID
    answers as a missing one to the other account."""
    operations = sorted(PERMISSIONS, key=lambda op: (any(mark in op for mark in LAST), op))
    allowed: list[bool] = []
    with httpx.Client(base_url=seeded.url, timeout=30) as http:
        for operation in operations:
            if operation in NOT_CATALOG or (
                "{scope}" not in operation and operation not in BODIES | QUERIES
            ):
                continue
            hidden = HIDDEN_FILE if operation in FILE_OPERATIONS else HIDDEN_DATASET
            seen = seeded.call(http, operation, "other", "alice", hidden)
            missing = seeded.call(http, operation, "other", "alice", MISSING)
            if operation == "GET /dids/{scope}/{name}":  # the check has teeth: the owner sees it
                mine = seeded.call(http, operation, "owner", "alice", hidden)
                assert _answer(mine, hidden) != _answer(missing, MISSING)
            if _answer(seen, hidden) != _answer(missing, MISSING):
                seeded.failures.append(
                    f"{operation}: hidden {_answer(seen, hidden)[:3]} != missing "
                    f"{_answer(missing, MISSING)[:3]}"
                )
        for operation in operations:  # a rule on a hidden DID answers as a missing rule
            if "{rule_id}" not in operation or not operation.startswith("GET "):
                continue
            hidden_rule, no_rule = seeded.rules["hidden"], uuid.uuid4().hex
            seen = seeded.call(http, operation, "other", "alice", "pub", hidden_rule)
            missing = seeded.call(http, operation, "other", "alice", "pub", no_rule)
            if _answer(seen, hidden_rule) != _answer(missing, no_rule):
                seeded.failures.append(
                    f"{operation}: hidden rule {_answer(seen, hidden_rule)[:3]} != missing "
                    f"{_answer(missing, no_rule)[:3]}"
                )
        for operation in operations:
            if operation in UNEXERCISED:
                continue
            rule = PERMISSIONS[operation]
            name = "pub"
            if operation in FILE_OPERATIONS:  # declared files stay off the others' way
                name = (
                    "other.dat" if "/bad" in operation or "/integrity/" in operation else "open.dat"
                )
            for role in ROLES:
                response = seeded.call(http, operation, role, "alice", name)
                got, want = _outcome(operation, response), _expected(rule.access, role)
                if want == "allowed":
                    allowed.append(response.status_code < 300)
                if got != want:
                    seeded.failures.append(
                        f"{operation} as {role}: {response.status_code} "
                        f"{response.headers.get('ExceptionClass', '')} "
                        f"{response.headers.get('ExceptionMessage', '')[:120]} (want {want})"
                    )
    assert not seeded.failures, "\n".join(seeded.failures)
    # realistic parameters: the calls allowed mostly succeed (the rest are duplicates, things
    # an earlier role removed, refusals of the domain), so a 4xx cannot hide a missing check
    assert sum(allowed) > 0.85 * len(allowed), f"{sum(allowed)} of {len(allowed)} succeeded"


# -- sizes and usage counters: never overflow, never negative, never clamped ----------------------


def _ghost(name: str, size: int, state: str = "A") -> dict[str, Any]:
    return {"scope": "alice", "name": name, "bytes": size, "adler32": "00000001", "state": state}


def _used(lake: Lake, rse: str = "ALPHA_DISK") -> tuple[int, int]:
    from lacus.core import rses

    with lake.read() as conn:
        info = rses.get_rse(conn, rse)
    return info["used_bytes"], info["files"]


def test_usage_counters_refuse_to_overflow(seeded: Seeded, lake: Lake) -> None:
    """Issue 16, point 1: a registration that would overflow the RSE's used space is refused
    (400) and changes nothing; a non-admin cannot register a ghost replica available at all."""
    with httpx.Client(base_url=seeded.url, timeout=30) as http:
        as_owner = {"X-Rucio-Auth-Token": seeded.tokens["owner"]}
        ghost = {"rse": "ALPHA_DISK", "files": [_ghost("ghost", 2**63 - 1)]}
        refused = http.post("/replicas", json=ghost, headers=as_owner)
        assert refused.status_code == 404, refused.text  # not on the storage: not registered
        assert refused.headers["ExceptionClass"] == "ReplicaNotFound"

        as_admin = {"X-Rucio-Auth-Token": seeded.tokens["admin"]}
        before = _used(lake)
        room = 2**63 - 1 - before[0]
        assert (
            http.post(
                "/replicas",
                json={"rse": "ALPHA_DISK", "files": [_ghost("full", room)]},
                headers=as_admin,
            ).status_code
            == 201
        )
        assert _used(lake) == (2**63 - 1, before[1] + 1)
        over = http.post(
            "/replicas",
            json={"rse": "ALPHA_DISK", "files": [_ghost("one-more", 1)]},
            headers=as_admin,
        )
        assert over.status_code == 400, over.text
        assert over.headers["ExceptionClass"] == "InvalidObject"
        assert _used(lake) == (2**63 - 1, before[1] + 1)
        two = {"rse": "BETA_DISK", "files": [_ghost("a", 2**62), _ghost("b", 2**62)]}
        assert http.post("/replicas", json=two, headers=as_admin).status_code == 400
        assert _used(lake, "BETA_DISK")[0] < 2**63


def test_usage_counters_refuse_to_go_negative(lake: Lake) -> None:
    from lacus.core import rses
    from lacus.errors import InvalidInput

    with lake.write() as conn:
        rse_id = rses.get_rse_id(conn, "ALPHA_DISK")
        rses.adjust_usage(conn, rse_id, bytes_delta=10, files_delta=1)
    for bytes_delta, files_delta in ((-11, 0), (0, -2), (2**63 - 1, 0), (-(2**64), 0)):
        with pytest.raises(InvalidInput), lake.write() as conn:
            rses.adjust_usage(conn, rse_id, bytes_delta=bytes_delta, files_delta=files_delta)
    with lake.read() as conn:
        info = rses.get_rse(conn, "ALPHA_DISK")
    assert (info["used_bytes"], info["files"]) == (10, 1)
