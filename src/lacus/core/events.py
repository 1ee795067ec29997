"""The outbox: every state change writes its event in the transaction that makes the change.

Event types and payloads are documented in docs/events.md; readers (the event stream, brokers)
read the table in id order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert

from lacus.core.clock import utcnow
from lacus.db.tables import events


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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


def emit_many(
    conn: Connection, batch: Iterable[tuple[str, str | None, str | None, dict[str, Any]]]
) -> None:
    """Record events given as ``(type, scope, name, payload)``."""
    now = utcnow()
    rows = [
        {
            "event_type": event_type,
            "scope": scope,
            "name": name,
            "payload": orjson.dumps(
                {"scope": scope, "name": name, **payload, "created_at": now}, default=_default
            ).decode(),
            "created_at": now,
        }
        for event_type, scope, name, payload in batch
    ]
    if rows:
        conn.execute(insert(events), rows)
