"""What the catalog holds right now, for metrics: a few grouped counts, no table scan of the
big tables on PostgreSQL (their sizes are the planner's estimates there; the replicas in doubt
are read through the partial index of the replicas not available)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from lacus.core import audits
from lacus.db.tables import dids, events, locks, replicas, requests, rses, rules

COUNTED = (dids, replicas, rules, locks, requests, events)
"""The tables whose sizes are reported."""
DOUBTED = ("suspicious", "bad", "unavailable", "lost")
"""The replica states counted per RSE (``lacus_replicas_doubted``)."""
FOUND = {audits.AUDIT: ("dark", "lost"), audits.SCRUB: ("bad",)}
"""What each kind of run reports it found (``lacus_audit_last_found``)."""


@dataclass(frozen=True, slots=True)
class LastRun:
    """The latest audit or scrub of an RSE (a scrub round may still be running)."""

    rse: str
    kind: str
    state: str
    """running, finished, aborted or failed"""
    found: dict[str, int]
    """dark and lost (an audit) or bad (a scrub), as far as it went"""


@dataclass(frozen=True, slots=True)
class CatalogGauges:
    requests: dict[str, int]
    """Transfer requests per state (queued, submitted...)."""
    rules: dict[str, int]
    """Rules per state (ok, replicating, stuck...)."""
    rse_files: dict[str, int]
    rse_bytes: dict[str, int]
    rse_total_bytes: dict[str, int]
    table_rows: dict[str, int]
    last_event_id: int
    doubted: dict[str, dict[str, int]]
    """RSE → replicas suspicious, bad, unavailable, lost there, and ``quarantined`` dark files
    (every RSE, zeros included)."""
    lost_files: int
    """Files with no good copy left."""
    last_runs: list[LastRun]
    last_finished: dict[tuple[str, str], datetime]
    """(RSE, kind) → when its last finished run ended (aborted and failed ones do not count)."""


def catalog_gauges(conn: Connection) -> CatalogGauges:
    by_rse = list(
        conn.execute(select(rses.c.rse, rses.c.files, rses.c.used_bytes, rses.c.total_bytes))
    )
    doubted = audits.doubted_counts(conn, None)
    return CatalogGauges(
        requests=_by_state(conn, requests.c.state),
        rules=_by_state(conn, rules.c.state),
        rse_files={row.rse: int(row.files) for row in by_rse},
        rse_bytes={row.rse: int(row.used_bytes) for row in by_rse},
        rse_total_bytes={row.rse: int(row.total_bytes) for row in by_rse if row.total_bytes},
        table_rows=_table_rows(conn),
        last_event_id=int(
            conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
        ),
        doubted={row.rse: doubted.get(row.rse, audits.empty_counts()) for row in by_rse},
        lost_files=audits.count_lost_files(conn),
        last_runs=[_last_run(run) for run in audits.last_runs(conn)],
        last_finished=audits.last_finished(conn),
    )


def _last_run(run: Any) -> LastRun:
    found = {what: int(getattr(run, what)) for what in FOUND.get(run.kind, ())}
    return LastRun(run.rse, run.kind, run.state, found)


def _by_state(conn: Connection, column: ColumnElement[str]) -> dict[str, int]:
    query = select(column, func.count()).group_by(column)
    return {str(state): int(count) for state, count in conn.execute(query)}


def _table_rows(conn: Connection) -> dict[str, int]:
    names = [table.name for table in COUNTED]
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(
            "SELECT relname, GREATEST(reltuples, 0)::bigint FROM pg_class "
            "WHERE relkind = 'r' AND relname = ANY(%(names)s)",
            {"names": names},
        )
        return {str(name): int(count) for name, count in rows}
    return {
        table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table in COUNTED
    }
