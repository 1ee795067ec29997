"""Forwarding events to brokers: what a message looks like, where each destination is, and when
old events may go.

Each destination has a cursor (``event_cursors``): every event with an id up to ``last_id`` was
acknowledged by its broker. The sender publishes the events past the cursor, waits for the
broker's acknowledgement, and only then moves the cursor: a sender that dies in between
publishes the same events again (at least once, never lost). One sender at a time works on a
destination: the one whose claim holds (``claim``); a dead sender's claim runs out.

Retention (``prune``) deletes events older than the retention period that every configured
destination has, and events older than the hard cap whatever the destinations; never the newest
event (SQLite hands out ``max(id) + 1``: with the table empty, ids would start again at 1).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from lacus.core.clock import utcnow
from lacus.core.events import Event
from lacus.db.tables import event_cursors, events, lake_identity

ERROR_LENGTH = 1000
"""Characters of a failure's message kept on the cursor."""


# -- messages ------------------------------------------------------------------------------------


def body(event: Event) -> bytes:
    """The JSON body of an event's message, in the envelope Rucio's consumers read
    (``event_type``, ``payload``, ``created_at``) with the event's ``id`` added."""
    return orjson.dumps(
        {
            "id": event.id,
            "event_type": event.type,
            "created_at": event.payload.get("created_at"),
            "payload": event.payload,
        }
    )


def stomp_headers(event: Event) -> dict[str, str]:
    """Headers of an event's STOMP frame: durable, and selectable by type (``event_type``) the way
    Rucio's consumers select them."""
    return {
        "persistent": "true",
        "event_type": event.type,
        "event_id": str(event.id),
        "content-type": "application/json",
    }


def nats_headers(event: Event, origin: str) -> dict[str, str]:
    """Headers of an event's NATS message. ``Nats-Msg-Id`` (the lake's identity and the event's
    id) lets a JetStream stream drop a message sent again within its duplicate window."""
    return {
        "Nats-Msg-Id": f"{origin}-{event.id}",
        "Lacus-Event-Id": str(event.id),
        "Lacus-Event-Type": event.type,
    }


def origin(conn: Connection) -> str:
    """The lake's identity (``lake_identity``, made with the catalog)."""
    return str(conn.execute(select(lake_identity.c.id)).scalar_one())


def retry_delay(failures: int, *, first: float = 0.5, cap: float = 60.0) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row: doubling from ``first``,
    at most ``cap``."""
    if failures <= 0:
        return 0.0
    return min(cap, first * 2.0 ** min(failures - 1, 30))


def type_condition(types: Collection[str]) -> ColumnElement[bool] | None:
    """The events a destination wants (None: all)."""
    return events.c.event_type.in_(sorted(types)) if types else None


# -- cursors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    destination: str
    last_id: int
    delivered: int
    failures: int
    last_error: str | None
    last_error_at: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    updated_at: datetime


def _cursor(row: Any) -> Cursor:
    return Cursor(**{name: getattr(row, name) for name in Cursor.__dataclass_fields__})


def cursors(conn: Connection, destinations: Sequence[str] | None = None) -> dict[str, Cursor]:
    """The cursors of ``destinations`` (all when None) that exist, by destination."""
    query = select(event_cursors)
    if destinations is not None:
        query = query.where(event_cursors.c.destination.in_(list(destinations)))
    return {row.destination: _cursor(row) for row in conn.execute(query)}


def ensure_cursor(conn: Connection, destination: str, *, start_after: int) -> Cursor:
    """The cursor of ``destination``; a new destination starts after event ``start_after``
    (the events committed so far are not sent to it)."""
    found = cursors(conn, [destination]).get(destination)
    if found is not None:
        return found
    now = utcnow()
    conn.execute(
        insert(event_cursors).values(
            destination=destination,
            last_id=start_after,
            delivered=0,
            failures=0,
            created_at=now,
            updated_at=now,
        )
    )
    return cursors(conn, [destination])[destination]


def claim(conn: Connection, destination: str, *, worker: str, lease_seconds: float) -> bool:
    """Take or renew ``worker``'s claim on ``destination``; False while another's holds."""
    now = utcnow()
    taken = conn.execute(
        update(event_cursors)
        .where(
            event_cursors.c.destination == destination,
            or_(
                event_cursors.c.claimed_by.is_(None),
                event_cursors.c.claimed_by == worker,
                event_cursors.c.lease_until < now,
            ),
        )
        .values(claimed_by=worker, lease_until=now + timedelta(seconds=lease_seconds))
    ).rowcount
    return bool(taken)


def release(conn: Connection, destination: str, *, worker: str) -> None:
    conn.execute(
        update(event_cursors)
        .where(event_cursors.c.destination == destination, event_cursors.c.claimed_by == worker)
        .values(claimed_by=None, lease_until=None)
    )


def advance(
    conn: Connection,
    destination: str,
    *,
    worker: str,
    last_id: int,
    delivered: int,
    lease_seconds: float,
) -> bool:
    """Record that the broker acknowledged everything up to ``last_id`` (``delivered`` messages
    more) and renew the claim; False (nothing changed) when ``worker`` lost its claim."""
    now = utcnow()
    moved = conn.execute(
        update(event_cursors)
        .where(event_cursors.c.destination == destination, event_cursors.c.claimed_by == worker)
        .values(
            last_id=func.max(event_cursors.c.last_id, last_id)
            if conn.dialect.name == "sqlite"
            else func.greatest(event_cursors.c.last_id, last_id),
            delivered=event_cursors.c.delivered + delivered,
            failures=0,
            updated_at=now,
            lease_until=now + timedelta(seconds=lease_seconds),
        )
    ).rowcount
    return bool(moved)


def record_failure(conn: Connection, destination: str, *, worker: str, error: str) -> int:
    """Note a failed attempt on ``destination``; returns the failures in a row."""
    now = utcnow()
    conn.execute(
        update(event_cursors)
        .where(event_cursors.c.destination == destination, event_cursors.c.claimed_by == worker)
        .values(
            failures=event_cursors.c.failures + 1,
            last_error=error[:ERROR_LENGTH],
            last_error_at=now,
            updated_at=now,
        )
    )
    return int(
        conn.execute(
            select(event_cursors.c.failures).where(event_cursors.c.destination == destination)
        ).scalar_one_or_none()
        or 0
    )


def backlog(
    conn: Connection, *, after: int, upto: int, types: Collection[str] = ()
) -> tuple[int, datetime | None]:
    """How many events a destination at ``after`` has still to get (up to ``upto``), and when
    the oldest of them was written."""
    query = select(func.count(), func.min(events.c.created_at)).where(
        events.c.id > after, events.c.id <= upto
    )
    condition = type_condition(types)
    if condition is not None:
        query = query.where(condition)
    count, oldest = conn.execute(query).one()
    return int(count), oldest


# -- retention -----------------------------------------------------------------------------------


def prunable(
    conn: Connection,
    *,
    retention: timedelta,
    backlog_max: timedelta,
    destinations: Sequence[str],
) -> ColumnElement[bool]:
    """Events that may go: older than ``retention`` and acknowledged by every destination, or
    older than ``backlog_max``; never the newest."""
    now = utcnow()
    newest = conn.execute(select(func.max(events.c.id))).scalar()
    if newest is None:
        return events.c.id < 0
    kept_for = events.c.created_at < now - retention
    if destinations:
        # A destination without a cursor yet will start after the newest event: it waits for
        # nothing older.
        upto = min((c.last_id for c in cursors(conn, destinations).values()), default=newest)
        kept_for = and_(kept_for, events.c.id <= upto)
    return and_(events.c.id < newest, or_(kept_for, events.c.created_at < now - backlog_max))


def prune_batch(conn: Connection, condition: ColumnElement[bool], *, limit: int) -> int:
    """Delete up to ``limit`` events matching ``condition`` (the oldest first), in one
    statement; returns how many."""
    oldest = select(events.c.id).where(condition).order_by(events.c.id).limit(limit)
    return int(conn.execute(delete(events).where(events.c.id.in_(oldest))).rowcount)
