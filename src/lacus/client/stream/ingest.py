"""Stream ingestion: each chunk written to an RSE (verified), then registered in an open dataset.

Three stages, each in its own threads: the caller's thread takes chunks from the source at the
configured pace and opens their datasets (creating them, and their rule, on first use); upload
workers write each chunk to the RSE and verify it (``write_verified``, as ``lacus upload``); one
registrar registers the verified chunks with ONE call per dataset for whatever has arrived since
its last call (a group commit: one chunk at a time when the load is light, more when it is not),
so each file, its replica and its attachment to the dataset commit together and a consumer
following the dataset sees the file at once. Each chunk is registered with its creation time
(metadata ``chunk_created``, unix seconds), which ``replica.available`` events carry.

Restarts of the server are waited out (calls retried with growing pauses, up to ``patience``
seconds). A registration whose answer was lost is recognised on the next attempt: the server
refuses it (the replica exists), and each chunk found registered on the RSE with the same size
and adler32 is counted as done; nothing is registered twice, nothing is dropped. A chunk whose
bytes are found on the RSE already (an earlier run) is either registered there with the same
checksum (status ``already``: not registered again) or an unregistered leftover, replaced.

Datasets: one per run (``dataset``), or one per hour of the chunks' data time
(``<dataset>.<YYYYMMDD>T<HH>``, UTC). An hour's dataset is closed once a chunk of a later hour
has arrived and every chunk of the hour is settled, and every dataset of the run is closed when
the source ends (``close=True``).
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from lacus.checksums import Checksums, checksum_stream
from lacus.client._storage import backend_for
from lacus.client.stream._retry import Outcome, retrying
from lacus.client.stream.chunks import Chunk, paced
from lacus.client.stream.latency import summarize
from lacus.errors import (
    AccessDenied,
    AlreadyExists,
    ChecksumMismatch,
    DIDAlreadyExists,
    DIDNotFound,
    DuplicateRule,
    FileAlreadyOnStorage,
    LacusError,
    RSEReadOnly,
    StorageError,
    StorageFull,
    StoragePermissionDenied,
    UnsupportedOperation,
)
from lacus.naming import deterministic_path, validate_name, validate_scope
from lacus.storage import StorageBackend, write_verified

if TYPE_CHECKING:
    from lacus.client._client import Client

UPLOAD_ATTEMPTS = 5
MAX_BATCH = 1000
"""Chunks registered by one call at most."""


class DatasetPer(StrEnum):
    RUN = "run"
    HOUR = "hour"


class ChunkStatus(StrEnum):
    REGISTERED = "registered"
    ALREADY = "already"  # found registered with the same checksum: by an earlier run
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule added on each new dataset: ``copies`` on ``rse_expression``, for ``lifetime`` s."""

    rse_expression: str
    copies: int = 1
    lifetime: int | None = None


@dataclass(slots=True)
class ChunkResult:
    """What became of one chunk; times are unix seconds."""

    name: str
    dataset: str
    bytes: int
    created: float
    status: ChunkStatus
    uploaded: float | None = None
    registered: float | None = None
    error: str | None = None

    @property
    def latency(self) -> float | None:
        """Seconds from the chunk's creation to its registration (in the lake)."""
        return None if self.registered is None else self.registered - self.created

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "bytes": self.bytes,
            "status": str(self.status),
            "created": self.created,
            "uploaded": self.uploaded,
            "registered": self.registered,
            "latency": self.latency,
            "error": self.error,
        }


@dataclass(slots=True)
class IngestReport:
    chunks: list[ChunkResult] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    backlog: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the start, chunks taken but not yet settled), sampled every second."""

    def count(self, status: ChunkStatus) -> int:
        return sum(1 for chunk in self.chunks if chunk.status == status)

    def summary(self) -> dict[str, Any]:
        latencies = [c.latency for c in self.chunks if c.latency is not None]
        writes = [c.uploaded - c.created for c in self.chunks if c.uploaded is not None]
        return {
            "chunks": len(self.chunks),
            "registered": self.count(ChunkStatus.REGISTERED),
            "already": self.count(ChunkStatus.ALREADY),
            "failed": self.count(ChunkStatus.FAILED),
            "seconds": self.seconds,
            "datasets": list(self.datasets),
            "closed": list(self.closed),
            "rules": list(self.rules),
            "errors": list(self.errors),
            "latency": summarize(latencies),
            "write_latency": summarize(writes),
        }


@dataclass(slots=True)
class _Dataset:
    did: str
    hour: int | None
    pending: int = 0  # chunks taken and not yet settled
    ended: bool = False  # no chunk will come any more
    closed: bool = False


@dataclass(slots=True)
class _Written:
    chunk: Chunk
    dataset: _Dataset
    path: str
    sums: Checksums
    uploaded: float


def hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%dT%H")


class Ingestor:
    """Ingests chunks into ``scope`` on ``rse``; see the module docstring.

    ``on_result`` is called (from a worker thread) with each chunk's result as soon as it is
    settled: the CLI writes its report lines with it.
    """

    def __init__(
        self,
        client: Client,
        *,
        rse: str,
        scope: str,
        dataset: str,
        dataset_per: DatasetPer | str = DatasetPer.RUN,
        rule: RuleSpec | None = None,
        workers: int = 4,
        md5: bool = True,
        patience: float = 600.0,
        close: bool = True,
        max_pending: int = 10_000,
        on_result: Callable[[ChunkResult], None] | None = None,
    ) -> None:
        self.client = client
        self.rse = rse
        self.scope = validate_scope(scope)
        self.dataset = validate_name(dataset)
        self.dataset_per = DatasetPer(dataset_per)
        self.rule = rule
        self.workers = max(1, workers)
        self.md5 = md5
        self.patience = patience
        self.close = close
        self.on_result = on_result
        self._pending = threading.Semaphore(max(1, max_pending))
        self._lock = threading.Lock()
        self._datasets: dict[int | None, _Dataset] = {}
        self._latest_hour: int | None = None
        self._written: queue.Queue[_Written] = queue.Queue()
        self._report = IngestReport()
        self._taken = 0
        self._settled = 0
        self._backend: StorageBackend | None = None
        self._deterministic = True

    # -- the run -------------------------------------------------------------------------------
    def run(
        self, chunks: Iterable[Chunk], *, rate: float | None = None, count: int | None = None
    ) -> IngestReport:
        """Ingest ``chunks`` (at most ``count``) at ``rate`` per second (None: as they come);
        returns when every chunk taken is settled (registered, found done, or failed)."""
        self._open_rse()
        start = time.monotonic()
        finished = threading.Event()
        registrar = threading.Thread(
            target=self._register_loop, args=(finished, start), name="lacus-ingest-registrar"
        )
        registrar.start()
        source = chunks if count is None else itertools.islice(chunks, count)
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="lacus-ingest") as pool:
                for chunk in paced(source, rate):
                    dataset = self._dataset_for(chunk)
                    if dataset.closed:  # an earlier run's chunk, or a late one of a closed hour
                        self._record(self._into_closed(chunk, dataset))
                        continue
                    self._pending.acquire()
                    with self._lock:
                        dataset.pending += 1
                        self._taken += 1
                    pool.submit(self._upload, chunk, dataset)
                if self.close:
                    with self._lock:
                        for dataset in self._datasets.values():
                            dataset.ended = True
        finally:
            finished.set()  # the registrar drains what the workers hand it, then stops
            registrar.join()
        self._report.seconds = time.monotonic() - start
        return self._report

    def _open_rse(self) -> None:
        info = retrying(lambda: self.client.get_rse(self.rse), patience=self.patience)
        if info.get("read_only"):
            raise RSEReadOnly(f"RSE {self.rse} is read-only: Lacus never writes to it")
        if not info["availability_write"]:
            raise AccessDenied(f"RSE {self.rse} is not available for writing")
        self._backend = backend_for(info)
        self._deterministic = bool(info["deterministic"])

    # -- datasets ------------------------------------------------------------------------------
    def _dataset_for(self, chunk: Chunk) -> _Dataset:
        hour = int(chunk.data_time // 3600) if self.dataset_per is DatasetPer.HOUR else None
        dataset = self._datasets.get(hour)
        if dataset is None:
            name = self.dataset if hour is None else f"{self.dataset}.{hour_label(hour)}"
            dataset = _Dataset(did=f"{self.scope}:{name}", hour=hour)
            self._open_dataset(dataset)
            with self._lock:  # the registrar goes through them
                self._datasets[hour] = dataset
        if hour is not None and (self._latest_hour is None or hour > self._latest_hour):
            self._latest_hour = hour
            with self._lock:
                for other in self._datasets.values():
                    if other.hour is not None and other.hour < hour:
                        other.ended = True
        return dataset

    def _open_dataset(self, dataset: _Dataset) -> None:
        """Create the dataset (open) and its rule; an existing open one (an earlier run) is
        continued, an existing closed one takes no chunk."""
        try:
            retrying(lambda: self.client.add_dataset(dataset.did), patience=self.patience)
        except DIDAlreadyExists:
            info = retrying(lambda: self.client.get_did(dataset.did), patience=self.patience)
            dataset.closed = info.get("open") is False
        self._report.datasets.append(dataset.did)
        if self.rule is not None and not dataset.closed:
            rule = self.rule
            try:
                ids = retrying(
                    lambda: self.client.add_rule(
                        dataset.did, rule.rse_expression, copies=rule.copies, lifetime=rule.lifetime
                    ),
                    patience=self.patience,
                )
            except DuplicateRule:
                ids = []
            self._report.rules.extend(ids)

    def _into_closed(self, chunk: Chunk, dataset: _Dataset) -> ChunkResult:
        """A chunk of a closed dataset is done if it is registered with the same bytes."""
        with chunk.open() as source:
            local = checksum_stream(source, md5=False)
        if self._registered([chunk.name]).get(chunk.name) == (local.bytes, local.adler32):
            return ChunkResult(
                chunk.name, dataset.did, local.bytes, chunk.created, ChunkStatus.ALREADY
            )
        return _failed(chunk, dataset, f"dataset {dataset.did} is closed")

    def _close_ended(self) -> None:
        with self._lock:
            due = [d for d in self._datasets.values() if d.ended and not d.closed and not d.pending]
        for dataset in due:
            try:
                retrying(partial(self.client.close_dataset, dataset.did), patience=self.patience)
            except UnsupportedOperation:
                pass  # closed already (an answer lost on the way)
            except LacusError as exc:
                dataset.ended = False  # left open; said in the report, not tried again
                self._report.errors.append(f"could not close {dataset.did}: {exc.message}")
                continue
            dataset.closed = True
            self._report.closed.append(dataset.did)

    # -- writing -------------------------------------------------------------------------------
    def _path(self, chunk: Chunk) -> str:
        if self._deterministic:
            return deterministic_path(self.scope, chunk.name)
        return f"{self.scope}/{chunk.name}"

    def _upload(self, chunk: Chunk, dataset: _Dataset) -> None:
        try:
            path = self._path(chunk)
            sums = self._write(chunk, path)
        except LacusError as exc:
            self._settle(_failed(chunk, dataset, exc.message))
            return
        except BaseException as exc:
            self._settle(_failed(chunk, dataset, f"{type(exc).__name__}: {exc}"))
            raise
        if sums is None:  # registered with the same bytes by an earlier run
            self._settle(
                ChunkResult(
                    chunk.name, dataset.did, chunk.size(), chunk.created, ChunkStatus.ALREADY
                )
            )
            return
        self._written.put(_Written(chunk, dataset, path, sums, time.time()))

    def _write(self, chunk: Chunk, path: str) -> Checksums | None:
        """Write and verify ``chunk`` at ``path``; None when it is registered there already."""
        assert self._backend is not None
        overwrite = False
        for attempt in range(UPLOAD_ATTEMPTS):
            try:
                with chunk.open() as source:
                    return write_verified(
                        self._backend, path, source, md5=self.md5, overwrite=overwrite
                    )
            except FileAlreadyOnStorage:
                if overwrite:
                    raise
                with chunk.open() as source:
                    local = checksum_stream(source, md5=False)
                found = self._registered([chunk.name]).get(chunk.name)
                if found is not None:
                    if found == (local.bytes, local.adler32):
                        return None
                    raise DIDAlreadyExists(
                        f"{self.scope}:{chunk.name} is registered on {self.rse} with other "
                        f"bytes ({found[0]} bytes, adler32 {found[1]})"
                    ) from None
                overwrite = True  # bytes an interrupted run wrote and never registered
            except (StoragePermissionDenied, StorageFull):
                raise
            except (StorageError, ChecksumMismatch):
                if attempt == UPLOAD_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)
        raise StorageError(f"could not write {path} after {UPLOAD_ATTEMPTS} attempts")

    def _registered(
        self, names: Sequence[str], dataset: _Dataset | None = None
    ) -> dict[str, tuple[int, str]]:
        """Of ``names``, those with a replica on the RSE: their size and adler32. The files of
        ``dataset`` are listed at once; any other name is looked up alone (a listing of several
        names fails as a whole when one does not exist)."""
        wanted = set(names)
        found: dict[str, tuple[int, str]] = {}
        if dataset is not None:
            self._collect(dataset.did, wanted, found)
        for name in sorted(wanted - set(found)):
            did = f"{self.scope}:{name}"
            try:
                retrying(partial(self.client.get_did, did), patience=self.patience)
            except DIDNotFound:
                continue
            self._collect(did, wanted, found)
        return found

    def _collect(self, did: str, wanted: set[str], found: dict[str, tuple[int, str]]) -> None:
        replicas = retrying(partial(self._replicas, [did]), patience=self.patience)
        for replica in replicas:
            if replica["name"] in wanted and self.rse in replica["rses"]:
                found[replica["name"]] = (int(replica["bytes"]), str(replica["adler32"]))

    def _replicas(self, dids: list[str]) -> list[dict[str, Any]]:
        return list(self.client.list_replicas(dids, rse=self.rse))

    # -- registering ---------------------------------------------------------------------------
    def _register_loop(self, finished: threading.Event, start: float) -> None:
        next_sample = 0.0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= next_sample:
                with self._lock:
                    self._report.backlog.append((round(elapsed, 3), self._taken - self._settled))
                next_sample = elapsed + 1.0
            try:
                first = self._written.get(timeout=0.05)
            except queue.Empty:
                self._close_ended()
                with self._lock:
                    idle = self._taken == self._settled
                if finished.is_set() and idle and self._written.empty():
                    self._close_ended()
                    return
                continue
            batch = [first]
            with contextlib.suppress(queue.Empty):
                while len(batch) < MAX_BATCH:
                    batch.append(self._written.get_nowait())
            groups: dict[str, list[_Written]] = {}
            for item in batch:
                groups.setdefault(item.dataset.did, []).append(item)
            for items in groups.values():
                try:
                    self._register(items)
                except Exception as exc:  # noqa: BLE001 - settled as failed, never a hang
                    for item in items:
                        self._settle(_failed(item.chunk, item.dataset, repr(exc), item.uploaded))
            self._close_ended()

    def _register(self, items: list[_Written]) -> None:
        dataset = items[0].dataset
        files = [
            {
                "scope": self.scope,
                "name": item.chunk.name,
                "bytes": item.sums.bytes,
                "adler32": item.sums.adler32,
                "md5": item.sums.md5,
                "path": item.path,
                "meta": {**item.chunk.meta, "chunk_created": item.chunk.created},
            }
            for item in items
        ]
        outcome = Outcome()
        try:
            retrying(
                lambda: self.client.add_replicas(self.rse, files, dataset=dataset.did),
                patience=self.patience,
                outcome=outcome,
            )
        except AlreadyExists as exc:
            self._resolve_existing(items, exc, lost_answer=outcome.retried)
            return
        except LacusError as exc:
            # A refusal registered nothing: the bytes go. After lost answers the last attempt
            # may have committed: the bytes stay (a later run finds them registered or not).
            if not outcome.retried:
                self._remove(items)
            for item in items:
                self._settle(_failed(item.chunk, dataset, exc.message, item.uploaded))
            return
        now = time.time()
        for item in items:
            self._settle(self._result(item, ChunkStatus.REGISTERED, now))

    def _resolve_existing(
        self, items: list[_Written], exc: LacusError, *, lost_answer: bool
    ) -> None:
        """The server refused the batch because some of it exists: those registered with our
        checksum are done (a lost answer's work, or an earlier run's); the rest is tried again."""
        try:
            found = self._registered([item.chunk.name for item in items], items[0].dataset)
        except LacusError as lookup:
            for item in items:
                self._settle(_failed(item.chunk, item.dataset, lookup.message, item.uploaded))
            return
        now = time.time()
        rest: list[_Written] = []
        for item in items:
            known = found.get(item.chunk.name)
            if known is None:
                rest.append(item)
            elif known == (item.sums.bytes, item.sums.adler32):
                status = ChunkStatus.REGISTERED if lost_answer else ChunkStatus.ALREADY
                self._settle(self._result(item, status, now))
            else:
                self._settle(
                    _failed(
                        item.chunk,
                        item.dataset,
                        f"registered on {self.rse} with other bytes already",
                        item.uploaded,
                    )
                )
        if not rest:
            return
        if len(rest) < len(items):
            self._register(rest)
        elif len(rest) > 1:  # the refusal is about some of them: find which, one by one
            for item in rest:
                self._register([item])
        else:
            self._remove(rest)
            self._settle(_failed(rest[0].chunk, rest[0].dataset, exc.message, rest[0].uploaded))

    def _result(self, item: _Written, status: ChunkStatus, registered: float) -> ChunkResult:
        return ChunkResult(
            name=item.chunk.name,
            dataset=item.dataset.did,
            bytes=item.sums.bytes,
            created=item.chunk.created,
            status=status,
            uploaded=item.uploaded,
            registered=registered,
        )

    def _remove(self, items: list[_Written]) -> None:
        assert self._backend is not None
        for item in items:
            with contextlib.suppress(LacusError):
                self._backend.delete(item.path)

    def _settle(self, result: ChunkResult) -> None:
        """A chunk taken is done with: registered, found done, or failed."""
        with self._lock:
            self._settled += 1
            for dataset in self._datasets.values():
                if dataset.did == result.dataset and dataset.pending:
                    dataset.pending -= 1
                    break
        self._pending.release()
        self._record(result)

    def _record(self, result: ChunkResult) -> None:
        with self._lock:
            self._report.chunks.append(result)
        if self.on_result is not None:
            self.on_result(result)


def _failed(
    chunk: Chunk, dataset: _Dataset, error: str, uploaded: float | None = None
) -> ChunkResult:
    try:
        size = chunk.size()
    except LacusError:
        size = 0
    return ChunkResult(
        chunk.name, dataset.did, size, chunk.created, ChunkStatus.FAILED, uploaded, error=error
    )
