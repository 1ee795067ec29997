"""The event log of one process: where readers wait for new events without polling the catalog.

One *pump* thread per process follows the outbox's horizon (``core.events.Horizon``) and wakes
every waiting reader, thread or asyncio task, when it moves. It is woken by commits: in this
process directly (``notify``, called once a transaction that wrote events commits), from other
processes through PostgreSQL's LISTEN/NOTIFY. SQLite has no notifications between processes:
there the pump also looks every ``SQLITE_POLL`` seconds (a ``max(id)``, microseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from lacus.core import events
from lacus.core.events import Event, Horizon

log = logging.getLogger("lacus.events")

SQLITE_POLL = 0.2
"""Seconds between two looks at an SQLite outbox (for events written by other processes)."""

IDLE_POLL = 2.0
"""Seconds between two looks on PostgreSQL when nothing was notified (a safety net)."""

HOLE_POLL = 0.005
"""Seconds between two looks while a hole in the ids holds readers back (see Horizon)."""

START_WINDOW = 100_000
"""On start, the ids read back below the newest one to find holes still open."""


class EventLog:
    """Follows the outbox of one catalog; ``read`` and ``wait`` are safe from any thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._horizon: Horizon | None = None
        self._advance_lock = threading.Lock()
        self._changed = threading.Condition()
        self._position = 0
        self._local = threading.Event()
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()
        self._listener: Any = None
        self._own: Connection | None = None

    # -- readers -------------------------------------------------------------------------------

    def horizon(self, *, fresh: bool = False) -> int:
        """Every event with an id up to this one is committed (or will never exist). As the
        pump last saw it, or (``fresh``) looked up now: then it includes every event committed
        before the call."""
        self._start()
        if fresh or self._horizon is None:
            return self.refresh()
        return self._position

    def read(
        self,
        after: int,
        *,
        upto: int | None = None,
        limit: int = 1000,
        where: ColumnElement[bool] | None = None,
    ) -> list[Event]:
        """Events with ``after < id <= horizon`` (or ``upto``, if lower), in id order,
        filtered by ``where``."""
        horizon = self.horizon()
        upto = horizon if upto is None else min(upto, horizon)
        if upto <= after:
            return []
        with self._engine.connect() as conn:
            return events.read(conn, after=after, upto=upto, limit=limit, where=where)

    def wait(self, after: int, timeout: float) -> bool:
        """Block until the horizon passes ``after`` (True) or ``timeout`` seconds pass."""
        self._start()
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._position <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    async def wait_async(self, after: int, timeout: float) -> bool:
        """``wait`` for an asyncio task: no thread is held while waiting."""
        self._start()
        if self._position > after:
            return True
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._changed:
            self._async_waiters.add(waiter)
        try:
            deadline = time.monotonic() + timeout
            while self._position <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(waiter[1].wait(), remaining)
                except TimeoutError:
                    return self._position > after
                waiter[1].clear()
            return True
        finally:
            with self._changed:
                self._async_waiters.discard(waiter)

    # -- writers -------------------------------------------------------------------------------

    def notify(self) -> None:
        """A transaction of this process that wrote events has committed."""
        self._local.set()

    # -- the pump ------------------------------------------------------------------------------

    def refresh(self, conn: Connection | None = None) -> int:
        """Move the horizon to what is committed now, and wake readers if it moved (``conn``:
        a connection to look with, else one from the pool)."""
        with self._advance_lock:
            with (
                contextlib.nullcontext(conn) if conn is not None else self._engine.connect() as conn
            ):
                if self._horizon is None:
                    newest = events.last_id(conn)
                    start = max(0, newest - START_WINDOW) if self._postgres else newest
                    self._horizon = Horizon(position=start)
                while events.advance_horizon(conn, self._horizon) and not self._horizon.waiting:
                    pass  # a long way behind: read on
            position = self._horizon.position
        if position != self._position:
            self._publish(position)
        return position

    def reset(self) -> None:
        """Forget the horizon (the outbox was emptied and its ids start again, e.g. a restored
        or truncated catalog): it is found again on the next look."""
        with self._advance_lock, self._changed:
            self._horizon = None
            self._position = 0

    def _publish(self, position: int) -> None:
        with self._changed:
            self._position = max(self._position, position)
            self._changed.notify_all()
            waiters = list(self._async_waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(event.set)

    def _start(self) -> None:
        if self._pump is not None:
            return
        with self._advance_lock:
            if self._pump is not None:
                return
            self._pump = threading.Thread(target=self._run, name="lacus-events", daemon=True)
            self._pump.start()
        if self._horizon is None:
            self.refresh()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._postgres:
                    self._listen()  # before looking: a commit after the look is notified
                    self.refresh(self._connection())
                else:
                    self.refresh()
                self._wait_for_commits()
            except (
                SQLAlchemyError,
                psycopg.Error,
                OSError,
            ) as exc:  # the catalog is away: keep trying, readers keep waiting
                log.warning("following the event log: %s", exc)
                self._close_listener()
                self._stop.wait(1.0)

    def _wait_for_commits(self) -> None:
        holes = self._horizon is not None and self._horizon.waiting
        if not self._postgres:
            self._local.wait(HOLE_POLL if holes else SQLITE_POLL)
            self._local.clear()
            return
        if self._local.is_set():  # a commit of ours: its NOTIFY is on its way, no need to wait
            self._local.clear()
            return
        listener = self._listen()
        for _ in listener.notifies(timeout=HOLE_POLL if holes else IDLE_POLL, stop_after=1):
            pass
        self._local.clear()

    def _listen(self) -> Any:
        if self._listener is None:
            url = self._engine.url.set(drivername="postgresql")
            self._listener = psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True
            )
            self._listener.execute(f"LISTEN {events.CHANNEL}")
        return self._listener

    def _connection(self) -> Connection:
        """The pump's own connection on PostgreSQL (autocommit: one round trip per look, no
        checkout, ping or rollback)."""
        if self._own is None:
            self._own = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._own

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error, OSError):  # already broken
                self._listener.close()
            self._listener = None
        if self._own is not None:
            with contextlib.suppress(SQLAlchemyError, psycopg.Error, OSError):
                self._own.close()
            self._own = None

    def close(self) -> None:
        self._stop.set()
        self._local.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
        self._close_listener()
