"""Rule history: one entry per thing that happened to a rule, kept after the rule is gone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from lacus.core.clock import utcnow
from lacus.db.tables import rule_history


@dataclass(frozen=True, slots=True)
class Entry:
    row: Any
    """The rule's row (id, scope, name, account, rse_expression)."""
    action: str
    state: str
    counts: dict[str, int]
    detail: str | None = None


def record(conn: Connection, entries: Sequence[Entry]) -> None:
    if not entries:
        return
    now = utcnow()
    conn.execute(
        insert(rule_history),
        [
            {
                "rule_id": entry.row.id,
                "scope": entry.row.scope,
                "name": entry.row.name,
                "account": entry.row.account,
                "rse_expression": entry.row.rse_expression,
                "action": entry.action,
                "state": entry.state,
                "locks_ok_cnt": entry.counts.get("ok", 0),
                "locks_replicating_cnt": entry.counts.get("replicating", 0),
                "locks_stuck_cnt": entry.counts.get("stuck", 0),
                "detail": (entry.detail or "")[:1000] or None,
                "created_at": now,
            }
            for entry in entries
        ],
    )


def rule_entries(conn: Connection, rule_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(rule_history).where(rule_history.c.rule_id == rule_id).order_by(rule_history.c.id)
    )
    return [_plain(row) for row in rows]


def did_entries(conn: Connection, scope: str, name: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(rule_history)
        .where(rule_history.c.scope == scope, rule_history.c.name == name)
        .order_by(rule_history.c.id)
    )
    return [_plain(row) for row in rows]


def _plain(row: Any) -> dict[str, Any]:
    return {str(key): value for key, value in row._mapping.items()}
