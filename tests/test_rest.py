"""The REST API over real HTTP: Rucio's authentication, error headers and NDJSON listings.

Each test runs against a real uvicorn server on SQLite and on PostgreSQL. Raw ``httpx`` checks what
a Rucio client sees on the wire; ``lacus.Client`` checks what a Python user sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lacus._version import __version__
from lacus.client import Client
from lacus.errors import AccessDenied, DIDNotFound, ReplicaNotFound, Unauthenticated
from lacus.naming import deterministic_path
from lacus.server import create_app
from lacus.service import Lake
from tests.conftest import ROOT_PASSWORD, RunningServer
from tests.rule_helpers import rse_prefix

NDJSON = "application/x-json-stream"


# -- helpers -------------------------------------------------------------------------------------


def login(url: str, account: str = "root", password: str = ROOT_PASSWORD) -> str:
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
def http(server: RunningServer) -> Iterator[httpx.Client]:
    """Raw HTTP as root, the way the official rucio client talks."""
    token = login(server.url)
    with httpx.Client(base_url=server.url, headers={"X-Rucio-Auth-Token": token}) as raw:
        yield raw


def file_body(scope: str, name: str, index: int = 0) -> dict[str, Any]:
    data = f"{name}:{index}\n".encode() * (index % 4 + 1)
    return {
        "scope": scope,
        "name": name,
        "bytes": len(data),
        "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
        "md5": hashlib.md5(data).hexdigest(),
    }


def assert_error(response: httpx.Response, status: int, exception_class: str) -> str:
    """A Rucio-style error: the status, ExceptionClass/ExceptionMessage headers and JSON body."""
    message = response.headers.get("ExceptionMessage", "")
    assert (response.status_code, response.headers.get("ExceptionClass")) == (
        status,
        exception_class,
    ), message
    assert 400 <= response.status_code < 500
    assert message.strip()
    body = response.json()
    assert body["ExceptionClass"] == exception_class
    assert body["ExceptionMessage"]
    return message


def ndjson(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.headers.get("ExceptionMessage")
    assert response.headers["content-type"].startswith(NDJSON)
    return [orjson.loads(line) for line in response.content.splitlines() if line]


# -- ping and authentication ---------------------------------------------------------------------


def test_ping_answers_the_version_without_a_token(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/ping")
    assert response.status_code == 200
    assert response.json()["version"] == __version__


def test_userpass_issues_a_token_that_authenticates(server: RunningServer) -> None:
    response = httpx.get(
        f"{server.url}/auth/userpass",
        headers={
            "X-Rucio-Account": "root",
            "X-Rucio-Username": "root",
            "X-Rucio-Password": ROOT_PASSWORD,
        },
    )
    assert response.status_code == 200
    token = response.headers["X-Rucio-Auth-Token"]
    assert token
    assert response.json()["token"] == token
    assert response.headers["X-Rucio-Auth-Token-Expires"].endswith("UTC")

    whoami = httpx.get(f"{server.url}/accounts/whoami", headers={"X-Rucio-Auth-Token": token})
    assert whoami.status_code == 200
    assert (whoami.json()["account"], whoami.json()["admin"]) == ("root", True)
    bearer = httpx.get(
        f"{server.url}/accounts/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.json()["account"] == "root"
    validate = httpx.get(f"{server.url}/auth/validate", headers={"X-Rucio-Auth-Token": token})
    assert validate.json()["account"] == "root"
    assert 0 < validate.json()["seconds_left"] <= server.lake.settings.token_lifetime


BAD_CREDENTIALS = [
    {"X-Rucio-Account": "root", "X-Rucio-Username": "root", "X-Rucio-Password": "wrong"},
    {"X-Rucio-Account": "root", "X-Rucio-Username": "root", "X-Rucio-Password": ""},
    {"X-Rucio-Account": "nobody", "X-Rucio-Username": "nobody", "X-Rucio-Password": "x"},
    {"X-Rucio-Username": "root"},
    {},
]


def test_userpass_rejects_bad_credentials(server: RunningServer) -> None:
    for headers in BAD_CREDENTIALS:
        response = httpx.get(f"{server.url}/auth/userpass", headers=headers)
        assert_error(response, 401, "CannotAuthenticate")
        assert "X-Rucio-Auth-Token" not in response.headers


def test_requests_without_a_valid_token_are_refused(server: RunningServer) -> None:
    for headers in [{}, {"X-Rucio-Auth-Token": "root-bogus"}, {"Authorization": "Bearer nonsense"}]:
        for method, path in [("GET", "/rses/"), ("POST", "/dids/virgo/ds"), ("GET", "/scopes/")]:
            response = httpx.request(
                method, server.url + path, headers=headers, json={"type": "dataset"}
            )
            assert_error(response, 401, "CannotAuthenticate")


def test_client_with_a_wrong_password_cannot_authenticate(server: RunningServer) -> None:
    with (
        Client(server.url, account="root", password="not-the-password") as wrong,
        pytest.raises(Unauthenticated, match="cannot authenticate 'root'"),
    ):
        wrong.whoami()


# -- error responses -----------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
LONG_NAME = "n" * 251

ERROR_CASES: list[tuple[str, str, str, dict[str, Any], int, str, str]] = [
    # id, method, path, request kwargs, status, ExceptionClass, message pattern
    ("unknown DID", "GET", "/dids/virgo/nope", {}, 404, "DataIdentifierNotFound", "virgo:nope"),
    ("unknown scope", "GET", "/dids/ghost/dids/search", {}, 404, "ScopeNotFound", "'ghost'"),
    ("unknown RSE", "GET", "/rses/NOWHERE", {}, 404, "RSENotFound", "'NOWHERE'"),
    (
        "register on unknown RSE",
        "POST",
        "/replicas",
        {"json": {"rse": "NOWHERE", "files": [file_body("virgo", "f")]}},
        404,
        "RSENotFound",
        "NOWHERE",
    ),
    (
        "duplicate DID",
        "POST",
        "/dids/virgo/ds",
        {"json": {"type": "dataset"}},
        409,
        "DataIdentifierAlreadyExists",
        "virgo:ds exists already",
    ),
    (
        "malformed JSON",
        "POST",
        "/dids/virgo/new",
        {"content": b'{"type": "dataset"', "headers": JSON},
        400,
        "InvalidObject",
        "invalid",
    ),
    (
        "not UTF-8",
        "POST",
        "/dids/virgo/new",
        {"content": b'{"type": "\xff\xfe"}', "headers": JSON},
        400,
        "InvalidObject",
        "body",
    ),
    (
        "JSON array instead of object",
        "POST",
        "/dids/virgo/new",
        {"json": ["dataset"]},
        400,
        "InvalidObject",
        "invalid",
    ),
    (
        "wrong JSON type",
        "POST",
        "/dids/virgo/new",
        {"json": {"type": 5}},
        400,
        "InvalidObject",
        "type",
    ),
    (
        "unknown DID type",
        "POST",
        "/dids/virgo/new",
        {"json": {"type": "folder"}},
        400,
        "InvalidObject",
        "type",
    ),
    ("missing field", "POST", "/dids/virgo/new", {"json": {}}, 400, "InvalidObject", "type"),
    (
        "missing adler32",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [{"scope": "virgo", "name": "f", "bytes": 1}]}},
        400,
        "InvalidObject",
        "adler32",
    ),
    (
        "size is not a number",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [{**file_body("virgo", "f"), "bytes": "many"}]}},
        400,
        "InvalidObject",
        "bytes",
    ),
    (
        "files is not a list",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": "f"}},
        400,
        "InvalidObject",
        "files",
    ),
    (
        "open is not a boolean",
        "PUT",
        "/dids/virgo/ds/status",
        {"json": {"open": "maybe"}},
        400,
        "InvalidObject",
        "open",
    ),
    (
        "empty replica list",
        "POST",
        "/replicas/list",
        {"json": {"dids": []}},
        400,
        "InvalidObject",
        "dids",
    ),
    ("NUL in a name", "GET", "/dids/virgo/a%00b", {}, 400, "InvalidObject", "NUL"),
    ("NUL in a scope", "GET", "/dids/vir%00go/ds", {}, 400, "InvalidObject", "NUL"),
    ("'..' in a name", "GET", "/dids/virgo/a..b", {}, 400, "InvalidObject", r"'\.\.'"),
    ("name too long", "GET", f"/dids/virgo/{LONG_NAME}", {}, 400, "InvalidObject", "at most 250"),
    ("scope too long", "GET", f"/dids/{'s' * 26}/ds", {}, 400, "InvalidObject", "at most 25"),
    (
        "child name with a leading '/'",
        "POST",
        "/dids/virgo/ds/dids",
        {"json": {"dids": [{"scope": "virgo", "name": "/etc/passwd"}]}},
        400,
        "InvalidObject",
        "must not start with '/'",
    ),
    (
        "file name with a leading '/'",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("virgo", "/abs")]}},
        400,
        "InvalidObject",
        "must not start with '/'",
    ),
    (
        "file name with '..'",
        "POST",
        "/replicas",
        {"json": {"rse": "ALPHA_DISK", "files": [file_body("virgo", "a..b")]}},
        400,
        "InvalidObject",
        r"'\.\.'",
    ),
    (
        "listed name with NUL",
        "POST",
        "/replicas/list",
        {"json": {"dids": [{"scope": "virgo", "name": "a\x00b"}]}},
        400,
        "InvalidObject",
        "NUL",
    ),
    (
        "invalid filter",
        "GET",
        "/dids/virgo/dids/search?filter=run%3Eabc",
        {},
        400,
        "InvalidObject",
        "needs a number",
    ),
    (
        "invalid search type",
        "GET",
        "/dids/virgo/dids/search?type=table",
        {},
        400,
        "InvalidObject",
        "type",
    ),
    (
        "limit not a number",
        "GET",
        "/dids/virgo/dids/search?limit=ten",
        {},
        400,
        "InvalidObject",
        "limit",
    ),
    ("limit zero", "GET", "/dids/virgo/dids/search?limit=0", {}, 400, "InvalidObject", "limit"),
    (
        "metadata integer beyond 64 bits",
        "POST",
        "/dids/virgo/ds/meta",
        {"content": b'{"meta": {"k": 18446744073709551616}}', "headers": JSON},
        400,
        "InvalidObject",
        "64-bit",
    ),
    (
        "metadata value is a list",
        "POST",
        "/dids/virgo/ds/meta",
        {"json": {"meta": {"k": [1, 2]}}},
        400,
        "InvalidObject",
        "meta",
    ),
    (
        "reserved metadata key",
        "POST",
        "/dids/virgo/ds/meta/name",
        {"json": {"value": "x"}},
        400,
        "InvalidObject",
        "reserved",
    ),
    (
        "invalid RSE name",
        "POST",
        "/rses/lower_case",
        {"json": {}},
        400,
        "InvalidObject",
        "RSE name",
    ),
    (
        "invalid RSE type",
        "POST",
        "/rses/NEW_DISK",
        {"json": {"rse_type": "floppy"}},
        400,
        "InvalidObject",
        "rse_type",
    ),
    (
        "password too short",
        "POST",
        "/accounts/jdoe",
        {"json": {"password": "short"}},
        400,
        "InvalidObject",
        "password",
    ),
    ("unknown route", "GET", "/no/such/thing", {}, 404, "RucioException", "no such resource"),
    ("wrong method", "DELETE", "/ping", {}, 405, "UnsupportedOperation", "method not allowed"),
    ("wrong method on a listing", "PUT", "/rses/", {}, 405, "UnsupportedOperation", "not allowed"),
    (
        "attach to a file",
        "POST",
        "/dids/virgo/f0/dids",
        {"json": {"dids": [{"scope": "virgo", "name": "f1"}]}},
        409,
        "UnsupportedOperation",
        "is a file",
    ),
]


def test_bad_requests_get_a_4xx_with_rucio_error_headers(
    client: Client, http: httpx.Client
) -> None:
    client.add_scope("virgo")
    client.add_replicas(
        "ALPHA_DISK", [file_body("virgo", "f0"), file_body("virgo", "f1")], dataset="virgo:ds"
    )
    failures = []
    for case, method, path, kwargs, status, exception_class, pattern in ERROR_CASES:
        response = http.request(method, path, **kwargs)
        try:
            message = assert_error(response, status, exception_class)
            assert re.search(pattern, message), message
        except (AssertionError, ValueError) as exc:
            failures.append(f"{case}: {response.status_code} {response.headers} {exc}")
    assert failures == []
    # The catalog is unchanged by the refused requests.
    assert client.get_did("virgo:ds")["length"] == 2
    assert client.get_metadata("virgo:ds") == {}
    assert [d["name"] for d in client.list_dids("virgo:*")] == ["ds", "f0", "f1"]
    assert [r["rse"] for r in client.list_rses()] == ["ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"]
    assert [a["account"] for a in ndjson(http.get("/accounts/"))] == ["root"]


def test_client_maps_error_responses_back_to_lacus_errors(client: Client) -> None:
    client.add_scope("virgo")
    with pytest.raises(DIDNotFound, match="virgo:nope does not exist"):
        client.get_did("virgo:nope")
    client.add_dataset("virgo:ds")
    with pytest.raises(Exception, match="virgo:ds exists already") as error:
        client.add_dataset("virgo:ds")
    assert type(error.value).__name__ == "DIDAlreadyExists"


# -- request size limit --------------------------------------------------------------------------


def test_bodies_over_the_size_limit_are_refused_with_413(lake: Lake) -> None:
    limit = 1024
    app = create_app(lake.settings.model_copy(update={"max_body_bytes": limit}), lake=lake)

    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b" " * 400

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lacus") as http:
            login_response = await http.get(
                "/auth/userpass",
                headers={"X-Rucio-Username": "root", "X-Rucio-Password": ROOT_PASSWORD},
            )
            auth = {"X-Rucio-Auth-Token": login_response.headers["X-Rucio-Auth-Token"]}
            await http.post("/accounts/root/scopes/virgo", headers=auth)
            declared = await http.post(
                "/dids/virgo/declared",
                headers={**auth, **JSON},
                content=b'{"type": "dataset", "meta": {"pad": "' + b"x" * limit + b'"}}',
            )
            streamed = await http.post(
                "/dids/virgo/streamed", headers={**auth, **JSON}, content=chunks(5)
            )
            small = await http.post(
                "/dids/virgo/small", headers={**auth, **JSON}, content=b'{"type": "dataset"}'
            )
            small_streamed = await http.post(
                "/dids/virgo/small_streamed",
                headers={**auth, **JSON},
                content=_once(b'{"type": "container"}'),
            )
            found = await http.get("/dids/virgo/dids/search", headers=auth)
            return [declared, streamed, small, small_streamed, found]

    declared, streamed, small, small_streamed, found = asyncio.run(scenario())
    for response in (declared, streamed):
        message = assert_error(response, 413, "InputValidationError")
        assert f"larger than {limit} bytes" in message
        assert response.headers["X-Lacus-Error"] == "PayloadTooLarge"
    assert small.status_code == small_streamed.status_code == 201
    assert ndjson(found) == ["small", "small_streamed"]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


# -- NDJSON listings -----------------------------------------------------------------------------


def test_listings_stream_newline_delimited_json(client: Client, http: httpx.Client) -> None:
    client.add_scope("virgo")
    files = [file_body("virgo", f"f{i:04d}", i) for i in range(600)]
    client.add_replicas("ALPHA_DISK", files, dataset="virgo:ds")
    client.add_replicas("BETA_DISK", files[:5])

    rses = ndjson(http.get("/rses/"))
    assert [r["rse"] for r in rses] == ["ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"]
    by_name = {r["rse"]: r for r in rses}
    assert by_name["ALPHA_DISK"]["files"] == 600
    assert by_name["ALPHA_DISK"]["used_bytes"] == sum(f["bytes"] for f in files)
    assert by_name["GAMMA_TAPE"]["attributes"]["qos"] == "TAPE"

    names = ndjson(http.get("/dids/virgo/dids/search", params={"name": "f*"}))
    assert names == [f["name"] for f in files]
    long = ndjson(http.get("/dids/virgo/dids/search", params={"type": "dataset", "long": "true"}))
    assert [(d["name"], d["type"], d["length"]) for d in long] == [("ds", "dataset", 600)]
    assert ndjson(http.get("/dids/virgo/dids/search", params={"name": "nothing*"})) == []

    listed = ndjson(http.post("/replicas/list", json={"dids": [{"scope": "virgo", "name": "ds"}]}))
    assert sorted(r["name"] for r in listed) == [f["name"] for f in files]
    prefix = by_name["ALPHA_DISK"]["protocols"][0]["prefix"].rstrip("/")
    for replica in listed:
        digest = hashlib.md5(f"virgo:{replica['name']}".encode()).hexdigest()
        expected = f"file://{prefix}/virgo/{digest[:2]}/{digest[2:4]}/{replica['name']}"
        assert replica["replicas"]["ALPHA_DISK"]["pfn"] == expected  # Lacus's detail
        assert replica["rses"]["ALPHA_DISK"] == [expected]  # Rucio's shape
        assert replica["pfns"][expected]["rse"] == "ALPHA_DISK"
    on_beta = ndjson(
        http.post(
            "/replicas/list",
            json={"dids": [{"scope": "virgo", "name": "ds"}], "rse": "BETA_DISK"},
        )
    )
    assert sorted(r["name"] for r in on_beta if r["rses"]) == [f["name"] for f in files[:5]]

    content = ndjson(http.get("/dids/virgo/ds/dids"))
    assert len(content) == 600
    assert {c["type"] for c in content} == {"file"}


# -- authorisation -------------------------------------------------------------------------------


def test_a_non_admin_reads_everything_but_writes_only_its_own_scopes(
    client: Client, server: RunningServer
) -> None:
    client.add_scope("virgo")
    client.add_replicas("ALPHA_DISK", [file_body("virgo", "f")], dataset="virgo:ds")
    client.add_account("jdoe", password="jdoe-password")
    client.add_scope("user.jdoe", account="jdoe")

    with Client(server.url, account="jdoe", password="jdoe-password") as jdoe:
        assert (jdoe.whoami()["account"], jdoe.whoami()["admin"]) == ("jdoe", False)
        with pytest.raises(AccessDenied, match="admins only"):
            jdoe.add_rse("JDOE_DISK")
        with pytest.raises(AccessDenied, match="admins only"):
            jdoe.set_rse_attribute("ALPHA_DISK", "qos", "TAPE")
        with pytest.raises(AccessDenied, match="admins only"):
            jdoe.add_account("mallory", password="mallory-password")
        with pytest.raises(AccessDenied, match="may not write into scope 'virgo'"):
            jdoe.add_dataset("virgo:mine")
        with pytest.raises(AccessDenied, match="may not write into scope 'virgo'"):
            jdoe.add_replicas("ALPHA_DISK", [file_body("virgo", "g")])
        with pytest.raises(AccessDenied, match="may not write into scope 'virgo'"):
            jdoe.set_metadata("virgo:ds", {"run": 1})
        with pytest.raises(AccessDenied, match="may not write into scope 'virgo'"):
            jdoe.close_dataset("virgo:ds")
        with pytest.raises(AccessDenied, match="only 'root' or an admin"):
            jdoe.add_scope("stolen", account="root")

        # On the wire: 403 with Rucio's AccessDenied.
        token = login(server.url, "jdoe", "jdoe-password")
        raw = httpx.post(
            f"{server.url}/rses/JDOE_DISK", headers={"X-Rucio-Auth-Token": token}, json={}
        )
        assert_error(raw, 403, "AccessDenied")
        raw = httpx.post(
            f"{server.url}/dids/virgo/mine",
            headers={"X-Rucio-Auth-Token": token},
            json={"type": "dataset"},
        )
        assert_error(raw, 403, "AccessDenied")

        # Reading is open.
        assert jdoe.get_did("virgo:ds")["length"] == 1
        assert [d["name"] for d in jdoe.list_dids("virgo:*")] == ["ds", "f"]
        assert [r["rse"] for r in jdoe.list_rses()] == ["ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"]
        assert [r["name"] for r in jdoe.list_replicas(["virgo:ds"])] == ["f"]
        assert jdoe.get_metadata("virgo:ds") == {}

        # Its own scopes are its to write.
        jdoe.add_scope("jdoe_extra")
        ghost = {**file_body("user.jdoe", "ghost"), "bytes": 2**63 - 1, "adler32": "00000001"}
        with pytest.raises(ReplicaNotFound, match="is not on BETA_DISK"):
            jdoe.add_replicas("BETA_DISK", [ghost])  # no bytes behind it: no ghost replicas
        stored = rse_prefix(server.lake, "BETA_DISK") / deterministic_path("user.jdoe", "mine")
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(b"mine:0\n")  # what an upload writes before it registers
        jdoe.add_replicas("BETA_DISK", [file_body("user.jdoe", "mine")], dataset="user.jdoe:ds")
        assert jdoe.get_did("user.jdoe:ds")["account"] == "jdoe"

    # Nothing of the refused writes reached the catalog.
    assert [r["rse"] for r in client.list_rses()] == ["ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"]
    assert [d["name"] for d in client.list_dids("virgo:*")] == ["ds", "f"]
    assert client.get_did("virgo:ds")["open"] is True
    assert client.get_rse("ALPHA_DISK")["attributes"]["qos"] == "DISK"


# -- token expiry --------------------------------------------------------------------------------


def test_expired_tokens(
    client: Client, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifetime = 2
    monkeypatch.setattr(server.lake.settings, "token_lifetime", lifetime)
    token = login(server.url)
    # A client with only a token (LACUS_TOKEN), and one with a password.
    monkeypatch.delenv("LACUS_ACCOUNT")
    monkeypatch.delenv("LACUS_PASSWORD")
    monkeypatch.setenv("LACUS_TOKEN", token)
    with (
        Client(server.url) as token_only,
        Client(server.url, account="root", password=ROOT_PASSWORD) as with_password,
    ):
        assert token_only.whoami()["account"] == "root"
        assert with_password.whoami()["account"] == "root"
        old = with_password.token()

        time.sleep(lifetime + 0.5)

        for expired in (token, old):
            response = httpx.get(
                f"{server.url}/accounts/whoami", headers={"X-Rucio-Auth-Token": expired}
            )
            assert_error(response, 401, "CannotAuthenticate")
        with pytest.raises(Unauthenticated, match="expired"):
            token_only.whoami()
        with pytest.raises(Unauthenticated, match="expired"):
            token_only.list_rses()

        # The password client logs in again by itself.
        assert with_password.whoami()["account"] == "root"
        assert len(with_password.list_rses()) == 3
        with_password.add_scope("after_expiry")
    assert "after_expiry" in [s["scope"] for s in client.list_scopes()]


def test_a_replica_listing_naming_a_missing_did_is_a_404_before_any_line(
    client: Client, server: RunningServer, tmp_path: Path
) -> None:
    client.add_scope("obs")
    source = tmp_path / "f.dat"
    source.write_bytes(b"bytes")
    client.upload([source], rse="ALPHA_DISK", scope="obs")
    response = httpx.post(
        f"{server.url}/replicas/list",
        headers={"X-Rucio-Auth-Token": client.session.token},
        json={"dids": [{"scope": "obs", "name": "f.dat"}, {"scope": "obs", "name": "missing"}]},
    )
    assert response.status_code == 404
    assert response.json()["error"] == "DIDNotFound"
