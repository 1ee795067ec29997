"""The deletion guard: a replica is never deleted while a transaction is about to rely on it.

Transactions that create locks (the rule evaluator, the repairer) take the guard shared; the
reaper takes it exclusive while it decides which replicas to delete, and so does, with a second
key, a transaction that makes replicas available before it looks for the locks waiting for
them. So the reaper's decision
sees every lock committed before it, and a lock created after it sees the replicas the reaper
marked ``being_deleted``. On PostgreSQL the guard is a transaction-scoped advisory lock; SQLite
runs one writer at a time, which is the same guarantee.
"""

from __future__ import annotations

from sqlalchemy import Connection

from lacus.db.engine import is_sqlite

GUARD_KEY = 0x4C41435553  # "LACUS"
ARRIVAL_KEY = GUARD_KEY + 1


def protect_replicas(conn: Connection) -> None:
    """Shared: the replicas this transaction reads (to create locks) neither disappear nor
    arrive unseen until it commits."""
    if not is_sqlite(conn):
        conn.exec_driver_sql(
            f"SELECT pg_advisory_xact_lock_shared({GUARD_KEY}), "
            f"pg_advisory_xact_lock_shared({ARRIVAL_KEY})"
        )


def replicas_arriving(conn: Connection) -> None:
    """Exclusive: replicas became available; the locks waiting for them are all visible now
    (a lock created later sees the replicas)."""
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ARRIVAL_KEY})")


def decide_deletions(conn: Connection) -> None:
    """Exclusive: no lock is being created while this transaction picks replicas to delete."""
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({GUARD_KEY})")
