"""Property-based tests of the whole REST API with schemathesis, from the server's own OpenAPI.

Every operation of the OpenAPI document gets a bounded number of generated requests (valid and
invalid ones; derandomized, so a run is reproducible) against the real uvicorn server of the
session, authenticated as root, on a catalog seeded once per backend with a scope, a dataset of
files with metadata and a rule, so that some requests hit real objects. Every answer must be no
server error, carry a status code the document declares and a body that conforms to it; streamed
listings must be JSON lines.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lacus.server import create_app
from lacus.server.responses import NDJSON
from lacus.service import Settings
from tests.conftest import ROOT_PASSWORD, RunningServer, reset_catalog

MAX_EXAMPLES = 15
"""Generated requests per operation and backend (the coverage phase adds a few more; the
stateful run of test_schemathesis_stateful.py explores sequences of them)."""


def openapi_document() -> dict[str, Any]:
    """The document the server serves at ``/openapi.json`` (it does not touch the catalog)."""
    unused = Settings(lake_dir=Path("unused"), database_url="sqlite://")
    return create_app(unused).openapi()


schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path="/events")
"""Every operation but the event stream, which answers for as long as the client listens (it has
its own tests: tests/test_events.py)."""


def json_lines(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A streamed listing is one JSON value per line."""
    if not response.headers.get("content-type", [""])[0].startswith(NDJSON):
        return None
    for line in response.content.splitlines():
        if line:
            orjson.loads(line)
    return True


def authenticated(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """The test's token is accepted: a 401 would mean the seeded catalog (and the token) is
    gone, and every later example would test nothing but authentication."""
    if case.path == "/auth/userpass":  # generated credentials, rightly refused
        return None
    if response.status_code == 401:
        raise AssertionError(f"the token was refused: {response.text[:300]}")
    return True


CHECKS = [
    authenticated,
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    response_headers_conformance,
    json_lines,
]


@dataclass
class Seeded:
    url: str
    token: str


def _file(name: str) -> dict[str, object]:
    return {
        "scope": "virgo",
        "name": name,
        "bytes": len(name),
        "adler32": f"{zlib.adler32(name.encode()) & 0xFFFFFFFF:08x}",
    }


@pytest.fixture(scope="module")
def seeded(session_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The server on a catalog seeded once per backend over REST; root's token."""
    reset_catalog(session_server.lake, tmp_path_factory.mktemp("rses"))
    login = httpx.get(
        f"{session_server.url}/auth/userpass",
        headers={
            "X-Rucio-Account": "root",
            "X-Rucio-Username": "root",
            "X-Rucio-Password": ROOT_PASSWORD,
        },
    )
    token = login.headers["X-Rucio-Auth-Token"]
    with httpx.Client(base_url=session_server.url, headers={"X-Rucio-Auth-Token": token}) as http:
        for method, path, body in [
            ("POST", "/accounts/root/scopes/virgo", None),
            (
                "POST",
                "/replicas",
                {
                    "rse": "ALPHA_DISK",
                    "files": [_file("f0"), _file("f1")],
                    "dataset": {"scope": "virgo", "name": "ds"},
                },
            ),
            ("POST", "/dids/virgo/ds/meta", {"meta": {"run": 7, "colour": "blau"}}),
            ("POST", "/dids/virgo/empty", {"type": "container"}),
            (
                "POST",
                "/rules/",
                {"dids": [{"scope": "virgo", "name": "ds"}], "rse_expression": "BETA_DISK"},
            ),
        ]:
            response = http.request(method, path, json=body)
            assert response.status_code == 201, response.headers.get("ExceptionMessage")
    return Seeded(url=session_server.url, token=token)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_generated_request_gets_a_documented_answer(case: Case, seeded: Seeded) -> None:
    case.headers = {**(case.headers or {}), "X-Rucio-Auth-Token": seeded.token}
    case.call_and_validate(base_url=seeded.url, checks=CHECKS)


def test_the_served_document_is_the_one_tested(seeded: Seeded) -> None:
    served = httpx.get(f"{seeded.url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == orjson.loads(orjson.dumps(openapi_document()))
