"""Tokens that end (issue 16): ``GET /auth/tokens`` lists an account's tokens without their
secrets, ``DELETE /auth/tokens/{id}`` revokes one (own tokens; admins any) and a revoked token is
refused at once; ``Client.list_tokens/revoke_token/logout``, ``lacus token list|revoke`` and
``lacus logout``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lacus.client import Client
from lacus.client.config import ClientConfig, save_config
from lacus.errors import NotFound, Unauthenticated
from lacus.service import Lake
from lacus.service.auth import authenticate, login_userpass
from tests.conftest import RunningServer

PASSWORD = "a-password-long-enough"


def login(url: str, account: str) -> str:
    response = httpx.get(
        f"{url}/auth/userpass",
        headers={"X-Rucio-Username": account, "X-Rucio-Password": PASSWORD},
    )
    response.raise_for_status()
    return response.headers["X-Rucio-Auth-Token"]


def call(url: str, method: str, path: str, token: str) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", headers={"X-Rucio-Auth-Token": token})


@pytest.fixture
def users(client: Client) -> None:
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)


def test_the_rest_api_lists_tokens_without_their_secrets(
    server: RunningServer, users: None
) -> None:
    first, second = login(server.url, "alice"), login(server.url, "alice")
    login(server.url, "bob")
    response = call(server.url, "GET", "/auth/tokens", second)
    assert response.status_code == 200
    listed: list[dict[str, Any]] = response.json()
    assert [entry["account"] for entry in listed] == ["alice", "alice"]
    assert [entry["current"] for entry in listed] == [False, True]
    assert {entry["identity"] for entry in listed} == {"alice"}
    assert all(entry["created_at"] and entry["expires_at"] for entry in listed)
    assert len({entry["id"] for entry in listed}) == 2
    for token in (first, second):  # not a secret, nor its random part
        assert token not in response.text
        assert token.split("-", 1)[1] not in response.text


def test_a_revoked_token_is_refused_at_once_everywhere(server: RunningServer, users: None) -> None:
    keep, drop = login(server.url, "alice"), login(server.url, "alice")
    assert call(server.url, "GET", "/accounts/whoami", drop).status_code == 200  # cached now
    (entry,) = [e for e in call(server.url, "GET", "/auth/tokens", drop).json() if e["current"]]
    response = call(server.url, "DELETE", f"/auth/tokens/{entry['id']}", keep)
    assert response.status_code == 200
    assert response.json() == {"revoked": entry["id"]}
    for path in ("/accounts/whoami", "/auth/tokens", "/events", "/dashboard/"):
        assert call(server.url, "GET", path, drop).status_code in (401, 303), path
    assert call(server.url, "GET", "/accounts/whoami", keep).status_code == 200
    again = call(server.url, "DELETE", f"/auth/tokens/{entry['id']}", keep)
    assert again.status_code == 404


def test_only_the_owner_or_an_admin_revokes_a_token(
    client: Client, server: RunningServer, users: None
) -> None:
    alices = login(server.url, "alice")
    bobs = login(server.url, "bob")
    (alice_id,) = [e["id"] for e in call(server.url, "GET", "/auth/tokens", alices).json()]
    refused = call(server.url, "DELETE", f"/auth/tokens/{alice_id}", bobs)
    assert refused.status_code == 404  # another account's token answers as a missing one
    assert call(server.url, "GET", "/accounts/whoami", alices).status_code == 200
    client.revoke_token(alice_id)  # root: any account's
    assert call(server.url, "GET", "/accounts/whoami", alices).status_code == 401
    with pytest.raises(NotFound):
        client.revoke_token("0123456789abcdef")
    bad = call(server.url, "DELETE", "/auth/tokens/not-an-id", bobs)
    assert bad.status_code == 400 or bad.status_code == 422


def test_the_client_lists_revokes_and_logs_out(server: RunningServer, users: None) -> None:
    with Client(server.url, account="alice", password=PASSWORD) as alice:
        other = login(server.url, "alice")
        listed = alice.list_tokens()
        assert len(listed) == 2
        (current,) = [e for e in listed if e["current"]]
        (older,) = [e for e in listed if not e["current"]]
        alice.revoke_token(older["id"])
        assert call(server.url, "GET", "/accounts/whoami", other).status_code == 401
        held = alice.token()
        assert alice.logout() is True
        assert call(server.url, "GET", "/accounts/whoami", held).status_code == 401
        assert alice.logout() is False  # nothing held any more
        assert alice.whoami()["account"] == "alice"  # a password logs in again
        assert [e["id"] for e in alice.list_tokens()] != [current["id"]]
    with Client(server.url, token=login(server.url, "bob"), account="bob") as bob:
        token = bob.token()
        assert bob.logout() is True
        assert call(server.url, "GET", "/accounts/whoami", token).status_code == 401


def test_revocation_reaches_other_processes_within_the_cache_time(
    server: RunningServer, users: None
) -> None:
    """Another server process (its own Lake, its own cache) refuses a revoked token once its
    cache entry is ``token_cache_seconds`` old; the default keeps that to a few seconds."""
    lake = server.lake
    assert lake.settings.token_cache_seconds <= 5
    other = Lake(lake.settings.model_copy(update={"token_cache_seconds": 0.3}))
    try:
        token, _ = login_userpass(lake, "alice", "alice", PASSWORD)
        assert authenticate(other, token).account == "alice"  # cached there now
        (entry,) = [e for e in call(server.url, "GET", "/auth/tokens", token).json()]
        call(server.url, "DELETE", f"/auth/tokens/{entry['id']}", token).raise_for_status()
        with pytest.raises(Unauthenticated):
            authenticate(lake, token)  # this process: at once
        import time

        time.sleep(0.4)
        with pytest.raises(Unauthenticated):
            authenticate(other, token)
    finally:
        other.close()


def test_lacus_token_list_and_revoke(cli: Any, client: Client, users: None) -> None:
    result = cli("token", "list", "--json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert any(entry["current"] for entry in listed)
    assert client.token() not in result.stdout
    result = cli("token", "list")
    assert result.exit_code == 0
    assert listed[0]["id"] in result.stdout
    gone = next(entry for entry in listed if entry["current"])
    result = cli("token", "revoke", gone["id"])
    assert result.exit_code == 0, result.stderr
    assert f"Revoked token {gone['id']}" in result.stdout
    result = cli("token", "revoke", gone["id"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no token with id")


def test_lacus_logout_revokes_the_held_token_and_forgets_it(
    cli: Any,
    server: RunningServer,
    users: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    token = login(server.url, "alice")
    for name in ("LACUS_ACCOUNT", "LACUS_PASSWORD", "LACUS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    saved = save_config(ClientConfig(server.url, "alice", PASSWORD, token))
    assert cli("whoami", "--json").exit_code == 0
    result = cli("logout")
    assert result.exit_code == 0, result.stderr
    assert "1 token(s) revoked" in result.stdout
    assert call(server.url, "GET", "/accounts/whoami", token).status_code == 401
    kept = orjson.loads(saved.read_bytes())
    assert kept == {"url": server.url, "account": "alice"}
    result = cli("whoami")
    assert result.exit_code == 1
    assert "no credentials" in result.stderr


def test_lacus_logout_all_revokes_every_token_of_the_account(
    cli: Any, server: RunningServer, users: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [login(server.url, "bob") for _ in range(3)]
    monkeypatch.setenv("LACUS_ACCOUNT", "bob")
    monkeypatch.setenv("LACUS_PASSWORD", PASSWORD)
    result = cli("logout", "--all")
    assert result.exit_code == 0, result.stderr
    assert "4 token(s) revoked" in result.stdout  # three, and the one it logged in with
    for token in tokens:
        assert call(server.url, "GET", "/accounts/whoami", token).status_code == 401
