"""Work claimed with leases: several workers, in one process or many, share a queue table.

A worker claims a batch (rows whose lease is free or has run out) and finishes each item in the
transaction that does the work, by deleting or updating it only while its claim still holds. On
PostgreSQL the claim skips rows another transaction is claiming (``FOR UPDATE SKIP LOCKED``); on
SQLite writers take turns anyway. A worker that dies loses nothing: its leases run out and another
worker claims the items again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, delete, or_, select, true, tuple_, update

from lacus.core.clock import utcnow
from lacus.db.engine import is_sqlite


def claimable(table: Table) -> ColumnElement[bool]:
    """Rows no live claim holds."""
    return or_(table.c.lease_until.is_(None), table.c.lease_until < utcnow())


def claim(
    conn: Connection,
    table: Table,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    where: ColumnElement[bool] | None = None,
    order_by: Sequence[Any] = (),
) -> list[Any]:
    """Claim up to ``limit`` rows of ``table`` for ``worker``; return them (as they were)."""
    key = list(table.primary_key.columns)
    query = (
        select(table)
        .where(claimable(table), where if where is not None else true())
        .order_by(*(order_by or key))
        .limit(limit)
    )
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True)
    rows = list(conn.execute(query))
    if rows:
        until = utcnow() + timedelta(seconds=lease_seconds)
        for part in _chunks(rows, 500):
            conn.execute(
                update(table)
                .where(_keys_in(table, key, part))
                .values(claimed_by=worker, lease_until=until)
            )
    return rows


def finish(conn: Connection, table: Table, rows: Sequence[Any], *, worker: str) -> bool:
    """Delete claimed ``rows`` if ``worker`` still holds every claim; False when one was lost.

    Call it first in the transaction doing the work and roll back on False: the rows are then
    another worker's, and the work must not be done twice.
    """
    if not rows:
        return True
    key = list(table.primary_key.columns)
    done = 0
    for part in _chunks(rows, 500):
        done += conn.execute(
            delete(table).where(_keys_in(table, key, part), table.c.claimed_by == worker)
        ).rowcount
    return done == len(rows)


def renew(
    conn: Connection, table: Table, rows: Sequence[Any], *, worker: str, lease_seconds: float
) -> None:
    """Extend ``worker``'s claims on ``rows`` (those it still holds) by ``lease_seconds``."""
    key = list(table.primary_key.columns)
    until = utcnow() + timedelta(seconds=lease_seconds)
    for part in _chunks(rows, 500):
        conn.execute(
            update(table)
            .where(_keys_in(table, key, part), table.c.claimed_by == worker)
            .values(lease_until=until)
        )


def release(conn: Connection, table: Table, rows: Sequence[Any], *, worker: str) -> None:
    """Give claimed ``rows`` back at once (the work could not be done now)."""
    key = list(table.primary_key.columns)
    for part in _chunks(rows, 500):
        conn.execute(
            update(table)
            .where(_keys_in(table, key, part), table.c.claimed_by == worker)
            .values(claimed_by=None, lease_until=None)
        )


def _keys_in(table: Table, key: list[Any], rows: Sequence[Any]) -> ColumnElement[bool]:
    if len(key) == 1:
        column = key[0]
        single: ColumnElement[bool] = column.in_([getattr(row, column.name) for row in rows])
        return single
    condition: ColumnElement[bool] = tuple_(*key).in_(
        [tuple(getattr(row, column.name) for column in key) for row in rows]
    )
    return condition


def _chunks(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]
