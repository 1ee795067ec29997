"""The event pruner: deletes events past their retention (``core.delivery.prunable``).

An event goes once it is older than ``event_retention_hours`` and every configured destination
has it, or once it is older than ``event_backlog_max_hours`` whatever the destinations; the
newest event always stays. Deleted in batches of ``BATCH`` rows, one statement and one short
transaction each; an idle pass only reads.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, Connection, exists, select

from lacus.core import delivery
from lacus.service.lake import Lake
from lacus.service.settings import Settings

BATCH = 5000


def pruner_pass(lake: Lake, worker: str) -> int:
    with lake.read() as conn:
        if not conn.execute(select(exists().where(_prunable(conn, lake.settings)))).scalar():
            return 0
    with lake.write() as conn:
        return delivery.prune_batch(conn, _prunable(conn, lake.settings), limit=BATCH)


def _prunable(conn: Connection, settings: Settings) -> ColumnElement[bool]:
    return delivery.prunable(
        conn,
        retention=timedelta(hours=settings.event_retention_hours),
        backlog_max=timedelta(hours=settings.event_backlog_max_hours),
        destinations=[destination.name for destination in settings.event_destinations],
    )
