"""Locks seen from a DID: the rules that hold a lock on a file, the locks of a dataset's rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from lacus.core import rules
from lacus.core.dids import get_did
from lacus.db.tables import locks, rses
from lacus.db.tables import rules as rules_table
from lacus.service.lake import Lake, Principal
from lacus.service.token_scopes import StorageOperation, require_storage_scope
from lacus.types import LockState

_WORST = {LockState.STUCK.value: 0, LockState.REPLICATING.value: 1, LockState.OK.value: 2}


def file_rules(lake: Lake, principal: Principal, scope: str, name: str) -> list[dict[str, Any]]:
    """Every rule holding a lock on file ``scope:name`` (DIDNotFound if it cannot be seen)."""
    require_storage_scope(principal, StorageOperation.STAT, scope)
    with lake.read() as conn:
        get_did(conn, scope, name, viewer=principal)
        ids = list(
            conn.execute(
                select(locks.c.rule_id)
                .where(locks.c.scope == scope, locks.c.name == name)
                .distinct()
            ).scalars()
        )
        if not ids:
            return []
        return rules.list_rules(conn, rule_ids=ids, viewer=principal)


def dataset_locks(lake: Lake, principal: Principal, scope: str, name: str) -> list[dict[str, Any]]:
    """Per rule on the collection ``scope:name`` and RSE: the files locked there, their bytes
    and the least advanced state of their locks (Rucio's dataset locks)."""
    require_storage_scope(principal, StorageOperation.STAT, scope)
    with lake.read() as conn:
        get_did(conn, scope, name, viewer=principal)
        rows = conn.execute(
            select(
                locks.c.rule_id,
                locks.c.rse_id,
                rses.c.rse,
                rules_table.c.account,
                locks.c.state,
                func.count().label("length"),
                func.sum(locks.c.bytes).label("bytes"),
            )
            .join(rules_table, rules_table.c.id == locks.c.rule_id)
            .join(rses, rses.c.id == locks.c.rse_id)
            .where(rules_table.c.scope == scope, rules_table.c.name == name)
            .group_by(
                locks.c.rule_id, locks.c.rse_id, rses.c.rse, rules_table.c.account, locks.c.state
            )
            .order_by(locks.c.rule_id, rses.c.rse)
        )
        merged: dict[tuple[str, int], dict[str, Any]] = {}
        for row in rows:
            entry = merged.setdefault(
                (row.rule_id, row.rse_id),
                {
                    "rse_id": row.rse_id,
                    "rse": row.rse,
                    "scope": scope,
                    "name": name,
                    "rule_id": row.rule_id,
                    "account": row.account,
                    "state": row.state,
                    "length": 0,
                    "bytes": 0,
                    "accessed_at": None,
                },
            )
            entry["length"] += int(row.length)
            entry["bytes"] += int(row.bytes or 0)
            if _WORST.get(row.state, 0) < _WORST.get(entry["state"], 0):
                entry["state"] = row.state
        return list(merged.values())
