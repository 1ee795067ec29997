"""Stream consumption: follow a dataset's events, download and verify each new file at once.

Each file the dataset gains (``follow_files``: registered into it with its replica, or attached
once available) is copied to ``DIR/scope/name`` with its size and adler32 checked
(``read_verified``: a file that does not match is never kept) and one line is appended to the
report ``DIR/.lacus-consume.jsonl``: status ``downloaded``, ``corrupted`` (the replica's bytes
do not match the catalog: nothing kept) or ``failed``; the chunk's creation time (the
``chunk_created`` metadata it was registered with) and the time the local copy was verified,
hence the end-to-end latency.

Restarts lose and repeat nothing. The position in the event stream (the last event id below
which every file is handled) is kept in ``DIR/.lacus-consume.json``; a restarted consumer
resumes after it, skips the files its report already holds, and removes the temporary files
of the copies a killed run left unfinished. The event stream itself
reconnects after a server restart and resumes where it was.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from lacus.checksums import Checksums, checksum_file
from lacus.client._storage import backend_for
from lacus.client.events import NewFile, follow_files
from lacus.client.stream._retry import PAUSES, TRANSIENT, retrying
from lacus.client.stream.latency import summarize
from lacus.errors import (
    ChecksumMismatch,
    InvalidInput,
    LacusError,
    LocalFileError,
    StorageError,
    StorageFileNotFound,
)
from lacus.naming import make_pfn, parse_did
from lacus.storage import StorageBackend, read_verified
from lacus.storage._base import is_part_name

if TYPE_CHECKING:
    from lacus.client._client import Client

STATE_FILE = ".lacus-consume.json"
REPORT_FILE = ".lacus-consume.jsonl"
READ_ATTEMPTS = 4
SAVE_EVERY = 0.2
"""Seconds between two saves of the position."""


@dataclass(slots=True)
class Consumed:
    """What became of one file; times are unix seconds."""

    did: str
    path: str
    bytes: int
    adler32: str
    rse: str
    status: str  # downloaded, corrupted, failed
    event_id: int
    created: float | None
    verified: float | None = None
    error: str | None = None

    @property
    def latency(self) -> float | None:
        """Seconds from the chunk's creation to its verified local copy."""
        if self.created is None or self.verified is None:
            return None
        return self.verified - self.created

    def to_json(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "path": self.path,
            "bytes": self.bytes,
            "adler32": self.adler32,
            "rse": self.rse,
            "status": self.status,
            "event_id": self.event_id,
            "created": self.created,
            "verified": self.verified,
            "latency": self.latency,
            "error": self.error,
        }


@dataclass(slots=True)
class ConsumeReport:
    files: list[Consumed] = field(default_factory=list)
    earlier: int = 0  # files handled by earlier runs (in the report already)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        latencies = [f.latency for f in self.files if f.latency is not None]
        return {
            "files": len(self.files),
            "downloaded": sum(1 for f in self.files if f.status == "downloaded"),
            "corrupted": sum(1 for f in self.files if f.status == "corrupted"),
            "failed": sum(1 for f in self.files if f.status == "failed"),
            "earlier": self.earlier,
            "seconds": self.seconds,
            "latency": summarize(latencies),
        }


def read_report(directory: Path) -> list[dict[str, Any]]:
    """The report lines of every run of the consumer in ``directory`` (a torn last line, from
    a consumer killed while writing it, is left out)."""
    lines: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError), open(directory / REPORT_FILE, "rb") as report:
        for line in report:
            with contextlib.suppress(orjson.JSONDecodeError):
                lines.append(orjson.loads(line))
    return lines


class Consumer:
    """Follows ``did`` into ``directory``; see the module docstring."""

    def __init__(
        self,
        client: Client,
        did: str,
        directory: Path,
        *,
        workers: int = 4,
        patience: float = 600.0,
        on_result: Callable[[Consumed], None] | None = None,
    ) -> None:
        scope, name = parse_did(did)
        self.client = client
        self.did = f"{scope}:{name}"
        self.directory = Path(directory)
        self.workers = max(1, workers)
        self.patience = patience
        self.on_result = on_result
        self._lock = threading.Lock()
        self._backends: dict[str, tuple[StorageBackend, list[str]]] = {}
        self._in_flight: deque[tuple[int, Future[None]]] = deque()
        self._after = 0
        self._saved = 0
        self._saved_at = 0.0
        self._report = ConsumeReport()
        self._report_file: Any = None
        self._handled = 0

    def run(
        self,
        *,
        total: int | None = None,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> ConsumeReport:
        """Consume until the report holds ``total`` files (this run's and earlier runs'),
        ``timeout`` seconds pass without an event, or ``stop`` is set (checked per file)."""
        start = time.monotonic()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalFileError(f"cannot create {self.directory}: {exc.strerror}") from None
        self._after = self._saved = self._load_state()
        self._remove_leftovers()
        seen = {parse_did(line["did"]) for line in read_report(self.directory)}
        self._report.earlier = len(seen)
        self._handled = len(seen)
        if total is not None and self._handled >= total:
            return self._report
        self._report_file = open(self.directory / REPORT_FILE, "ab")  # noqa: SIM115
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="lacus-consume") as pool:
                self._follow(pool, seen, total=total, timeout=timeout, stop=stop)
        finally:
            self._advance(None, save_now=True)
            self._report_file.close()
            self._report.seconds = time.monotonic() - start
        return self._report

    def _follow(
        self,
        pool: ThreadPoolExecutor,
        seen: set[tuple[str, str]],
        *,
        total: int | None,
        timeout: float | None,
        stop: threading.Event | None,
    ) -> None:
        """Hand each new file to ``pool`` until done. The event stream resumes by itself after
        a lost connection; a call it needs besides (a login) that finds the server away starts
        it again from the saved position (``seen`` skips what was handed over already)."""
        failures = 0
        while True:
            files = follow_files(
                self.client, self.did, after=self._after, timeout=timeout, seen=seen
            )
            try:
                for new in files:
                    failures = 0
                    future = pool.submit(self._consume, new)
                    with self._lock:
                        self._in_flight.append((new.event_id, future))
                    future.add_done_callback(self._advance)
                    self._handled += 1
                    if (total is not None and self._handled >= total) or (
                        stop is not None and stop.is_set()
                    ):
                        return
                return
            except TRANSIENT:
                failures += 1
                if failures * PAUSES[-1] > self.patience:
                    raise
                time.sleep(PAUSES[min(failures, len(PAUSES)) - 1])
            finally:
                getattr(files, "close", lambda: None)()  # the event stream's connection

    def _remove_leftovers(self) -> None:
        """Temporary files of copies a killed run left unfinished."""
        for scope_dir in self.directory.iterdir():
            if scope_dir.is_dir():
                for entry in scope_dir.iterdir():
                    if is_part_name(entry.name):
                        with contextlib.suppress(OSError):
                            entry.unlink()

    # -- position --------------------------------------------------------------------------------
    def _load_state(self) -> int:
        try:
            state = orjson.loads((self.directory / STATE_FILE).read_bytes())
        except FileNotFoundError:
            return 0
        except (OSError, orjson.JSONDecodeError) as exc:
            raise LocalFileError(f"cannot read {self.directory / STATE_FILE}: {exc}") from None
        if state.get("did") != self.did:
            raise InvalidInput(
                f"{self.directory} follows {state.get('did')}, not {self.did}: use another "
                "directory"
            )
        return int(state.get("after", 0))

    def _advance(self, _: object, *, save_now: bool = False) -> None:
        """Move the position past every leading file that is done; save it every
        ``SAVE_EVERY`` seconds (a restart from an older position repeats nothing: the report
        says which files are done)."""
        with self._lock:
            after = self._after
            while self._in_flight and self._in_flight[0][1].done():
                after = max(after, self._in_flight.popleft()[0])
            self._after = after
            now = time.monotonic()
            if after == self._saved or (not save_now and now - self._saved_at < SAVE_EVERY):
                return
            self._saved, self._saved_at = after, now
            state = orjson.dumps({"did": self.did, "after": after})
            path = self.directory / STATE_FILE
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(state)
            os.replace(temporary, path)

    # -- one file --------------------------------------------------------------------------------
    def _consume(self, new: NewFile) -> None:
        dest = self.directory / new.scope / new.name
        created = new.meta.get("chunk_created")
        result = Consumed(
            did=new.did,
            path=str(dest),
            bytes=new.bytes,
            adler32=new.adler32,
            rse=new.rse,
            status="downloaded",
            event_id=new.event_id,
            created=float(created) if isinstance(created, int | float) else None,
        )
        expected = Checksums(bytes=new.bytes, adler32=new.adler32, md5=new.md5)
        try:
            if not _present(dest, expected):
                self._fetch(new, dest, expected)
            result.verified = time.time()
        except ChecksumMismatch as exc:
            result.status, result.error = "corrupted", exc.message
        except LacusError as exc:
            result.status, result.error = "failed", exc.message
        except Exception as exc:  # noqa: BLE001 - reported, never a lost line
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        line = orjson.dumps(result.to_json()) + b"\n"
        with self._lock:
            self._report.files.append(result)
            self._report_file.write(line)
            self._report_file.flush()
        if self.on_result is not None:
            self.on_result(result)

    def _fetch(self, new: NewFile, dest: Path, expected: Checksums) -> None:
        backend, bases = self._backend(new.rse)
        path = _path_of(new.pfn, bases)
        for attempt in range(READ_ATTEMPTS):
            try:
                read_verified(backend, path, dest, expected=expected)
                return
            except (ChecksumMismatch, StorageFileNotFound):
                raise
            except StorageError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)

    def _backend(self, rse: str) -> tuple[StorageBackend, list[str]]:
        with self._lock:
            cached = self._backends.get(rse)
        if cached is None:
            info = retrying(partial(self.client.get_rse, rse), patience=self.patience)
            bases = [
                make_pfn(p["scheme"], p.get("hostname", ""), p.get("port", 0), p["prefix"], "")
                for p in info.get("protocols", [])
            ]
            cached = (backend_for(info), bases)
            with self._lock:
                self._backends[rse] = cached
        return cached


def _path_of(pfn: str, bases: list[str]) -> str:
    """The RSE-relative path of ``pfn`` under one of the RSE's protocols."""
    for base in bases:
        if pfn.startswith(base):
            return pfn[len(base) :]
    raise StorageFileNotFound(f"{pfn} is under none of its RSE's protocols")


def _present(dest: Path, expected: Checksums) -> bool:
    """A verified copy is there already (an earlier run fetched it and was stopped before its
    report line)."""
    try:
        if dest.stat().st_size != expected.bytes:
            return False
    except OSError:
        return False
    return checksum_file(dest, md5=False).adler32 == expected.adler32.lower().zfill(8)
