"""Event sender throughput: events/s delivered to RabbitMQ (STOMP) and NATS JetStream, against
the same library publishing the same messages with no catalog.

    .venv/bin/python benchmarks/event_sender.py [--events 20000] [--batch 500] [--repeat 3]
        [--backend sqlite|postgresql|both] [--kind stomp|nats|both]

The catalog (a fresh lake per backend) holds ``--events`` events shaped like
``replica.available`` (~350-byte messages). Contenders, each in its own child process, run in
alternation ``--repeat`` times:

* ``sender`` — ``DestinationSender.deliver`` in a loop until its cursor reaches the newest event:
  the daemon's real path (read a batch past the cursor from the catalog, publish it, wait for every
  acknowledgement, move the cursor in a write transaction), a fresh destination each run;
* ``raw`` — the same library, connection setup excluded, publishing the same number of messages
  (same bodies and headers, built in memory) in batches of ``--batch`` and waiting for the same
  acknowledgements: stomp.py SENDs with a ``receipt`` header each, then every RECEIPT; nats-py
  ``publish_async`` then every PubAck. No catalog.

STOMP messages go to a durable queue (``/queue/...``, ``persistent: true``: RabbitMQ confirms once
stored), JetStream messages to a file-storage stream; both deleted afterwards (rabbitmqctl,
stream delete). Connection set-up is outside the timing of both. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from _util import child_answer, machine_note, postgres_reachable, python_child, run_child

STOMP = ("127.0.0.1", 61613)
NATS_URL = "nats://127.0.0.1:4222"


def sample_events(count: int, first_id: int = 1) -> list[Any]:
    from lacus.core.events import Event

    now = datetime(2026, 11, 22, 8, 0, 0)
    return [
        Event(
            id=first_id + index,
            type="replica.available",
            scope="obs",
            name=f"chunk-{index:08d}.h5",
            payload=payload(index),
            created_at=now,
        )
        for index in range(count)
    ]


def payload(index: int) -> dict[str, Any]:
    return {
        "scope": "obs",
        "name": f"chunk-{index:08d}.h5",
        "rse": "ALPHA_DISK",
        "bytes": 65_536,
        "adler32": "0a1b2c3d",
        "md5": "9e107d9d372bb6826bd81d3542a419d6",
        "pfn": f"file:///srv/lake/rses/ALPHA_DISK/obs/ab/cd/chunk-{index:08d}.h5",
        "meta": {},
        "created_at": "2026-11-22T08:00:00.000000Z",
    }


# -- children ------------------------------------------------------------------------------------


def child_raw(kind: str, target: str, count: int, batch: int) -> None:
    from lacus.core.delivery import body, nats_headers, stomp_headers

    events = sample_events(count)
    if kind == "stomp":
        import stomp

        pending: set[str] = set()
        changed = threading.Condition()

        class Listener(stomp.ConnectionListener):  # type: ignore[misc]
            def on_receipt(self, frame: Any) -> None:
                with changed:
                    pending.discard(frame.headers["receipt-id"])
                    if not pending:
                        changed.notify_all()

        connection = stomp.Connection12([STOMP], vhost="/")
        connection.set_listener("bench", Listener())
        connection.connect("guest", "guest", wait=True)
        start = time.perf_counter()
        for first in range(0, count, batch):
            part = events[first : first + batch]
            with changed:
                pending.update(str(event.id) for event in part)
            for event in part:
                connection.send(
                    target, body(event), headers={**stomp_headers(event), "receipt": str(event.id)}
                )
            with changed:
                changed.wait_for(lambda: not pending, timeout=60)
        seconds = time.perf_counter() - start
        connection.disconnect()
    else:
        import nats

        origin = uuid.uuid4().hex  # message ids as the sender's: the stream checks them too

        async def publish() -> float:
            client = await nats.connect(NATS_URL)
            js = client.jetstream()
            await js.stream_info(target)
            start = time.perf_counter()
            for first in range(0, count, batch):
                acks = [
                    await js.publish_async(
                        f"{target}.events",
                        body(event),
                        headers=nats_headers(event, origin),
                        stream=target,
                    )
                    for event in events[first : first + batch]
                ]
                await asyncio.gather(*acks)
            elapsed = time.perf_counter() - start
            await client.close()
            return elapsed

        seconds = asyncio.run(publish())
    child_answer(seconds, events=count)


def child_sender(kind: str, target: str, lake_dir: str, batch: int) -> None:
    from lacus.core import delivery
    from lacus.daemons.sender import DestinationSender
    from lacus.service import Lake, load_settings
    from lacus.service.settings import NatsDestination, StompDestination

    lake = Lake(load_settings(lake_dir))
    config: StompDestination | NatsDestination
    name = f"bench-{secrets.token_hex(4)}"
    if kind == "stomp":
        config = StompDestination(
            name=name, kind="stomp", destination=target, username="guest", password="guest",
            batch_size=batch,
        )  # fmt: skip
    else:
        config = NatsDestination(
            name=name, kind="nats", subject=f"{target}.events", stream=target, batch_size=batch
        )
    with lake.write() as conn:
        delivery.ensure_cursor(conn, name, start_after=0)
    newest = lake.event_log.horizon()
    sender = DestinationSender(lake, config, worker=f"bench:{name}")
    sender.claim()
    sender.publisher.publish(sample_events(1, first_id=0))  # connect (not timed), as raw does
    start = time.perf_counter()
    sent = 0
    while sender.position is None or sender.position < newest:
        sent += sender.deliver()
    seconds = time.perf_counter() - start
    sender.release()
    lake.close()
    child_answer(seconds, events=sent)


# -- the parent ----------------------------------------------------------------------------------


def make_lake(directory: Path, database_url: str | None, count: int) -> None:
    from lacus.core import events
    from lacus.service import Lake, load_settings
    from lacus.service.lake import init_lake

    init_lake(directory, root_password="bench-password", database_url=database_url)
    lake = Lake(load_settings(directory))
    try:
        for first in range(0, count, 5000):
            with lake.write() as conn:
                events.emit_many(
                    conn,
                    [
                        ("replica.available", "obs", f"chunk-{i:08d}.h5", payload(i))
                        for i in range(first, min(count, first + 5000))
                    ],
                )
    finally:
        lake.close()


def new_target(kind: str) -> str:
    token = secrets.token_hex(4)
    if kind == "stomp":
        return f"/queue/lacus-bench-{token}"
    name = f"LACUS_BENCH_{token}"

    async def create() -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig

        client = await nats.connect(NATS_URL)
        await client.jetstream().add_stream(
            StreamConfig(name=name, subjects=[f"{name}.events"], storage=StorageType.FILE)
        )
        await client.close()

    asyncio.run(create())
    return name


def drop_target(kind: str, target: str) -> None:
    if kind == "stomp":
        queue = target.removeprefix("/queue/")
        subprocess.run(["rabbitmqctl", "delete_queue", queue], capture_output=True, check=False)
        return

    async def drop() -> None:
        import nats

        client = await nats.connect(NATS_URL)
        await client.jetstream().delete_stream(target)
        await client.close()

    asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--kind", choices=["stomp", "nats", "both"], default="both")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, kind, target, *rest = args.child
        if role == "raw":
            child_raw(kind, target, int(rest[0]), args.batch)
        else:
            child_sender(kind, target, rest[0], args.batch)
        return

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and (why := postgres_reachable()):
        print(f"PostgreSQL skipped: {why}")
        backends.remove("postgresql")
    kinds = ["stomp", "nats"] if args.kind == "both" else [args.kind]
    print(machine_note())
    results: list[dict[str, Any]] = []
    script = str(Path(__file__).resolve())
    for backend in backends:
        from _util import throwaway_postgres

        with tempfile.TemporaryDirectory() as scratch:
            lake_dir = Path(scratch) / "lake"
            if backend == "postgresql":
                postgres = throwaway_postgres()
                url: str | None = postgres.__enter__()
            else:
                postgres, url = None, None
            try:
                make_lake(lake_dir, url, args.events)
                for kind in kinds:
                    figures: dict[str, list[float]] = {"raw": [], "sender": []}
                    for _ in range(args.repeat):
                        for role in ("raw", "sender") if _ % 2 == 0 else ("sender", "raw"):
                            target = new_target(kind)
                            try:
                                extra = [str(args.events)] if role == "raw" else [str(lake_dir)]
                                run = run_child(
                                    python_child(
                                        script,
                                        "--batch",
                                        str(args.batch),
                                        "--child",
                                        role,
                                        kind,
                                        target,
                                        *extra,
                                    )
                                )
                            finally:
                                drop_target(kind, target)
                            sent = int(run.answer["events"])  # type: ignore[call-overload]
                            assert sent == args.events, f"{role} sent {sent}"
                            figures[role].append(sent / run.seconds)
                    raw = statistics.median(figures["raw"])
                    sender = statistics.median(figures["sender"])
                    line = {
                        "backend": backend,
                        "kind": kind,
                        "events": args.events,
                        "batch": args.batch,
                        "sender_per_s": round(sender),
                        "raw_per_s": round(raw),
                        "ratio": round(sender / raw, 2),
                        "runs": {k: [round(v) for v in vs] for k, vs in figures.items()},
                    }
                    results.append(line)
                    print(
                        f"{backend:10} {kind:5}  sender {sender:8.0f} events/s   "
                        f"raw {raw:8.0f} events/s   ratio {sender / raw:.2f}",
                        flush=True,
                    )
            finally:
                if postgres is not None:
                    postgres.__exit__(None, None, None)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    sys.exit(main())
