"""The event sender against the real brokers of this machine: RabbitMQ's STOMP plugin
(127.0.0.1:61613, guest/guest) and NATS JetStream (127.0.0.1:4222), both started by
scripts/services.sh.

* events of real lake operations (upload, rule) arrive at a STOMP subscriber and a JetStream
  consumer in id order, in the documented envelope, each destination with its own type filter;
* a sender killed (SIGKILL) after the broker acknowledged a batch but before its cursor moved
  sends that batch again when restarted: delivered at least once, never lost;
* a destination whose broker is down backs off and records its error while the other keeps
  receiving; its backlog is delivered once the broker is reachable again;
* retention deletes old events every destination has, keeps a destination's backlog (up to the
  hard cap) and always the newest event; invalid destinations are refused with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
import stomp
from nats.js.errors import NotFoundError
from sqlalchemy import func, select, update

from lacus.client import Client
from lacus.core import delivery
from lacus.core import events as core_events
from lacus.core.clock import utcnow
from lacus.daemons import DAEMONS
from lacus.daemons.base import run_once
from lacus.daemons.sender import EventSender
from lacus.db.tables import event_cursors, events
from lacus.errors import InvalidInput
from lacus.service import Lake
from lacus.service.settings import (
    NatsDestination,
    Settings,
    StompDestination,
    load_settings,
    write_settings,
)
from tests.conftest import CLIResult, RunningServer, require_component, wait_until

STOMP_PORT = 61613
NATS_URL = "nats://127.0.0.1:4222"


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@pytest.fixture
def rabbitmq() -> None:
    if not _listening(STOMP_PORT):
        require_component("RabbitMQ STOMP", f"nothing listens on 127.0.0.1:{STOMP_PORT}")


@pytest.fixture
def jetstream() -> None:
    if not _listening(4222):
        require_component("NATS JetStream", "nothing listens on 127.0.0.1:4222")


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


# -- a STOMP subscriber and a JetStream consumer -------------------------------------------------


class StompSubscriber(stomp.ConnectionListener):  # type: ignore[misc]
    """A real subscriber of ``destination`` on RabbitMQ, keeping every message it receives."""

    def __init__(self, destination: str) -> None:
        self.messages: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.connection = stomp.Connection12([("127.0.0.1", STOMP_PORT)], vhost="/")
        self.connection.set_listener("test", self)
        self.connection.connect("guest", "guest", wait=True)
        self.connection.subscribe(destination, id="1", ack="auto", headers={"receipt": "sub"})
        assert self._subscribed.wait(10), "RabbitMQ did not confirm the subscription"

    def on_receipt(self, frame: Any) -> None:
        self._subscribed.set()

    def on_message(self, frame: Any) -> None:
        with self._lock:
            self.messages.append((dict(frame.headers), orjson.loads(frame.body)))

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for _headers, body in self.messages]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        return wait_until(lambda: len(self.bodies()) >= count and self.bodies(), timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.disconnect()


def stream_bodies(stream: str, subject: str, *, count: int, timeout: float = 20.0) -> list[Any]:
    """Every message of ``stream`` as a new JetStream consumer receives it (waits until there
    are ``count``): (headers, body) in stream order."""

    async def consume() -> list[Any]:
        client = await nats.connect(NATS_URL)
        try:
            js = client.jetstream()
            deadline = time.monotonic() + timeout
            while True:  # the sender creates the stream with its first publication
                try:
                    subscription = await js.pull_subscribe(subject, stream=stream)
                    break
                except NotFoundError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            found: list[Any] = []
            while len(found) < count and time.monotonic() < deadline:
                with contextlib.suppress(nats.errors.TimeoutError):
                    for message in await subscription.fetch(count - len(found), timeout=1):
                        found.append((dict(message.headers or {}), orjson.loads(message.data)))
                        await message.ack()
            return found
        finally:
            await client.close()

    return asyncio.run(consume())


def stream_messages(stream: str) -> int:
    """How many messages ``stream`` holds."""

    async def count() -> int:
        client = await nats.connect(NATS_URL)
        try:
            info = await client.jetstream().stream_info(stream)
            return int(info.state.messages)
        finally:
            await client.close()

    return asyncio.run(count())


def delete_stream(stream: str) -> None:
    async def drop() -> None:
        client = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(NotFoundError):
                await client.jetstream().delete_stream(stream)
        finally:
            await client.close()

    asyncio.run(drop())


@pytest.fixture
def stream_name(jetstream: None) -> Iterator[str]:
    name = unique("LACUS_TEST_")
    yield name
    delete_stream(name)


def cursor(lake: Lake, name: str) -> delivery.Cursor | None:
    with lake.read() as conn:
        return delivery.cursors(conn, [name]).get(name)


def catalog_events(lake: Lake, after: int) -> list[core_events.Event]:
    with lake.read() as conn:
        return core_events.read(conn, after=after, upto=2**62, limit=100_000)


def expected_body(event: core_events.Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "event_type": event.type,
        "created_at": event.payload["created_at"],
        "payload": event.payload,
    }


def upload_and_replicate(client: Client, tmp_path: Path, scope: str) -> None:
    """Real lake operations: an upload into a dataset, then a rule replicating it."""
    client.add_scope(scope)
    files = []
    for name in ("a.dat", "b.dat"):
        path = tmp_path / name
        path.write_bytes(name.encode() * 1000)
        files.append(path)
    client.upload(files, rse="ALPHA_DISK", scope=scope, dataset="run1")
    (rule_id,) = client.add_rule(f"{scope}:run1", "BETA_DISK")
    client.wait_for_rule(rule_id, "ok", timeout=60)


# -- delivery ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("rabbitmq")
def test_events_of_an_upload_and_a_rule_reach_stomp_and_jetstream_in_order(
    client: Client, lake: Lake, tmp_path: Path, stream_name: str
) -> None:
    topic = f"/topic/{unique('lacus.test.')}"
    subject = unique("lacus.test.")
    rule_topic = f"/topic/{unique('lacus.rules.')}"
    everything = StompSubscriber(topic)
    rules_only = StompSubscriber(rule_topic)
    destinations = [
        StompDestination(
            name="rabbit", kind="stomp", destination=topic, username="guest", password="guest"
        ),
        NatsDestination(name="nats", kind="nats", subject=subject, stream=stream_name),
        StompDestination(
            name="rules",
            kind="stomp",
            destination=rule_topic,
            types=["rule.*"],
            username="guest",
            password="guest",
        ),
    ]
    sender = EventSender(lake, destinations)
    sender.start()
    try:
        start = wait_until(lambda: cursor(lake, "rabbit"))
        wait_until(lambda: cursor(lake, "nats") and cursor(lake, "rules"))
        upload_and_replicate(client, tmp_path, "obs")
        expected = catalog_events(lake, start.last_id)
        assert {"did.created", "replica.available", "did.attached", "rule.created", "rule.ok"} <= {
            e.type for e in expected
        }

        received = everything.wait_for(len(expected))
        stored = stream_bodies(stream_name, subject, count=len(expected))
        rule_events = [e for e in expected if e.type.startswith("rule.")]
        filtered = rules_only.wait_for(len(rule_events))
        wait_until(lambda: cursor(lake, "nats").delivered >= len(expected))  # type: ignore[union-attr]
    finally:
        sender.stop()
        everything.close()
        rules_only.close()

    # (the daemons may have written more events since: the expected ones come first)
    assert received[: len(expected)] == [expected_body(e) for e in expected]
    assert [body for _headers, body in stored] == [expected_body(e) for e in expected]
    assert filtered[: len(rule_events)] == [expected_body(e) for e in rule_events]
    headers = dict(everything.messages[0][0])
    assert headers["event_type"] == expected[0].type
    assert headers["persistent"] == "true"
    assert headers["event_id"] == str(expected[0].id)
    assert stored[0][0]["Lacus-Event-Id"] == str(expected[0].id)
    with lake.read() as conn:
        assert stored[0][0]["Nats-Msg-Id"] == f"{delivery.origin(conn)}-{expected[0].id}"
    for name, count in (("rabbit", len(expected)), ("nats", len(expected))):
        state = cursor(lake, name)
        assert state is not None
        assert state.last_id >= expected[-1].id
        assert state.delivered >= count
        assert state.failures == 0
        assert state.last_error is None
    rules_state = cursor(lake, "rules")
    assert rules_state is not None
    assert rules_state.delivered >= len(rule_events)


CRASHING_SENDER = """
import os, signal, sys
from lacus.daemons.sender import EventSender
from lacus.service import Lake, load_settings

lake = Lake(load_settings(sys.argv[1]))

def crash(destination, batch):
    print(f"acknowledged {batch[0].id}-{batch[-1].id}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

EventSender(lake, on_published=crash).start()
signal.pause()
"""


def lake_with(lake: Lake, lake_dir: Path, **changes: Any) -> Settings:
    """A lake directory of its own (its lake.json) over the test's catalog."""
    settings = lake.settings.model_copy(update={"lake_dir": lake_dir, **changes})
    lake_dir.mkdir(parents=True, exist_ok=True)
    write_settings(settings)
    return settings


@pytest.mark.parametrize("kind", ["stomp", "nats"])
def test_a_sender_killed_before_its_cursor_moves_sends_the_batch_again(
    kind: str, lake: Lake, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "stomp":
        request.getfixturevalue("rabbitmq")
        topic = f"/topic/{unique('lacus.crash.')}"
        subscriber = StompSubscriber(topic)
        request.addfinalizer(subscriber.close)
        destination: StompDestination | NatsDestination = StompDestination(
            name="crash", kind="stomp", destination=topic, username="guest", password="guest",
            batch_size=5,
        )  # fmt: skip
    else:
        stream = request.getfixturevalue("stream_name")
        subject = unique("lacus.crash.")
        destination = NatsDestination(
            name="crash", kind="nats", subject=subject, stream=stream, batch_size=5
        )

    def received(count: int) -> list[dict[str, Any]]:
        if kind == "stomp":
            return subscriber.wait_for(count)
        return [body for _h, body in stream_bodies(stream, subject, count=count)]

    settings = lake_with(
        lake, tmp_path / "lake", event_destinations=[destination], claim_lease_seconds=1.0
    )
    sender_lake = Lake(settings)
    request.addfinalizer(sender_lake.close)
    run_once(sender_lake, DAEMONS["event-sender"])  # the cursor starts here
    start = cursor(lake, "crash")
    assert start is not None
    with lake.write() as conn:
        for index in range(12):
            core_events.emit(conn, "did.created", {"did_type": "file"}, scope="s", name=f"f{index}")
    produced = catalog_events(lake, start.last_id)

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_SENDER, str(settings.lake_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    first, last = (int(i) for i in crashed.stdout.split()[1].split("-"))
    assert (first, last) == (produced[0].id, produced[4].id)
    assert received(5)[:5] == [expected_body(e) for e in produced[:5]]
    after_crash = cursor(lake, "crash")
    assert after_crash is not None
    assert after_crash.last_id == start.last_id  # acknowledged, but the cursor never moved
    assert after_crash.claimed_by is not None  # the dead sender's claim, until its lease ends

    assert after_crash.lease_until is not None
    time.sleep(max(0.0, (after_crash.lease_until - utcnow()).total_seconds()) + 0.1)
    run_once(sender_lake, DAEMONS["event-sender"])

    if kind == "stomp":  # at least once: the first five again
        bodies = received(5 + len(produced))
        assert [body["id"] for body in bodies] == [e.id for e in produced[:5]] + [
            e.id for e in produced
        ]
        assert bodies[5:] == [expected_body(e) for e in produced]
    else:  # the stream dropped the five sent again, by their Nats-Msg-Id
        assert received(len(produced)) == [expected_body(e) for e in produced]
        assert stream_messages(stream) == len(produced)
    final = cursor(lake, "crash")
    assert final is not None
    assert final.last_id == produced[-1].id
    assert final.delivered == len(produced)


class TcpProxy:
    """Forwards connections from a loopback port to ``target``; ``stop`` cuts everything."""

    def __init__(self, port: int, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.usefixtures("rabbitmq", "server")  # the server fixture: daemons not paused
def test_a_broker_down_holds_back_only_its_own_destination(
    lake: Lake, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake.settings, "event_retry_max_seconds", 0.5)
    monkeypatch.setattr(lake.settings, "event_send_timeout_seconds", 2.0)
    topic = f"/topic/{unique('lacus.down.')}"
    subject = unique("lacus.down.")
    subscriber = StompSubscriber(topic)
    port = free_port()  # nothing listens there until the proxy to RabbitMQ starts
    destinations = [
        StompDestination(
            name="rabbit",
            kind="stomp",
            port=port,
            destination=topic,
            username="guest",
            password="guest",
        ),
        NatsDestination(name="nats", kind="nats", subject=subject, stream=stream_name),
    ]
    sender = EventSender(lake, destinations)
    sender.start()
    proxy = None
    try:
        wait_until(lambda: cursor(lake, "rabbit") and cursor(lake, "nats"))
        start = cursor(lake, "rabbit")
        assert start is not None
        for batch in range(3):
            with lake.write() as conn:
                core_events.emit_many(
                    conn,
                    [("did.created", "s", f"f{batch}-{i}", {"did_type": "file"}) for i in range(4)],
                )
        produced = catalog_events(lake, start.last_id)

        stored = stream_bodies(stream_name, subject, count=len(produced))
        assert [body for _h, body in stored] == [expected_body(e) for e in produced]
        failing = wait_until(lambda: (c := cursor(lake, "rabbit")) and c.failures >= 2 and c)
        assert failing.last_id == start.last_id
        assert failing.delivered == 0
        assert f"127.0.0.1:{port}" in (failing.last_error or "")
        assert failing.last_error_at is not None
        assert subscriber.bodies() == []

        proxy = TcpProxy(port, STOMP_PORT)  # the broker is back
        received = subscriber.wait_for(len(produced))
        assert received == [expected_body(e) for e in produced]
        recovered = wait_until(lambda: (c := cursor(lake, "rabbit")) and c.failures == 0 and c)
        assert recovered.last_id >= produced[-1].id
        assert recovered.delivered == len(produced)
    finally:
        sender.stop()
        subscriber.close()
        if proxy is not None:
            proxy.stop()


# -- retention -----------------------------------------------------------------------------------


def age(lake: Lake, ids: list[int], hours: float) -> None:
    with lake.write() as conn:
        conn.execute(
            update(events)
            .where(events.c.id.in_(ids))
            .values(created_at=utcnow() - timedelta(hours=hours))
        )


def remaining(lake: Lake) -> list[int]:
    with lake.read() as conn:
        return list(conn.execute(select(events.c.id).order_by(events.c.id)).scalars())


def test_retention_keeps_what_a_destination_still_waits_for_and_the_newest_event(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = NatsDestination(name="slow", kind="nats", subject="never.used")
    monkeypatch.setattr(lake.settings, "event_destinations", [waiting])
    monkeypatch.setattr(lake.settings, "event_retention_hours", 24.0)
    monkeypatch.setattr(lake.settings, "event_backlog_max_hours", 240.0)
    with lake.write() as conn:
        core_events.emit_many(
            conn, [("did.created", "s", f"f{i}", {"did_type": "file"}) for i in range(10)]
        )
    ids = remaining(lake)
    assert len(ids) == 10
    with lake.write() as conn:
        delivery.ensure_cursor(conn, "slow", start_after=ids[3])  # has had 4 events
    age(lake, ids[:6], hours=48)  # past retention
    age(lake, ids[:2], hours=500)  # past the hard cap too

    assert run_once(lake, DAEMONS["event-pruner"]) == 4
    assert remaining(lake) == ids[4:]  # 5 and 6 are old but not yet delivered

    with lake.write() as conn:  # the destination catches up
        conn.execute(update(event_cursors).values(last_id=ids[-1]))
    age(lake, ids, hours=48)
    assert run_once(lake, DAEMONS["event-pruner"]) == 5
    assert remaining(lake) == ids[-1:]  # the newest stays, however old

    with lake.write() as conn:  # so ids are never handed out twice (SQLite: max(id) + 1)
        core_events.emit(conn, "did.created", {"did_type": "file"}, scope="s", name="next")
    assert remaining(lake)[-1] > ids[-1]


def test_retention_deletes_in_batches(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lacus.daemons.retention.BATCH", 300)
    with lake.write() as conn:
        core_events.emit_many(
            conn, [("did.created", "s", f"f{i}", {"did_type": "file"}) for i in range(1000)]
        )
    ids = remaining(lake)
    age(lake, ids, hours=lake.settings.event_retention_hours + 1)
    passes = []
    while done := DAEMONS["event-pruner"].run(lake, "test"):
        passes.append(done)
    assert passes == [300, 300, 300, 99]
    with lake.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1


# -- configuration and the CLI -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ({"name": "a", "kind": "kafka"}, "event_destinations.0"),
        (
            {"name": "a", "kind": "stomp", "destination": "/topic/x", "port": 0},
            "event_destinations.0.stomp.port: Input should be greater than or equal to 1",
        ),
        (
            {"name": "a", "kind": "nats", "subject": "x", "types": ["rule.nope"]},
            "unknown event type(s) rule.nope",
        ),
        ({"name": "a", "kind": "nats"}, "event_destinations.0.nats.subject: Field required"),
        (
            {"name": "a", "kind": "stomp", "destination": "/topic/x", "passwd": "x"},
            "event_destinations.0.stomp.passwd: Extra inputs are not permitted",
        ),
    ],
)
def test_an_invalid_destination_is_refused_in_one_line(
    tmp_path: Path, destination: dict[str, Any], message: str
) -> None:
    config = {"database_url": "sqlite://", "event_destinations": [destination]}
    (tmp_path / "lake.json").write_bytes(orjson.dumps(config))
    with pytest.raises(InvalidInput) as error:
        load_settings(tmp_path)
    assert message in error.value.message
    assert "\n" not in error.value.message


def test_destination_names_are_unique(tmp_path: Path) -> None:
    twice = {"name": "a", "kind": "nats", "subject": "x"}
    config = {"database_url": "sqlite://", "event_destinations": [twice, twice]}
    (tmp_path / "lake.json").write_bytes(orjson.dumps(config))
    with pytest.raises(InvalidInput, match="names must be unique: a"):
        load_settings(tmp_path)


def test_cli_lists_each_destination_with_its_backlog_and_last_error(
    lake: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lacus.cli.main import main

    monkeypatch.setenv("COLUMNS", "300")

    down = StompDestination(name="down", kind="stomp", port=free_port(), destination="/topic/x")
    fresh = NatsDestination(name="fresh", kind="nats", subject="x", types=["rule.*"])
    settings = lake_with(lake, tmp_path / "lake", event_destinations=[down, fresh])
    with lake.write() as conn:
        delivery.ensure_cursor(conn, "down", start_after=core_events.last_id(conn))
        core_events.emit_many(
            conn, [("did.created", "s", f"f{i}", {"did_type": "file"}) for i in range(3)]
        )
    sender_lake = Lake(settings)
    try:
        run_once(sender_lake, DAEMONS["event-sender"])  # fails on "down"
    finally:
        sender_lake.close()

    def run(*args: str) -> CLIResult:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return CLIResult(code, out.out, out.err)

    listed = run("events", "destinations", "--lake", str(settings.lake_dir), "--json")
    assert listed.exit_code == 0, listed.stderr
    by_name = {item["name"]: item for item in orjson.loads(listed.stdout)}
    assert by_name["down"]["backlog"] == 3
    assert by_name["down"]["delivered"] == 0
    assert by_name["down"]["failures"] == 1
    assert "cannot connect to STOMP broker" in by_name["down"]["last_error"]
    assert by_name["fresh"]["backlog"] == 0  # only rule events, none yet
    assert by_name["fresh"]["types"] == ["rule.*"]

    shown = run("events", "destinations", "--lake", str(settings.lake_dir))
    assert shown.exit_code == 0
    assert "down" in shown.stdout
    assert "cannot connect" in shown.stdout

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "lake.json").write_bytes(
        orjson.dumps({"database_url": "sqlite://", "event_destinations": [{"kind": "stomp"}]})
    )
    refused = run("events", "destinations", "--lake", str(tmp_path / "bad"))
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: ")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_sender_daemon_runs_nothing_without_destinations(lake: Lake) -> None:
    stopping = threading.Event()
    loop = DAEMONS["event-sender"].loop
    assert loop is not None
    thread = threading.Thread(target=loop, args=(lake, stopping), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert cursor(lake, "anything") is None


def test_rest_lists_destinations_to_admins_only(
    client: Client, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = NatsDestination(name="pipeline", kind="nats", subject="lake.events")
    monkeypatch.setattr(server.lake.settings, "event_destinations", [destination])
    with server.lake.write() as conn:
        delivery.ensure_cursor(conn, "pipeline", start_after=core_events.last_id(conn))
        core_events.emit(conn, "did.created", {"did_type": "file"}, scope="s", name="f")

    answer = httpx.get(
        f"{server.url}/events/destinations", headers={"X-Rucio-Auth-Token": client.token()}
    )
    assert answer.status_code == 200
    (listed,) = answer.json()
    assert listed["name"] == "pipeline"
    assert listed["target"] == "nats://127.0.0.1:4222 lake.events"
    assert listed["backlog"] == 1
    assert listed["failures"] == 0

    client.add_account("alice", password="a-password-long-enough")
    with Client(server.url, account="alice", password="a-password-long-enough") as alice:
        refused = httpx.get(
            f"{server.url}/events/destinations", headers={"X-Rucio-Auth-Token": alice.token()}
        )
    assert refused.status_code == 403
    assert refused.headers["ExceptionClass"] == "AccessDenied"


@pytest.mark.usefixtures("rabbitmq")
def test_the_daemon_killed_at_any_moment_loses_nothing(lake: Lake, tmp_path: Path) -> None:
    """``lacus daemon event-sender`` (the real command) killed with SIGKILL while it works through
    a backlog, then started again: every event arrives, first deliveries in id order."""
    topic = f"/topic/{unique('lacus.kill.')}"
    subscriber = StompSubscriber(topic)
    destination = StompDestination(
        name="kill",
        kind="stomp",
        destination=topic,
        username="guest",
        password="guest",
        batch_size=5,  # many batches: it is surely mid-way when killed
    )
    settings = lake_with(
        lake, tmp_path / "lake", event_destinations=[destination], claim_lease_seconds=1.0
    )
    sender_lake = Lake(settings)
    try:
        run_once(sender_lake, DAEMONS["event-sender"])  # the cursor starts here
    finally:
        sender_lake.close()
    start = cursor(lake, "kill")
    assert start is not None
    with lake.write() as conn:
        core_events.emit_many(
            conn, [("did.created", "s", f"f{i}", {"did_type": "file"}) for i in range(1000)]
        )
    produced = [e.id for e in catalog_events(lake, start.last_id)]
    command = [
        sys.executable, "-c", "from lacus.cli.main import run; run()",
        "daemon", "event-sender", "--lake", str(settings.lake_dir),
    ]  # fmt: skip

    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subscriber.wait_for(50)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        killed_at = len(subscriber.bodies())
        daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: {b["id"] for b in subscriber.bodies()} >= set(produced), timeout=60)
    finally:
        daemon.terminate()
        daemon.wait(10)
        subscriber.close()

    ids = [body["id"] for body in subscriber.bodies()]
    first_seen = list(dict.fromkeys(ids))
    assert first_seen == produced
    assert 50 <= killed_at < len(produced)  # it was killed mid-way
    assert len(ids) - len(produced) <= 5  # at most the batch in flight came twice
