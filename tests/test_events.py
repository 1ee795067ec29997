"""The event stream: what each change writes, ``GET /events`` filters and resumes, embargo,
``Client.watch`` and ``follow_files``, the outbox horizon on PostgreSQL."""

from __future__ import annotations

import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from lacus.client import Client, Event, follow_files
from lacus.core import events as core_events
from lacus.db.engine import flush_outbox
from lacus.errors import DIDNotFound, InvalidInput
from lacus.service import Lake
from lacus.service.event_log import EventLog
from tests.conftest import ROOT_PASSWORD, RunningServer
from tests.rule_helpers import add_rule, make_dataset, put_files, settle

PASSWORD = "a-password-long-enough"


def collect(client: Client, count: int, **options: Any) -> list[Event]:
    """The next ``count`` events of ``client.watch(**options)`` (at most 10 s of silence)."""
    found: list[Event] = []
    for event in client.watch(timeout=10.0, **options):
        found.append(event)
        if len(found) == count:
            break
    return found


def write_files(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(name.encode() * 100)
        paths.append(path)
    return paths


def test_an_upload_into_a_dataset_writes_its_events_in_order(
    client: Client, tmp_path: Path
) -> None:
    client.add_scope("obs")
    client.upload(write_files(tmp_path, "a.dat"), rse="ALPHA_DISK", scope="obs", dataset="run1")
    client.close_dataset("obs:run1")

    found = collect(client, 4, scope="obs", after=0)

    assert [(e.type, e.name) for e in found] == [
        ("replica.available", "a.dat"),
        ("did.created", "run1"),
        ("did.attached", "run1"),
        ("did.closed", "run1"),
    ]
    ids = [e.id for e in found]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    available = found[0].payload
    assert available["new_file"] is True
    assert available["rse"] == "ALPHA_DISK"
    assert available["bytes"] == 500
    assert available["adler32"]
    assert available["md5"]
    assert available["pfn"].endswith("a.dat")
    assert found[2].payload["children"] == [{"scope": "obs", "name": "a.dat", "type": "file"}]
    assert all(e.payload["created_at"].endswith("Z") for e in found)


def test_only_the_files_a_registration_creates_are_new(client: Client, tmp_path: Path) -> None:
    """A registration of a known file (a second replica) and a new one at once: the event of
    the new file says so, the other does not."""
    client.add_scope("obs")
    client.upload(write_files(tmp_path, "old.dat"), rse="ALPHA_DISK", scope="obs")
    old = next(iter(client.list_replicas(["obs:old.dat"])))
    after = next(iter(collect(client, 1, scope="obs", after=0))).id
    fresh = b"fresh" * 10
    client.add_replicas(
        "BETA_DISK",
        [
            {"scope": "obs", "name": "old.dat", "bytes": old["bytes"], "adler32": old["adler32"]},
            {
                "scope": "obs",
                "name": "new.dat",
                "bytes": len(fresh),
                "adler32": f"{zlib.adler32(fresh):08x}",
            },
        ],
    )

    found = collect(client, 2, scope="obs", types=["replica.available"], after=after)

    flags = {e.name: e.payload.get("new_file", False) for e in found}
    assert flags == {"old.dat": False, "new.dat": True}


def test_a_rule_reports_created_then_ok(client: Client, server: RunningServer) -> None:
    make_dataset(server.lake, "obs", "ds", ["f1"])
    after = server.lake.event_log.horizon(fresh=True)
    (rule_id,) = client.add_rule("obs:ds", "BETA_DISK")

    found = collect(client, 2, did="obs:ds", types=["rule.created", "rule.ok"], after=after)
    assert [e.type for e in found] == ["rule.created", "rule.ok"]
    assert {e.payload["rule_id"] for e in found} == {rule_id}
    # the file's copy on BETA_DISK is reported on the dataset's stream too (it is in it)
    more = collect(client, 1, did="obs:ds", types=["replica.available"], after=after)
    assert (more[0].name, more[0].payload["rse"]) == ("f1", "BETA_DISK")


def test_a_dataset_stream_has_its_files_and_nothing_else(
    client: Client, server: RunningServer
) -> None:
    lake = server.lake
    make_dataset(lake, "obs", "mine", [])
    make_dataset(lake, "obs", "other", [])
    start = lake.event_log.horizon(fresh=True)
    put_files(lake, "ALPHA_DISK", "obs", ["in.dat", "out.dat", "later.dat"])
    client.attach("obs:mine", ["obs:in.dat"])
    client.attach("obs:other", ["obs:out.dat"])
    client.attach("obs:mine", ["obs:later.dat"])

    found = collect(client, 4, did="obs:mine", after=start)
    assert [(e.type, e.name) for e in found] == [
        ("replica.available", "in.dat"),
        ("replica.available", "later.dat"),
        ("did.attached", "mine"),
        ("did.attached", "mine"),
    ]
    assert list(client.watch("obs:mine", after=found[-1].id, timeout=0.5)) == []


def test_a_container_stream_has_what_is_below_it_at_any_depth(
    client: Client, server: RunningServer
) -> None:
    lake = server.lake
    for name in ("inner", "deep", "outside"):
        make_dataset(lake, "obs", name, [])
    client.add_container("obs:box")
    client.add_container("obs:sub")
    client.attach("obs:box", ["obs:inner", "obs:sub"])
    client.attach("obs:sub", ["obs:deep"])
    start = lake.event_log.horizon(fresh=True)
    put_files(lake, "ALPHA_DISK", "obs", ["a.dat", "b.dat", "c.dat"])
    client.attach("obs:inner", ["obs:a.dat"])
    client.attach("obs:deep", ["obs:b.dat"])  # two levels down
    client.attach("obs:outside", ["obs:c.dat"])
    client.close_dataset("obs:deep")
    client.close_dataset("obs:outside")

    found = collect(client, 5, did="obs:box", after=start)
    assert [(e.type, e.name) for e in found] == [
        ("replica.available", "a.dat"),
        ("replica.available", "b.dat"),
        ("did.attached", "inner"),
        ("did.attached", "deep"),
        ("did.closed", "deep"),
    ]
    assert list(client.watch("obs:box", after=found[-1].id, timeout=0.5)) == []


def test_a_stream_resumes_after_the_last_event_without_gap_or_repeat(
    client: Client, server: RunningServer
) -> None:
    lake = server.lake
    make_dataset(lake, "obs", "ds", [])
    start = lake.event_log.horizon(fresh=True)
    put_files(lake, "ALPHA_DISK", "obs", [f"f{i}" for i in range(6)])
    first = collect(client, 4, types=["replica.available"], after=start)
    put_files(lake, "ALPHA_DISK", "obs", [f"g{i}" for i in range(3)])
    rest = collect(client, 5, types=["replica.available"], after=first[-1].id)

    names = [e.name for e in first + rest]
    assert names == [f"f{i}" for i in range(6)] + [f"g{i}" for i in range(3)]


def test_last_event_id_header_resumes_a_raw_sse_stream(
    client: Client, server: RunningServer
) -> None:
    lake = server.lake
    make_dataset(lake, "obs", "ds", ["f1", "f2"])
    before = lake.event_log.horizon(fresh=True)
    put_files(lake, "ALPHA_DISK", "obs", ["f3"])
    headers = {"X-Rucio-Auth-Token": client.session.token, "Last-Event-ID": str(before)}
    with httpx.stream(
        "GET", f"{server.url}/events", headers=headers, params={"type": "replica.available"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines: list[str] = []
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert lines[0] == "retry: 1000"
    assert f"id: {before}" in lines
    assert "event: replica.available" in lines
    assert '"name":"f3"' in lines[-1]


@pytest.mark.parametrize(
    ("params", "headers", "status", "error"),
    [
        ({"type": "no.such"}, {}, 400, "InvalidInput"),
        ({"did": "obs:missing"}, {}, 404, "DIDNotFound"),
        ({"did": "no-scope-here"}, {}, 400, "InvalidName"),
        ({"after": "-1"}, {}, 400, "InvalidRequest"),
        ({}, {"Last-Event-ID": "yesterday"}, 400, "InvalidInput"),
    ],
)
def test_bad_stream_requests_get_a_clear_4xx(
    client: Client,
    server: RunningServer,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    client.add_scope("obs")
    headers = {"X-Rucio-Auth-Token": client.session.token, **headers}
    response = httpx.get(f"{server.url}/events", params=params, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_the_client_raises_the_servers_error(client: Client) -> None:
    client.add_scope("obs")
    with pytest.raises(DIDNotFound):
        next(client.watch("obs:missing"))
    with pytest.raises(InvalidInput):
        next(client.watch(types=["rule.exploded"]))


def test_an_embargoed_dataset_shows_no_event_to_other_accounts(
    client: Client, server: RunningServer, tmp_path: Path
) -> None:
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)
    client.add_scope("alice", account="alice")
    start = server.lake.event_log.horizon(fresh=True)
    with Client(server.url, account="alice", password=PASSWORD) as alice:
        alice.add_dataset("alice:secret")
        alice.set_embargo("alice:secret")
        alice.upload(
            write_files(tmp_path, "s.dat"), rse="ALPHA_DISK", scope="alice", dataset="secret"
        )
        alice.upload(write_files(tmp_path, "p.dat"), rse="ALPHA_DISK", scope="alice")
        seen_by_alice = collect(alice, 2, scope="alice", types=["replica.available"], after=start)
    with Client(server.url, account="bob", password=PASSWORD) as bob:
        seen_by_bob = collect(bob, 1, scope="alice", types=["replica.available"], after=start)
        with pytest.raises(DIDNotFound):
            next(bob.watch("alice:secret"))
        assert list(bob.watch(scope="alice", after=seen_by_bob[0].id, timeout=0.5)) == []
    assert [e.name for e in seen_by_alice] == ["s.dat", "p.dat"]
    assert [e.name for e in seen_by_bob] == ["p.dat"]
    root_sees = collect(client, 2, scope="alice", types=["replica.available"], after=start)
    assert [e.name for e in root_sees] == ["s.dat", "p.dat"]


def test_follow_files_yields_each_file_once_whichever_way_it_arrives(
    client: Client, server: RunningServer, tmp_path: Path
) -> None:
    lake = server.lake
    make_dataset(lake, "obs", "ds", [])
    start = lake.event_log.horizon(fresh=True)
    files: list[Any] = []
    follower = follow_files(client, "obs:ds", after=start, timeout=10.0)

    client.upload(write_files(tmp_path, "direct.dat"), rse="ALPHA_DISK", scope="obs", dataset="ds")
    put_files(lake, "ALPHA_DISK", "obs", ["attached-later.dat"])
    client.attach("obs:ds", ["obs:attached-later.dat"])
    files.extend([next(follower), next(follower)])
    # a second copy of a file already followed is not a new file
    add_rule(lake, "obs", "ds", "BETA_DISK")
    settle(lake)
    client.upload(write_files(tmp_path, "last.dat"), rse="BETA_DISK", scope="obs", dataset="ds")
    files.append(next(follower))

    assert [(f.name, f.rse) for f in files] == [
        ("direct.dat", "ALPHA_DISK"),
        ("attached-later.dat", "ALPHA_DISK"),
        ("last.dat", "BETA_DISK"),
    ]
    assert files[0].adler32
    assert files[0].bytes == len(b"direct.dat" * 100)
    assert files[0].pfn.endswith("direct.dat")


def test_a_waiting_watcher_is_woken_by_a_commit(client: Client, server: RunningServer) -> None:
    make_dataset(server.lake, "obs", "ds", [])
    after = server.lake.event_log.horizon(fresh=True)
    got: list[Event] = []

    def follow() -> None:
        for event in client.watch("obs:ds", types=["did.closed"], after=after, timeout=20.0):
            got.append(event)
            return

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)  # the watcher is connected and waiting
    client.close_dataset("obs:ds")
    thread.join(timeout=30)
    assert [e.type for e in got] == ["did.closed"]


# -- the outbox horizon ------------------------------------------------------------------------


def _emit(conn: Any, name: str) -> None:
    core_events.emit(conn, "did.closed", {"did_type": "dataset"}, scope="obs", name=name)


POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""Concurrent writers committing out of order, LISTEN/NOTIFY: PostgreSQL's matters."""


@pytest.fixture
def postgres_lake(lake: Lake) -> Lake:
    return lake


@POSTGRES_ONLY
def test_an_event_committed_late_is_not_skipped(postgres_lake: Lake) -> None:
    """Transaction A takes id n and is still open when B takes n+1 and commits: readers must
    not pass n+1 before A ends, or they would never see A's event."""
    lake = postgres_lake
    log = EventLog(lake.engine)
    try:
        start = log.horizon(fresh=True)
        with lake.engine.connect() as slow:
            slow_tx = slow.begin()
            _emit(slow, "first")
            flush_outbox(slow)  # what a commit does first: the event has its id
            with lake.write() as fast:
                _emit(fast, "second")
            log.refresh()
            assert log.horizon(fresh=True) == start
            assert log.read(start) == []
            slow_tx.commit()
        log.refresh()
        assert [e.name for e in log.read(start)] == ["first", "second"]
    finally:
        log.close()


@POSTGRES_ONLY
def test_a_rolled_back_event_leaves_a_hole_that_closes(postgres_lake: Lake) -> None:
    lake = postgres_lake
    log = EventLog(lake.engine)
    try:
        start = log.horizon(fresh=True)
        with lake.engine.connect() as doomed:
            doomed_tx = doomed.begin()
            _emit(doomed, "never")
            flush_outbox(doomed)
            with lake.write() as conn:
                _emit(conn, "kept")
            doomed_tx.rollback()
        assert log.wait(start, 5.0)
        assert [e.name for e in log.read(start)] == ["kept"]
    finally:
        log.close()


@POSTGRES_ONLY
def test_another_process_wakes_a_waiting_reader_through_notify(postgres_lake: Lake) -> None:
    """Two engines stand for two processes: the reader's wait ends well before its own idle
    look (2 s), so the writer's NOTIFY reached it."""
    lake = postgres_lake
    other = Lake(lake.settings)
    log = EventLog(lake.engine)
    try:
        start = log.horizon(fresh=True)
        log.wait(start, 0.2)  # the listener is up
        threading.Timer(0.2, lambda: _write_one(other)).start()
        assert log.wait(start, 1.5)
        assert [e.name for e in log.read(start)] == ["elsewhere"]
    finally:
        log.close()
        other.close()


def _write_one(lake: Lake) -> None:
    with lake.write() as conn:
        _emit(conn, "elsewhere")


def test_password_is_not_needed_for_a_token_client(server: RunningServer) -> None:
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        token = root.session.token
    with Client(server.url, token=token) as by_token:
        assert list(by_token.watch(timeout=0.3)) == []
