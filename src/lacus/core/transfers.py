"""The end of a transfer request, as the catalog sees it (the transfer engine moves the bytes).

``transfer_done`` registers the destination replica — only ever after its bytes were verified by
the caller — marks every lock waiting for it ``ok`` and drops the request; ``transfer_failed``
schedules a retry or, when none is left, marks the locks ``stuck``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from lacus.core import locks
from lacus.core.clock import utcnow
from lacus.core.replicas import register_replicas
from lacus.db.tables import locks as locks_table
from lacus.db.tables import requests, rses
from lacus.errors import NotFound
from lacus.types import FileSpec, LockState, RequestState


def get_request(conn: Connection, request_id: int) -> Any:
    row = conn.execute(select(requests).where(requests.c.id == request_id)).first()
    if row is None:
        raise NotFound(f"transfer request {request_id} does not exist")
    return row


def transfer_done(conn: Connection, request_id: int, *, path: str | None = None) -> None:
    """The file of request ``request_id`` is on its destination, verified: register it."""
    request = get_request(conn, request_id)
    rse = conn.execute(select(rses).where(rses.c.id == request.dest_rse_id)).one()
    spec: FileSpec = {
        "scope": request.scope,
        "name": request.name,
        "bytes": request.bytes,
        "adler32": request.adler32,
        "md5": request.md5,
    }
    if path is not None:
        spec["path"] = path
    register_replicas(conn, rse.id, [spec], account="root", deterministic=rse.deterministic)
    conn.execute(delete(requests).where(requests.c.id == request_id))
    locks.replicas_arrived(conn, rse.id, [(request.scope, request.name)])


def transfer_failed(
    conn: Connection, request_id: int, error: str, *, retry_in: float | None
) -> None:
    """One attempt failed: retry in ``retry_in`` seconds, or (None) give up: locks ``stuck``."""
    request = get_request(conn, request_id)
    now = utcnow()
    values: dict[str, Any] = {
        "attempts": request.attempts + 1,
        "last_error": error[:1000],
        "updated_at": now,
        "claimed_by": None,
        "lease_until": None,
    }
    if retry_in is not None:
        values |= {
            "state": RequestState.QUEUED.value,
            "next_attempt_at": now + timedelta(seconds=retry_in),
        }
        conn.execute(update(requests).where(requests.c.id == request_id).values(**values))
        return
    values["state"] = RequestState.FAILED.value
    conn.execute(update(requests).where(requests.c.id == request_id).values(**values))
    waiting = (
        locks_table.c.scope == request.scope,
        locks_table.c.name == request.name,
        locks_table.c.rse_id == request.dest_rse_id,
        locks_table.c.state == LockState.REPLICATING.value,
    )
    rule_ids = list(conn.execute(select(locks_table.c.rule_id).where(*waiting)).scalars())
    conn.execute(
        update(locks_table).where(*waiting).values(state=LockState.STUCK.value, updated_at=now)
    )
    locks.refresh_rules(conn, rule_ids)
