"""What the lake is doing, in aggregates cheap enough to show on every page load of a 1M-file
catalog: transfer requests by state and destination, transfer throughput and duration per time
bucket, the ingest latencies of streamed chunks. Each reads an index range or a small table,
never a scan of the big tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, ColumnElement, Connection, case, cast, extract, func, select

from lacus.db.tables import events, requests, rses, transfers


def requests_by_state(conn: Connection) -> dict[str, int]:
    """Transfer requests per state (queued, submitted, failed): one grouped index scan."""
    query = select(requests.c.state, func.count()).group_by(requests.c.state)
    return {str(state): int(count) for state, count in conn.execute(query)}


def requests_by_destination(conn: Connection) -> list[dict[str, Any]]:
    """Per destination RSE, its transfer requests per state, in RSE order."""
    query = (
        select(rses.c.rse, requests.c.state, func.count().label("requests"))
        .join(rses, rses.c.id == requests.c.dest_rse_id)
        .group_by(rses.c.rse, requests.c.state)
        .order_by(rses.c.rse)
    )
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query):
        entry = found.setdefault(row.rse, {"rse": row.rse})
        entry[str(row.state)] = int(row.requests)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class Bucket:
    """The transfer attempts that finished in one time bucket."""

    start: datetime
    done: int
    failed: int
    bytes: int
    mean_seconds: float | None
    max_seconds: float | None


def transfer_series(conn: Connection, *, since: datetime, bucket_seconds: int) -> list[Bucket]:
    """Transfer attempts finished since ``since``, per bucket of ``bucket_seconds``: how many
    were done and failed, the bytes moved, the mean and longest duration of the successful
    ones. Buckets without an attempt are left out. One grouped range scan of the history."""
    epoch = _epoch_seconds(conn, transfers.c.finished_at)
    bucket = (epoch - epoch % bucket_seconds).label("bucket")
    is_done = transfers.c.state == "done"
    query = (
        select(
            bucket,
            func.sum(case((is_done, 1), else_=0)).label("done"),
            func.sum(case((is_done, 0), else_=1)).label("failed"),
            func.sum(case((is_done, transfers.c.bytes), else_=0)).label("bytes"),
            func.avg(case((is_done, transfers.c.duration), else_=None)).label("mean"),
            func.max(case((is_done, transfers.c.duration), else_=None)).label("longest"),
        )
        .where(transfers.c.finished_at >= since)
        .group_by(bucket)
        .order_by(bucket)
    )
    return [
        Bucket(
            start=datetime.fromtimestamp(int(row.bucket), UTC).replace(tzinfo=None),
            done=int(row.done or 0),
            failed=int(row.failed or 0),
            bytes=int(row.bytes or 0),
            mean_seconds=None if row.mean is None else float(row.mean),
            max_seconds=None if row.longest is None else float(row.longest),
        )
        for row in conn.execute(query)
    ]


def _epoch_seconds(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[int]:
    """Whole unix seconds of a naive UTC timestamp column (PostgreSQL's ``extract`` has a
    fraction, which a cast would round: floor it first)."""
    seconds: ColumnElement[Any] = extract("epoch", column)
    if conn.dialect.name == "postgresql":
        seconds = func.floor(seconds)
    return cast(seconds, BigInteger)


def ingest_latencies(
    conn: Connection, *, since: datetime, limit: int, where: ColumnElement[bool]
) -> list[float]:
    """Seconds from a streamed chunk's creation (its ``chunk_created`` metadata, unix seconds,
    set by ``lacus stream ingest``) to the ``replica.available`` event that announced it, for
    the newest ``limit`` such events since ``since`` that match ``where``."""
    query = (
        select(events.c.payload, events.c.created_at)
        .where(
            events.c.created_at >= since,
            events.c.event_type == "replica.available",
            events.c.payload.contains('"chunk_created"'),
            where,
        )
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    found: list[float] = []
    for row in conn.execute(query):
        created = orjson.loads(row.payload).get("meta", {}).get("chunk_created")
        if isinstance(created, int | float) and not isinstance(created, bool):
            announced = row.created_at.replace(tzinfo=UTC).timestamp()
            found.append(max(0.0, announced - float(created)))
    return found
