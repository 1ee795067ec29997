"""Events without leaks (issue 16, points 3 and 5): payloads redacted per reader on ``/events``
(the SSE stream, through the client and raw) and ``/dashboard/events``; an event about a DID the
reader may not see is never sent; streams end with their token (expired or revoked)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lacus.client import Client, Event
from lacus.errors import Unauthenticated
from tests.conftest import RunningServer

PASSWORD = "a-password-long-enough"


def write_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(name.encode() * 50)
    return path


def collect_until(client: Client, last_type: str, **options: object) -> list[Event]:
    """Events of ``client.watch`` up to the first of type ``last_type`` (10 s of silence at
    most)."""
    found: list[Event] = []
    for event in client.watch(timeout=10.0, **options):  # type: ignore[arg-type]
        found.append(event)
        if event.type == last_type:
            return found
    raise AssertionError(f"no {last_type} event among {[e.type for e in found]}")


def sse_lines(url: str, token: str, params: dict[str, str], *, read: float = 10.0) -> Iterator[str]:
    """The lines of a raw ``GET /events`` stream."""
    headers = {"X-Rucio-Auth-Token": token, "Accept": "text/event-stream"}
    with (
        httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=read)) as http,
        http.stream("GET", "/events", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        yield from response.iter_lines()


def raw_until(url: str, token: str, params: dict[str, str], last: str) -> str:
    """The raw stream's text up to the line ``event: <last>`` and its data."""
    seen: list[str] = []
    waiting = False
    for line in sse_lines(url, token, params):
        seen.append(line)
        if line == f"event: {last}":
            waiting = True
        elif waiting and line.startswith("data:"):
            return "\n".join(seen)
    raise AssertionError(f"the stream ended before {last}: {seen}")


@pytest.fixture
def accounts(client: Client, server: RunningServer) -> Iterator[tuple[Client, Client]]:
    """alice (owner of scope ``alice``) and bob, another non-admin account."""
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)
    client.add_scope("alice", account="alice")
    with (
        Client(server.url, account="alice", password=PASSWORD) as alice,
        Client(server.url, account="bob", password=PASSWORD) as bob,
    ):
        yield alice, bob


def test_an_attach_event_on_a_public_dataset_names_no_hidden_child(
    client: Client, server: RunningServer, accounts: tuple[Client, Client], tmp_path: Path
) -> None:
    """The reproduction of issue 16, point 3: a public dataset, an embargoed file attached to
    it by its owner; the other account's ``/events`` (SSE) and ``/dashboard/events`` show the
    attach event without the hidden name, the owner and admins see it whole."""
    alice, bob = accounts
    alice.add_dataset("alice:public")
    for name in ("secret.dat", "open.dat"):
        alice.upload([write_file(tmp_path, name)], rse="ALPHA_DISK", scope="alice")
    alice.set_embargo("alice:secret.dat")
    start = server.lake.event_log.horizon(fresh=True)
    alice.attach("alice:public", ["alice:secret.dat", "alice:open.dat"])
    alice.close_dataset("alice:public")

    def attached(reader: Client) -> list[str]:
        found = collect_until(reader, "did.closed", did="alice:public", after=start)
        (event,) = [e for e in found if e.type == "did.attached"]
        return sorted(child["name"] for child in event.payload["children"])

    assert attached(bob) == ["open.dat"]
    assert attached(alice) == ["open.dat", "secret.dat"]
    assert attached(client) == ["open.dat", "secret.dat"]

    params = {"did": "alice:public", "after": str(start)}
    bob_raw = raw_until(server.url, bob.token(), params, "did.closed")
    assert "event: did.attached" in bob_raw
    assert "open.dat" in bob_raw
    assert "secret.dat" not in bob_raw
    assert "secret.dat" in raw_until(server.url, alice.token(), params, "did.closed")

    def dashboard(reader: Client) -> str:
        response = httpx.get(
            f"{server.url}/dashboard/events",
            params={"did": "alice:public"},
            headers={"X-Rucio-Auth-Token": reader.token()},
        )
        assert response.status_code == 200
        return response.text

    bob_page = dashboard(bob)
    assert "did.attached" in bob_page
    assert "open.dat" in bob_page
    assert "secret.dat" not in bob_page
    assert "secret.dat" in dashboard(alice)
    assert "secret.dat" in dashboard(client)


def test_an_event_about_hidden_dids_only_is_not_delivered(
    client: Client, server: RunningServer, accounts: tuple[Client, Client], tmp_path: Path
) -> None:
    """An attach naming only hidden children, and every event about a hidden DID, reach
    neither the SSE stream nor the dashboard of another account."""
    alice, bob = accounts
    alice.add_dataset("alice:public")
    alice.add_dataset("alice:secret")
    alice.set_embargo("alice:secret")
    alice.upload([write_file(tmp_path, "hidden.dat")], rse="ALPHA_DISK", scope="alice")
    alice.set_embargo("alice:hidden.dat")
    start = server.lake.event_log.horizon(fresh=True)
    alice.attach("alice:public", ["alice:hidden.dat"])  # names only a hidden DID
    alice.close_dataset("alice:secret")  # about a hidden DID
    alice.upload([write_file(tmp_path, "last.dat")], rse="ALPHA_DISK", scope="alice")

    seen = collect_until(bob, "replica.available", scope="alice", after=start)
    assert [(e.type, e.name) for e in seen] == [("replica.available", "last.dat")]
    bob_raw = raw_until(server.url, bob.token(), {"after": str(start)}, "replica.available")
    assert "hidden.dat" not in bob_raw
    assert "alice:secret" not in bob_raw
    assert '"secret"' not in bob_raw
    page = httpx.get(
        f"{server.url}/dashboard/events",
        headers={"X-Rucio-Auth-Token": bob.token()},
    ).text
    assert "hidden.dat" not in page
    assert "last.dat" in page

    owner = collect_until(alice, "replica.available", scope="alice", after=start)
    assert [e.type for e in owner] == ["did.attached", "did.closed", "replica.available"]
    assert owner[0].payload["children"][0]["name"] == "hidden.dat"
    admin = collect_until(client, "replica.available", scope="alice", after=start)
    assert [e.type for e in admin] == ["did.attached", "did.closed", "replica.available"]


def test_audit_events_carry_no_storage_path_to_other_accounts(
    client: Client, server: RunningServer, accounts: tuple[Client, Client], tmp_path: Path
) -> None:
    """Events about no DID (``audit.*``, ``scrub.*``) are read by every account: counts and
    the RSE's name, never a path on storage."""
    from lacus.core import audits as core_audits

    _, bob = accounts
    start = server.lake.event_log.horizon(fresh=True)
    with server.lake.write() as conn:
        rse_id = conn.exec_driver_sql("SELECT id FROM rses WHERE rse = 'ALPHA_DISK'").scalar()
        run = core_audits.start_run(conn, rse_id, core_audits.AUDIT, worker="test")
        core_audits.end_run(
            conn, run, state="failed", detail="OSError: cannot list /srv/alpha/alice/secret.dat"
        )
    (event,) = collect_until(bob, "audit.aborted", types=["audit.aborted"], after=start)
    assert "/srv" not in str(event.payload)
    assert "secret.dat" not in str(event.payload)


def test_a_stream_ends_when_its_token_expires(
    server: RunningServer, accounts: tuple[Client, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16, point 5: a stream opened with a token that lives 2 s ends (with
    ``auth.expired``) a few seconds later, quiet or not."""
    monkeypatch.setattr(server.lake.settings, "token_lifetime", 2)
    response = httpx.get(
        f"{server.url}/auth/userpass",
        headers={"X-Rucio-Username": "bob", "X-Rucio-Password": PASSWORD},
    )
    token = response.headers["X-Rucio-Auth-Token"]
    opened = time.monotonic()
    lines = list(sse_lines(server.url, token, {}, read=20.0))
    assert time.monotonic() - opened < 2 + 5
    assert "event: auth.expired" in lines
    assert lines[-1] == ""
    assert any("log in again" in line for line in lines)
    refused = httpx.get(f"{server.url}/events", headers={"X-Rucio-Auth-Token": token})
    assert refused.status_code == 401


def test_a_stream_ends_when_its_token_is_revoked(
    server: RunningServer, accounts: tuple[Client, Client]
) -> None:
    _, bob = accounts
    token = bob.token()
    (mine,) = [entry for entry in bob.list_tokens() if entry["current"]]
    seen: list[str] = []
    for line in sse_lines(server.url, token, {}, read=20.0):
        seen.append(line)
        if line.startswith("retry:"):  # the stream is open: revoke its token now
            revoked_at = time.monotonic()
            with Client(server.url, account="bob", password=PASSWORD) as other:
                other.revoke_token(mine["id"])
    assert "event: auth.expired" in seen
    assert time.monotonic() - revoked_at < 5


def test_the_client_gets_a_clear_error_when_its_token_only_stream_ends(
    server: RunningServer, accounts: tuple[Client, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client with a token and no password, watching: the stream's end is an
    Unauthenticated error saying why, not a silent end or a reconnection loop."""
    monkeypatch.delenv("LACUS_PASSWORD")
    monkeypatch.delenv("LACUS_ACCOUNT")
    _, bob = accounts
    with Client(server.url, token=bob.token()) as token_only:
        position = server.lake.event_log.horizon(fresh=True)
        revoking = threading.Timer(1.0, bob.logout)  # the same token, revoked mid-stream
        revoking.start()
        try:
            with pytest.raises(Unauthenticated, match="expired or was revoked"):
                next(token_only.watch(after=position, timeout=10.0))
        finally:
            revoking.join()


def test_a_password_client_logs_in_again_and_resumes(
    server: RunningServer, accounts: tuple[Client, Client], tmp_path: Path
) -> None:
    """The watch of a client with a password survives its token's revocation: it logs in
    again and resumes after the last event it saw."""
    alice, _ = accounts
    start = server.lake.event_log.horizon(fresh=True)
    stream = alice.watch(scope="alice", after=start, timeout=10.0)
    alice.upload([write_file(tmp_path, "one.dat")], rse="ALPHA_DISK", scope="alice")
    assert next(stream).name == "one.dat"
    alice.logout()
    alice.upload([write_file(tmp_path, "two.dat")], rse="ALPHA_DISK", scope="alice")
    assert next(stream).name == "two.dat"
