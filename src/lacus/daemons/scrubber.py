"""The scrubber: stored bytes are read again and checked against the catalog, for ever.

Per RSE, a *round* verifies every replica that was available when it started and has not been
verified since (never-verified first, then the oldest verified): it reads the bytes whole
through the RSE's backend, checks size, adler32 and md5 where the catalog has one, and records
``verified_at``. A replica found missing or different is declared ``bad`` (the necromancer
copies it again from a good copy). A round reads at most ``scrub_mb_per_second`` from its RSE;
the next round starts ``scrub_interval_days`` after the last one started. A storage that fails
(not a missing file: the server itself) ends the pass for that RSE, which is tried again a
minute later. One scrubber works on an RSE at a time (a claim with a lease); several scrubbers
share the RSEs. ``--once`` finishes a round on every RSE that is due.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from lacus.core import audits, integrity
from lacus.core.clock import utcnow
from lacus.core.integrity import Declaration
from lacus.core.rses import list_rses
from lacus.daemons.necromancer import judge
from lacus.db.tables import replicas
from lacus.errors import LacusError
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse, close_backend
from lacus.storage import StorageBackend
from lacus.types import ReplicaState, RSEInfo

log = logging.getLogger("lacus.daemons.scrubber")
LEASE_SECONDS = 120.0
PASS_SECONDS = 10.0
BATCH = 200
RETRY_SECONDS = 60.0


def due(conn: Connection) -> bool:
    return audits.due_work(conn, audits.SCRUB)


def scrubber_pass(lake: Lake, worker: str) -> int:
    """Scrub one RSE for up to PASS_SECONDS; returns how many replicas were verified (at least
    1 when an RSE was claimed: a round that found nothing left still did work)."""
    with lake.write() as conn:
        work = audits.claim_rse(conn, audits.SCRUB, worker=worker, lease_seconds=LEASE_SECONDS)
        if work is None:
            return 0
        run = audits.get_run(conn, work.audit_id) if work.audit_id else None
        if run is None or run.state != "running":
            run = audits.get_run(
                conn, audits.start_run(conn, work.rse_id, audits.SCRUB, worker=worker)
            )
        info = next((i for i in list_rses(conn) if i["id"] == work.rse_id), None)
    assert run is not None
    if info is None or not info["protocols"]:
        _finish(lake, work, run, worker, detail="no protocol: nothing to read")
        return 1
    try:
        scrub = _Scrub(lake, info, run, worker)
        verified, finished = scrub.run(work)
    except LacusError as exc:
        log.warning("%s: cannot scrub %s: %s", worker, info["rse"], exc)
        with lake.write() as conn:
            audits.release(
                conn,
                work,
                worker=worker,
                next_at=utcnow() + timedelta(seconds=RETRY_SECONDS),
                audit_id=run.id,
            )
        return 0
    if finished:
        _finish(lake, work, run, worker)
    else:
        with lake.write() as conn:
            audits.release(conn, work, worker=worker, next_at=None, audit_id=run.id)
    return max(verified, 1)


def _finish(lake: Lake, work: Any, run: Any, worker: str, *, detail: str | None = None) -> None:
    interval = timedelta(days=lake.settings.scrub_interval_days)
    with lake.write() as conn:
        audits.end_run(conn, run.id, state="finished", detail=detail)
        audits.release(
            conn, work, worker=worker, next_at=run.round_started_at + interval, audit_id=None
        )


class _Scrub:
    """One pass over one RSE: read, judge, record."""

    def __init__(self, lake: Lake, info: RSEInfo, run: Any, worker: str) -> None:
        self.lake = lake
        self.info = info
        self.run_row = run
        self.worker = worker
        self.rate = lake.settings.scrub_mb_per_second * 1_000_000
        self.read = 0
        self.started = time.monotonic()

    def run(self, work: Any) -> tuple[int, bool]:
        """(replicas verified, whether the round is over)."""
        backend = backend_for_rse(self.info)
        verified = 0
        try:
            while time.monotonic() - self.started < PASS_SECONDS:
                with self.lake.read() as conn:
                    rows = _due(conn, self.info["id"], self.run_row.round_started_at)
                if not rows:
                    return verified, True
                done, still_ours = self._batch(backend, rows, work)
                verified += done
                if not still_ours:
                    return verified, False
        finally:
            close_backend(backend)
        return verified, False

    def _batch(self, backend: StorageBackend, rows: list[Any], work: Any) -> tuple[int, bool]:
        """Read and judge ``rows``, then record them and renew the lease on ``work`` in one
        transaction: (replicas judged, whether the work is still this worker's)."""
        good: list[Any] = []
        bad: list[Declaration] = []
        failure: str | None = None
        for row in rows:
            problem = judge(backend, row, pace=self._pace)
            if problem is None:
                good.append(row)
            elif problem:
                bad.append(Declaration(row.scope, row.name, row.rse_id, f"scrub: {problem}"))
            else:
                failure = f"the storage failed reading {row.scope}:{row.name}"
                break
            if time.monotonic() - self.started > PASS_SECONDS:
                break
        now = utcnow()
        with self.lake.write() as conn:
            if good:  # one executemany: a statement per replica costs more than the reads
                conn.execute(
                    update(replicas)
                    .where(
                        replicas.c.scope == bindparam("s"),
                        replicas.c.name == bindparam("n"),
                        replicas.c.rse_id == bindparam("r"),
                        replicas.c.created_at == bindparam("c"),
                        replicas.c.state == ReplicaState.AVAILABLE.value,
                    )
                    .values(verified_at=now),
                    [
                        {"s": row.scope, "n": row.name, "r": row.rse_id, "c": row.created_at}
                        for row in good
                    ],
                )
            declared = integrity.declare(conn, bad, ReplicaState.BAD, account="root")
            audits.add_counts(
                conn,
                self.run_row.id,
                files=len(good) + len(bad),
                bad=len(declared),
                bytes_verified=sum(row.bytes for row in good),
            )
            still_ours = audits.renew(conn, work, worker=self.worker, lease_seconds=LEASE_SECONDS)
        if declared:
            self.lake.wake("necromancer")
        if failure is not None:
            raise LacusError(failure)
        return len(good) + len(bad), still_ours

    def _pace(self, size: int) -> None:
        """Sleep so that this pass reads at most ``scrub_mb_per_second``."""
        self.read += size
        if self.rate <= 0:
            return
        ahead = self.read / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


def _due(conn: Connection, rse_id: int, round_started: datetime) -> list[Any]:
    """The next replicas of the round: available since before it, never verified first, then
    the longest unverified (both through the index on RSE and ``verified_at``)."""
    for older in (replicas.c.verified_at.is_(None), replicas.c.verified_at < round_started):
        rows = list(
            conn.execute(
                select(replicas)
                .where(
                    replicas.c.rse_id == rse_id,
                    older,
                    replicas.c.state == ReplicaState.AVAILABLE.value,
                    replicas.c.created_at < round_started,
                )
                .order_by(replicas.c.verified_at)
                .limit(BATCH)
            )
        )
        if rows:
            return rows
    return []
