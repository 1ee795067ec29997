"""Locks: what keeps a replica, their counts per rule, and what follows from them.

A rule's state follows from its locks: ``stuck`` if one is stuck (or placement failed),
``replicating`` if one waits for a transfer, else ``ok``. Releasing locks tombstones the replicas
left without any lock (at once, the epoch, when the rule purges them) and drops the transfer
requests no lock needs any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import aliased

from lacus.core import events, history
from lacus.core.clock import utcnow
from lacus.core.dids import names_by_scope
from lacus.core.expressions import resolve
from lacus.core.rses import rse_attribute_map
from lacus.db.tables import locks, replicas, requests, rses, rules
from lacus.types import HELD_STATES, LockState, ReplicaState, RuleState

EPOCH = datetime(1970, 1, 1)
"""The tombstone of a replica to delete at once."""
CHUNK = 500
LockKey = tuple[str, str, int]


def lock_counts(conn: Connection, rule_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Rule id → {ok, replicating, stuck, bytes} (bytes: all its locks' bytes)."""
    found: dict[str, dict[str, int]] = {
        rule_id: {"ok": 0, "replicating": 0, "stuck": 0, "bytes": 0} for rule_id in rule_ids
    }
    for start in range(0, len(rule_ids), CHUNK):
        part = list(rule_ids[start : start + CHUNK])
        rows = conn.execute(
            select(locks.c.rule_id, locks.c.state, func.count(), func.sum(locks.c.bytes))
            .where(locks.c.rule_id.in_(part))
            .group_by(locks.c.rule_id, locks.c.state)
        )
        for rule_id, state, count, size in rows:
            entry = found[rule_id]
            entry[state] = int(count)
            entry["bytes"] += int(size or 0)
    return found


def state_for(counts: dict[str, int], *, error: str | None) -> RuleState:
    if error or counts["stuck"]:
        return RuleState.STUCK
    if counts["replicating"]:
        return RuleState.REPLICATING
    return RuleState.OK


def refresh_rules(
    conn: Connection,
    rule_ids: Iterable[str],
    *,
    action: str | None = None,
    known: tuple[Any, dict[str, int]] | None = None,
) -> dict[str, str]:
    """Recompute the state of rules from their locks; record transitions (history, events).

    ``action``: also record this history entry for every rule, changed or not. ``known``: the
    row and exact lock counts of the only rule, when the caller has them. Returns rule id →
    state.
    """
    ids = sorted(set(rule_ids))
    if not ids:
        return {}
    if known is not None:
        rows = {known[0].id: known[0]}
        counts = {known[0].id: known[1]}
    else:
        rows = {
            row.id: row
            for start in range(0, len(ids), CHUNK)
            for row in conn.execute(select(rules).where(rules.c.id.in_(ids[start : start + CHUNK])))
        }
        counts = lock_counts(conn, list(rows))
    now = utcnow()
    states: dict[str, str] = {}
    changed: list[tuple[Any, RuleState, dict[str, int]]] = []
    for rule_id, row in rows.items():
        if row.state in HELD_STATES:
            states[rule_id] = row.state
            continue
        state = state_for(counts[rule_id], error=row.error)
        states[rule_id] = state.value
        if state.value != row.state:
            changed.append((row, state, counts[rule_id]))
    for row, state, _ in changed:
        conn.execute(
            update(rules)
            .where(rules.c.id == row.id)
            .values(
                state=state.value,
                updated_at=now,
                stuck_at=now if state is RuleState.STUCK else None,
            )
        )
    batch = [
        (
            f"rule.{state.value}",
            row.scope,
            row.name,
            {
                "rule_id": row.id,
                "account": row.account,
                "rse_expression": row.rse_expression,
                "copies": row.copies,
                "locks_ok": count["ok"],
                "locks_replicating": count["replicating"],
                "locks_stuck": count["stuck"],
                "error": row.error,
            },
        )
        for row, state, count in changed
        if state in (RuleState.OK, RuleState.STUCK)
    ]
    events.emit_many(conn, batch)
    entries = []
    changed_ids = {row.id for row, _, _ in changed}
    for rule_id, row in rows.items():
        if action is None and rule_id not in changed_ids:
            continue
        entries.append(
            history.Entry(
                row=row,
                action=action or "state",
                state=states[rule_id],
                counts=counts[rule_id],
                detail=row.error,
            )
        )
    history.record(conn, entries)
    release_sources(conn, [row for row, state, _ in changed if state is RuleState.OK])
    return states


def release_sources(conn: Connection, ok_rules: Sequence[Any]) -> int:
    """Deletion at source: for rules that just became ``ok`` with ``delete_source``, tombstone
    (epoch: the reaper deletes at once) the other replicas of their files — on the RSEs of
    their ``source_replica_expression`` when they have one. Replicas some lock holds, on a
    read-only RSE or still being read stay; the reaper's guard keeps the last copy of a file
    any rule wants. Returns how many replicas were released."""
    released = 0
    for row in ok_rules:
        if not getattr(row, "delete_source", False):
            continue
        own = select(locks.c.scope, locks.c.name).where(locks.c.rule_id == row.id)
        conditions = [
            tuple_(replicas.c.scope, replicas.c.name).in_(own),
            replicas.c.state == ReplicaState.AVAILABLE.value,
            ~exists().where(
                locks.c.scope == replicas.c.scope,
                locks.c.name == replicas.c.name,
                locks.c.rse_id == replicas.c.rse_id,
            ),
            replicas.c.rse_id.in_(select(rses.c.id).where(rses.c.read_only.is_(False))),
        ]
        if row.source_replica_expression:
            names = resolve(row.source_replica_expression, rse_attribute_map(conn))
            conditions.append(replicas.c.rse_id.in_(select(rses.c.id).where(rses.c.rse.in_(names))))
        released += conn.execute(
            update(replicas).where(*conditions).values(tombstone=EPOCH, updated_at=utcnow())
        ).rowcount
    return released


def release_locks(
    conn: Connection, rule_id: str, keys: Sequence[LockKey] | None = None, *, purge: bool
) -> list[LockKey]:
    """Remove a rule's locks (``keys``, or all of them); return the released keys.

    Replicas left without any lock get a tombstone (the epoch when ``purge``), and requests no
    remaining lock needs are dropped (a copy in flight is then removed by the conveyor).
    """
    parts: list[ColumnElement[bool]] = []
    if keys is None:
        parts.append(locks.c.rule_id == rule_id)
    else:
        unique = list(dict.fromkeys(keys))
        parts.extend(
            and_(
                locks.c.rule_id == rule_id,
                tuple_(locks.c.scope, locks.c.name, locks.c.rse_id).in_(
                    unique[start : start + CHUNK]
                ),
            )
            for start in range(0, len(unique), CHUNK)
        )
    released: list[LockKey] = []
    now = utcnow()
    other = aliased(locks)
    for selector in parts:
        chosen = select(locks.c.scope, locks.c.name, locks.c.rse_id).where(selector)
        released.extend((row[0], row[1], row[2]) for row in conn.execute(chosen))
        conn.execute(
            update(replicas)
            .where(
                tuple_(replicas.c.scope, replicas.c.name, replicas.c.rse_id).in_(chosen),
                ~exists().where(
                    other.c.scope == replicas.c.scope,
                    other.c.name == replicas.c.name,
                    other.c.rse_id == replicas.c.rse_id,
                    other.c.rule_id != rule_id,
                ),
                or_(replicas.c.tombstone.is_(None), replicas.c.tombstone > EPOCH)
                if purge
                else replicas.c.tombstone.is_(None),
            )
            .values(tombstone=EPOCH if purge else now)
        )
        waiting = select(locks.c.scope, locks.c.name, locks.c.rse_id).where(
            selector, locks.c.state != LockState.OK.value
        )
        conn.execute(
            delete(requests).where(  # one being copied: the conveyor removes its bytes
                tuple_(requests.c.scope, requests.c.name, requests.c.dest_rse_id).in_(waiting),
                ~exists().where(
                    other.c.scope == requests.c.scope,
                    other.c.name == requests.c.name,
                    other.c.rse_id == requests.c.dest_rse_id,
                    other.c.rule_id != rule_id,
                ),
            )
        )
        conn.execute(delete(locks).where(selector))
    return released


def replicas_arrived(conn: Connection, rse_id: int, keys: Sequence[tuple[str, str]]) -> int:
    """Replicas of ``keys`` became available on ``rse_id``: their locks there are ok, the
    requests for them done. Returns how many locks changed."""
    if (
        not keys
        or not conn.execute(
            select(exists().where(locks.c.rse_id == rse_id, locks.c.state != LockState.OK.value))
        ).scalar()
    ):
        return 0
    now = utcnow()
    touched: set[str] = set()
    changed = 0
    for scope, names in names_by_scope(keys, CHUNK):  # index lookups on every database
        waiting = and_(
            locks.c.scope == scope,
            locks.c.name.in_(names),
            locks.c.rse_id == rse_id,
            locks.c.state != LockState.OK.value,
        )
        touched.update(conn.execute(select(locks.c.rule_id).where(waiting).distinct()).scalars())
        changed += conn.execute(
            update(locks).where(waiting).values(state=LockState.OK.value, updated_at=now)
        ).rowcount
        conn.execute(
            delete(requests).where(
                requests.c.scope == scope,
                requests.c.name.in_(names),
                requests.c.dest_rse_id == rse_id,
            )
        )
        conn.execute(
            update(replicas)
            .where(
                replicas.c.scope == scope,
                replicas.c.name.in_(names),
                replicas.c.rse_id == rse_id,
                replicas.c.tombstone.is_not(None),
            )
            .values(tombstone=None)
        )
    refresh_rules(conn, touched)
    return changed
