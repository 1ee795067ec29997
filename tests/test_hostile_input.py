"""What an attacker (or a careless script) sends: every hostile request gets a 4xx with Rucio's
error headers and a JSON body, never a 500 nor a traceback, and the catalog stays as it was.

Path traversal, NUL bytes, lone surrogates, overlong names, integers beyond 64 bits, negative
sizes, deeply nested JSON, bodies of the wrong JSON type, bodies over the size limit (declared or
not), hostile ``filters`` literals and RSE expressions, floods beyond the per-request limits.
Complements the error cases of ``test_rest.py``. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from pydantic import ValidationError

from lacus.client import Client
from lacus.errors import InvalidInput
from lacus.server import create_app
from lacus.service import Lake, Principal, Settings, dids, scopes
from lacus.types import DIDType
from tests.conftest import ROOT_PASSWORD, RunningServer

JSON = {"Content-Type": "application/json"}
BIG = 2**63  # one beyond the largest signed 64-bit integer
DEEP = 100_000  # nesting depth of the deepest JSON document sent
TRACEBACK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3")


def login(url: str, account: str = "root", password: str = ROOT_PASSWORD) -> str:
    response = httpx.get(
        f"{url}/auth/userpass",
        headers={"X-Rucio-Username": account, "X-Rucio-Password": password},
    )
    assert response.status_code == 200
    return response.headers["X-Rucio-Auth-Token"]


def file_body(name: str, size: int | None = None, scope: str = "virgo") -> dict[str, Any]:
    data = name.encode()
    return {
        "scope": scope,
        "name": name,
        "bytes": len(data) if size is None else size,
        "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
    }


def raw_json(text: str) -> dict[str, Any]:
    """Request arguments sending ``text`` as it is (JSON escapes such as \\u0000 stay intact)."""
    return {"content": text.encode(), "headers": JSON}


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    """Root over raw HTTP, on a catalog with scope virgo, dataset virgo:ds (f0, f1), virgo:c."""
    with httpx.Client(
        base_url=server.url, headers={"X-Rucio-Auth-Token": login(server.url)}, timeout=60
    ) as raw:
        for method, path, body in [
            ("POST", "/accounts/root/scopes/virgo", None),
            (
                "POST",
                "/replicas",
                {
                    "rse": "ALPHA_DISK",
                    "files": [file_body("f0"), file_body("f1")],
                    "dataset": {"scope": "virgo", "name": "ds"},
                },
            ),
            ("POST", "/dids/virgo/ds/meta", {"meta": {"run": 7}}),
            ("POST", "/dids/virgo/c", {"type": "container"}),
        ]:
            response = raw.request(method, path, json=body)
            assert response.status_code == 201, response.headers.get("ExceptionMessage")
        yield raw


def snapshot(http: httpx.Client) -> dict[str, Any]:
    """What a refused request must leave unchanged."""

    def lines(response: httpx.Response) -> list[Any]:
        assert response.status_code == 200, response.headers.get("ExceptionMessage")
        return [orjson.loads(line) for line in response.content.splitlines() if line]

    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k != "updated_at"} for item in items]

    return {
        "dids": strip(lines(http.get("/dids/virgo/dids/search", params={"long": "true"}))),
        "meta": http.get("/dids/virgo/ds/meta", params={"plugin": "JSON"}).json(),
        "content": lines(http.get("/dids/virgo/ds/dids")),
        "rses": strip(lines(http.get("/rses/"))),
        "accounts": [a["account"] for a in lines(http.get("/accounts/"))],
        "scopes": http.get("/scopes/").json(),
        "rules": lines(http.get("/rules/")),
    }


def assert_refused(response: httpx.Response, status: int | None = None) -> str:
    """A 4xx (``status`` when given) with ExceptionClass/ExceptionMessage and a JSON body that
    says the same, without any trace of the server's internals."""
    message = response.headers.get("ExceptionMessage", "")
    assert 400 <= response.status_code < 500, (response.status_code, message, response.text[:300])
    if status is not None:
        assert response.status_code == status, message
    assert response.headers.get("ExceptionClass"), response.headers
    assert message.strip()
    body = response.json()
    assert body["ExceptionClass"] == response.headers["ExceptionClass"]
    assert body["ExceptionMessage"]
    for marker in TRACEBACK_MARKERS:
        assert marker not in response.text, response.text[:500]
    return message


# -- path traversal, NUL, odd characters in paths and query strings ----------------------------


def raw_request(
    url: str, method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> httpx.Response:
    """Send ``target`` exactly as written: httpx would remove dot segments and re-encode it."""
    parsed = httpx.URL(url)
    connection = HTTPConnection(parsed.host, parsed.port, timeout=60)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        if (body or method in ("POST", "PUT")) and "Content-Length" not in (headers or {}):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
    finally:
        connection.close()


PATH_CASES: list[tuple[str, str, str]] = [
    # method, target sent as is, what the message must mention
    ("GET", "/dids/virgo/..%2F..%2Fetc%2Fpasswd", ""),
    ("GET", "/dids/..%2F..%2Fetc/passwd", ""),
    ("GET", "/dids/virgo/../../etc/passwd", ""),
    ("GET", "/dids/virgo/..", "'..'"),
    ("GET", "/dids/../ds", "'..'"),
    ("GET", "/dids/virgo/%2E%2E", "'..'"),
    ("GET", "/dids/virgo/%2Fetc%2Fpasswd", ""),
    ("GET", "/dids/virgo//etc/passwd", ""),
    ("GET", "/dids/virgo/ds%2F..%2F..%2Fetc", ""),
    ("GET", "/dids/virgo/%5C..%5C..%5Cwindows", "'..'"),
    ("GET", "/dids/virgo/ds%00.txt", "NUL"),
    ("GET", "/dids/virgo/%00", "NUL"),
    ("GET", "/dids/virgo/" + "n" * 5000, "at most 250"),
    ("GET", "/dids/" + "s" * 5000 + "/ds", "at most 25"),
    ("GET", "/dids/virgo/%FF%FE", "invalid name"),
    ("GET", "/dids/virgo/%ED%A0%80", "invalid name"),
    ("GET", "/dids/virgo/ds%0D%0AX-Injected:%201", "invalid name"),
    ("GET", "/dids/virgo/ds%0A", "invalid name"),
    ("POST", "/dids/virgo/..", "'..'"),
    ("POST", "/dids/virgo/ds%00/dids", "NUL"),
    ("GET", "/replicas/virgo/../../etc/datasets", ""),
    ("GET", "/replicas/virgo/%00/datasets", "NUL"),
    ("GET", "/rses/..%2F..%2Fetc%2Fpasswd", ""),
    ("GET", "/rses/..", ""),
    ("GET", "/rses/ALPHA%00DISK", "NUL"),
    ("GET", "/rses/ALPHA_DISK%00", "NUL"),
    ("GET", "/rses/" + "A" * 5000, "RSE"),
    ("PUT", "/rses/ALPHA_DISK%00", "NUL"),
    ("POST", "/rses/..", "RSE name"),
    ("POST", "/rses/%2E%2E%2FNEW", ""),
    ("POST", "/rses/ALPHA_DISK/attr/qos%00", "NUL"),
    ("DELETE", "/rses/ALPHA_DISK/attr/qos%00", "NUL"),
    ("DELETE", "/rses/ALPHA_DISK/attr/..%2F..%2Fqos", ""),
    ("POST", "/rses/ALPHA_DISK/protocols/..", ""),
    ("GET", "/accounts/..%2Froot", ""),
    ("GET", "/accounts/root%00", "NUL"),
    ("GET", "/accounts/%00/scopes/", "NUL"),
    ("POST", "/accounts/root/scopes/..", "'..'"),
    ("POST", "/accounts/root/scopes/a%00b", "NUL"),
    ("POST", "/accounts/root/scopes/" + "s" * 5000, "at most 25"),
    ("GET", "/rules/%00", "NUL"),
    ("GET", "/rules/../../etc", ""),
    ("GET", "/rules/" + "0" * 5000, "rule"),
    ("DELETE", "/rules/%00", "NUL"),
    ("GET", "/dids/virgo/ds/meta?plugin=%00", "NUL"),
    ("DELETE", "/dids/virgo/ds/meta/run%00", "NUL"),
    ("DELETE", "/dids/virgo/ds/meta/..%2Frun", ""),
    ("GET", "/dids/virgo/dids/search?name=%00", "NUL"),
    ("GET", "/dids/virgo/dids/search?filter=run%3D%00", "NUL"),
    ("GET", "/dids/virgo/dids/search?filter%00=1", "NUL"),
    ("GET", "/dids/virgo/dids/search?limit=-1", "limit"),
    ("GET", "/dids/virgo/dids/search?limit=1e3", "limit"),
    ("GET", "/dids/virgo/dids/search?type=%00", "NUL"),
    ("GET", "/rules/?scope=%00", "NUL"),
    ("GET", "/rules/?account=root%00", "NUL"),
    ("GET", "/rules/?state=%00", "NUL"),
    ("GET", "/rses/?expression=%00", "NUL"),
    ("GET", "/scopes/?detail=maybe", "detail"),
]


def test_hostile_paths_and_query_strings_are_refused(
    http: httpx.Client, server: RunningServer
) -> None:
    before = snapshot(http)
    auth = {"X-Rucio-Auth-Token": str(http.headers["X-Rucio-Auth-Token"])}
    failures = []
    for method, target, pattern in PATH_CASES:
        # A body that every POST or PUT route accepts, so that the target is what is refused.
        body = b'{"type": "dataset", "value": "x", "prefix": "/p"}' if method != "GET" else b""
        response = raw_request(server.url, method, target, headers=auth, body=body)
        try:
            message = assert_refused(response)
            assert pattern in message, message
        except (AssertionError, ValueError, KeyError) as exc:
            failures.append(f"{method} {target[:80]}: {response.status_code} {exc!r}"[:400])
    if failures:
        pytest.fail("\n".join(failures))
    assert snapshot(http) == before


# -- hostile JSON bodies -------------------------------------------------------------------------

NESTED_LISTS = "[" * DEEP + "]" * DEEP
NESTED_OBJECTS = '{"a":' * DEEP + "1" + "}" * DEEP
BODY_CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    # case, method, path, request arguments, what the message must mention
    ("100k nested lists", "POST", "/dids/virgo/new", raw_json(NESTED_LISTS), ""),
    ("100k nested objects", "POST", "/dids/virgo/new", raw_json(NESTED_OBJECTS), ""),
    (
        "nested lists as a metadata value",
        "POST",
        "/dids/virgo/ds/meta",
        raw_json('{"meta": {"k": ' + "[" * 900 + "]" * 900 + "}}"),
        "meta",
    ),
    (
        "nested lists as a list of children",
        "POST",
        "/dids/virgo/ds/dids",
        raw_json('{"dids": ' + "[" * 900 + "]" * 900 + "}"),
        "dids",
    ),
    ("not JSON", "POST", "/dids/virgo/new", raw_json("type=dataset"), ""),
    ("empty body", "POST", "/dids/virgo/new", raw_json(""), ""),
    ("binary body", "POST", "/dids/virgo/new", {"content": bytes(range(256))}, ""),
    (
        "form instead of JSON",
        "POST",
        "/dids/virgo/new",
        {"data": {"type": "dataset"}},
        "",
    ),
    ("a JSON string", "POST", "/dids/virgo/new", {"json": "dataset"}, ""),
    ("a JSON number", "POST", "/replicas", {"json": 5}, ""),
    ("JSON null", "POST", "/rules/", {"json": None}, ""),
    ("a list of bodies", "POST", "/replicas/list", {"json": [{"dids": []}]}, ""),
    (
        "children as an object",
        "POST",
        "/dids/virgo/ds/dids",
        {"json": {"dids": {"scope": "virgo", "name": "f0"}}},
        "dids",
    ),
    ("files of numbers", "POST", "/replicas", {"json": {"rse": "ALPHA_DISK", "files": [1]}}, ""),
    (
        "NUL in a metadata value",
        "POST",
        "/dids/virgo/ds/meta",
        raw_json('{"meta": {"run": "a\\u0000b"}}'),
        "NUL",
    ),
    (
        "NUL in a metadata key",
        "POST",
        "/dids/virgo/ds/meta",
        raw_json('{"meta": {"run\\u0000": 1}}'),
        "NUL",
    ),
    (
        "NUL in an RSE attribute value",
        "POST",
        "/rses/ALPHA_DISK/attr/qos",
        raw_json('{"value": "DISK\\u0000"}'),
        "NUL",
    ),
    (
        "NUL in new RSE attributes",
        "POST",
        "/rses/NEW_DISK",
        raw_json('{"attributes": {"site": "\\u0000"}}'),
        "NUL",
    ),
    (
        "NUL in a protocol prefix",
        "POST",
        "/rses/ALPHA_DISK/protocols/root",
        raw_json('{"prefix": "/data\\u0000", "hostname": "h"}'),
        "NUL",
    ),
    (
        "NUL in an identity",
        "POST",
        "/accounts/root/identities",
        raw_json('{"identity": "sub\\u0000", "issuer": "https://i", "type": "oidc"}'),
        "NUL",
    ),
    (
        "NUL in an account e-mail",
        "POST",
        "/accounts/mallory",
        raw_json('{"email": "m@x\\u0000"}'),
        "NUL",
    ),
    (
        "NUL in a rule comment",
        "POST",
        "/rules/",
        raw_json(
            '{"dids": [{"scope": "virgo", "name": "ds"}], "rse_expression": "BETA_DISK", '
            '"comment": "\\u0000"}'
        ),
        "NUL",
    ),
    (
        "lone surrogate in a metadata value",
        "POST",
        "/dids/virgo/ds/meta",
        raw_json('{"meta": {"run": "\\ud800"}}'),
        "surrogate",
    ),
    (
        "lone surrogate in a child name",
        "POST",
        "/dids/virgo/ds/dids",
        raw_json('{"dids": [{"scope": "virgo", "name": "\\udfff"}]}'),
        "surrogate",
    ),
    (
        "lone surrogate in a rule activity",
        "POST",
        "/rules/",
        raw_json(
            '{"dids": [{"scope": "virgo", "name": "ds"}], "rse_expression": "BETA_DISK", '
            '"activity": "\\ud83d"}'
        ),
        "surrogate",
    ),
    (
        "file size beyond 64 bits",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("big", BIG)]}},
        "bytes",
    ),
    (
        "file size far beyond 64 bits",
        "POST",
        "/replicas",
        raw_json(
            '{"rse": "ALPHA_DISK", "files": [{"scope": "virgo", "name": "huge", "bytes": '
            + "9" * 4000
            + ', "adler32": "00000001"}]}'
        ),
        "bytes",
    ),
    (
        "negative file size",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("neg", -1)]}},
        "bytes",
    ),
    (
        "file size as a float",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("half", 0) | {"bytes": 1.5}]}},
        "bytes",
    ),
    (
        "RSE capacity beyond 64 bits",
        "POST",
        "/rses/NEW_DISK",
        {"json": {"total_bytes": BIG}},
        "total_bytes",
    ),
    ("negative RSE capacity", "PUT", "/rses/ALPHA_DISK", {"json": {"total_bytes": -5}}, "total"),
    ("RSE capacity as text", "PUT", "/rses/ALPHA_DISK", {"json": {"total_bytes": "lots"}}, "total"),
    (
        "rule lifetime beyond any date",
        "POST",
        "/rules/",
        {
            "json": {
                "dids": [{"scope": "virgo", "name": "ds"}],
                "rse_expression": "BETA_DISK",
                "lifetime": 10**30,
            }
        },
        "lifetime",
    ),
    (
        "rule lifetime of 2**63 in a new collection",
        "POST",
        "/dids/virgo/new",
        {"json": {"type": "dataset", "rules": [{"rse_expression": "BETA_DISK", "lifetime": BIG}]}},
        "lifetime",
    ),
    (
        "a billion copies",
        "POST",
        "/rules/",
        {
            "json": {
                "dids": [{"scope": "virgo", "name": "ds"}],
                "rse_expression": "BETA_DISK",
                "copies": 10**9,
            }
        },
        "copies",
    ),
    (
        "metadata integer far beyond 64 bits",
        "POST",
        "/dids/virgo/ds/meta",
        raw_json('{"meta": {"run": ' + "9" * 4000 + "}}"),
        "",
    ),
    ("metadata infinity", "POST", "/dids/virgo/ds/meta", raw_json('{"meta": {"run": 1e999}}'), ""),
    ("metadata NaN", "POST", "/dids/virgo/ds/meta", raw_json('{"meta": {"run": NaN}}'), ""),
    (
        "protocol port beyond 16 bits",
        "POST",
        "/rses/ALPHA_DISK/protocols/root",
        {"json": {"prefix": "/data", "port": BIG}},
        "port",
    ),
    (
        "replica path escaping the RSE",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("esc") | {"path": "a/../../etc"}]}},
        "path",
    ),
    (
        "absolute replica path",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("abs") | {"path": "/etc/passwd"}]}},
        "path",
    ),
    (
        "child scope with traversal",
        "POST",
        "/dids/virgo/ds/dids",
        {"json": {"dids": [{"scope": "..", "name": "passwd"}]}},
        "'..'",
    ),
    (
        "rule for an account that does not exist",
        "POST",
        "/rules/",
        {
            "json": {
                "dids": [{"scope": "virgo", "name": "ds"}],
                "rse_expression": "BETA_DISK",
                "account": "ghost",
            }
        },
        "ghost",
    ),
    (
        "collection rule for an account that does not exist",
        "POST",
        "/dids/virgo/new",
        {"json": {"type": "dataset", "rules": [{"rse_expression": "BETA_DISK", "account": "x"}]}},
        "'x'",
    ),
]


def test_hostile_bodies_are_refused(http: httpx.Client) -> None:
    before = snapshot(http)
    failures = []
    for case, method, path, kwargs, pattern in BODY_CASES:
        response = http.request(method, path, **kwargs)
        try:
            message = assert_refused(response)
            assert pattern in message, message
        except (AssertionError, ValueError, KeyError) as exc:
            failures.append(f"{case}: {response.status_code} {exc!r}"[:400])
    if failures:
        pytest.fail("\n".join(failures))
    assert snapshot(http) == before


def test_sizes_whose_sum_overflows_64_bits_are_refused(http: httpx.Client) -> None:
    """Each file fits in 64 bits; their sum on an RSE or in a dataset would not."""
    half = 2**62
    one_rse = http.post(
        "/replicas",
        json={"rse": "ALPHA_DISK", "files": [file_body("h0", half), file_body("h1", half)]},
    )
    assert "64-bit" in assert_refused(one_rse, 400)
    for name, rse in (("h2", "ALPHA_DISK"), ("h3", "BETA_DISK")):
        response = http.post("/replicas", json={"rse": rse, "files": [file_body(name, half)]})
        assert response.status_code == 201, response.headers.get("ExceptionMessage")
    first = http.post("/dids/virgo/ds/dids", json={"dids": [{"scope": "virgo", "name": "h2"}]})
    assert first.status_code == 201, first.headers.get("ExceptionMessage")
    before = snapshot(http)
    again = http.post("/replicas", json={"rse": "ALPHA_DISK", "files": [file_body("h4", half)]})
    assert "used space or file count would leave" in assert_refused(again, 400)
    attach = http.post("/dids/virgo/ds/dids", json={"dids": [{"scope": "virgo", "name": "h3"}]})
    assert "virgo:ds would hold more than" in assert_refused(attach, 400)
    assert snapshot(http) == before


# -- filters (a Python literal) and RSE expressions ----------------------------------------------

FILTER_CASES: list[tuple[str, str, str]] = [
    # case, the ``filters`` query value, what the message must mention
    ("code, not a literal", "__import__('os').system('id')", "not a literal"),
    ("a lambda", "(lambda: 1)()", "not a literal"),
    ("nested 4,000 deep", "[" * 4000 + "]" * 4000, "not a literal"),
    ("nested dicts", "{'a': " * 1000 + "1" + "}" * 1000, "not a literal"),
    ("an integer of 5,000 digits", "{'run': 1" + "0" * 5000 + "}", "not a literal"),
    ("over the length limit", "{'run': '" + "x" * 10_001 + "'}", "filters"),
    ("unbalanced", "[{'run': 1}", "not a literal"),
    ("a set", "{1, 2}", "dict"),
    ("a list of strings", "['run=1']", "dict"),
    ("a number key", "{1: 2}", "keys are strings"),
    ("a NUL value", "{'run': '\\x00'}", "NUL"),
    ("a NUL key", "{'r\\x00un': 1}", ""),
    ("a lone surrogate", "{'run': '\\ud800'}", "surrogate"),
    ("a key of 200 characters", "{'" + "k" * 200 + "': 1}", "invalid filter"),
    ("200 conditions", "{" + ", ".join(f"'k{i}': {i}" for i in range(200)) + "}", "at most 100"),
    ("500 groups", "[" + ", ".join("{'run': 1}" for _ in range(500)) + "]", "at most 100"),
    ("a comparison with text", "{'run.gt': 'abc'}", "needs a number"),
    ("an unknown type", "{'type': 'table'}", "type"),
]


def test_hostile_filters_are_refused(http: httpx.Client) -> None:
    failures = []
    for case, filters, pattern in FILTER_CASES:
        response = http.get("/dids/virgo/dids/search", params={"filters": filters})
        try:
            message = assert_refused(response, 400)
            assert pattern in message, message
        except (AssertionError, ValueError, KeyError) as exc:
            failures.append(f"{case}: {response.status_code} {exc!r}"[:400])
    if failures:
        pytest.fail("\n".join(failures))


def test_odd_but_harmless_filters_answer_normally(http: httpx.Client) -> None:
    for filters, expected in [
        ("{'run.gt': 1e999}", []),
        ("{'run.lt': 1e999}", ["ds"]),
        ("{'run': {'$ne': 1}}", []),
        ("{'run': '7; DROP TABLE dids; --'}", []),
        ("{'run': \"7' OR '1'='1\"}", []),
        ("[{'run': 7}, {'run': 8}]", ["ds"]),
        ("{'name': '%'}", []),
        ("{'name': '" + "*a" * 100 + "'}", []),
    ]:
        response = http.get("/dids/virgo/dids/search", params={"filters": filters})
        assert response.status_code == 200, (filters, response.headers.get("ExceptionMessage"))
        assert [orjson.loads(line) for line in response.content.splitlines()] == expected, filters


EXPRESSIONS: list[tuple[str, str]] = [
    # expression, what the message must mention
    ("(" * 500, "nested"),
    ("(" * 21 + "ALPHA_DISK" + ")" * 21, "nested"),
    ("((((ALPHA_DISK", "missing ')'"),
    ("ALPHA_DISK)))", "unexpected ')'"),
    (")(", "unexpected"),
    ("ALPHA_DISK|", "ends too early"),
    ("|" * 900, "unexpected"),
    ("A" * 5000, "longer than 1000"),
    ("ALPHA_DISK|" * 200 + "BETA_DISK", "longer than 1000"),
    ("site=", "unexpected"),
    ("qos>abc", "needs a number"),
    ("NO_SUCH_RSE", "neither an RSE nor an RSE attribute"),
    ("country=XX", "matches no RSE"),
    ("ALPHA_DİSK", "unexpected"),
    ("ALPHA_DISK;DROP TABLE rses", "unexpected"),
    ("ALPHA_DISK\\ALPHA_DISK", "matches no RSE"),
    ("\x01", "unexpected"),
]


def test_hostile_rse_expressions_are_refused(http: httpx.Client) -> None:
    before = snapshot(http)
    failures = []
    for expression, pattern in EXPRESSIONS:
        for method, path, kwargs in [
            ("GET", "/rses/", {"params": {"expression": expression}}),
            (
                "POST",
                "/replicas/list",
                {
                    "json": {
                        "dids": [{"scope": "virgo", "name": "ds"}],
                        "rse_expression": expression,
                    }
                },
            ),
            (
                "POST",
                "/rules/",
                {
                    "json": {
                        "dids": [{"scope": "virgo", "name": "ds"}],
                        "rse_expression": expression,
                    }
                },
            ),
        ]:
            response = http.request(method, path, **kwargs)
            try:
                message = assert_refused(response, 400)
                if len(expression) <= 1000 or method == "GET":
                    assert pattern in message, message
            except (AssertionError, ValueError, KeyError) as exc:
                failures.append(f"{method} {path} {expression[:40]!r}: {exc!r}"[:400])
    if failures:
        pytest.fail("\n".join(failures))
    assert snapshot(http) == before


def test_deep_but_allowed_rse_expressions_work(http: httpx.Client) -> None:
    for expression, expected in [
        ("(" * 20 + "ALPHA_DISK" + ")" * 20, ["ALPHA_DISK"]),
        ("|".join(["ALPHA_DISK"] * 90), ["ALPHA_DISK"]),
        ("*\\" + "\\".join(["GAMMA_TAPE"] * 80), ["ALPHA_DISK", "BETA_DISK"]),
    ]:
        response = http.get("/rses/", params={"expression": expression})
        assert response.status_code == 200, response.headers.get("ExceptionMessage")
        found = [orjson.loads(line)["rse"] for line in response.content.splitlines()]
        assert found == expected


# -- floods beyond the per-request limits --------------------------------------------------------


def test_floods_beyond_the_per_request_limits_are_refused(http: httpx.Client) -> None:
    before = snapshot(http)
    ref = {"scope": "virgo", "name": "f0"}
    for method, path, body, field in [
        ("POST", "/dids/virgo/ds/dids", {"dids": [ref] * 100_001}, "dids"),
        ("DELETE", "/dids/virgo/ds/dids", {"dids": [ref] * 100_001}, "dids"),
        ("POST", "/dids/virgo/big", {"type": "dataset", "dids": [ref] * 100_001}, "dids"),
        ("POST", "/replicas/list", {"dids": [ref] * 10_001}, "dids"),
        ("POST", "/rules/", {"dids": [ref] * 10_001, "rse_expression": "BETA_DISK"}, "dids"),
        (
            "POST",
            "/dids/virgo/big",
            {"type": "dataset", "rules": [{"rse_expression": "BETA_DISK"}] * 101},
            "rules",
        ),
        (
            "PUT",
            "/replicas",
            {"rse": "ALPHA_DISK", "files": [ref | {"state": "A"}] * 100_001},
            "files",
        ),
    ]:
        response = http.request(method, path, json=body)
        message = assert_refused(response, 400)
        assert field in message, message
        assert "at most" in message, message
    files = [file_body(f"flood{i}") for i in range(100_001)]
    response = http.post("/replicas", json={"rse": "ALPHA_DISK", "files": files})
    assert "files" in assert_refused(response, 400)
    assert snapshot(http) == before


# -- metadata limits (issue 16) -----------------------------------------------------------------


def meta_of(http: httpx.Client, did: str = "virgo/ds") -> dict[str, Any]:
    response = http.get(f"/dids/{did}/meta", params={"plugin": "JSON"})
    assert response.status_code == 200, response.headers.get("ExceptionMessage")
    return dict(response.json())


def test_a_million_metadata_keys_from_a_non_admin_are_refused(
    http: httpx.Client, server: RunningServer, client: Client
) -> None:
    """The reproduction: 1,000,000 keys on one DID in one ~53 MB request were stored (201 after
    59 s). Now: refused before anything is written."""
    client.add_account("mallory", password="mallory-password")
    client.add_scope("user.mallory", account="mallory")
    token = login(server.url, "mallory", "mallory-password")
    with httpx.Client(
        base_url=server.url, headers={"X-Rucio-Auth-Token": token}, timeout=120
    ) as mallory:
        created = mallory.post("/dids/user.mallory/ds", json={"type": "dataset"})
        assert created.status_code == 201, created.headers.get("ExceptionMessage")
        body = orjson.dumps({"meta": {f"key{i:07d}": "v" * 30 for i in range(1_000_000)}})
        assert len(body) > 45_000_000
        response = mallory.post("/dids/user.mallory/ds/meta", content=body, headers=JSON)
        message = assert_refused(response, 400)
        assert "1000000 metadata keys in one request: at most 100000" in message
        assert meta_of(mallory, "user.mallory/ds") == {}
        # Under the per-request limit, the per-DID one holds.
        body = orjson.dumps({"meta": {f"key{i}": i for i in range(1000)}})
        response = mallory.post("/dids/user.mallory/ds/meta", content=body, headers=JSON)
        assert "at most 256 per DID" in assert_refused(response, 400)
        assert meta_of(mallory, "user.mallory/ds") == {}


def keys(count: int, start: int = 0) -> dict[str, int]:
    return {f"k{i}": i for i in range(start, start + count)}


def test_metadata_beyond_the_limits_is_refused_on_every_path(http: httpx.Client) -> None:
    """Keys per DID (256, those already there counted), key length (100), value size (4096
    bytes), keys per request (100,000): on every path that writes metadata, a 400 saying which
    limit, and nothing written (``virgo:ds`` has one key, ``run``)."""
    before = snapshot(http)
    long_key = "k" * 101
    big_value = "é" * 2049  # 4098 bytes in UTF-8
    files = [file_body(f"new{i}") for i in range(1001)]
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/dids/virgo/ds/meta", {"meta": keys(257)}, "257 metadata keys: at most 256"),
        ("POST", "/dids/virgo/ds/meta", {"meta": keys(256)}, "257 metadata keys: at most 256"),
        ("POST", "/dids/virgo/ds/meta", {"meta": {long_key: 1}}, "1-100 characters"),
        ("POST", f"/dids/virgo/ds/meta/{long_key}", {"value": 1}, "1-100 characters"),
        ("POST", "/dids/virgo/ds/meta", {"meta": {"v": big_value}}, "at most 4096 bytes"),
        ("POST", "/dids/virgo/ds/meta/v", {"value": big_value}, "at most 4096 bytes"),
        (
            "POST",
            "/dids/virgo/ds/meta",
            {"meta": keys(100_001)},
            "100001 metadata keys in one request: at most 100000",
        ),
        ("POST", "/dids/virgo/new", {"type": "dataset", "meta": keys(257)}, "at most 256"),
        (
            "POST",
            "/dids",
            [
                {"scope": "virgo", "name": "a", "type": "dataset", "meta": keys(200)},
                {"scope": "virgo", "name": "b", "type": "dataset", "meta": {"v": big_value}},
            ],
            "at most 4096 bytes",
        ),
        (
            "POST",
            "/dids",
            [
                {"scope": "virgo", "name": f"c{i}", "type": "dataset", "meta": keys(250)}
                for i in range(401)
            ],
            "100250 metadata keys in one request: at most 100000",
        ),
        (
            "POST",
            "/replicas",
            {"rse": "ALPHA_DISK", "files": [file_body("new") | {"meta": keys(257)}]},
            "at most 256 per DID",
        ),
        (
            "POST",
            "/replicas",
            {"rse": "ALPHA_DISK", "files": [spec | {"meta": keys(100)} for spec in files]},
            "100100 metadata keys in one request: at most 100000",
        ),
    ]
    for method, path, body, expected in cases:
        response = http.request(method, path, json=body)
        assert expected in assert_refused(response, 400), (path, expected)
    assert snapshot(http) == before


def test_metadata_up_to_the_limits_is_kept(http: httpx.Client) -> None:
    response = http.post("/dids/virgo/ds/meta", json={"meta": keys(255)})
    assert response.status_code == 201, response.headers.get("ExceptionMessage")
    # Setting keys a DID has already replaces them: they are not counted twice.
    response = http.post("/dids/virgo/ds/meta", json={"meta": keys(255) | {"run": 8}})
    assert response.status_code == 201, response.headers.get("ExceptionMessage")
    assert len(meta_of(http)) == 256
    assert_refused(http.post("/dids/virgo/ds/meta/one_more", json={"value": 1}), 400)
    assert http.delete("/dids/virgo/ds/meta/k0").status_code == 200
    longest = {"k" * 100: "é" * 2048}  # 100 characters, 4096 bytes
    response = http.post("/dids/virgo/ds/meta", json={"meta": longest})
    assert response.status_code == 201, response.headers.get("ExceptionMessage")
    assert meta_of(http)["k" * 100] == "é" * 2048
    response = http.post(
        "/dids", json=[{"scope": "virgo", "name": "full", "type": "dataset", "meta": keys(256)}]
    )
    assert response.status_code == 201, response.headers.get("ExceptionMessage")
    assert len(meta_of(http, "virgo/full")) == 256


def test_metadata_limits_follow_the_settings(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Principal("root", admin=True)
    scopes.add_scope(lake, root, "virgo", account="root")
    dids.add_collection(lake, root, "virgo", "ds", DIDType.DATASET, meta={"a": 1, "b": 2})
    limits = {
        "metadata_max_keys_per_did": 3,
        "metadata_max_key_length": 5,
        "metadata_max_value_bytes": 8,
        "metadata_max_keys_per_request": 4,
    }
    monkeypatch.setattr(lake, "settings", lake.settings.model_copy(update=limits))
    dids.set_metadata(lake, root, "virgo", "ds", {"c": "12345678"})
    for items, expected in [
        ({"d": 1}, "4 metadata keys: at most 3 per DID"),
        ({"abcdef": 1}, "1-5 characters"),
        ({"c": "123456789"}, "at most 8 bytes"),
        ({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, "5 metadata keys in one request: at most 4"),
    ]:
        with pytest.raises(InvalidInput, match=expected):
            dids.set_metadata(lake, root, "virgo", "ds", items)
    assert dids.get_metadata(lake, root, "virgo", "ds") == {"a": 1, "b": 2, "c": "12345678"}


def test_a_key_longer_than_the_catalog_column_cannot_be_configured(lake: Lake) -> None:
    with pytest.raises(ValidationError, match="metadata_max_key_length"):
        Settings.model_validate(lake.settings.model_dump() | {"metadata_max_key_length": 101})


# -- bodies over the size limit, on a real server ------------------------------------------------


@pytest.fixture
def small_server(lake: Lake) -> Iterator[str]:
    """A second real server of the same catalog, accepting bodies of at most 4 KiB."""
    settings = lake.settings.model_copy(update={"max_body_bytes": LIMIT})
    app = create_app(settings, lake=lake)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


LIMIT = 4096


def test_bodies_over_the_limit_are_refused_on_the_wire(small_server: str) -> None:
    token = login(small_server)
    auth = {"X-Rucio-Auth-Token": token, **JSON}
    assert httpx.post(f"{small_server}/accounts/root/scopes/virgo", headers=auth).status_code == 201
    padding = b'{"type": "dataset", "meta": {"pad": "' + b"x" * LIMIT + b'"}}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(padding), 512):
            yield padding[start : start + 512]

    with httpx.Client(base_url=small_server, headers=auth) as http:
        declared = http.post("/dids/virgo/declared", content=padding)
        chunked = http.post("/dids/virgo/chunked", content=chunks())
        assert "content-length" not in chunked.request.headers
        for response in (declared, chunked):
            assert f"larger than {LIMIT} bytes" in assert_refused(response, 413)
        # A Content-Length of a terabyte, with no body behind it: refused at once.
        lying = raw_request(
            small_server,
            "POST",
            "/dids/virgo/lying",
            headers={**auth, "Content-Length": str(10**12)},
        )
        assert_refused(lying, 413)
        # The connection is still usable, and nothing was created.
        found = http.get("/dids/virgo/dids/search")
        assert found.status_code == 200
        assert found.content == b""


# -- unicode where it is allowed -----------------------------------------------------------------


def test_unicode_values_round_trip(http: httpx.Client) -> None:
    values = ["Zürich", "東京", "☃ 🚀", "a\u200bb", "\u202eevil", "'; DROP TABLE rses; --"]
    for index, value in enumerate(values):
        key = f"note{index}"
        response = http.post(f"/rses/ALPHA_DISK/attr/{key}", json={"value": value})
        assert response.status_code == 201, response.headers.get("ExceptionMessage")
        response = http.post(f"/dids/virgo/ds/meta/{key}", json={"value": value})
        assert response.status_code == 201, response.headers.get("ExceptionMessage")
    attributes = http.get("/rses/ALPHA_DISK/attr/").json()
    meta = http.get("/dids/virgo/ds/meta", params={"plugin": "JSON"}).json()
    for index, value in enumerate(values):
        assert attributes[f"note{index}"] == value
        assert meta[f"note{index}"] == value
    search = http.get("/dids/virgo/dids/search", params={"filters": "{'note1': '東京'}"})
    assert search.content.splitlines() == [b'"ds"']
    # Unicode in an error message reaches the client intact in the body, as '?' in the header.
    missing = http.get("/rses/ALPHA_DISK", params={"expression": "x"})
    assert missing.status_code == 200
    unknown = http.delete("/dids/virgo/ds/meta/nöte")
    message = assert_refused(unknown, 400)
    assert "n?te" in message
    assert "nöte" in unknown.json()["ExceptionMessage"]
