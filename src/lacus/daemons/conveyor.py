"""The conveyor (first cut): copies the files transfer requests ask for, POSIX to POSIX today.

A pass claims due requests (queued, ``next_attempt_at`` empty or past) with a lease, highest
priority first, then handles each outside any transaction: it picks a source (an available
replica on a readable RSE other than the destination, within the request's
``source_replica_expression``), streams it into the destination and has the destination read the
bytes back (``write_verified`` against the request's size and adler32: a ``VerifyingBackend``
reads back while writing, any other is asked for ``stat`` and ``checksum`` afterwards). Only then
does a write transaction — while this worker's claim still holds — register the replica
(``transfer_done``). A failure (no source, storage error, checksum mismatch) leaves no bytes at
the destination and is retried with exponential backoff until ``transfer_max_attempts``, after
which the locks are ``stuck`` (``transfer_failed``) and the repairer takes over.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO, cast

from sqlalchemy import Connection, and_, exists, or_, select, update

from lacus.checksums import Checksums
from lacus.core import claims
from lacus.core.clock import utcnow
from lacus.core.expressions import resolve
from lacus.core.replicas import replica_path
from lacus.core.rses import get_rse, rse_attribute_map
from lacus.core.transfers import transfer_done, transfer_failed
from lacus.db.tables import replicas, requests, rses
from lacus.errors import LacusError, StorageFileNotFound
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse
from lacus.storage import StorageBackend, write_verified
from lacus.types import ReplicaState, RequestState, RSEInfo

log = logging.getLogger("lacus.daemons.conveyor")
BATCH = 20
DEFER_SECONDS = 30.0
"""Pause of a request whose destination holds a replica row already (being deleted, or being
registered by someone else): not an attempt, just not now."""


def due() -> Any:
    """Requests the conveyor may start now."""
    return and_(
        requests.c.state == RequestState.QUEUED.value,
        or_(requests.c.next_attempt_at.is_(None), requests.c.next_attempt_at <= utcnow()),
    )


def pending(conn: Connection) -> bool:
    return bool(conn.execute(select(exists().where(due(), claims.claimable(requests)))).scalar())


def conveyor_pass(lake: Lake, worker: str) -> int:
    lease = lake.settings.claim_lease_seconds
    with lake.write() as conn:
        claimed = claims.claim(
            conn,
            requests,
            worker=worker,
            limit=BATCH,
            lease_seconds=lease,
            where=due(),
            order_by=(requests.c.priority.desc(), requests.c.id),
        )
    backends: dict[str, StorageBackend] = {}
    for request in claimed:
        try:
            _handle(lake, worker, request.id, backends)
        except Exception:  # one bad request must not stop the others
            log.exception("%s: transfer request %s failed unexpectedly", worker, request.id)
            with contextlib.suppress(Exception), lake.write() as conn:
                _fail(lake, conn, worker, request.id, "internal error of the conveyor")
    return len(claimed)


@dataclass
class _Plan:
    request: Any
    dest: RSEInfo
    dest_path: str
    stored_path: str | None
    sources: list[tuple[RSEInfo, str]] = field(default_factory=list)
    problem: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.monotonic)
    source_rse_id: int | None = None
    """The source copied from (or, after a failure, the last one tried)."""

    def attempt(self) -> dict[str, Any]:
        """What the transfer history records of this attempt (``transfer_done``/``failed``)."""
        return {
            "source_rse_id": self.source_rse_id,
            "started_at": self.started_at,
            "duration": time.monotonic() - self.started,
        }


def _handle(lake: Lake, worker: str, request_id: int, backends: dict[str, StorageBackend]) -> None:
    with lake.write() as conn:
        plan = _prepare(lake, conn, worker, request_id)
    if plan is None:
        return
    if plan.problem is not None:
        with lake.write() as conn:
            _fail(lake, conn, worker, request_id, plan.problem, **plan.attempt())
        return
    request = plan.request
    expected = Checksums(bytes=request.bytes, adler32=request.adler32, md5=request.md5)
    errors: list[str] = []
    copied = False
    for source, source_path in plan.sources:
        plan.source_rse_id = source["id"]
        try:
            source_backend = _backend(backends, source)
            dest_backend = _backend(backends, plan.dest)
            write_verified(
                dest_backend,
                plan.dest_path,
                cast(BinaryIO, _ChunkReader(source_backend.get(source_path))),
                md5=request.md5 is not None,
                expected=expected,
                overwrite=True,  # no replica row at the destination: a stray or stale file
            )
            copied = True
            break
        except StorageFileNotFound as exc:
            errors.append(f"from {source['rse']}: source file missing: {exc}")
        except LacusError as exc:
            errors.append(f"from {source['rse']}: {exc}")
    if not copied:
        with lake.write() as conn:
            _fail(
                lake, conn, worker, request_id, "; ".join(errors) or "no source", **plan.attempt()
            )
        return
    _finish(lake, worker, plan, backends)


def _prepare(lake: Lake, conn: Connection, worker: str, request_id: int) -> _Plan | None:
    """Renew the claim, choose the sources; None when the request is no longer ours."""
    renewed = conn.execute(
        update(requests)
        .where(requests.c.id == request_id, requests.c.claimed_by == worker)
        .values(lease_until=_lease_end(lake))
    ).rowcount
    request = conn.execute(select(requests).where(requests.c.id == request_id)).first()
    if not renewed or request is None:
        return None
    dest_name = conn.execute(select(rses.c.rse).where(rses.c.id == request.dest_rse_id)).scalar()
    dest = get_rse(conn, str(dest_name))
    path = deterministic_path(request.scope, request.name)
    plan = _Plan(request, dest, path, None if dest["deterministic"] else path)
    there = conn.execute(
        select(replicas.c.state).where(
            replicas.c.scope == request.scope,
            replicas.c.name == request.name,
            replicas.c.rse_id == request.dest_rse_id,
        )
    ).scalar()
    if there is not None:  # never write over bytes the catalog knows: wait for them to settle
        _defer(
            conn,
            request_id,
            f"a replica on {dest['rse']} is {there} already; waiting for it",
        )
        return None
    allowed: set[str] | None = None
    if request.source_replica_expression:
        try:
            allowed = set(resolve(request.source_replica_expression, rse_attribute_map(conn)))
        except LacusError as exc:
            plan.problem = f"no source: {exc}"
            return plan
    rows = conn.execute(
        select(rses.c.rse, replicas.c.path)
        .join(rses, rses.c.id == replicas.c.rse_id)
        .where(
            replicas.c.scope == request.scope,
            replicas.c.name == request.name,
            replicas.c.state == ReplicaState.AVAILABLE.value,
            replicas.c.rse_id != request.dest_rse_id,
            rses.c.availability_read.is_(True),
        )
        .order_by(rses.c.rse)
    )
    for row in rows:
        if allowed is None or row.rse in allowed:
            plan.sources.append(
                (get_rse(conn, row.rse), replica_path(request.scope, request.name, row.path))
            )
    if not plan.sources:
        within = "" if allowed is None else f" within {request.source_replica_expression!r}"
        plan.problem = f"no source: no available, readable replica{within} outside {dest['rse']}"
    return plan


def _finish(lake: Lake, worker: str, plan: _Plan, backends: dict[str, StorageBackend]) -> None:
    """Register the verified copy if the request is still ours; else take the bytes back."""
    request = plan.request
    try:
        with lake.write() as conn:
            ours = conn.execute(
                select(exists().where(requests.c.id == request.id, requests.c.claimed_by == worker))
            ).scalar()
            if ours:
                transfer_done(conn, request.id, path=plan.stored_path, **plan.attempt())
                return
            registered = _registered_at_dest(conn, request)
            if registered:  # another way brought the file there: those are its bytes now
                return
            # The request is gone (its rule was deleted) or another worker has it: what we wrote
            # is nobody's replica. Deleted while the transaction holds.
            if conn.execute(select(exists().where(requests.c.id == request.id))).scalar():
                return  # another worker's claim: it writes the same verified bytes there
            _delete_quietly(backends, plan)
    except Exception as exc:
        log.exception("%s: registering transfer %s failed", worker, request.id)
        with lake.write() as conn:
            if not _registered_at_dest(conn, request):
                _delete_quietly(backends, plan)
            _fail(lake, conn, worker, request.id, f"registration failed: {exc}", **plan.attempt())


def _registered_at_dest(conn: Connection, request: Any) -> bool:
    return bool(
        conn.execute(
            select(
                exists().where(
                    replicas.c.scope == request.scope,
                    replicas.c.name == request.name,
                    replicas.c.rse_id == request.dest_rse_id,
                )
            )
        ).scalar()
    )


def _fail(
    lake: Lake, conn: Connection, worker: str, request_id: int, error: str, **attempt: Any
) -> None:
    """One attempt failed: retry with backoff, or give up (locks stuck). Only while ours.
    ``attempt``: the source, start and duration for the transfer history."""
    request = conn.execute(
        select(requests).where(requests.c.id == request_id, requests.c.claimed_by == worker)
    ).first()
    if request is None:
        return
    settings = lake.settings
    retry_in: float | None = None
    if request.attempts + 1 < settings.transfer_max_attempts:
        retry_in = float(min(2**request.attempts, settings.transfer_retry_max_seconds))
    log.warning(
        "transfer request %s failed (attempt %d): %s", request_id, request.attempts + 1, error
    )
    transfer_failed(conn, request_id, error, retry_in=retry_in, **attempt)
    if retry_in is None:
        lake.wake("repairer")


def _defer(conn: Connection, request_id: int, reason: str) -> None:
    now = utcnow()
    conn.execute(
        update(requests)
        .where(requests.c.id == request_id)
        .values(
            next_attempt_at=now + timedelta(seconds=DEFER_SECONDS),
            last_error=reason[:1000],
            claimed_by=None,
            lease_until=None,
            updated_at=now,
        )
    )


def _lease_end(lake: Lake) -> datetime:
    return utcnow() + timedelta(seconds=lake.settings.claim_lease_seconds)


def _backend(backends: dict[str, StorageBackend], info: RSEInfo) -> StorageBackend:
    backend = backends.get(info["rse"])
    if backend is None:
        backend = backends[info["rse"]] = backend_for_rse(info)
    return backend


def _delete_quietly(backends: dict[str, StorageBackend], plan: _Plan) -> None:
    with contextlib.suppress(LacusError):
        _backend(backends, plan.dest).delete(plan.dest_path)


class _ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of chunks (a source backend's ``get``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()
