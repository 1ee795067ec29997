"""Audits and scrubs in the catalog: who works on which RSE, the catalog snapshots an audit
compares with the storage, the quarantine of dark files, and the record of every run.

Work is shared per RSE and kind (``audit``, ``scrub``) through ``integrity_work`` rows claimed
with leases (``core.claims``): one auditor and one scrubber at a time per RSE, whatever the
number of processes. The first snapshot of an audit streams the RSE's replicas sorted by path,
the same order as the storage's ``scan``; the second, taken after the listing, re-reads only
the candidates the comparison found (``confirm_dark``, ``confirm_lost``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from lacus.core import claims, events
from lacus.core.audit_compare import CatalogEntry, CatalogRow
from lacus.core.clock import utcnow
from lacus.db.engine import is_sqlite
from lacus.db.tables import (
    NOT_AVAILABLE,
    audits,
    integrity_work,
    quarantine,
    replicas,
    requests,
    rses,
)
from lacus.naming import deterministic_path
from lacus.storage import FileStat
from lacus.storage._base import is_part_name
from lacus.types import ReplicaState

CHUNK = 500
AUDIT = "audit"
SCRUB = "scrub"
HOP_DIR = ".lacus-hop"
COUNTS = ("files", "listed", "dark", "lost", "bad", "suspicious", "bytes_verified")


# -- claims -------------------------------------------------------------------------------------


def claim_rse(
    conn: Connection, kind: str, *, worker: str, lease_seconds: float, rse_id: int | None = None
) -> Any | None:
    """Claim the RSE whose ``kind`` is most overdue (or ``rse_id``); None when none is due."""
    known = set(
        conn.execute(select(integrity_work.c.rse_id).where(integrity_work.c.kind == kind)).scalars()
    )
    missing = [
        {"rse_id": rse_id_, "kind": kind}
        for rse_id_ in conn.execute(select(rses.c.id)).scalars()
        if rse_id_ not in known
    ]
    if missing:
        conn.execute(insert(integrity_work), missing)
    due = and_(
        integrity_work.c.kind == kind,
        or_(integrity_work.c.next_at.is_(None), integrity_work.c.next_at <= utcnow()),
    )
    if rse_id is not None:
        due = and_(due, integrity_work.c.rse_id == rse_id)
    rows = claims.claim(
        conn,
        integrity_work,
        worker=worker,
        limit=1,
        lease_seconds=lease_seconds,
        where=due,
        order_by=[integrity_work.c.next_at.is_not(None), integrity_work.c.next_at],
    )
    return rows[0] if rows else None


def renew(conn: Connection, work: Any, *, worker: str, lease_seconds: float) -> bool:
    """Extend the claim; False when it was lost (another worker has the RSE now)."""
    claims.renew(conn, integrity_work, [work], worker=worker, lease_seconds=lease_seconds)
    held = conn.execute(
        select(integrity_work.c.claimed_by).where(
            integrity_work.c.rse_id == work.rse_id, integrity_work.c.kind == work.kind
        )
    ).scalar()
    return bool(held == worker)


def release(
    conn: Connection, work: Any, *, worker: str, next_at: datetime | None, audit_id: int | None
) -> None:
    """Give the RSE back, due again at ``next_at``; ``audit_id``: the run in progress, if any."""
    conn.execute(
        update(integrity_work)
        .where(
            integrity_work.c.rse_id == work.rse_id,
            integrity_work.c.kind == work.kind,
            integrity_work.c.claimed_by == worker,
        )
        .values(next_at=next_at, audit_id=audit_id, claimed_by=None, lease_until=None)
    )


def due_work(conn: Connection, kind: str) -> bool:
    """Whether some RSE is due for ``kind`` (or has none recorded yet)."""
    rse_count = conn.execute(select(func.count()).select_from(rses)).scalar() or 0
    rows = conn.execute(
        select(integrity_work.c.next_at, integrity_work.c.lease_until).where(
            integrity_work.c.kind == kind
        )
    ).all()
    if len(rows) < rse_count:
        return True
    now = utcnow()
    return any(
        (row.next_at is None or row.next_at <= now)
        and (row.lease_until is None or row.lease_until < now)
        for row in rows
    )


# -- runs ---------------------------------------------------------------------------------------


def start_run(conn: Connection, rse_id: int, kind: str, *, worker: str) -> int:
    now = utcnow()
    values: dict[str, Any] = {
        "rse_id": rse_id,
        "kind": kind,
        "state": "running",
        "worker": worker,
        "started_at": now,
        "round_started_at": now,
        **dict.fromkeys(COUNTS, 0),
    }
    return int(conn.execute(insert(audits).values(**values).returning(audits.c.id)).scalar_one())


def get_run(conn: Connection, run_id: int) -> Any | None:
    return conn.execute(select(audits).where(audits.c.id == run_id)).first()


def add_counts(conn: Connection, run_id: int, **counts: int) -> None:
    """Add to a running run's counts."""
    conn.execute(
        update(audits)
        .where(audits.c.id == run_id)
        .values({name: getattr(audits.c, name) + value for name, value in counts.items()})
    )


def end_run(
    conn: Connection,
    run_id: int,
    *,
    state: str,
    detail: str | None = None,
    **counts: int,
) -> None:
    """Record the end of a run (``finished``, ``aborted`` or ``failed``) and its event."""
    now = utcnow()
    conn.execute(
        update(audits)
        .where(audits.c.id == run_id)
        .values(state=state, finished_at=now, detail=(detail or None) and detail[:1000], **counts)
    )
    run = get_run(conn, run_id)
    assert run is not None
    rse = conn.execute(select(rses.c.rse).where(rses.c.id == run.rse_id)).scalar()
    kind = "scrub" if run.kind == SCRUB else "audit"
    label = "finished" if state == "finished" else "aborted"
    # no paths in an event (every account reads events without a DID): an aborted audit says
    # its counts, a failed run only its error's class; the detail stays in the report
    shown = run.detail if state == "aborted" else (run.detail or "").split(":")[0] or None
    payload = {"rse": rse, "state": state, "detail": shown}
    payload.update({name: getattr(run, name) for name in COUNTS})
    if kind == "scrub" and label == "finished":
        events.emit(conn, "scrub.finished", payload)
    elif kind == "audit":
        events.emit(conn, f"audit.{label}", payload)


def last_runs(conn: Connection, rse_ids: Sequence[int] | None = None) -> list[Any]:
    """The latest run of each kind on each RSE (with the RSE's name)."""
    latest = select(func.max(audits.c.id)).group_by(audits.c.rse_id, audits.c.kind)
    query = (
        select(audits, rses.c.rse)
        .join(rses, rses.c.id == audits.c.rse_id)
        .where(audits.c.id.in_(latest))
        .order_by(rses.c.rse, audits.c.kind)
    )
    if rse_ids is not None:
        query = query.where(audits.c.rse_id.in_(rse_ids))
    return list(conn.execute(query))


# -- snapshots ----------------------------------------------------------------------------------


SNAPSHOT_BATCH = 1_000
"""Rows fetched at a time by the first snapshot (a round trip on PostgreSQL); few enough for
the rows to stay in the CPU's cache while the merge reads them."""

SNAPSHOT_WORK_MEM = "64MB"
"""PostgreSQL: the sort memory of the first snapshot's transaction (``SET LOCAL``), whatever
the server's default. Not more: an in-memory sort was slower than an external merge of 64 MB
runs (measured, 10M paths on 2 busy cores: 256 MB 27 s, 64 MB 19 s, 4 MB 16-24 s; 1M: an
in-memory quicksort in 110 MB took 3.8 s, an external merge 2.7 s)."""

SNAPSHOT_PARALLEL_WORKERS = 0
"""PostgreSQL: ``max_parallel_workers_per_gather`` of the first snapshot's transaction: none
(measured at 10M: two workers 22-27 s against 16-24 s without; the audit's own process needs a
core too)."""

SQLITE_SNAPSHOT_CACHE_KIB = 8_192
"""SQLite: the connection's ``cache_size`` while the first snapshot runs (then restored): it
bounds both the pages kept while reading and the sorter's memory before it spills to a
temporary file. The engine's 64 MiB took the process past 200 MB, and smaller sort runs were
faster (measured at 1M paths: 64 MiB 2.3-2.7 s, 8 MiB 1.8-2.3 s)."""

_DETERMINISTIC = re.compile(r"(?P<scope>.+)/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{2})/(?P<name>[^/]+)")

# Rucio's ``hash`` layout as lacus.naming.deterministic_path computes it (a test compares them):
# one md5 per replica, ``overlay`` puts the slash between its first two byte pairs
_PG_PATH = (
    "coalesce(path, CASE WHEN starts_with(scope, 'user') OR starts_with(scope, 'group')"
    " THEN replace(scope, '.', '/') ELSE scope END"
    " || '/' || overlay(left(md5(scope || ':' || name), 4) placing '/' from 3 for 0)"
    " || '/' || name)"
)


def snapshot_sql(conn: Connection) -> str:
    """The first snapshot's statement, parameters ``judged_before`` and ``rse_id``: every
    replica of the RSE with its path on the storage computed by the database (stored, or
    Rucio's ``hash`` layout of its DID) and sorted in byte order, the order of Python's
    ``str`` and of every storage listing (PostgreSQL ``COLLATE "C"``, SQLite binary)."""
    if is_sqlite(conn):  # lacus_path: registered on the connection by ``snapshot``
        path, mark = "coalesce(path, lacus_path(scope, name))", "?"
    else:
        path, mark = f'{_PG_PATH} COLLATE "C"', "%s"
    return (
        f"SELECT {path} AS stored_path, bytes,"
        f" state = '{ReplicaState.AVAILABLE.value}' AND updated_at < {mark}"
        f" FROM replicas WHERE rse_id = {mark} ORDER BY 1"
    )


def snapshot(conn: Connection, rse_id: int, *, judged_before: datetime) -> Iterator[CatalogRow]:
    """Every replica of the RSE as (path, bytes, judged) tuples, sorted by path,
    streamed; ``judged``: available and not changed since ``judged_before``. ``conn`` serves
    only this stream until it ends or is closed."""
    for rows in snapshot_batches(conn, rse_id, judged_before=judged_before):
        yield from rows


def snapshot_batches(
    conn: Connection, rse_id: int, *, judged_before: datetime
) -> Iterator[list[CatalogRow]]:
    """The rows of ``snapshot``, ``SNAPSHOT_BATCH`` at a time.

    Nothing is kept for it when replicas are written: the database computes and sorts the
    paths now (``snapshot_sql``). Read through the driver's own cursor (plain tuples, no
    SQLAlchemy row per replica) in the transaction of ``conn``: on PostgreSQL a server-side
    cursor, the sort's memory and workers set for this transaction only; on SQLite the
    connection's cursor, ``lacus_path`` (``naming.deterministic_path``) registered on the
    connection (deterministic: SQLite may compute it once per row).
    """
    bind = replicas.c.updated_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    params = (bind(judged_before) if bind is not None else judged_before, rse_id)
    sqlite = is_sqlite(conn)
    driver: Any = prepare_snapshot(conn)
    if sqlite:
        cache = driver.execute("PRAGMA cache_size").fetchone()[0]
        driver.execute(f"PRAGMA cache_size = -{SQLITE_SNAPSHOT_CACHE_KIB}")
        cursor = driver.cursor()
    else:
        cursor = driver.cursor(name="lacus_audit_snapshot")
        cursor.itersize = SNAPSHOT_BATCH
    try:
        cursor.execute(snapshot_sql(conn), params)
        while rows := cursor.fetchmany(SNAPSHOT_BATCH):
            yield rows
    finally:
        cursor.close()
        if sqlite:
            driver.execute(f"PRAGMA cache_size = {int(cache)}")


def prepare_snapshot(conn: Connection) -> Any:
    """Ready the transaction of ``conn`` for ``snapshot_sql``; returns the driver's connection.
    PostgreSQL: the sort's memory and parallel workers (``SET LOCAL``: this transaction only);
    SQLite: ``lacus_path`` on the connection."""
    driver: Any = conn.connection.driver_connection
    if is_sqlite(conn):
        driver.create_function("lacus_path", 2, deterministic_path, deterministic=True)
    else:
        with driver.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{SNAPSHOT_WORK_MEM}'")
            cursor.execute(
                f"SET LOCAL max_parallel_workers_per_gather = {SNAPSHOT_PARALLEL_WORKERS}"
            )
    return driver


def _did_of(path: str) -> tuple[str, str] | None:
    """The DID whose deterministic path is ``path``, if it is one."""
    match = _DETERMINISTIC.fullmatch(path)
    if match is None:
        return None
    scope, name = match["scope"], match["name"]
    if scope.startswith(("user/", "group/")):
        scope = scope.replace("/", ".")
    return (scope, name) if deterministic_path(scope, name) == path else None


def _replicas_at(
    conn: Connection, rse_id: int, paths: Sequence[str], *where: ColumnElement[bool]
) -> dict[str, Any]:
    """Path → the replica of the RSE stored there (scope, name, bytes), of ``paths`` (at most
    ``CHUNK``): by DID for a path of the ``hash`` layout (a replica with no stored path, or
    that one), by stored path for any."""
    columns = (replicas.c.scope, replicas.c.name, replicas.c.path, replicas.c.bytes)
    found: dict[str, Any] = {}
    dids = {did: path for path in paths if (did := _did_of(path)) is not None}
    if dids:
        for row in conn.execute(
            select(*columns).where(
                replicas.c.rse_id == rse_id,
                tuple_(replicas.c.scope, replicas.c.name).in_(list(dids)),
                *where,
            )
        ):
            path = dids[(row.scope, row.name)]
            if row.path in (None, path):
                found[path] = row
    for row in conn.execute(
        select(*columns).where(
            replicas.c.rse_id == rse_id, replicas.c.path.in_(list(paths)), *where
        )
    ):
        found.setdefault(row.path, row)
    return found


def confirm_dark(conn: Connection, rse_id: int, found: Sequence[FileStat]) -> list[FileStat]:
    """The files of ``found`` the catalog still does not know on the RSE (second snapshot):
    no replica there at that path, no live request owning a multi-hop scratch copy."""
    dark: list[FileStat] = []
    for start in range(0, len(found), CHUNK):
        part = found[start : start + CHUNK]
        known = _replicas_at(conn, rse_id, [f.path for f in part])
        hops = {_hop_request(f.path) for f in part} - {None}
        live = set(
            conn.execute(select(requests.c.id).where(requests.c.id.in_(hops))).scalars()
            if hops
            else []
        )
        dark.extend(f for f in part if f.path not in known and _hop_request(f.path) not in live)
    return dark


def _hop_request(path: str) -> int | None:
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == HOP_DIR and parts[1].isdigit():
        return int(parts[1])
    return None


def replica_at(conn: Connection, rse_id: int, path: str) -> tuple[str, str] | None:
    """The DID of the replica stored at ``path`` on the RSE, if any."""
    row = _replicas_at(conn, rse_id, [path]).get(path)
    return (str(row.scope), str(row.name)) if row is not None else None


def empty_counts() -> dict[str, int]:
    return {state: 0 for state in ("suspicious", "bad", "unavailable", "lost", "quarantined")}


def doubted_counts(conn: Connection, rse_ids: Sequence[int] | None) -> dict[str, dict[str, int]]:
    """RSE name → replicas now suspicious, bad, unavailable, lost, and files in quarantine."""
    found: dict[str, dict[str, int]] = {}
    query = (
        select(rses.c.rse, replicas.c.state, func.count())
        .join(rses, rses.c.id == replicas.c.rse_id)
        .where(text(NOT_AVAILABLE))
        .group_by(rses.c.rse, replicas.c.state)
    )
    dark = (
        select(rses.c.rse, func.count())
        .select_from(quarantine)
        .join(rses, rses.c.id == quarantine.c.rse_id)
        .group_by(rses.c.rse)
    )
    if rse_ids is not None:
        query = query.where(replicas.c.rse_id.in_(rse_ids))
        dark = dark.where(quarantine.c.rse_id.in_(rse_ids))
    for rse, state, count in conn.execute(query):
        counts = found.setdefault(rse, empty_counts())
        if state in counts:
            counts[state] = int(count)
    for rse, count in conn.execute(dark):
        found.setdefault(rse, empty_counts())["quarantined"] = int(count)
    return found


class LostReplica(NamedTuple):
    """A replica the audit found lost: absent from the storage or there with another size."""

    scope: str
    name: str
    path: str
    bytes: int


def confirm_lost(
    conn: Connection, rse_id: int, found: Sequence[tuple[CatalogEntry, str]], *, before: datetime
) -> list[tuple[LostReplica, str]]:
    """The replicas at the candidates' paths still available, unchanged since ``before``
    (second snapshot), with their DIDs."""
    lost: list[tuple[LostReplica, str]] = []
    for start in range(0, len(found), CHUNK):
        part = found[start : start + CHUNK]
        still = _replicas_at(
            conn,
            rse_id,
            [entry.path for entry, _ in part],
            replicas.c.state == ReplicaState.AVAILABLE.value,
            replicas.c.updated_at < before,
        )
        lost.extend(
            (LostReplica(row.scope, row.name, entry.path, int(row.bytes)), why)
            for entry, why in part
            if (row := still.get(entry.path)) is not None
        )
    return lost


# -- quarantine ---------------------------------------------------------------------------------


def quarantine_files(
    conn: Connection, rse_id: int, files: Sequence[FileStat], *, reason: str, sized: bool = True
) -> int:
    """Record dark files (a file known already keeps its ``found_at``); returns how many new.
    ``sized``: the files' sizes are known (the dark reaper deletes only a file of that size)."""
    now = utcnow()
    new = 0
    for start in range(0, len(files), CHUNK):
        part = files[start : start + CHUNK]
        paths = [f.path for f in part]
        known = set(
            conn.execute(
                select(quarantine.c.path).where(
                    quarantine.c.rse_id == rse_id, quarantine.c.path.in_(paths)
                )
            ).scalars()
        )
        if known:
            conn.execute(
                update(quarantine)
                .where(quarantine.c.rse_id == rse_id, quarantine.c.path.in_(known))
                .values(seen_at=now)
            )
        rows = [
            {
                "rse_id": rse_id,
                "path": f.path,
                "bytes": f.bytes if sized else None,
                "reason": ("temporary file of an unfinished write" if _is_part(f.path) else reason),
                "mtime": datetime.fromtimestamp(f.mtime, UTC).replace(tzinfo=None)
                if sized
                else None,
                "found_at": now,
                "seen_at": now,
            }
            for f in part
            if f.path not in known
        ]
        if rows:
            conn.execute(insert(quarantine), rows)
            new += len(rows)
    return new


def _is_part(path: str) -> bool:
    return bool(is_part_name(path.rpartition("/")[2]))


def forget_unseen(conn: Connection, rse_id: int, *, since: datetime) -> int:
    """Quarantined files an audit started at ``since`` did not find dark again (gone, or
    registered meanwhile) leave the quarantine."""
    return conn.execute(
        delete(quarantine).where(quarantine.c.rse_id == rse_id, quarantine.c.seen_at < since)
    ).rowcount


def list_quarantine(
    conn: Connection, rse_id: int | None = None, *, older_than: datetime | None = None, limit: int
) -> list[Any]:
    query = (
        select(quarantine, rses.c.rse)
        .join(rses, rses.c.id == quarantine.c.rse_id)
        .order_by(quarantine.c.found_at, quarantine.c.path)
        .limit(limit)
    )
    if rse_id is not None:
        query = query.where(quarantine.c.rse_id == rse_id)
    if older_than is not None:
        query = query.where(quarantine.c.found_at < older_than)
    return list(conn.execute(query))


def unquarantine(conn: Connection, rse_id: int, paths: Sequence[str]) -> None:
    for start in range(0, len(paths), CHUNK):
        conn.execute(
            delete(quarantine).where(
                quarantine.c.rse_id == rse_id,
                quarantine.c.path.in_(list(paths[start : start + CHUNK])),
            )
        )


def still_unknown(conn: Connection, rse_id: int, entries: Sequence[Any]) -> list[Any]:
    """Quarantined ``entries`` the catalog still does not know (no replica at their path)."""
    files = [FileStat(e.path, e.bytes or 0, 0.0) for e in entries]
    unknown = {f.path for f in confirm_dark(conn, rse_id, files)}
    return [e for e in entries if e.path in unknown]


def grace_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


# -- reads for the dashboard and the metrics ---------------------------------------------------


def count_lost_files(conn: Connection) -> int:
    """Files with no good copy left: a replica ``lost`` and none available anywhere (found
    through the partial index of the replicas not available)."""
    good = replicas.alias("good")
    lost = (
        select(replicas.c.scope, replicas.c.name)
        .where(
            text(NOT_AVAILABLE),
            replicas.c.state == ReplicaState.LOST.value,
            ~exists().where(
                good.c.scope == replicas.c.scope,
                good.c.name == replicas.c.name,
                good.c.state == ReplicaState.AVAILABLE.value,
            ),
        )
        .distinct()
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(lost)).scalar_one())


def last_finished(conn: Connection) -> dict[tuple[str, str], datetime]:
    """(RSE name, kind) → when its last run that finished (not aborted, not failed) ended."""
    query = (
        select(rses.c.rse, audits.c.kind, func.max(audits.c.finished_at))
        .join(rses, rses.c.id == audits.c.rse_id)
        .where(audits.c.state == "finished")
        .group_by(rses.c.rse, audits.c.kind)
    )
    return {(rse, kind): when for rse, kind, when in conn.execute(query) if when is not None}
