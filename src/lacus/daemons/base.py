"""A daemon: one pass of work, repeated; idle passes wait for a wake-up or a short sleep.

Every thread records a heartbeat (daemon, host, pid, thread, items processed) so operators see
who is alive; the work itself is shared through claims, not through the heartbeats.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, update

from lacus.core.clock import utcnow
from lacus.db.tables import heartbeats
from lacus.service.lake import Lake
from lacus.service.metrics import DAEMON_FAILURES, DAEMON_ITEMS, DAEMON_PASS_SECONDS

log = logging.getLogger("lacus.daemons")
HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Daemon:
    name: str
    work: Callable[[Lake, str], int]
    """One pass: process what is there (up to a batch), return how many items."""
    doc: str = ""
    pending: Callable[[Connection], bool] | None = None
    """A cheap read-only look for work: an idle daemon then opens no write transaction (on
    SQLite a write transaction takes the lake's single write lock)."""
    loop: Callable[[Lake, threading.Event], None] | None = None
    """For a daemon that runs its own threads (the event sender, one per destination): run
    until the event is set, instead of passes. ``work`` is then what ``--once`` runs."""

    def run(self, lake: Lake, worker: str) -> int:
        """One pass, skipped when ``pending`` sees nothing to do."""
        if self.pending is not None:
            with lake.read() as conn:
                if not self.pending(conn):
                    return 0
        return self.work(lake, worker)


def worker_id(daemon: str, thread: str) -> str:
    return f"{daemon}@{socket.gethostname()}:{os.getpid()}:{thread}"


class DaemonRunner:
    """Runs daemons in threads until stopped."""

    def __init__(self, lake: Lake, daemons: list[Daemon], *, threads: int = 1) -> None:
        self.lake = lake
        self.daemons = daemons
        self.threads = threads
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for daemon in self.daemons:
            if daemon.loop is not None:
                thread = threading.Thread(
                    target=daemon.loop,
                    args=(self.lake, self.stopping),
                    name=f"lacus-{daemon.name}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
                continue
            for index in range(self.threads):
                thread = threading.Thread(
                    target=self._loop,
                    args=(daemon, f"t{index}"),
                    name=f"lacus-{daemon.name}-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for daemon in self.daemons:
            self.lake.wake(daemon.name)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.stopping.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _loop(self, daemon: Daemon, thread: str) -> None:
        worker = worker_id(daemon.name, thread)
        wakeup = self.lake.wakeup(daemon.name)
        processed = 0
        started = utcnow()
        last_beat = 0.0
        idle = self.lake.settings.daemon_sleep_seconds
        while not self.stopping.is_set():
            wakeup.clear()
            started_pass = time.perf_counter()
            try:
                with self.lake.daemon_pass() as allowed:
                    done = daemon.run(self.lake, worker) if allowed else 0
            except Exception:  # a daemon survives a bad pass: log it, pause, go on
                log.exception("%s: pass failed", worker)
                DAEMON_FAILURES.labels(daemon.name).inc()
                done = 0
                self.stopping.wait(idle)
            else:
                DAEMON_PASS_SECONDS.labels(daemon.name).observe(time.perf_counter() - started_pass)
                DAEMON_ITEMS.labels(daemon.name).inc(done)
            processed += done
            now = time.monotonic()
            if now - last_beat > HEARTBEAT_SECONDS:
                last_beat = now
                beat(self.lake, daemon.name, thread, started=started, processed=processed)
            if done == 0:
                wakeup.wait(idle)
        forget(self.lake, daemon.name, thread)


def run_once(lake: Lake, daemon: Daemon, *, thread: str = "once") -> int:
    """Run passes until one finds nothing to do; return the items processed."""
    worker = worker_id(daemon.name, thread)
    total = 0
    while True:
        done = daemon.run(lake, worker)
        total += done
        if done == 0:
            return total


def beat(lake: Lake, daemon: str, thread: str, *, started: object, processed: int) -> None:
    key = {
        "daemon": daemon,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "thread": thread,
    }
    now = utcnow()
    try:
        with lake.write() as conn:
            changed = conn.execute(
                update(heartbeats)
                .where(*(heartbeats.c[k] == v for k, v in key.items()))
                .values(updated_at=now, processed=processed)
            ).rowcount
            if not changed:
                conn.execute(
                    heartbeats.insert().values(
                        **key, started_at=started, updated_at=now, processed=processed
                    )
                )
    except Exception:  # a missed heartbeat is not worth stopping for
        log.exception("heartbeat of %s failed", daemon)


def forget(lake: Lake, daemon: str, thread: str) -> None:
    try:
        with lake.write() as conn:
            conn.execute(
                delete(heartbeats).where(
                    heartbeats.c.daemon == daemon,
                    heartbeats.c.hostname == socket.gethostname(),
                    heartbeats.c.pid == os.getpid(),
                    heartbeats.c.thread == thread,
                )
            )
    except Exception:
        log.exception("removing the heartbeat of %s failed", daemon)
