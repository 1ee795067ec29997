"""The outbox: every state change writes its event in the transaction that makes the change.

Event types and payloads are documented in docs/events.md. Readers (the event stream, the
sender to brokers) read the table in id order, never past the *horizon*: on PostgreSQL two
transactions can commit their events out of id order, and a reader that passed an id still
uncommitted would skip it for ever. ``Horizon`` keeps the highest id below which every event is
committed or will never exist (see ``Horizon.advance``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    true,
)

from lacus.core.clock import utcnow
from lacus.core.visibility import scope_visible, visible
from lacus.db.engine import NOTIFY_CHANNEL, OUTBOX
from lacus.db.tables import contents, dids, events, scopes
from lacus.types import DIDType, Viewer

CHANNEL = NOTIFY_CHANNEL
"""The PostgreSQL NOTIFY channel a commit with events signals on."""

ATTACH_BATCH = 1000
"""Children named in one ``did.attached`` event at most (a bigger attach writes several)."""

TYPES = frozenset(
    {
        "did.created",
        "did.attached",
        "did.detached",
        "did.closed",
        "did.expired",
        "replica.available",
        "replica.deleted",
        "replica.bad",
        "replica.suspicious",
        "replica.unavailable",
        "replica.lost",
        "replica.repaired",
        "audit.finished",
        "audit.aborted",
        "scrub.finished",
        "rule.created",
        "rule.ok",
        "rule.stuck",
        "rule.deleted",
        "rule.expired",
        "transfer.done",
        "transfer.failed",
        "qos.transition",
    }
)
"""Every event type Lacus writes."""

EventRow = tuple[str, str | None, str | None, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Event:
    """One state change, as read back from the outbox."""

    id: int
    type: str
    scope: str | None
    name: str | None
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """The event of a row of the ``events`` table."""
        return cls(
            id=row.id,
            type=row.event_type,
            scope=row.scope,
            name=row.name,
            payload=orjson.loads(row.payload),
            created_at=row.created_at,
        )

    def message(self) -> dict[str, Any]:
        """The payload with the event's id and type: what streams and brokers carry."""
        return {"id": self.id, "type": self.type, **self.payload}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json(payload: dict[str, Any]) -> str:
    try:
        return orjson.dumps(
            payload, default=_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
        ).decode()
    except TypeError:  # e.g. an integer beyond 64 bits, which the standard library writes
        return json.dumps(payload, default=_default)


def emit(
    conn: Connection,
    event_type: str,
    payload: dict[str, Any],
    *,
    scope: str | None = None,
    name: str | None = None,
) -> None:
    """Record one event."""
    emit_many(conn, [(event_type, scope, name, payload)])


def emit_many(conn: Connection, batch: Iterable[EventRow]) -> None:
    """Record events given as ``(type, scope, name, payload)``: inserted, in one statement, when
    the transaction commits (so in the same transaction as the change)."""
    now = utcnow()
    rows = [
        (
            event_type,
            scope,
            name,
            _json({"scope": scope, "name": name, **payload, "created_at": now}),
            now,
        )
        for event_type, scope, name, payload in batch
    ]
    if rows:  # inserted when the transaction commits (lacus.db.engine.flush_outbox)
        conn.info.setdefault(OUTBOX, []).extend(rows)


def membership(
    event_type: str, parent: tuple[str, str], children: Sequence[tuple[str, str, str]]
) -> list[EventRow]:
    """``did.attached`` or ``did.detached`` events for ``children`` (scope, name, type) of
    ``parent``, at most ATTACH_BATCH children each."""
    return [
        (
            event_type,
            parent[0],
            parent[1],
            {
                "children": [
                    {"scope": scope, "name": name, "type": did_type}
                    for scope, name, did_type in children[start : start + ATTACH_BATCH]
                ]
            },
        )
        for start in range(0, len(children), ATTACH_BATCH)
    ]


@dataclass(slots=True)
class Horizon:
    """The highest event id up to which every event is committed or will never exist.

    PostgreSQL hands out ids in order but transactions commit in any order, so ids committed
    so far can have holes: an event still to commit, or one rolled back (its id is lost). A hole
    is waited for until every transaction that was running when it was seen has ended: each
    writer takes its transaction id before its events' ids (``emit_many``), so a writer that
    holds a missing id started before the reader saw the hole and is older than that snapshot's
    ``xmax``; once the oldest running transaction (``xmin``) is past it, the hole is final.
    SQLite has one writer at a time: committed ids never have holes.
    """

    position: int = 0
    holes: dict[int, int] = field(default_factory=dict)
    """First missing id -> the snapshot's xmax when the hole was seen."""

    def advance(self, ids: Sequence[int], *, xmin: int, xmax: int) -> int:
        """Move past the committed ``ids`` (ascending, read with a snapshot whose oldest
        running transaction was ``xmin`` and whose next transaction id was ``xmax``);
        returns the new position."""
        expected = self.position + 1
        for event_id in ids:
            if event_id < expected:
                continue
            if event_id > expected:
                seen = self.holes.get(expected)
                if seen is None:
                    self.holes[expected] = xmax
                    break
                if seen > xmin:
                    break
                del self.holes[expected]
            self.position = event_id
            expected = event_id + 1
        for start in [start for start in self.holes if start <= self.position]:
            del self.holes[start]
        return self.position

    @property
    def waiting(self) -> bool:
        """Whether a hole holds readers back (worth looking again soon)."""
        return bool(self.holes)


def last_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def advance_horizon(conn: Connection, horizon: Horizon, *, limit: int = 10_000) -> bool:
    """Read the ids committed past ``horizon`` and move it on; returns whether there may be
    more to read at once (``limit`` ids were read).

    On PostgreSQL one statement reads the ids and the snapshot they were read with (its
    ``xmin`` and ``xmax``: every statement has one snapshot, which ``pg_current_snapshot``
    returns): a writer holding a missing id took its transaction id before that id, so before
    this snapshot: it is older than its ``xmax``."""
    if conn.dialect.name != "postgresql":
        horizon.position = max(horizon.position, last_id(conn))
        return False
    xmin, xmax, ids = conn.exec_driver_sql(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint, "
        "ARRAY(SELECT id FROM events WHERE id > %(after)s ORDER BY id LIMIT %(limit)s) "
        "FROM pg_current_snapshot() AS s",
        {"after": horizon.position, "limit": limit},
    ).one()
    if ids:
        horizon.advance(ids, xmin=int(xmin), xmax=int(xmax))
    return len(ids) == limit


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a reader wants: types, a scope, a DID and (for a collection) what is in it."""

    types: frozenset[str] = frozenset()
    scope: str | None = None
    did: tuple[str, str] | None = None
    did_type: str | None = None

    def condition(self, viewer: Viewer | None) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.types:
            clauses.append(events.c.event_type.in_(sorted(self.types)))
        if self.scope is not None:
            clauses.append(events.c.scope == self.scope)
        if self.did is not None:
            clauses.append(_about(self.did, self.did_type))
        clauses.append(_visible_to(viewer))
        return and_(*clauses) if clauses else true()


def _about(did: tuple[str, str], did_type: str | None) -> ColumnElement[bool]:
    """Events on the DID itself and, for a collection, on every DID below it."""
    scope, name = did
    itself = and_(events.c.scope == scope, events.c.name == name)
    inside: ColumnElement[bool]
    if did_type == DIDType.DATASET.value:
        # OFFSET 0 keeps PostgreSQL from turning the probe into a hashed subplan, which reads
        # the whole dataset's content at every page (measured: 15,000 rows, 10 ms per read)
        inside = (
            select(contents.c.child_name)
            .where(
                contents.c.scope == scope,
                contents.c.name == name,
                contents.c.child_scope == events.c.scope,
                contents.c.child_name == events.c.name,
            )
            .offset(0)
            .exists()
        )
    elif did_type == DIDType.CONTAINER.value:
        inside = _ancestor(scope, name)
    else:
        inside = false()
    return or_(itself, inside)


def _ancestor(scope: str, name: str) -> ColumnElement[bool]:
    """``scope:name`` is above the event's DID: a walk up from the event's DID through its
    parents (a few index probes per event), not down the whole container's tree (which costs
    every read the container's size: 20,000 files, 30-40 ms)."""
    start = (
        select(contents.c.scope, contents.c.name)
        .where(contents.c.child_scope == events.c.scope, contents.c.child_name == events.c.name)
        .correlate(events)
    )
    up = start.cte("up", recursive=True, nesting=True)
    step = select(contents.c.scope, contents.c.name).join(
        up, and_(contents.c.child_scope == up.c.scope, contents.c.child_name == up.c.name)
    )
    up = up.union(step)
    return exists().where(up.c.scope == scope, up.c.name == name)


def _visible_to(viewer: Viewer | None) -> ColumnElement[bool]:
    """No event about a DID or scope ``viewer`` may not see (embargo)."""
    if viewer is None or viewer.admin:
        return true()
    hidden_did = exists().where(
        dids.c.scope == events.c.scope, dids.c.name == events.c.name, ~visible(viewer)
    )
    hidden_scope = exists().where(scopes.c.scope == events.c.scope, ~scope_visible(viewer))
    return and_(~hidden_did, ~hidden_scope)


def read(
    conn: Connection,
    *,
    after: int,
    upto: int,
    limit: int = 1000,
    where: ColumnElement[bool] | None = None,
) -> list[Event]:
    """The events with ``after < id <= upto`` (never past the horizon), in id order."""
    if upto <= after:
        return []
    query = (
        select(events)
        .where(events.c.id > after, events.c.id <= upto)
        .order_by(events.c.id)
        .limit(limit)
    )
    if where is not None:
        query = query.where(where)
    return [Event.from_row(row) for row in conn.execute(query)]
