"""Uploads: files and directory trees, streamed to the RSE and verified, then registered.

A directory becomes a dataset of its files; a directory with sub-directories becomes a container
of the datasets and containers below it, and its own files go into a dataset ``<name>.files``.
Nested collections are named by their path joined with ``.`` (``obs1.raw``), so names never clash
within one upload. Every file is written, verified on the storage (size and adler32 read back),
and only then registered: a failure at any step deletes the bytes this upload wrote and leaves no
catalog entry for them.

A client with a token and no password cannot get a new token when it runs out, and the files are
registered at the end: an upload that outlasts its token would lose all its work at the very end.
So such a client first asks the server how long its token has left, and races the upload
against it (``_TokenBudget``): with ``upload_rate`` set it refuses before writing a byte when
the upload cannot finish in time; otherwise it measures the speed in the first seconds and stops
as soon as the rest cannot finish in time (the refusal comes early, not at the end). When it
stops, the files already written and verified are registered (with their datasets) while the
token still works, and the error names them. With a password the session logs in again when
the token runs out, and none of this applies.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lacus.checksums import Checksums
from lacus.client._storage import backend_for
from lacus.errors import (
    AccessDenied,
    DIDAlreadyExists,
    InvalidInput,
    LacusError,
    LocalFileError,
    RSEReadOnly,
    Unauthenticated,
)
from lacus.naming import deterministic_path, validate_name, validate_scope
from lacus.storage import StorageBackend, write_verified
from lacus.types import MetaValue

if TYPE_CHECKING:
    from lacus.client._client import Client

REGISTER_BATCH = 5000
DIDKey = tuple[str, str]
MiB = 1024 * 1024

TOKEN_MARGIN_SECONDS = 30.0
"""Seconds of token life kept for the end of an upload: verifying and registering."""
RATE_SAFETY = 1.25
"""Time estimates assume the upload goes this much slower than measured (or configured)."""
MEASURE_SECONDS = 1.0
"""The speed of an upload is judged once it has run this long."""


@dataclass(slots=True)
class FileItem:
    local: Path
    name: str
    dataset: str | None
    size: int = 0
    path: str = ""
    checksums: Checksums | None = None
    registered: bool = False


@dataclass(slots=True)
class Plan:
    files: list[FileItem] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    containers: list[tuple[str, list[str]]] = field(default_factory=list)


def plan_upload(paths: list[Path], *, dataset: str | None) -> Plan:
    """Decide what each local path becomes (pure apart from reading directories)."""
    plan = Plan()
    for path in paths:
        if path.is_dir():
            if dataset is not None:
                raise InvalidInput(
                    f"{path} is a directory: it becomes its own dataset; --dataset does not apply"
                )
            _plan_directory(path, validate_name(path.resolve().name), plan)
        elif path.is_file():
            plan.files.append(FileItem(local=path, name=validate_name(path.name), dataset=dataset))
        else:
            raise LocalFileError(f"cannot read {path}: no such file or directory")
    names = [item.name for item in plan.files]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise InvalidInput(f"two local files are both named {duplicate!r}: names must be unique")
    collections = plan.datasets + [name for name, _ in plan.containers]
    if len(set(collections)) != len(collections):
        raise InvalidInput("two directories of this upload map to the same collection name")
    return plan


def _plan_directory(directory: Path, name: str, plan: Plan) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        raise LocalFileError(f"cannot read directory {directory}: {exc.strerror}") from None
    files = [entry for entry in entries if entry.is_file()]
    subdirs = [entry for entry in entries if entry.is_dir()]
    for entry in entries:
        if not entry.is_file() and not entry.is_dir():  # a dangling link, a socket, a FIFO
            raise LocalFileError(f"cannot read {entry.path}: not a regular file or directory")
    if not subdirs:
        plan.datasets.append(name)
        target = name
    else:
        children = []
        for sub in subdirs:
            child = validate_name(f"{name}.{sub.name}")
            _plan_directory(Path(sub.path), child, plan)
            children.append(child)
        target = validate_name(f"{name}.files")
        if files:
            plan.datasets.append(target)
            children.append(target)
        plan.containers.append((name, children))
    for entry in files:
        plan.files.append(
            FileItem(local=Path(entry.path), name=validate_name(entry.name), dataset=target)
        )


def _check_path(path: str) -> str:
    """A path on an RSE, relative to its prefix: no leading '/', no '..', no empty part."""
    parts = path.split("/")
    if (
        not path
        or len(path) > 1024
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or "\x00" in path
    ):
        raise InvalidInput(
            f"invalid path {path[:80]!r}: relative to the RSE's prefix, no '.', '..' or '//'"
        )
    return path


class _TokenTooShort(Unauthenticated):
    """The token runs out before the upload can finish (``finished``: the files written)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.finished: list[FileItem] = []


def _duration(seconds: float) -> str:
    """``45 s``, ``4 min``, ``2 h 5 min``."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


class _TokenBudget:
    """An upload racing its token's expiry: told every byte read, it raises ``_TokenTooShort``
    (in the worker that reads, and then in every other) once the rest cannot finish in time."""

    def __init__(self, seconds_left: float, total: int, rate: float | None) -> None:
        self.started = time.monotonic()
        self.expires = self.started + seconds_left
        self.total = total
        self.done = 0
        self.tripped: str | None = None
        self._lock = threading.Lock()
        if seconds_left <= TOKEN_MARGIN_SECONDS:
            self._trip(f"the token expires in {_duration(seconds_left)}: too soon to upload")
        if rate is not None:  # MiB/s, configured: judged before the first byte
            self._judge(rate * MiB, configured=True)

    def spend(self, count: int) -> None:
        with self._lock:
            if self.tripped is None:
                self.done += count
                elapsed = time.monotonic() - self.started
                if elapsed >= MEASURE_SECONDS and self.done:
                    self._judge(self.done / elapsed, configured=False)
            if self.tripped is not None:
                raise _TokenTooShort(self.tripped)

    def _judge(self, rate: float, *, configured: bool) -> None:
        now = time.monotonic()
        rest = (self.total - self.done) / rate * RATE_SAFETY
        if now + rest + TOKEN_MARGIN_SECONDS <= self.expires:
            return
        speed = f"{rate / MiB:.3g} MiB/s {'configured' if configured else 'measured'}"
        self._trip(
            f"the token expires in {_duration(self.expires - now)}; this upload needs about "
            f"{_duration(now - self.started + rest + TOKEN_MARGIN_SECONDS)} "
            f"({self.total / MiB:.1f} MiB at {speed})"
        )

    def _trip(self, why: str) -> None:
        self.tripped = (
            f"{why}: log in with a password (LACUS_ACCOUNT and LACUS_PASSWORD, or "
            "'lacus login') or get a longer token"
        )


class _ProgressReader:
    """A file object that reports how many bytes were read (to ``progress`` and ``budget``)."""

    def __init__(
        self,
        raw: BinaryIO,
        progress: Callable[[int], None] | None,
        budget: _TokenBudget | None = None,
    ) -> None:
        self._raw = raw
        self._progress = progress
        self._budget = budget

    def _count(self, count: int) -> None:
        if self._progress is not None:
            self._progress(count)
        if self._budget is not None:
            self._budget.spend(count)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._count(count or 0)
        return int(count or 0)

    def readable(self) -> bool:
        return True


class Uploader:
    def __init__(
        self,
        client: Client,
        *,
        rse: str,
        scope: str,
        md5: bool = True,
        workers: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.rse = rse
        self.scope = validate_scope(scope)
        self.md5 = md5
        self.workers = max(1, workers)
        self.progress = progress
        self.budget: _TokenBudget | None = None

    def upload(
        self,
        paths: list[Path],
        *,
        dataset: str | None = None,
        meta: Mapping[str, MetaValue] | None = None,
        path: str | None = None,
    ) -> list[dict[str, Any]]:
        """``path``: where the one file goes on a non-deterministic RSE (relative to its
        prefix); without it such an RSE gets ``scope/name``."""
        if dataset is not None:
            validate_name(dataset)
        plan = plan_upload(paths, dataset=dataset)
        if path is not None:
            path = _check_path(path)
            if len(plan.files) != 1 or plan.datasets:
                raise InvalidInput("a path is for one file: upload files one by one with --path")
        for item in plan.files:
            try:
                item.size = item.local.stat().st_size
            except OSError as exc:
                raise LocalFileError(f"cannot read {item.local}: {exc.strerror}") from None
            if not os.access(item.local, os.R_OK):
                raise LocalFileError(f"cannot read {item.local}: permission denied")
        rse = self.client.get_rse(self.rse)
        if rse.get("read_only"):
            raise RSEReadOnly(
                f"RSE {self.rse} is read-only: Lacus never writes to it (files already there "
                "are registered, not uploaded)"
            )
        if not rse["availability_write"]:
            raise AccessDenied(f"RSE {self.rse} is not available for writing")
        if path is not None and rse["deterministic"]:
            raise InvalidInput(
                f"RSE {self.rse} is deterministic: it places files by their DID, not by a path"
            )
        backend = backend_for(rse)
        for item in plan.files:
            item.path = (
                deterministic_path(self.scope, item.name)
                if rse["deterministic"]
                else path or f"{self.scope}/{item.name}"
            )
        seconds_left = self.client.session.token_seconds_left()
        if seconds_left is not None:
            total = sum(item.size for item in plan.files)
            self.budget = _TokenBudget(seconds_left, total, self.client.config.upload_rate)
            if self.budget.tripped is not None:
                raise Unauthenticated(self.budget.tripped)
        try:
            written = self._write_all(backend, plan.files)
        except _TokenTooShort as exc:
            self._keep(backend, plan, exc.finished, meta)
            raise Unauthenticated(_kept(exc.message, exc.finished, plan)) from None
        try:
            self._register(plan, meta)
        except BaseException:
            self._remove(backend, [item for item in written if not item.registered])
            raise
        self._link_containers(plan)
        return [
            {
                "did": f"{self.scope}:{item.name}",
                "local": str(item.local),
                "rse": self.rse,
                "path": item.path,
                "bytes": item.size,
                "adler32": item.checksums.adler32 if item.checksums else None,
                "md5": item.checksums.md5 if item.checksums else None,
                "dataset": f"{self.scope}:{item.dataset}" if item.dataset else None,
            }
            for item in plan.files
        ]

    def _keep(
        self,
        backend: StorageBackend,
        plan: Plan,
        finished: list[FileItem],
        meta: Mapping[str, MetaValue] | None,
    ) -> None:
        """Register the files written before the upload stopped, in their datasets (not linked
        into containers: the rest of the tree is missing); removed if that fails too."""
        if not finished:
            return
        kept = {item.dataset for item in finished}
        part = Plan(files=finished, datasets=[name for name in plan.datasets if name in kept])
        try:
            self._register(part, meta)
        except BaseException:
            self._remove(backend, [item for item in finished if not item.registered])
            raise

    def _write_one(self, backend: StorageBackend, item: FileItem) -> FileItem:
        if self.budget is not None and self.budget.tripped is not None:
            raise _TokenTooShort(self.budget.tripped)
        try:
            source: BinaryIO = open(item.local, "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise LocalFileError(f"cannot read {item.local}: {exc.strerror}") from None
        with source:
            reader: Any = (
                _ProgressReader(source, self.progress, self.budget)
                if self.progress or self.budget
                else source
            )
            item.checksums = write_verified(backend, item.path, reader, md5=self.md5)
        if item.checksums.bytes != item.size:
            backend.delete(item.path)
            raise LocalFileError(f"{item.local} changed size while it was being uploaded")
        return item

    def _write_all(self, backend: StorageBackend, items: list[FileItem]) -> list[FileItem]:
        if len(items) <= 1 or self.workers == 1:
            done: list[FileItem] = []
            try:
                for item in items:
                    done.append(self._write_one(backend, item))
            except _TokenTooShort as exc:
                exc.finished = done  # kept: the caller registers them
                raise
            except BaseException:
                self._remove(backend, done)
                raise
            return done
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures: list[Future[FileItem]] = [
                pool.submit(self._write_one, backend, item) for item in items
            ]
            finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                for future in pending:
                    future.cancel()
                wait(pending)
                ok = [
                    f.result()
                    for f in futures
                    if f.done() and not f.cancelled() and f.exception() is None
                ]
                error = failed[0].exception()
                assert error is not None
                if all(isinstance(f.exception(), _TokenTooShort) for f in failed):
                    assert isinstance(error, _TokenTooShort)
                    error.finished = ok  # kept: the caller registers them
                    raise error
                self._remove(backend, ok)
                raise error
        return [future.result() for future in futures]

    def _remove(self, backend: StorageBackend, items: list[FileItem]) -> None:
        for item in items:
            with suppress(LacusError):
                backend.delete(item.path)

    def _register(self, plan: Plan, meta: Mapping[str, MetaValue] | None) -> None:
        groups: dict[str | None, list[FileItem]] = {}
        for item in plan.files:
            groups.setdefault(item.dataset, []).append(item)
        for name in plan.datasets:
            groups.setdefault(name, [])
        if sum(1 for items in groups.values() if items) > 1:
            # Files of several datasets (a tree): register them all first, so that a clash
            # anywhere registers none of them; then create and fill the datasets.
            self._add_replicas(plan.files, meta, dataset=None)
            for dataset, items in groups.items():
                if dataset is None:
                    continue
                collection = f"{self.scope}:{dataset}"
                self._ensure_dataset(collection)
                refs = [f"{self.scope}:{item.name}" for item in items]
                for start in range(0, len(refs), REGISTER_BATCH):
                    batch = refs[start : start + REGISTER_BATCH]
                    self.client.attach(collection, batch, ignore_duplicates=True)
            return
        for dataset, items in groups.items():
            did = f"{self.scope}:{dataset}" if dataset else None
            if not items and did is not None:
                self._ensure_dataset(did)
            self._add_replicas(items, meta, dataset=did)

    def _add_replicas(
        self, items: list[FileItem], meta: Mapping[str, MetaValue] | None, *, dataset: str | None
    ) -> None:
        for start in range(0, len(items), REGISTER_BATCH):
            batch = items[start : start + REGISTER_BATCH]
            files = []
            for item in batch:
                assert item.checksums is not None
                spec: dict[str, Any] = {
                    "scope": self.scope,
                    "name": item.name,
                    "bytes": item.checksums.bytes,
                    "adler32": item.checksums.adler32,
                    "md5": item.checksums.md5,
                    "path": item.path,
                }
                if meta:
                    spec["meta"] = dict(meta)
                files.append(spec)
            self.client.add_replicas(self.rse, files, dataset=dataset)
            for item in batch:
                item.registered = True

    def _ensure_dataset(self, did: str) -> None:
        with suppress(DIDAlreadyExists):
            self.client.add_dataset(did)

    def _link_containers(self, plan: Plan) -> None:
        for name, children in plan.containers:  # post-order: child containers exist first
            did = f"{self.scope}:{name}"
            with suppress(DIDAlreadyExists):
                self.client.add_container(did)
            if children:
                self.client.attach(
                    did, [f"{self.scope}:{child}" for child in children], ignore_duplicates=True
                )


def _kept(message: str, finished: list[FileItem], plan: Plan) -> str:
    """``message``, and which files of ``plan`` were kept (written and registered)."""
    if not finished:
        return f"{message}; nothing was uploaded"
    done = {id(item) for item in finished}
    rest = [item for item in plan.files if id(item) not in done]
    names = ", ".join(item.name for item in finished[:5]) + (", ..." if len(finished) > 5 else "")
    return (
        f"{message}; kept the {len(finished)} file{'s' if len(finished) != 1 else ''} "
        f"finished ({names}); {len(rest)} not uploaded, starting with {rest[0].local}"
        if rest
        else f"{message}; every file was written and kept"
    )
