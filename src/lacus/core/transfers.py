"""The end of a transfer request, as the catalog sees it (the transfer engine moves the bytes).

``transfer_done`` registers the destination replica — only ever after its bytes were verified by
the caller — marks every lock waiting for it ``ok`` and drops the request; ``transfer_failed``
schedules a retry or, when none is left, marks the locks ``stuck``. Both record the attempt in
the transfer history (``transfers``) in the same transaction; ``list_transfers`` and
``transfer_matrix`` read it back (the matrix: per source-to-destination link, one ``GROUP BY``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, delete, exists, func, insert, select, update

from lacus.core import locks
from lacus.core.clock import utcnow
from lacus.core.replicas import register_replicas
from lacus.core.visibility import visible
from lacus.db.tables import dids, requests, rses, transfers
from lacus.db.tables import locks as locks_table
from lacus.errors import NotFound
from lacus.types import FileSpec, LockState, RequestState, Viewer


def get_request(conn: Connection, request_id: int) -> Any:
    row = conn.execute(select(requests).where(requests.c.id == request_id)).first()
    if row is None:
        raise NotFound(f"transfer request {request_id} does not exist")
    return row


def _record(
    conn: Connection,
    request: Any,
    *,
    state: str,
    error: str | None,
    source_rse_id: int | None,
    started_at: datetime | None,
    duration: float | None,
) -> None:
    """One attempt of ``request`` in the transfer history."""
    now = utcnow()
    if started_at is None:
        started_at = now - timedelta(seconds=duration or 0.0)
    if duration is None:
        duration = max((now - started_at).total_seconds(), 0.0)
    conn.execute(
        insert(transfers).values(
            request_id=request.id,
            scope=request.scope,
            name=request.name,
            source_rse_id=source_rse_id,
            dest_rse_id=request.dest_rse_id,
            bytes=request.bytes,
            state=state,
            error=None if error is None else error[:1000],
            started_at=started_at,
            finished_at=now,
            duration=duration,
            activity=request.activity,
        )
    )


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
    request = get_request(conn, request_id)
    _record(
        conn,
        request,
        state="done",
        error=None,
        source_rse_id=source_rse_id,
        started_at=started_at,
        duration=duration,
    )
    rse = conn.execute(select(rses).where(rses.c.id == request.dest_rse_id)).one()
    spec: FileSpec = {
        "scope": request.scope,
        "name": request.name,
        "bytes": request.bytes,
        "adler32": request.adler32,
        "md5": request.md5,
    }
    if path is not None:
        spec["path"] = path
    register_replicas(conn, rse.id, [spec], account="root", deterministic=rse.deterministic)
    conn.execute(delete(requests).where(requests.c.id == request_id))
    locks.replicas_arrived(conn, rse.id, [(request.scope, request.name)])


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
    _record(
        conn,
        request,
        state="failed",
        error=error,
        source_rse_id=source_rse_id,
        started_at=started_at,
        duration=duration,
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
