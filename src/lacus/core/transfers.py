"""The end of a transfer request, as the catalog sees it (the transfer engine moves the bytes).

``transfer_done`` registers the destination replica — only ever after its bytes were verified by
the caller — marks every lock waiting for it ``ok`` and drops the request; ``transfer_failed``
schedules a retry or, when none is left, marks the locks ``stuck``. Both record the attempt in
the transfer history (``transfers``) in the same transaction; ``list_transfers`` and
``transfer_matrix`` read it back (the matrix: per source-to-destination link, one ``GROUP BY``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from lacus.core import events, integrity, locks
from lacus.core.clock import utcnow
from lacus.core.replicas import register_replicas
from lacus.core.sources import success_rate
from lacus.core.visibility import visible
from lacus.db.tables import dids, requests, rses, transfers
from lacus.db.tables import locks as locks_table
from lacus.errors import NotFound
from lacus.types import FileSpec, LockState, RequestState, Viewer

CHUNK = 500


def get_request(conn: Connection, request_id: int) -> Any:
    row = conn.execute(select(requests).where(requests.c.id == request_id)).first()
    if row is None:
        raise NotFound(f"transfer request {request_id} does not exist")
    return row


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt of a request, as the transfer engine reports it."""

    request_id: int
    source_rse_id: int | None = None
    started_at: datetime | None = None
    duration: float | None = None
    path: str | None = None
    """Where the file was written on a non-deterministic destination."""
    method: str | None = None
    """How the bytes went: ``tpc``, ``stream``, ``multihop via RSE``..."""


def _history_rows(
    found: Sequence[tuple[Any, Attempt]], *, state: str, error: str | None = None
) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for request, attempt in found:
        started_at, duration = attempt.started_at, attempt.duration
        if started_at is None:
            started_at = now - timedelta(seconds=duration or 0.0)
        if duration is None:
            duration = max((now - started_at).total_seconds(), 0.0)
        rows.append(
            {
                "request_id": request.id,
                "scope": request.scope,
                "name": request.name,
                "source_rse_id": attempt.source_rse_id,
                "dest_rse_id": request.dest_rse_id,
                "bytes": request.bytes,
                "state": state,
                "error": None if error is None else error[:1000],
                "started_at": started_at,
                "finished_at": now,
                "duration": duration,
                "activity": request.activity,
            }
        )
    return rows


def transfer_done(
    conn: Connection,
    request_id: int,
    *,
    path: str | None = None,
    source_rse_id: int | None = None,
    started_at: datetime | None = None,
    duration: float | None = None,
) -> None:
    """The file of request ``request_id`` is on its destination, verified: register it."""
    get_request(conn, request_id)
    transfers_done(conn, [Attempt(request_id, source_rse_id, started_at, duration, path)])


def transfers_done(conn: Connection, attempts: Sequence[Attempt]) -> int:
    """These requests' files are on their destinations, verified: register the replicas, turn the
    locks waiting for them ``ok``, drop the requests, record the attempts. A few statements per
    destination RSE, whatever the number of files. Requests that no longer exist are skipped;
    returns how many were registered."""
    by_id = {attempt.request_id: attempt for attempt in attempts}
    found: list[tuple[Any, Attempt]] = []
    ids = sorted(by_id)
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        found.extend(
            (row, by_id[row.id])
            for row in conn.execute(select(requests).where(requests.c.id.in_(part)))
        )
    if not found:
        return 0
    conn.execute(insert(transfers), _history_rows(found, state="done"))
    by_dest: dict[int, list[tuple[Any, Attempt]]] = defaultdict(list)
    for request, attempt in found:
        by_dest[request.dest_rse_id].append((request, attempt))
    for dest_rse_id, items in by_dest.items():
        rse = conn.execute(select(rses).where(rses.c.id == dest_rse_id)).one()
        keys = [(request.scope, request.name) for request, _ in items]
        integrity.repaired(conn, dest_rse_id, keys)  # a bad replica there: replaced
        specs: list[FileSpec] = []
        for request, attempt in items:
            spec: FileSpec = {
                "scope": request.scope,
                "name": request.name,
                "bytes": request.bytes,
                "adler32": request.adler32,
                "md5": request.md5,
            }
            if attempt.path is not None:
                spec["path"] = attempt.path
            specs.append(spec)
        register_replicas(conn, dest_rse_id, specs, account="root", deterministic=rse.deterministic)
        for start in range(0, len(items), CHUNK):
            conn.execute(
                delete(requests).where(
                    requests.c.id.in_([request.id for request, _ in items[start : start + CHUNK]])
                )
            )
        locks.replicas_arrived(conn, dest_rse_id, keys)
    rse_name = _rse_names(conn)
    events.emit_many(
        conn,
        [
            (
                "transfer.done",
                request.scope,
                request.name,
                {
                    "request_id": request.id,
                    "source_rse": rse_name.get(attempt.source_rse_id),
                    "dest_rse": rse_name.get(request.dest_rse_id),
                    "source_rse_id": attempt.source_rse_id,
                    "dest_rse_id": request.dest_rse_id,
                    "bytes": request.bytes,
                    "duration": attempt.duration,
                    "method": attempt.method,
                },
            )
            for request, attempt in found
        ],
    )
    return len(found)


def _rse_names(conn: Connection) -> dict[int | None, str]:
    """RSE id → name (a small table): events name the RSEs they are about."""
    return {row.id: row.rse for row in conn.execute(select(rses.c.id, rses.c.rse))}


def transfer_failed(
    conn: Connection,
    request_id: int,
    error: str,
    *,
    retry_in: float | None,
    source_rse_id: int | None = None,
    started_at: datetime | None = None,
    duration: float | None = None,
) -> None:
    """One attempt failed: retry in ``retry_in`` seconds, or (None) give up: locks ``stuck``."""
    request = get_request(conn, request_id)
    attempt = Attempt(request_id, source_rse_id, started_at, duration)
    conn.execute(
        insert(transfers), _history_rows([(request, attempt)], state="failed", error=error)
    )
    names = _rse_names(conn)
    events.emit(
        conn,
        "transfer.failed",
        {
            "request_id": request.id,
            "source_rse": names.get(source_rse_id),
            "dest_rse": names.get(request.dest_rse_id),
            "source_rse_id": source_rse_id,
            "dest_rse_id": request.dest_rse_id,
            "error": error[:1000],
            "attempt": request.attempts + 1,
            "final": retry_in is None,
        },
        scope=request.scope,
        name=request.name,
    )
    now = utcnow()
    values: dict[str, Any] = {
        "attempts": request.attempts + 1,
        "last_error": error[:1000],
        "updated_at": now,
        "claimed_by": None,
        "lease_until": None,
    }
    if retry_in is not None:
        values |= {
            "state": RequestState.QUEUED.value,
            "next_attempt_at": now + timedelta(seconds=retry_in),
        }
        conn.execute(update(requests).where(requests.c.id == request_id).values(**values))
        return
    values["state"] = RequestState.FAILED.value
    conn.execute(update(requests).where(requests.c.id == request_id).values(**values))
    waiting = (
        locks_table.c.scope == request.scope,
        locks_table.c.name == request.name,
        locks_table.c.rse_id == request.dest_rse_id,
        locks_table.c.state == LockState.REPLICATING.value,
    )
    rule_ids = list(conn.execute(select(locks_table.c.rule_id).where(*waiting)).scalars())
    conn.execute(
        update(locks_table).where(*waiting).values(state=LockState.STUCK.value, updated_at=now)
    )
    locks.refresh_rules(conn, rule_ids)


def _of_request() -> ColumnElement[bool]:
    """The attempt was made for the request with its id: for its file and destination, once it
    existed. (SQLite hands the id of a deleted request out again, so the id alone could name an
    earlier request's attempts.)"""
    return and_(
        requests.c.id == transfers.c.request_id,
        requests.c.scope == transfers.c.scope,
        requests.c.name == transfers.c.name,
        requests.c.dest_rse_id == transfers.c.dest_rse_id,
        transfers.c.started_at >= requests.c.created_at,
    )


def old_history(before: datetime) -> ColumnElement[bool]:
    """Attempts that finished before ``before``, but not those of a request still queued (its
    sources' failures rank its next attempt)."""
    return and_(transfers.c.finished_at < before, ~exists().where(_of_request()))


def prune_history(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` attempts of ``old_history(before)``, the oldest first, in one
    statement."""
    oldest = (
        select(transfers.c.id)
        .where(old_history(before))
        .order_by(transfers.c.finished_at)
        .limit(limit)
    )
    return int(conn.execute(delete(transfers).where(transfers.c.id.in_(oldest))).rowcount)


def list_transfers(
    conn: Connection,
    *,
    scope: str | None = None,
    name: str | None = None,
    state: str | None = None,
    limit: int = 100,
    viewer: Viewer | None = None,
) -> list[dict[str, Any]]:
    """The newest ``limit`` attempts (filtered), newest first, with their RSEs' names; only
    those of files ``viewer`` may see (embargo)."""
    source = rses.alias("source_rse")
    dest = rses.alias("dest_rse")
    query = (
        select(transfers, source.c.rse.label("source"), dest.c.rse.label("destination"))
        .outerjoin(source, source.c.id == transfers.c.source_rse_id)
        .outerjoin(dest, dest.c.id == transfers.c.dest_rse_id)
        .order_by(transfers.c.finished_at.desc(), transfers.c.id.desc())
        .limit(limit)
    )
    if scope is not None:
        query = query.where(transfers.c.scope == scope)
    if name is not None:
        query = query.where(transfers.c.name == name)
    if state is not None:
        query = query.where(transfers.c.state == state)
    if viewer is not None and not viewer.admin:
        query = query.where(
            exists().where(
                dids.c.scope == transfers.c.scope, dids.c.name == transfers.c.name, visible(viewer)
            )
        )
    return [
        {
            "id": row.id,
            "request_id": row.request_id,
            "scope": row.scope,
            "name": row.name,
            "source": row.source,
            "destination": row.destination,
            "bytes": row.bytes,
            "state": row.state,
            "error": row.error,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "duration": row.duration,
            "activity": row.activity,
        }
        for row in conn.execute(query)
    ]


def transfer_matrix(conn: Connection, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Per link (source RSE to destination RSE; source None: no source was found) the attempts done
    and failed, the success rate in percent, the bytes moved and the mean duration of the
    successful ones. Sorted by source, then destination."""
    source = rses.alias("source_rse")
    dest = rses.alias("dest_rse")
    is_done = transfers.c.state == "done"
    query = (
        select(
            source.c.rse.label("source"),
            dest.c.rse.label("destination"),
            func.sum(case((is_done, 1), else_=0)).label("done"),
            func.sum(case((is_done, 0), else_=1)).label("failed"),
            func.sum(case((is_done, transfers.c.bytes), else_=0)).label("bytes"),
            func.avg(case((is_done, transfers.c.duration), else_=None)).label("mean_seconds"),
        )
        .select_from(transfers)
        .outerjoin(source, source.c.id == transfers.c.source_rse_id)
        .outerjoin(dest, dest.c.id == transfers.c.dest_rse_id)
        .group_by(source.c.rse, dest.c.rse)
    )
    if since is not None:
        query = query.where(transfers.c.finished_at >= since)
    cells = []
    for row in conn.execute(query):
        done, failed = int(row.done or 0), int(row.failed or 0)
        total = done + failed
        cells.append(
            {
                "source": row.source,
                "destination": row.destination,
                "done": done,
                "failed": failed,
                "success_pct": round(100.0 * done / total, 1) if total else 0.0,
                "bytes": int(row.bytes or 0),
                "mean_seconds": None if row.mean_seconds is None else float(row.mean_seconds),
            }
        )
    cells.sort(key=lambda cell: (cell["source"] or "", cell["destination"] or ""))
    return cells


def link_success(conn: Connection, *, since: datetime) -> dict[tuple[int, int], float]:
    """Per link (source RSE id, destination RSE id) the success rate of attempts since ``since``."""
    is_done = transfers.c.state == "done"
    query = (
        select(
            transfers.c.source_rse_id,
            transfers.c.dest_rse_id,
            func.sum(case((is_done, 1), else_=0)).label("done"),
            func.sum(case((is_done, 0), else_=1)).label("failed"),
        )
        .where(transfers.c.finished_at >= since, transfers.c.source_rse_id.is_not(None))
        .group_by(transfers.c.source_rse_id, transfers.c.dest_rse_id)
    )
    return {
        (row.source_rse_id, row.dest_rse_id): success_rate(int(row.done), int(row.failed))
        for row in conn.execute(query)
    }


def failed_sources(conn: Connection, request_ids: Sequence[int]) -> dict[int, set[int]]:
    """Per request, the source RSEs its earlier attempts failed from."""
    found: dict[int, set[int]] = defaultdict(set)
    ids = sorted(set(request_ids))
    for start in range(0, len(ids), CHUNK):
        for row in conn.execute(
            select(transfers.c.request_id, transfers.c.source_rse_id)
            .join(requests, _of_request())
            .where(
                transfers.c.request_id.in_(ids[start : start + CHUNK]),
                transfers.c.state == "failed",
                transfers.c.source_rse_id.is_not(None),
            )
            .distinct()
        ):
            found[row.request_id].add(row.source_rse_id)
    return found
