"""Which tombstoned replicas may be deleted now, and forgetting them once their bytes are gone.

Deletion happens in three steps so that nothing is ever half done: (1) under the exclusive
deletion guard, pick replicas and mark them ``being_deleted``; (2) delete their bytes from the
storage (outside any transaction; never on a read-only RSE, whose replicas are only forgotten);
(3) forget them in the catalog, or put them back to ``available`` if the storage refused.

A replica is *due* when its tombstone is the epoch (its rule purged it, its DID expired), or
any past time on a greedy RSE (attribute ``greedy_deletion=true``). On an RSE below its
free-space target (attributes ``min_free_bytes`` and/or ``min_free_ratio`` of ``total_bytes``)
any replica with a tombstone in the past may go too, least recently accessed first, until the
target is met; a replica without a tombstone is never deleted.

Whatever the reason, a replica is picked only if no lock holds it, no queued or running transfer
reads from it (``requests.source_rse_id``), and — when any rule wants the file somewhere or a
transfer needs it as a source — another available replica survives outside the transfers'
destinations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.types import TIMESTAMP

from lacus.core import events, guard
from lacus.core.clock import utcnow
from lacus.core.expiry import forget_file_if_gone
from lacus.core.locks import EPOCH
from lacus.core.rses import adjust_usage
from lacus.db.engine import is_sqlite
from lacus.db.tables import locks, replicas, requests, rse_attributes, rses
from lacus.types import ReplicaState, RequestState

GREEDY = "greedy_deletion"
MIN_FREE_BYTES = "min_free_bytes"
MIN_FREE_RATIO = "min_free_ratio"
CHUNK = 500
TOUCH_SECONDS = 60
"""``accessed_at`` is written at most once a minute per replica."""
FileKey = tuple[str, str]


def due(now: datetime) -> ColumnElement[bool]:
    """Replicas whose tombstone says: delete now, whatever the space."""
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


def _active_request() -> ColumnElement[bool]:
    return or_(
        requests.c.state.in_([RequestState.QUEUED.value, RequestState.SUBMITTED.value]),
        requests.c.claimed_by.is_not(None),
    )


def _deletable() -> list[ColumnElement[bool]]:
    """No lock holds the replica, no active transfer reads from it, its RSE allows deletion."""
    return [
        rses.c.availability_delete.is_(True),
        ~exists().where(
            locks.c.scope == replicas.c.scope,
            locks.c.name == replicas.c.name,
            locks.c.rse_id == replicas.c.rse_id,
        ),
        ~exists().where(
            requests.c.scope == replicas.c.scope,
            requests.c.name == replicas.c.name,
            requests.c.source_rse_id == replicas.c.rse_id,
            requests.c.dest_rse_id != replicas.c.rse_id,
            _active_request(),
        ),
    ]


def _candidates(conn: Connection) -> Select[Any]:
    query = (
        select(replicas, rses.c.rse, rses.c.read_only)
        .join(rses, rses.c.id == replicas.c.rse_id)
        .where(*_deletable())
    )
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True, of=replicas)
    return query


def space_needs(conn: Connection, rse_ids: Sequence[int] | None = None) -> dict[int, int]:
    """RSE id → bytes to free to reach the RSE's free-space target (only RSEs short of it).

    Free space is ``total_bytes - used_bytes``, plus the bytes of replicas being deleted (they
    are on their way out). Read-only RSEs have no target: Lacus never deletes their bytes."""
    targets: dict[int, dict[str, str]] = defaultdict(dict)
    for row in conn.execute(
        select(rse_attributes).where(rse_attributes.c.key.in_([MIN_FREE_BYTES, MIN_FREE_RATIO]))
    ):
        targets[row.rse_id][row.key] = row.value
    if rse_ids is not None:
        targets = defaultdict(dict, {k: v for k, v in targets.items() if k in set(rse_ids)})
    if not targets:
        return {}
    leaving = (
        select(func.coalesce(func.sum(replicas.c.bytes), 0))
        .where(
            replicas.c.rse_id == rses.c.id,
            replicas.c.state == ReplicaState.BEING_DELETED.value,
        )
        .scalar_subquery()
    )
    needs: dict[int, int] = {}
    for row in conn.execute(
        select(rses.c.id, rses.c.total_bytes, rses.c.used_bytes, leaving.label("leaving")).where(
            rses.c.id.in_(list(targets)),
            rses.c.total_bytes.is_not(None),
            rses.c.read_only.is_(False),
            rses.c.availability_delete.is_(True),
        )
    ):
        target = _target(targets[row.id], row.total_bytes)
        free = row.total_bytes - row.used_bytes + int(row.leaving)
        if target > free:
            needs[row.id] = target - free
    return needs


def _target(attributes: dict[str, str], total: int) -> int:
    """The free bytes an RSE's attributes ask for (unparsable values ask for nothing)."""
    target = 0
    with suppress(ValueError):
        target = max(target, int(attributes.get(MIN_FREE_BYTES, "0")))
    try:
        ratio = float(attributes.get(MIN_FREE_RATIO, "0"))
    except ValueError:
        ratio = 0.0
    if 0.0 < ratio <= 1.0:
        target = max(target, int(ratio * total))
    return target


def pending(conn: Connection) -> bool:
    """A cheap look: is any replica due, or any RSE short of space with a tombstoned replica?"""
    now = utcnow()
    if conn.execute(select(exists().where(due(now)))).scalar():
        return True
    needs = space_needs(conn)
    return bool(needs) and bool(
        conn.execute(
            select(
                exists().where(
                    replicas.c.rse_id.in_(list(needs)),
                    replicas.c.tombstone <= now,
                    replicas.c.state == ReplicaState.AVAILABLE.value,
                )
            )
        ).scalar()
    )


def pick(conn: Connection, *, limit: int, rse_ids: Sequence[int] | None = None) -> list[Any]:
    """Mark up to ``limit`` deletable replicas ``being_deleted``; return them with their RSE
    (``rse``, ``read_only``). Due ones first, then, per RSE short of space, the least recently
    accessed tombstoned ones until the target is met."""
    guard.decide_deletions(conn)
    now = utcnow()
    query = _candidates(conn).where(due(now)).order_by(replicas.c.tombstone).limit(limit)
    if rse_ids is not None:
        query = query.where(replicas.c.rse_id.in_(rse_ids))
    chosen = _mark(conn, _safe(conn, list(conn.execute(query))), now)
    for rse_id, needed in sorted(space_needs(conn, rse_ids).items()):
        if len(chosen) >= limit:
            break
        chosen += _pick_for_space(conn, rse_id, needed, limit - len(chosen), now)
    return chosen


def _pick_for_space(
    conn: Connection, rse_id: int, needed: int, limit: int, now: datetime
) -> list[Any]:
    """Least recently accessed first (``accessed_at``, else ``created_at``), page after page,
    until ``needed`` bytes are picked or ``limit`` replicas."""
    last_access = func.coalesce(replicas.c.accessed_at, replicas.c.created_at)
    base = (
        _candidates(conn)
        .add_columns(last_access.label("last_access"))
        .where(
            replicas.c.rse_id == rse_id,
            replicas.c.tombstone <= now,
            replicas.c.state == ReplicaState.AVAILABLE.value,
            rses.c.read_only.is_(False),
        )
        .order_by(last_access, replicas.c.scope, replicas.c.name)
    )
    page_size = max(limit, 50)
    chosen: list[Any] = []
    freed = 0
    after: tuple[Any, str, str] | None = None
    while freed < needed and len(chosen) < limit:
        query = base
        if after is not None:
            bound = tuple_(literal(after[0], TIMESTAMP), literal(after[1]), literal(after[2]))
            query = base.where(tuple_(last_access, replicas.c.scope, replicas.c.name) > bound)
        page = list(conn.execute(query.limit(page_size)))
        if not page:
            break
        after = (page[-1].last_access, page[-1].scope, page[-1].name)
        taken: list[Any] = []
        for row in _safe(conn, page):
            if freed >= needed or len(chosen) + len(taken) >= limit:
                break
            taken.append(row)
            freed += row.bytes
        chosen += _mark(conn, taken, now)
        if len(page) < page_size:
            break
    return chosen


def _safe(conn: Connection, candidates: Sequence[Any]) -> list[Any]:
    """The candidates whose deletion leaves, for every file a rule wants or a transfer needs,
    another available replica outside the transfers' destinations (readable, for a transfer)."""
    if not candidates:
        return []
    keys = list({(row.scope, row.name) for row in candidates})
    wanted: set[FileKey] = set()
    destinations: dict[FileKey, set[int]] = defaultdict(set)
    survivors: dict[FileKey, set[int]] = defaultdict(set)
    readable: dict[FileKey, set[int]] = defaultdict(set)
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        in_part = tuple_(locks.c.scope, locks.c.name).in_(part)
        wanted.update(
            (row.scope, row.name)
            for row in conn.execute(select(locks.c.scope, locks.c.name).where(in_part).distinct())
        )
        for row in conn.execute(
            select(requests.c.scope, requests.c.name, requests.c.dest_rse_id).where(
                tuple_(requests.c.scope, requests.c.name).in_(part), _active_request()
            )
        ):
            destinations[(row.scope, row.name)].add(row.dest_rse_id)
        for copy in conn.execute(
            select(replicas.c.scope, replicas.c.name, replicas.c.rse_id, rses.c.availability_read)
            .join(rses, rses.c.id == replicas.c.rse_id)
            .where(
                tuple_(replicas.c.scope, replicas.c.name).in_(part),
                replicas.c.state == ReplicaState.AVAILABLE.value,
            )
        ):
            survivors[(copy.scope, copy.name)].add(copy.rse_id)
            if copy.availability_read:
                readable[(copy.scope, copy.name)].add(copy.rse_id)
    chosen: list[Any] = []
    for row in candidates:
        key = (row.scope, row.name)
        if key in destinations:
            if not readable[key] - {row.rse_id} - destinations[key]:
                continue  # a transfer's last possible source: kept until it is done
        elif key in wanted and not survivors[key] - {row.rse_id}:
            continue  # the last copy of a file a rule wants: never
        survivors[key].discard(row.rse_id)
        readable[key].discard(row.rse_id)
        chosen.append(row)
    return chosen


def _mark(conn: Connection, chosen: list[Any], now: datetime) -> list[Any]:
    """Mark the chosen replicas ``being_deleted`` (one UPDATE per RSE per chunk)."""
    by_rse: dict[int, list[FileKey]] = defaultdict(list)
    for row in chosen:
        by_rse[row.rse_id].append((row.scope, row.name))
    for rse_id, rse_keys in by_rse.items():
        for start in range(0, len(rse_keys), CHUNK):
            conn.execute(
                update(replicas)
                .where(
                    replicas.c.rse_id == rse_id,
                    tuple_(replicas.c.scope, replicas.c.name).in_(rse_keys[start : start + CHUNK]),
                )
                .values(state=ReplicaState.BEING_DELETED.value, updated_at=now)
            )
    return chosen


def forget(conn: Connection, deleted: list[Any]) -> None:
    """The bytes of these replicas are gone (or, on a read-only RSE, left alone): remove them
    from the catalog."""
    by_rse: dict[int, list[Any]] = defaultdict(list)
    for row in deleted:
        by_rse[row.rse_id].append(row)
    for rse_id, rows in by_rse.items():
        keys = [(row.scope, row.name) for row in rows]
        for start in range(0, len(keys), CHUNK):
            conn.execute(
                delete(replicas).where(
                    replicas.c.rse_id == rse_id,
                    replicas.c.state == ReplicaState.BEING_DELETED.value,
                    tuple_(replicas.c.scope, replicas.c.name).in_(keys[start : start + CHUNK]),
                )
            )
        adjust_usage(
            conn, rse_id, bytes_delta=-sum(row.bytes for row in rows), files_delta=-len(rows)
        )
    events.emit_many(
        conn,
        [
            (
                "replica.deleted",
                row.scope,
                row.name,
                {"rse": row.rse, "bytes": row.bytes, "bytes_kept": bool(row.read_only)},
            )
            for row in deleted
        ],
    )
    for key in {(row.scope, row.name) for row in deleted}:
        forget_file_if_gone(conn, *key)


def restore(conn: Connection, failed: list[Any]) -> None:
    """The storage did not delete these: they are available again (and still tombstoned)."""
    by_rse: dict[int, list[FileKey]] = defaultdict(list)
    for row in failed:
        by_rse[row.rse_id].append((row.scope, row.name))
    for rse_id, keys in by_rse.items():
        for start in range(0, len(keys), CHUNK):
            conn.execute(
                update(replicas)
                .where(
                    replicas.c.rse_id == rse_id,
                    replicas.c.state == ReplicaState.BEING_DELETED.value,
                    tuple_(replicas.c.scope, replicas.c.name).in_(keys[start : start + CHUNK]),
                )
                .values(state=ReplicaState.AVAILABLE.value, updated_at=utcnow())
            )


def _stale(now: datetime) -> ColumnElement[bool]:
    return or_(
        replicas.c.accessed_at.is_(None),
        replicas.c.accessed_at < now - timedelta(seconds=TOUCH_SECONDS),
    )


def stale_reads(
    conn: Connection, reads: Iterable[tuple[str, str, int]]
) -> list[tuple[str, str, int]]:
    """Of the replicas ``(scope, name, rse_id)`` just read, those whose ``accessed_at`` is
    older than a minute (or unset): what ``mark_accessed`` would change (a read-only look)."""
    keys = list(dict.fromkeys(reads))
    now = utcnow()
    found: list[tuple[str, str, int]] = []
    for start in range(0, len(keys), CHUNK):
        found.extend(
            (row.scope, row.name, row.rse_id)
            for row in conn.execute(
                select(replicas.c.scope, replicas.c.name, replicas.c.rse_id).where(
                    tuple_(replicas.c.scope, replicas.c.name, replicas.c.rse_id).in_(
                        keys[start : start + CHUNK]
                    ),
                    _stale(now),
                )
            )
        )
    return found


def mark_accessed(conn: Connection, reads: Iterable[tuple[str, str, int]]) -> int:
    """Replicas ``(scope, name, rse_id)`` were just read: set their ``accessed_at`` (what the
    reaper's least-recently-accessed order reads), at most once a minute per replica. One
    UPDATE per chunk; returns how many replicas changed."""
    keys = list(dict.fromkeys(reads))
    now = utcnow()
    changed = 0
    for start in range(0, len(keys), CHUNK):
        changed += conn.execute(
            update(replicas)
            .where(
                tuple_(replicas.c.scope, replicas.c.name, replicas.c.rse_id).in_(
                    keys[start : start + CHUNK]
                ),
                _stale(now),
            )
            .values(accessed_at=now)
        ).rowcount
    return changed
