"""What ``service/permissions.py`` promises beyond test_permissions.py, found by mutation testing
(scripts/mutation.sh): the aliases Rucio's clients call (a path with or without its trailing
slash) are gated by the row of the operation they stand for, and the gate's refusals say who
may call what."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from lacus.client import Client
from lacus.errors import Unauthenticated
from lacus.service.permissions import require
from tests.conftest import RunningServer
from tests.test_rest import assert_error

MUTATED = "src/lacus/service/permissions.py"
"""scripts/mutation.sh runs this file with the module's other tests."""

PASSWORD = "password-of-the-tests"


@pytest.fixture
def http(client: Client, server: RunningServer) -> Iterator[httpx.Client]:
    """Raw HTTP to the server; accounts alice (owning scope ``alice``) and bob exist."""
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)
    client.add_scope("alice", account="alice")
    with httpx.Client(base_url=server.url, timeout=30) as raw:
        yield raw


def token(http: httpx.Client, account: str) -> dict[str, str]:
    login = {"X-Rucio-Account": account, "X-Rucio-Username": account, "X-Rucio-Password": PASSWORD}
    answer = http.get("/auth/userpass", headers=login)
    assert answer.status_code == 200, answer.text
    return {"X-Rucio-Auth-Token": answer.headers["X-Rucio-Auth-Token"]}


def test_aliases_are_gated_by_the_row_they_stand_for(http: httpx.Client) -> None:
    alice = token(http, "alice")
    # ``GET /accounts`` (rucio account list) is ``GET /accounts/``: any account.
    listed = http.get("/accounts", headers=alice)
    assert listed.status_code == 200, listed.text
    assert "alice" in listed.text
    assert "bob" in listed.text
    assert_error(http.get("/accounts"), 401, "CannotAuthenticate")
    # ``POST /replicas/`` is ``POST /replicas``: the scope's owner registers (copying).
    body = {
        "rse": "ALPHA_DISK",
        "files": [{"scope": "alice", "name": "f", "bytes": 3, "adler32": "024d0127", "state": "C"}],
    }
    added = http.post("/replicas/", json=body, headers=alice)
    assert added.status_code == 201, added.text
    other = {"scope": "alice", "name": "g", "bytes": 3, "adler32": "024d0127", "state": "C"}
    refused = http.post("/replicas/", json=body | {"files": [other]}, headers=token(http, "bob"))
    assert_error(refused, 403, "AccessDenied")
    assert_error(http.post("/replicas/", json=body), 401, "CannotAuthenticate")


def test_an_owner_operation_refused_names_who_may_call_it(http: httpx.Client) -> None:
    response = http.get("/accounts/alice/limits", headers=token(http, "bob"))
    message = assert_error(response, 403, "AccessDenied")
    assert message == (
        "account 'bob' may not call GET /accounts/alice/limits: only 'alice' or an admin"
    )


def test_an_operation_needing_an_account_asks_for_a_token() -> None:
    with pytest.raises(Unauthenticated, match=r"^GET /accounts/x/limits needs a token$"):
        require(None, "GET /accounts/{account}/limits", called="GET /accounts/x/limits")
    with pytest.raises(Unauthenticated, match=r"^GET /accounts/whoami needs a token$"):
        require(None, "GET /accounts/whoami")
