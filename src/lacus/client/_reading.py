"""Reading files of the lake from the closest replica: parts of them, or whole and verified.

``ReplicaReader.locate`` finds a file's replicas and orders them (``_closest``). A whole read
(``read_whole``, ``copy_to``) is checked against the catalog's size and adler32 before anything
is returned or takes its name, and goes on to the next replica when one is unreachable or
corrupt. Reads of parts (``RangeSource``) cannot be checked one by one: ``SequentialCheck``
sums the bytes as they are read from the start of the file, and the read that reaches the end
raises ChecksumMismatch when they do not match — so a whole-file read never returns bytes that
fail the check, and a file read from start to end fails at its last read if it was corrupt.
A storage that cannot serve parts (``UnsupportedOperation``, or no ``ReadsRanges``) is read
through a verified copy in the local cache directory. A replica whose bytes do not match is
reported suspicious to the server (``suspect``, best effort).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lacus.checksums import ChecksumAccumulator, Checksums, adler32, format_adler32
from lacus.client._closest import local_prefix, order_replicas
from lacus.client._storage import backend_for
from lacus.client.integrity import Suspects
from lacus.errors import (
    ChecksumMismatch,
    DIDNotFound,
    LacusError,
    ReplicaNotFound,
)
from lacus.naming import deterministic_path
from lacus.storage import PosixBackend, ReadsRanges, StorageBackend, read_verified

if TYPE_CHECKING:
    from lacus.client._client import Client

RSE_CACHE_SECONDS = 60.0
"""How long a reader trusts what it learnt of an RSE (description, storage backend, distances)."""


@dataclass(frozen=True, slots=True)
class Located:
    """One file, with its replicas best first: ``(RSE, {"path": ..., "pfn": ...})``."""

    scope: str
    name: str
    bytes: int
    adler32: str
    md5: str | None
    candidates: list[tuple[str, dict[str, Any]]]

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"

    @property
    def expected(self) -> Checksums:
        """Size and adler32, what every copy is checked against (md5 would halve the speed of
        a copy, as for ``lacus download``)."""
        return Checksums(bytes=self.bytes, adler32=self.adler32, md5=None)


@dataclass(slots=True)
class RangeSource:
    """Where the parts of one file are read from: a replica, or the local verified copy."""

    backend: ReadsRanges
    path: str
    rse: str | None  # None: the local cache

    def read(self, start: int, length: int) -> bytes:
        return self.backend.get_range(self.path, start, length)


@dataclass(slots=True)
class SequentialCheck:
    """The adler32 of the bytes read so far from the start of a file, compared with the
    catalog's when the reads reach its end (``feed`` raises ChecksumMismatch then)."""

    size: int
    adler32: str
    where: str
    position: int = 0
    _value: int = field(default=1, repr=False)

    def feed(self, start: int, data: bytes) -> None:
        if not start <= self.position < start + len(data):
            return  # a part further on, or one read before: it cannot be summed in order
        piece = memoryview(data)[self.position - start :]
        self._value = adler32(piece, self._value)
        self.position += len(piece)
        if self.position == self.size and format_adler32(self._value) != self.adler32.zfill(8):
            raise ChecksumMismatch(
                f"{self.where}: the bytes read have adler32 {format_adler32(self._value)}, the "
                f"catalog says {self.adler32}: the replica is corrupt"
            )


class ReplicaReader:
    """Finds files' replicas and reads them from the closest one (see the module).

    ``rse``: the reader's own RSE, preferred, and the reference for distances; ``cache_dir``:
    where verified copies go when a storage cannot serve parts of files.
    """

    def __init__(self, client: Client, *, rse: str | None, cache_dir: Path) -> None:
        self.client = client
        self.rse = rse
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._opened: list[StorageBackend] = []
        self.suspects = Suspects(client, reader="lacus:// read")
        self._forget()

    def close(self) -> None:
        """Close the storage connections this reader opened."""
        with self._lock:
            opened, self._opened = self._opened, []
            self._forget()
        for backend in opened:
            close = getattr(backend, "close", None)
            if close is not None:
                close()

    def _forget(self) -> None:
        """Drop what is known of the RSEs (their protocols and links may have changed)."""
        self._rses: dict[str, dict[str, Any]] = {}
        self._backends: dict[str, StorageBackend | LacusError] = {}
        self._local: dict[str, str | None] = {}
        self._distances: dict[str, int] | None = None
        self._known_until = time.monotonic() + RSE_CACHE_SECONDS

    # -- where --------------------------------------------------------------------------------
    def locate(self, did: str) -> Located:
        """The file ``did`` and its available replicas, best first."""
        if time.monotonic() > self._known_until:
            with self._lock:
                self._forget()
        found = list(self.client.list_replicas([did]))
        scope, _, name = did.partition(":")
        file = next((f for f in found if (f["scope"], f["name"]) == (scope, name)), None)
        if file is None:
            raise DIDNotFound(f"{did} is not a file")
        rses = {rse: self.describe(rse) for rse in file["rses"]}
        local = {rse for rse in rses if self.local_prefix(rse) is not None}
        ordered = order_replicas(
            file["rses"], rses, preferred=self.rse, local=local, distances=self.distances()
        )
        return Located(scope, name, file["bytes"], file["adler32"], file["md5"], ordered)

    def describe(self, rse: str) -> dict[str, Any]:
        with self._lock:
            known = self._rses.get(rse)
        if known is None:
            known = self.client.get_rse(rse)
            with self._lock:
                self._rses[rse] = known
        return known

    def local_prefix(self, rse: str) -> str | None:
        """The directory holding ``rse``'s files when it is on this machine."""
        if rse not in self._local:
            self._local[rse] = local_prefix(self.describe(rse), os.path.isdir)
        return self._local[rse]

    def distances(self) -> dict[str, int]:
        if self._distances is None:
            try:
                links = self.client.list_distances(dest=self.rse) if self.rse else []
            except LacusError:  # an RSE unknown here: no distances to rank by
                links = []
            self._distances = {link["src_rse"]: int(link["distance"]) for link in links}
        return self._distances

    def backend(self, rse: str) -> StorageBackend:
        with self._lock:
            known = self._backends.get(rse)
        if known is None:
            try:
                known = backend_for(self.describe(rse))
            except LacusError as exc:
                known = exc
            with self._lock:
                self._backends[rse] = known
                if not isinstance(known, LacusError):
                    self._opened.append(known)
        if isinstance(known, LacusError):
            raise known
        return known

    # -- whole files, verified -----------------------------------------------------------------
    def read_whole(self, file: Located) -> bytes:
        """The file's bytes, checked against the catalog; the next replica on any failure."""
        errors: list[LacusError] = []
        for rse, location in file.candidates:
            try:
                return self._read_checked(file, rse, location["path"])
            except ChecksumMismatch as exc:
                errors.append(exc)
                self.suspect(file, rse, exc, where=f"{self.backend(rse).url}/{location['path']}")
            except LacusError as exc:
                errors.append(exc)
        raise _failure(file, errors)

    def suspect(self, file: Located, rse: str, problem: LacusError, *, where: str = "") -> None:
        """Report the file's replica on ``rse`` suspicious: its bytes do not match (best
        effort, once per reader)."""
        self.suspects.report(file.scope, file.name, rse, problem.message, where=where)

    def _read_checked(self, file: Located, rse: str, path: str) -> bytes:
        backend = self.backend(rse)
        sums = ChecksumAccumulator(md5=False)
        if isinstance(backend, ReadsRanges):  # one buffer (POSIX: one read), no join
            data = backend.get_range(path, 0, file.bytes + 1)  # one byte more: a longer file
            sums.update(data)
        else:
            parts = []
            for chunk in backend.get(path):
                sums.update(chunk)
                parts.append(chunk)
            data = b"".join(parts)
        _compare(f"{backend.url}/{path}", file.expected, sums.result())
        return data

    def copy_to(self, file: Located, dest: Path) -> str:
        """Copy the file to ``dest``, which appears only once its bytes match; the RSE read."""
        errors: list[LacusError] = []
        for rse, location in file.candidates:
            try:
                backend = self.backend(rse)
                read_verified(backend, location["path"], dest, expected=file.expected)
            except ChecksumMismatch as exc:
                errors.append(exc)
                self.suspect(file, rse, exc, where=f"{backend.url}/{location['path']}")
                continue
            except LacusError as exc:
                errors.append(exc)
                continue
            return rse
        raise _failure(file, errors)

    # -- parts ---------------------------------------------------------------------------------
    def range_sources(self, file: Located, *, local_copy: bool) -> Iterator[RangeSource]:
        """Where to read parts of the file from, best first: each replica whose storage reads
        parts (or, with ``local_copy``, only the verified local copy)."""
        if not local_copy:
            for rse, location in file.candidates:
                try:
                    backend = self.backend(rse)
                except LacusError:
                    continue
                if isinstance(backend, ReadsRanges):
                    yield RangeSource(backend, location["path"], rse)
        yield self.cached(file)

    def cached(self, file: Located) -> RangeSource:
        """The file's verified copy in the cache directory (made now if it is not there)."""
        relative = deterministic_path(file.scope, file.name)
        dest = self.cache_dir / relative
        if not (dest.is_file() and dest.stat().st_size == file.bytes):
            self.copy_to(file, dest)
        return RangeSource(PosixBackend(self.cache_dir, fsync=False), relative, None)


def _compare(where: str, expected: Checksums, actual: Checksums) -> None:
    if (actual.bytes, actual.adler32) != (expected.bytes, expected.adler32.zfill(8)):
        raise ChecksumMismatch(
            f"{where}: the catalog says {expected.bytes} bytes with adler32 {expected.adler32}, "
            f"the storage has {actual.bytes} bytes with adler32 {actual.adler32}"
        )


def _failure(file: Located, errors: list[LacusError]) -> LacusError:
    if not errors:
        return ReplicaNotFound(f"{file.did} has no available replica")
    return type(errors[-1])("; ".join(exc.message for exc in errors))
