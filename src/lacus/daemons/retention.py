"""The pruners: history past its retention goes, in batches of ``BATCH`` rows (one statement
and one short transaction each); an idle pass only reads.

* event pruner (``core.delivery.prunable``): an event goes once it is older than
  ``event_retention_hours`` and every configured destination has it, or once it is older than
  ``event_backlog_max_hours`` whatever the destinations; the newest event always stays.
* history pruner (``core.transfers.prune_history``): a transfer attempt goes once it finished
  more than ``transfer_history_days`` ago (None: kept for ever) and its request is gone.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, Connection, exists, select

from lacus.core import delivery, transfers
from lacus.core.clock import utcnow
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


def history_pruner_pass(lake: Lake, worker: str) -> int:
    days = lake.settings.transfer_history_days
    if days is None:
        return 0
    before = utcnow() - timedelta(days=days)
    with lake.read() as conn:
        if not conn.execute(select(exists().where(transfers.old_history(before)))).scalar():
            return 0
    with lake.write() as conn:
        return transfers.prune_history(conn, before=before, limit=BATCH)
