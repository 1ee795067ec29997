"""The deletion guard: a replica is never deleted while a transaction is about to rely on it.

Transactions that create locks (the rule evaluator, the repairer) take the guard shared; the
reaper takes it exclusive while it decides which replicas to delete. So the reaper's decision
sees every lock committed before it, and a lock created after it sees the replicas the reaper
marked ``being_deleted``. On PostgreSQL the guard is a transaction-scoped advisory lock; SQLite
runs one writer at a time, which is the same guarantee.
"""

from __future__ import annotations

from sqlalchemy import Connection

from lacus.db.engine import is_sqlite

GUARD_KEY = 0x4C41435553  # "LACUS"


def protect_replicas(conn: Connection) -> None:
    """Shared: replicas this transaction reads as available stay so until it commits."""
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({GUARD_KEY})")


def decide_deletions(conn: Connection) -> None:
    """Exclusive: no lock is being created while this transaction picks replicas to delete."""
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({GUARD_KEY})")
