"""Which tombstoned replicas may be deleted now, and forgetting them once their bytes are gone.

Deletion happens in three steps so that nothing is ever half done: (1) under the exclusive
deletion guard, pick replicas and mark them ``being_deleted``; (2) delete their bytes from the
storage (outside any transaction); (3) forget them in the catalog, or put them back to
``available`` if the storage refused.

A replica is picked only if its tombstone says so (the epoch: at once; any other time: when its
RSE is greedy, attribute ``greedy_deletion=true``), no lock holds it, and — when any rule wants
the file somewhere — another available replica survives.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
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

from lacus.core import events, guard
from lacus.core.clock import utcnow
from lacus.core.expiry import forget_file_if_gone
from lacus.core.locks import EPOCH
from lacus.core.rses import adjust_usage
from lacus.db.engine import is_sqlite
from lacus.db.tables import locks, replicas, rse_attributes, rses
from lacus.types import ReplicaState

GREEDY = "greedy_deletion"


def due(now: datetime) -> ColumnElement[bool]:
    """Replicas whose tombstone says: delete now."""
    greedy = select(rse_attributes.c.rse_id).where(
        rse_attributes.c.key == GREEDY, func.lower(rse_attributes.c.value) == "true"
    )
    return and_(
        replicas.c.tombstone.is_not(None),
        replicas.c.state != ReplicaState.BEING_DELETED.value,
        or_(
            replicas.c.tombstone < EPOCH + timedelta(days=1),
            and_(replicas.c.tombstone <= now, replicas.c.rse_id.in_(greedy)),
        ),
    )


def pick(conn: Connection, *, limit: int, rse_ids: list[int] | None = None) -> list[Any]:
    """Mark up to ``limit`` deletable replicas ``being_deleted``; return them with their RSE."""
    guard.decide_deletions(conn)
    now = utcnow()
    query = (
        select(replicas, rses.c.rse)
        .join(rses, rses.c.id == replicas.c.rse_id)
        .where(
            due(now),
            rses.c.availability_delete.is_(True),
            ~exists().where(
                locks.c.scope == replicas.c.scope,
                locks.c.name == replicas.c.name,
                locks.c.rse_id == replicas.c.rse_id,
            ),
        )
        .order_by(replicas.c.tombstone)
        .limit(limit)
    )
    if rse_ids is not None:
        query = query.where(replicas.c.rse_id.in_(rse_ids))
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True, of=replicas)
    candidates = list(conn.execute(query))
    if not candidates:
        return []
    keys = list({(row.scope, row.name) for row in candidates})
    wanted: set[tuple[str, str]] = set()
    survivors: dict[tuple[str, str], set[int]] = defaultdict(set)
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        wanted.update(
            (row.scope, row.name)
            for row in conn.execute(
                select(locks.c.scope, locks.c.name)
                .where(tuple_(locks.c.scope, locks.c.name).in_(part))
                .distinct()
            )
        )
        for row in conn.execute(
            select(replicas.c.scope, replicas.c.name, replicas.c.rse_id).where(
                tuple_(replicas.c.scope, replicas.c.name).in_(part),
                replicas.c.state == ReplicaState.AVAILABLE.value,
            )
        ):
            survivors[(row.scope, row.name)].add(row.rse_id)
    chosen = []
    for row in candidates:
        key = (row.scope, row.name)
        others = survivors[key] - {row.rse_id}
        if key in wanted and not others:
            continue  # the last copy of a file a rule wants: never
        survivors[key].discard(row.rse_id)
        chosen.append(row)
    by_rse: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for row in chosen:
        by_rse[row.rse_id].append((row.scope, row.name))
    for rse_id, rse_keys in by_rse.items():
        for start in range(0, len(rse_keys), 500):
            conn.execute(
                update(replicas)
                .where(
                    replicas.c.rse_id == rse_id,
                    tuple_(replicas.c.scope, replicas.c.name).in_(rse_keys[start : start + 500]),
                )
                .values(state=ReplicaState.BEING_DELETED.value, updated_at=now)
            )
    return chosen


def forget(conn: Connection, deleted: list[Any]) -> None:
    """The bytes of these replicas are gone: remove them from the catalog."""
    by_rse: dict[int, list[Any]] = defaultdict(list)
    for row in deleted:
        by_rse[row.rse_id].append(row)
    for rse_id, rows in by_rse.items():
        keys = [(row.scope, row.name) for row in rows]
        for start in range(0, len(keys), 500):
            conn.execute(
                delete(replicas).where(
                    replicas.c.rse_id == rse_id,
                    replicas.c.state == ReplicaState.BEING_DELETED.value,
                    tuple_(replicas.c.scope, replicas.c.name).in_(keys[start : start + 500]),
                )
            )
        adjust_usage(
            conn, rse_id, bytes_delta=-sum(row.bytes for row in rows), files_delta=-len(rows)
        )
    events.emit_many(
        conn,
        [
            ("replica.deleted", row.scope, row.name, {"rse": row.rse, "bytes": row.bytes})
            for row in deleted
        ],
    )
    for key in {(row.scope, row.name) for row in deleted}:
        forget_file_if_gone(conn, *key)


def restore(conn: Connection, failed: list[Any]) -> None:
    """The storage did not delete these: they are available again (and still tombstoned)."""
    for row in failed:
        conn.execute(
            update(replicas)
            .where(
                replicas.c.scope == row.scope,
                replicas.c.name == row.name,
                replicas.c.rse_id == row.rse_id,
                replicas.c.state == ReplicaState.BEING_DELETED.value,
            )
            .values(state=ReplicaState.AVAILABLE.value, updated_at=utcnow())
        )
