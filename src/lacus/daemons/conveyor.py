"""The conveyor: brings the files transfer requests ask for to their destinations, many at once.

One pass of a worker:

1. **claim** due requests (queued, ``next_attempt_at`` past; or submitted by a worker whose lease
   ran out), highest priority first, with a lease (shared safely by many processes);
2. **plan** them in the same transaction, set-based: the usable source replicas of every file,
   ranked by ``core.sources.routes`` (not-yet-failed sources first, distance, success rate of the
   link); multi-hop through an RSE with ``available_for_multihop=true`` when no source is linked
   to the destination. Requests become ``submitted`` with the chosen source;
3. **copy** in a thread pool, at most ``transfer_threads`` at once and within the per-link and
   per-RSE limits (``daemons.slots``), higher priority first on every link. Each copy is
   ``storage.copy_verified``: third-party when both storages can, else streamed through this
   process with bounded memory; verified (size, adler32, md5 when known) before anything is
   registered. A source found missing or corrupt is declared bad and the next source is tried;
4. **finish** in batches, in a thread of its own (``daemons.batcher``: copies go on starting
   meanwhile): one write transaction registers every verified copy
   (``core.transfers.transfers_done``) while this worker's claims hold, and schedules retries with
   exponential backoff for failures (after ``transfer_max_attempts`` the locks go ``stuck`` and
   the repairer takes over). A copy whose request vanished meanwhile (its rule was deleted) is
   removed from the destination.

Claims (with their plans) and registrations run in threads of their own: the dispatching thread
only starts copies as slots free up, so the copies never wait for the catalog. A pass keeps
claiming while it has room for up to ``PASS_SECONDS``, then finishes what it has; leases are
renewed while copies run. A worker killed at any point loses nothing: unregistered
bytes are never a replica, and its requests are claimed again once their leases run out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, or_, select, update

from lacus.checksums import Checksums
from lacus.core import claims, integrity
from lacus.core.clock import utcnow
from lacus.core.dids import names_by_scope
from lacus.core.distances import Links, load_links
from lacus.core.expressions import resolve
from lacus.core.integrity import Declaration
from lacus.core.locks import replicas_arrived
from lacus.core.replicas import replica_path
from lacus.core.rses import list_rses, rse_attribute_map
from lacus.core.sources import Replica, Route, routes
from lacus.core.transfers import (
    Attempt,
    failed_sources,
    link_success,
    transfer_failed,
    transfers_done,
)
from lacus.daemons.batcher import Batcher
from lacus.daemons.slots import Slots
from lacus.db.tables import replicas, requests
from lacus.errors import LacusError, SourceCorrupted, SourceFileMissing, StorageError
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse
from lacus.storage import RemovesTemporaries, StorageBackend, copy_verified
from lacus.types import ReplicaState, RequestState, RSEInfo

log = logging.getLogger("lacus.daemons.conveyor")
CLAIM_BATCH = 200
PASS_SECONDS = 5.0
FLUSH_SECONDS = 1.0
"""A finished copy waits at most this long (plus the registration before it) to be registered.
Registrations run in a thread of their own, so dispatching never waits for them; each costs
tens of milliseconds whatever its size (~70 ms on PostgreSQL, ~25 ms on SQLite) and a commit
whose fsync competes with the copies' own: fewer, larger ones leave more to the copies (10,000
1 KiB files, PostgreSQL: 475 files/s at 0.25 s, 523 at 1 s; benchmarks/RESULTS.md)."""
FLUSH_ITEMS = 500
TICK_SECONDS = 0.25
"""The dispatcher looks at its leases at least this often while copies run."""
SUCCESS_WINDOW = timedelta(hours=6)
DEFER_SECONDS = 30.0
"""Pause of a request whose destination holds a replica row already (being deleted, or being
registered by someone else): not an attempt, just not now."""
HOP_DIR = ".lacus-hop"
MULTIHOP = "available_for_multihop"
RSE_MAX_ACTIVE = "max_active_transfers"


def due() -> Any:
    """Requests the conveyor may start now (claimable: no live lease, see ``claims``)."""
    return or_(
        and_(
            requests.c.state == RequestState.QUEUED.value,
            or_(requests.c.next_attempt_at.is_(None), requests.c.next_attempt_at <= utcnow()),
        ),
        requests.c.state == RequestState.SUBMITTED.value,  # its worker's lease ran out
    )


def pending(conn: Connection) -> bool:
    return bool(conn.execute(select(exists().where(due(), claims.claimable(requests)))).scalar())


def conveyor_pass(lake: Lake, worker: str) -> int:
    return _Pass(lake, worker).run()


@dataclass
class Job:
    """One claimed request and how to serve it."""

    request: Any
    dest: RSEInfo
    dest_path: str
    stored_path: str | None
    routes: list[Route] = field(default_factory=list)


@dataclass
class Claimed:
    """What one claim brought: requests claimed, jobs to copy, requests dealt with at once
    (deferred, or failed for want of a source or a writable destination)."""

    rows: int = 0
    jobs: list[Job] = field(default_factory=list)
    handled: int = 0


@dataclass
class Outcome:
    job: Job
    ok: bool
    error: str | None = None
    source_rse_id: int | None = None
    method: str | None = None
    bad: list[tuple[str, str, int, str, bool]] = field(default_factory=list)
    """Sources at fault: scope, name, RSE id, why, and whether the file was missing."""
    started_at: datetime = field(default_factory=utcnow)
    duration: float = 0.0


class _Pass:
    def __init__(self, lake: Lake, worker: str) -> None:
        self.lake = lake
        self.worker = worker
        settings = lake.settings
        self.capacity = max(CLAIM_BATCH, settings.transfer_threads * 4)
        self.pool = ThreadPoolExecutor(settings.transfer_threads, "lacus-transfer")
        self.claimer = ThreadPoolExecutor(1, "lacus-claim")
        self.claiming: tuple[Future[Claimed], int] | None = None
        self.waiting: list[Job] = []
        self.running: dict[Future[Outcome], tuple[Job, tuple[int, int]]] = {}
        self.registrar = Batcher(
            self._register, interval=FLUSH_SECONDS, max_items=FLUSH_ITEMS, name="lacus-register"
        )
        self.handled = 0  # by the dispatching thread (what claims dealt with at once)
        self.registered = 0  # by the registering thread
        self.rses: dict[int, RSEInfo] = {}
        self.links: Links | None = None
        self.success: dict[tuple[int, int], float] = {}
        self.slots = Slots(self._link_limit, self._rse_limit)
        self.local = threading.local()
        self.opened: list[StorageBackend] = []
        self.last_renewal = time.monotonic()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        exhausted = False
        try:
            while True:
                may_claim = not exhausted and time.monotonic() - started < PASS_SECONDS
                if self.claiming is not None and self.claiming[0].done():
                    exhausted = self._take_claimed() or exhausted
                    continue
                outstanding = len(self.waiting) + len(self.running)
                if may_claim and self.claiming is None and outstanding <= self.capacity // 2:
                    wanted = self.capacity - outstanding
                    self.claiming = (self.claimer.submit(self._claim, wanted), wanted)
                self._dispatch()
                if not self.running and self.claiming is None:
                    if not may_claim or exhausted:
                        break
                    continue
                waited: list[Future[Any]] = [*self.running]
                if self.claiming is not None:
                    waited.append(self.claiming[0])
                done, _ = wait(waited, timeout=TICK_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    if future in self.running:
                        job, link = self.running.pop(future)
                        self.slots.give_back(*link)
                        self._finished(future, job)
                self._renew_leases()
        except BaseException:
            with contextlib.suppress(Exception):
                self._wind_up()
            raise
        else:
            self._wind_up()
        return self.handled + self.registered

    def _take_claimed(self) -> bool:
        """Add the jobs of the claim that finished to those waiting; whether the queue ran dry."""
        assert self.claiming is not None
        future, wanted = self.claiming
        self.claiming = None
        claimed = future.result()
        self.handled += claimed.handled
        if claimed.jobs:
            self.waiting.extend(claimed.jobs)
            self.waiting.sort(key=lambda job: (-job.request.priority, job.request.id))
        return claimed.rows < wanted

    def _wind_up(self) -> None:
        """Let the copies end and register them, give back what was not started, close the
        storage connections; raise when the registrations failed."""
        try:
            self.claimer.shutdown(wait=True)
            if self.claiming is not None:  # its jobs are given back with the others
                with contextlib.suppress(Exception):
                    self._take_claimed()
            self.pool.shutdown(wait=True)
            for future, (job, _) in list(self.running.items()):
                self._finished(future, job)
            self.running.clear()
        finally:
            try:
                self.registrar.close()
            finally:
                self._give_back_and_close()

    def _give_back_and_close(self) -> None:
        if self.waiting:  # an error stopped the pass: give the rest back at once
            with contextlib.suppress(Exception), self.lake.write() as conn:
                self._requeue(conn, [job.request.id for job in self.waiting])
        for backend in self.opened:  # connections to storage servers end with the pass
            close = getattr(backend, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _finished(self, future: Future[Outcome], job: Job) -> None:
        """Hand a finished copy over to be registered (it stays claimed until then)."""
        try:
            outcome = future.result()
        except BaseException as exc:  # the copy function itself failed: never lose the request
            log.exception("%s: transfer of request %s failed", self.worker, job.request.id)
            outcome = Outcome(job, ok=False, error=f"internal error of the conveyor: {exc}")
        self.registrar.put(outcome)

    # -- claim and plan ---------------------------------------------------------------------

    def _claim(self, limit: int) -> Claimed:
        """Claim up to ``limit`` requests and plan them (in the claiming thread)."""
        claimed = Claimed()
        with self.lake.write() as conn:
            rows = claims.claim(
                conn,
                requests,
                worker=self.worker,
                limit=limit,
                lease_seconds=self.lake.settings.claim_lease_seconds,
                where=due(),
                order_by=(requests.c.priority.desc(), requests.c.id),
            )
            claimed.rows = len(rows)
            if rows:
                self._plan(conn, rows, claimed)
        return claimed

    def _plan(self, conn: Connection, rows: list[Any], claimed: Claimed) -> None:
        if self.links is None:
            self.links = load_links(conn)
            self.success = link_success(conn, since=utcnow() - SUCCESS_WINDOW)
        self.rses = {info["id"]: info for info in list_rses(conn)}
        keys = list({(row.scope, row.name) for row in rows})
        present = _replicas_of(conn, keys)
        failed = failed_sources(conn, [row.id for row in rows])
        hop_ids = [
            rse_id
            for rse_id, info in self.rses.items()
            if info["attributes"].get(MULTIHOP, "").lower() == "true"
            and info["availability_write"]
            and not info.get("read_only", False)
        ]
        expressions: dict[str, set[str] | LacusError] = {}
        attributes: dict[str, dict[str, str]] | None = None
        submitted: list[dict[str, Any]] = []
        deferred: list[tuple[int, str]] = []
        problems: list[tuple[int, str]] = []
        arrived: dict[int, list[tuple[str, str]]] = {}
        for row in rows:
            dest = self.rses[row.dest_rse_id]
            there = present.get((row.scope, row.name), {})
            state_there = there.get(row.dest_rse_id, (None, None))[0]
            if state_there == ReplicaState.AVAILABLE.value:
                # there already (it arrived while the rule was being evaluated): done, no copy
                arrived.setdefault(row.dest_rse_id, []).append((row.scope, row.name))
                continue
            if state_there is not None and state_there != ReplicaState.BAD.value:
                deferred.append((row.id, f"a replica on {dest['rse']} is {state_there} already"))
                continue
            if dest.get("read_only", False):
                problems.append((row.id, f"{dest['rse']} is read-only: Lacus never writes there"))
                continue
            if not dest["availability_write"]:
                problems.append((row.id, f"{dest['rse']} is not available for writing"))
                continue
            allowed: set[str] | None = None
            if row.source_replica_expression:
                expression = row.source_replica_expression
                if expression not in expressions:
                    attributes = attributes or rse_attribute_map(conn)
                    try:
                        expressions[expression] = set(resolve(expression, attributes))
                    except LacusError as exc:
                        expressions[expression] = exc
                resolved = expressions[expression]
                if isinstance(resolved, LacusError):
                    problems.append((row.id, f"no source: {resolved}"))
                    continue
                allowed = resolved
            usable = [
                Replica(rse_id, self.rses[rse_id]["rse"], replica_path(row.scope, row.name, path))
                for rse_id, (state, path) in there.items()
                if state == ReplicaState.AVAILABLE.value
                and rse_id != row.dest_rse_id
                and self.rses[rse_id]["availability_read"]
                and (allowed is None or self.rses[rse_id]["rse"] in allowed)
            ]
            found = routes(
                usable,
                row.dest_rse_id,
                distance=self.links.distance,
                success=self.success,
                failed_sources=frozenset(failed.get(row.id, ())),
                hops=hop_ids,
            )
            if not found:
                within = "" if allowed is None else f" within {row.source_replica_expression!r}"
                reason = (
                    f"no source: no available, readable replica{within} outside {dest['rse']}"
                    if not usable
                    else f"no source: no link from {', '.join(r.rse for r in usable)} "
                    f"to {dest['rse']} (see 'lacus rse distance list')"
                )
                problems.append((row.id, reason))
                continue
            path = deterministic_path(row.scope, row.name)
            job = Job(row, dest, path, None if dest["deterministic"] else path, found)
            claimed.jobs.append(job)
            submitted.append({"request_id": row.id, "source": found[0].source.rse_id})
        if submitted:
            conn.execute(
                update(requests)
                .where(requests.c.id == bindparam("request_id"))
                .values(
                    state=RequestState.SUBMITTED.value,
                    source_rse_id=bindparam("source"),
                    updated_at=utcnow(),
                ),
                submitted,
            )
        for request_id, reason in deferred:
            _defer(conn, request_id, reason)
        for request_id, reason in problems:
            self._fail(conn, request_id, reason)
        for dest_rse_id, keys in arrived.items():  # locks ok, requests dropped
            replicas_arrived(conn, dest_rse_id, keys)
        claimed.handled = len(deferred) + len(problems) + sum(map(len, arrived.values()))

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start waiting jobs whose first link has room, in priority order."""
        still: list[Job] = []
        full: set[tuple[int, int]] = set()  # no slot frees up during this loop
        for job in self.waiting:
            route = job.routes[0]
            link = (route.source.rse_id, route.hops[0] if route.hops else job.dest["id"])
            if link not in full and self.slots.try_take(*link):
                future = self.pool.submit(self._execute, job)
                self.running[future] = (job, link)
            else:
                full.add(link)
                still.append(job)
        self.waiting = still

    def _link_limit(self, source: int, dest: int) -> int:
        limit = self.links.max_active(source, dest) if self.links is not None else None
        if limit is None:
            limit = self.lake.settings.transfer_link_max_active
        return max(limit, 1)  # a link with a job waiting always gets one copy going

    def _rse_limit(self, rse_id: int) -> int:
        info = self.rses.get(rse_id)
        value = info["attributes"].get(RSE_MAX_ACTIVE) if info is not None else None
        if value is not None and value.isdigit():
            return max(int(value), 1)
        return self.lake.settings.transfer_rse_max_active

    # -- copy (in the pool's threads) -------------------------------------------------------

    def _execute(self, job: Job) -> Outcome:
        request = job.request
        expected = Checksums(bytes=request.bytes, adler32=request.adler32, md5=request.md5)
        started_at, started = utcnow(), time.monotonic()
        errors: list[str] = []
        bad: list[tuple[str, str, int, str, bool]] = []
        source_id: int | None = None
        if _retried(request):
            self._remove_temporaries(job.dest, job.dest_path)
        for route in job.routes:
            source_id = route.source.rse_id
            try:
                method = self._copy(job, route, expected)
            except (SourceFileMissing, SourceCorrupted) as exc:
                missing = isinstance(exc, SourceFileMissing)
                bad.append((request.scope, request.name, source_id, str(exc), missing))
                errors.append(f"from {route.source.rse}: {exc}")
                continue
            except LacusError as exc:
                errors.append(f"from {route.source.rse}: {exc}")
                break
            return Outcome(
                job,
                ok=True,
                source_rse_id=source_id,
                method=method,
                bad=bad,
                started_at=started_at,
                duration=time.monotonic() - started,
            )
        return Outcome(
            job,
            ok=False,
            error="; ".join(errors) or "no source",
            source_rse_id=source_id,
            bad=bad,
            started_at=started_at,
            duration=time.monotonic() - started,
        )

    def _copy(self, job: Job, route: Route, expected: Checksums) -> str:
        third_party = self.lake.settings.transfer_third_party
        source = self._backend(self.rses[route.source.rse_id])
        dest = self._backend(job.dest)
        if not route.hops:
            return copy_verified(
                source, route.source.path, dest, job.dest_path, expected=expected,
                third_party=third_party,
            )  # fmt: skip
        hop_info = self.rses[route.hops[0]]
        hop = self._backend(hop_info)
        hop_path = f"{HOP_DIR}/{job.request.id}/{job.dest_path}"
        if _retried(job.request):
            self._remove_temporaries(hop_info, hop_path)
        try:
            first = copy_verified(
                source, route.source.path, hop, hop_path, expected=expected,
                third_party=third_party,
            )  # fmt: skip
            try:
                second = copy_verified(
                    hop, hop_path, dest, job.dest_path, expected=expected, third_party=third_party
                )
            except (SourceFileMissing, SourceCorrupted) as exc:  # the hop's fault, not the source's
                raise StorageError(f"via {hop_info['rse']}: {exc}") from exc
        finally:
            with contextlib.suppress(LacusError):
                hop.delete(hop_path)
        return f"multihop via {hop_info['rse']} ({first}, then {second})"

    def _remove_temporaries(self, info: RSEInfo, path: str) -> None:
        """Temporary files an earlier attempt left at ``path`` (its worker was killed mid-put):
        nobody else writes there now, this worker holds the request."""
        backend = self._backend(info)
        if isinstance(backend, RemovesTemporaries):
            with contextlib.suppress(LacusError):  # the copy will say what is wrong
                if removed := backend.remove_temporaries(path):
                    log.info("%s: %d temporary file(s) left at %s/%s removed",
                             self.worker, removed, backend.url, path)  # fmt: skip

    def _backend(self, info: RSEInfo) -> StorageBackend:
        cache: dict[str, StorageBackend] | None = getattr(self.local, "backends", None)
        if cache is None:
            cache = self.local.backends = {}
        backend = cache.get(info["rse"])
        if backend is None:
            backend = cache[info["rse"]] = backend_for_rse(info)
            self.opened.append(backend)  # list.append is atomic: no lock needed
        return backend

    # -- finish (in the registering thread) --------------------------------------------------

    def _register(self, outcomes: list[Outcome]) -> None:
        by_id = {outcome.job.request.id: outcome for outcome in outcomes}
        orphans: list[Job] = []
        with self.lake.write() as conn:
            ours = _still_ours(conn, list(by_id), self.worker)
            bad = [item for outcome in outcomes for item in outcome.bad]
            done = [
                Attempt(
                    outcome.job.request.id,
                    outcome.source_rse_id,
                    outcome.started_at,
                    outcome.duration,
                    outcome.job.stored_path,
                    outcome.method,
                )
                for outcome in outcomes
                if outcome.ok and outcome.job.request.id in ours
            ]
            transfers_done(conn, done)
            for outcome in outcomes:
                request_id = outcome.job.request.id
                if outcome.ok and request_id not in ours:
                    orphans.append(outcome.job)
                elif not outcome.ok and request_id in ours:
                    self._fail(
                        conn,
                        request_id,
                        outcome.error or "failed",
                        source_rse_id=outcome.source_rse_id,
                        started_at=outcome.started_at,
                        duration=outcome.duration,
                    )
            if bad:
                self._report(conn, bad)
            if orphans:
                self._take_back(conn, orphans)
        self.registered += len(outcomes)

    def _report(self, conn: Connection, bad: list[tuple[str, str, int, str, bool]]) -> None:
        """Sources found missing (bad) or with other bytes than the catalog's (suspicious: the
        necromancer reads them back)."""
        for missing, state in ((True, ReplicaState.BAD), (False, ReplicaState.SUSPICIOUS)):
            declared = [Declaration(*item[:4]) for item in bad if item[4] is missing]
            if declared:
                integrity.declare(
                    conn,
                    declared,
                    state,
                    account="root",
                    suspicious_limit=self.lake.settings.suspicious_reports_limit,
                )
        self.lake.wake("necromancer")

    def _take_back(self, conn: Connection, jobs: list[Job]) -> None:
        """Copies whose request is gone (its rule was deleted) are nobody's replica: delete them,
        unless the file was registered there another way or another worker has the request."""
        for job in jobs:
            request = job.request
            requested = exists().where(requests.c.id == request.id)
            registered = exists().where(
                replicas.c.scope == request.scope,
                replicas.c.name == request.name,
                replicas.c.rse_id == request.dest_rse_id,
            )
            if conn.execute(select(or_(requested, registered))).scalar():
                continue
            with contextlib.suppress(LacusError):
                self._backend(job.dest).delete(job.dest_path)

    def _fail(self, conn: Connection, request_id: int, error: str, **attempt: Any) -> None:
        """One attempt failed: retry with backoff, or give up (locks stuck). Only while ours."""
        request = conn.execute(
            select(requests).where(
                requests.c.id == request_id, requests.c.claimed_by == self.worker
            )
        ).first()
        if request is None:
            return
        settings = self.lake.settings
        retry_in: float | None = None
        if request.attempts + 1 < settings.transfer_max_attempts:
            retry_in = float(min(2**request.attempts, settings.transfer_retry_max_seconds))
        log.warning(
            "transfer request %s failed (attempt %d): %s", request_id, request.attempts + 1, error
        )
        transfer_failed(conn, request_id, error, retry_in=retry_in, **attempt)
        if retry_in is None:
            self.lake.wake("repairer")

    def _requeue(self, conn: Connection, ids: Iterable[int]) -> None:
        for part in _chunks(sorted(ids)):
            conn.execute(
                update(requests)
                .where(requests.c.id.in_(part), requests.c.claimed_by == self.worker)
                .values(state=RequestState.QUEUED.value, claimed_by=None, lease_until=None)
            )

    def _renew_leases(self) -> None:
        """Extend the leases of the requests waiting, copying, or finished and queued for
        registration (the batch being registered is left alone: its rows are the registering
        thread's until it commits)."""
        lease = self.lake.settings.claim_lease_seconds
        if time.monotonic() - self.last_renewal < lease / 4:
            return
        self.last_renewal = time.monotonic()
        held = [job.request for job in self.waiting] + [j.request for j, _ in self.running.values()]
        with self.registrar.queued() as queued:
            held += [outcome.job.request for outcome in queued]
            if held:
                with self.lake.write() as conn:
                    claims.renew(conn, requests, held, worker=self.worker, lease_seconds=lease)


def _retried(request: Any) -> bool:
    """Whether an earlier attempt of ``request`` may have left temporary files: it failed, or its
    worker died while copying (the request was still ``submitted`` when its lease ran out)."""
    return bool(request.attempts) or request.state == RequestState.SUBMITTED.value


def _replicas_of(
    conn: Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[int, tuple[str, str | None]]]:
    """Per file, its replicas: RSE id → (state, stored path)."""
    found: dict[tuple[str, str], dict[int, tuple[str, str | None]]] = {}
    for scope, names in names_by_scope(keys):
        for row in conn.execute(
            select(
                replicas.c.scope, replicas.c.name, replicas.c.rse_id, replicas.c.state,
                replicas.c.path,
            ).where(replicas.c.scope == scope, replicas.c.name.in_(names))
        ):  # fmt: skip
            found.setdefault((row.scope, row.name), {})[row.rse_id] = (row.state, row.path)
    return found


def _still_ours(conn: Connection, ids: list[int], worker: str) -> set[int]:
    ours: set[int] = set()
    for part in _chunks(sorted(ids)):
        ours.update(
            conn.execute(
                select(requests.c.id).where(
                    requests.c.id.in_(part), requests.c.claimed_by == worker
                )
            ).scalars()
        )
    return ours


def _defer(conn: Connection, request_id: int, reason: str) -> None:
    now = utcnow()
    conn.execute(
        update(requests)
        .where(requests.c.id == request_id)
        .values(
            state=RequestState.QUEUED.value,
            next_attempt_at=now + timedelta(seconds=DEFER_SECONDS),
            last_error=reason[:1000],
            claimed_by=None,
            lease_until=None,
            updated_at=now,
        )
    )


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
