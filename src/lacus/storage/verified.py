"""Copies that are checked end to end: what the upload and download managers call.

``write_verified`` trusts nothing it did not read back from the storage; ``read_verified`` makes the
destination appear only once its bytes match the catalog's checksums.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from lacus.checksums import Checksums
from lacus.errors import (
    ChecksumMismatch,
    LacusError,
    LocalFileError,
    SourceCorrupted,
    SourceFileMissing,
    StorageFileNotFound,
)
from lacus.storage._base import (
    StorageBackend,
    StreamHasher,
    ThirdPartyCopy,
    VerifyingBackend,
    part_name,
)
from lacus.storage.posix import PosixBackend

__all__ = ["ChunkReader", "check_stored", "copy_verified", "read_verified", "write_verified"]

_AHEAD = 4  # chunks a stream copy reads from the source ahead of the destination


def write_verified(
    backend: StorageBackend,
    path: str,
    source: BinaryIO,
    *,
    md5: bool = True,
    expected: Checksums | None = None,
    overwrite: bool = False,
) -> Checksums:
    """Write ``source`` to ``path`` and check on the storage that the bytes arrived intact.

    The size and adler32 read back from the storage must equal those computed while writing (and
    ``expected``, when given). A ``VerifyingBackend`` reads back while writing; any other backend
    is asked for ``stat`` and ``checksum`` afterwards. On any failure the stored file is deleted.
    """
    if isinstance(backend, VerifyingBackend):
        sums = backend.put_verified(path, source, md5=md5, overwrite=overwrite)
        read_back = True
    else:
        sums = backend.put(path, source, md5=md5, overwrite=overwrite)
        read_back = False
    where = f"{backend.url}/{path}"
    try:
        if expected is not None:
            _compare(where, expected, sums, label="the data written had", md5=md5)
        size = backend.stat(path).bytes
        if size != sums.bytes:
            raise ChecksumMismatch(
                f"{where}: the storage holds {size} bytes, {sums.bytes} bytes were written"
            )
        if not read_back and (adler32 := backend.checksum(path, "adler32")) != sums.adler32:
            raise ChecksumMismatch(
                f"{where}: the storage has adler32 {adler32}, the data written had {sums.adler32}"
            )
    except BaseException:
        with contextlib.suppress(LacusError):
            backend.delete(path)
        raise
    return sums


def copy_verified(
    source: StorageBackend,
    source_path: str,
    dest: StorageBackend,
    dest_path: str,
    *,
    expected: Checksums,
    third_party: bool = True,
) -> str:
    """Copy a file between two storages; it stays at ``dest_path`` only if it matches ``expected``.

    When ``third_party`` and the destination can pull from the source's URL, the servers copy
    the bytes between themselves and the destination's size and adler32 are checked afterwards
    (returns ``tpc``); if they fail, the bytes stream through here after all. Between two POSIX
    storages of this machine the kernel copies the bytes, read back and summed behind the copy,
    and the file takes its name only if they match ``expected`` (``local copy``: no copy
    through this process, see ``PosixBackend.copy_from``). Otherwise the bytes stream through
    this process (``stream``): summed as they pass, so a corrupted source is caught too, and
    read back from the destination (``write_verified``).
    Existing bytes at ``dest_path`` (a stray file no replica owns) are replaced.

    Raises SourceFileMissing / SourceCorrupted when the source is at fault (when streaming), so
    the caller can declare that replica bad; any other error leaves nothing at ``dest_path``.
    """
    how = "stream"
    if third_party and isinstance(dest, ThirdPartyCopy) and isinstance(source, ThirdPartyCopy):
        url = source.url_of(source_path)
        if dest.can_pull_from(url):
            try:
                dest.pull(dest_path, url, size=expected.bytes, overwrite=True)
                _check_stored(dest, dest_path, expected)
                return "tpc"
            except LacusError as exc:  # the servers could not: the bytes go through here
                with contextlib.suppress(LacusError):
                    dest.delete(dest_path)
                how = f"stream (third-party copy failed: {exc})"[:300]
            except BaseException:
                with contextlib.suppress(LacusError):
                    dest.delete(dest_path)
                raise
    if isinstance(source, PosixBackend) and isinstance(dest, PosixBackend):
        _copy_local(source, source_path, dest, dest_path, expected)
        return "local copy"
    try:
        chunks = source.get(source_path)
    except StorageFileNotFound as exc:
        raise SourceFileMissing(f"source file missing: {exc}") from exc
    with ChunkReader(
        _ReadAhead(chunks),
        source_missing=True,
        size=expected.bytes,
        name=f"{source.url}/{source_path}",
    ) as stream:
        sums = write_verified(
            dest, dest_path, cast(BinaryIO, stream), md5=expected.md5 is not None, overwrite=True
        )
    try:
        _compare(f"{source.url}/{source_path}", expected, sums, label="the source has", md5=True)
    except ChecksumMismatch as exc:
        with contextlib.suppress(LacusError):
            dest.delete(dest_path)
        raise SourceCorrupted(str(exc)) from exc
    return how


def _copy_local(
    source: PosixBackend, source_path: str, dest: PosixBackend, dest_path: str, expected: Checksums
) -> None:
    """``dest.copy_from``; a copy that does not match ``expected`` is the source's fault when the
    source itself does not match (read again, only then)."""
    try:
        dest.copy_from(dest_path, source, source_path, expected=expected, overwrite=True)
    except StorageFileNotFound as exc:  # the destination's errors are never "not found"
        raise SourceFileMissing(f"source file missing: {exc}") from exc
    except ChecksumMismatch as exc:
        try:
            _check_stored(source, source_path, expected, md5=True)
        except StorageFileNotFound as missing:
            raise SourceFileMissing(f"source file missing: {missing}") from exc
        except ChecksumMismatch as corrupted:
            raise SourceCorrupted(str(corrupted)) from exc
        raise


def _check_stored(
    backend: StorageBackend, path: str, expected: Checksums, *, md5: bool = False
) -> None:
    where = f"{backend.url}/{path}"
    size = backend.stat(path).bytes
    if size != expected.bytes:
        raise ChecksumMismatch(f"{where}: expected {expected.bytes} bytes, the storage has {size}")
    adler = backend.checksum(path, "adler32")
    if _normal(adler) != _normal(expected.adler32):
        raise ChecksumMismatch(
            f"{where}: expected adler32 {expected.adler32}, the storage has {adler}"
        )
    if md5 and expected.md5 and (found := backend.checksum(path, "md5")) != expected.md5.lower():
        raise ChecksumMismatch(f"{where}: expected md5 {expected.md5}, the storage has {found}")


class _ReadAhead(Iterator[bytes]):
    """The chunks of a source's ``get``, fetched by a helper thread up to ``_AHEAD`` chunks ahead,
    so that receiving from the source overlaps sending to the destination (over the network
    both spend their time in the TLS library, which releases the GIL). The first chunk is
    fetched inline: a one-chunk file never starts a thread. Errors reach the consumer in order;
    ``close`` stops the thread and closes the source.
    """

    _END = object()

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._queue: queue.Queue[object] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._first = True

    def __iter__(self) -> _ReadAhead:
        return self

    def __next__(self) -> bytes:
        if self._first:  # inline; start reading ahead only if there is a second chunk
            self._first = False
            chunk = next(self._chunks)
            self._queue = queue.Queue(_AHEAD)
            self._thread = threading.Thread(target=self._fetch, name="lacus-read-ahead")
            self._thread.start()
            return chunk
        if self._queue is None:
            raise StopIteration
        item = self._queue.get()
        if item is self._END:
            self._queue.put(self._END)  # a later call ends too
            raise StopIteration
        if isinstance(item, BaseException):
            self._queue.put(self._END)
            raise item
        return cast(bytes, item)

    def _fetch(self) -> None:
        assert self._queue is not None
        try:
            for chunk in self._chunks:
                while not self._stopping.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stopping.is_set():
                    return
            self._queue.put(self._END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised in its thread
            self._queue.put(exc)

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            if self._queue is not None:
                with contextlib.suppress(queue.Empty):
                    while True:  # unblock a producer waiting for room
                        self._queue.get_nowait()
            self._thread.join()
            self._thread = None
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of chunks (a source backend's ``get``).

    ``source_missing``: a file missing while reading is the source's fault (SourceFileMissing).
    ``size``: the bytes the chunks must add up to, told to writers (``remaining_bytes``: a
    WebDAV put announces its length, or writes in parts); chunks adding up to another size raise
    SourceCorrupted (the source ``name`` holds another file than the catalog says).
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        source_missing: bool = False,
        size: int | None = None,
        name: str = "the source",
    ) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._source_missing = source_missing
        self._size = size
        self._name = name
        self._delivered = 0  # bytes taken from the chunks

    def remaining_bytes(self) -> int | None:
        """How many bytes are left to read, when the size was given."""
        if self._size is None:
            return None
        return self._size - self._delivered + len(self._pending)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                chunk = next(self._chunks, None)
            except StorageFileNotFound as exc:
                if self._source_missing and not isinstance(exc, SourceFileMissing):
                    raise SourceFileMissing(f"source file missing: {exc}") from exc
                raise
            if chunk is None:
                if self._size is not None and self._delivered != self._size:
                    raise SourceCorrupted(
                        f"{self._name}: the source has {self._delivered} bytes, "
                        f"expected {self._size}"
                    )
                return 0
            self._delivered += len(chunk)
            if self._size is not None and self._delivered > self._size:
                raise SourceCorrupted(
                    f"{self._name}: the source has more than the {self._size} bytes expected"
                )
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


def read_verified(
    backend: StorageBackend, path: str, dest: Path, *, expected: Checksums
) -> Checksums:
    """Copy ``path`` from the storage to ``dest``, which appears only if the bytes match.

    adler32 is always checked, md5 when ``expected`` has one. A file already at ``dest`` stays
    untouched unless the copy succeeds.
    """
    dest = Path(dest)
    where = f"{backend.url}/{path}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temporary = dest.parent / part_name(dest.name)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LocalFileError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    try:
        try:
            with StreamHasher(md5=expected.md5 is not None) as hasher:
                for chunk in backend.get(path):
                    hasher.update(chunk)
                    _write_local(fd, chunk, dest)
                sums = hasher.result()
        finally:
            os.close(fd)
        _compare(where, expected, sums, label="the storage has", md5=True)
        try:
            os.replace(temporary, dest)
        except OSError as exc:
            raise LocalFileError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return sums


def check_stored(
    backend: StorageBackend,
    path: str,
    *,
    expected: Checksums,
    pace: Callable[[int], None] | None = None,
) -> Checksums:
    """Read the stored file whole and compare it with the catalog: its size, adler32, and md5
    when ``expected`` has one. ChecksumMismatch when they differ, StorageFileNotFound when it is
    not there, other StorageErrors when the storage fails (the file is then not judged).
    ``pace(n)`` is called after each chunk of ``n`` bytes (a rate budget may sleep there)."""
    with StreamHasher(md5=expected.md5 is not None) as hasher:
        for chunk in backend.get(path):
            hasher.update(chunk)
            if pace is not None:
                pace(len(chunk))
        sums = hasher.result()
    _compare(f"{backend.url}/{path}", expected, sums, label="the storage has", md5=True)
    return sums


def _compare(where: str, expected: Checksums, actual: Checksums, *, label: str, md5: bool) -> None:
    if actual.bytes != expected.bytes:
        raise ChecksumMismatch(
            f"{where}: expected {expected.bytes} bytes, {label} {actual.bytes} bytes"
        )
    if _normal(actual.adler32) != _normal(expected.adler32):
        raise ChecksumMismatch(
            f"{where}: expected adler32 {expected.adler32}, {label} {actual.adler32}"
        )
    if md5 and expected.md5 and actual.md5 and expected.md5.lower() != actual.md5.lower():
        raise ChecksumMismatch(f"{where}: expected md5 {expected.md5}, {label} {actual.md5}")


def _normal(adler32: str) -> str:
    return adler32.lower().zfill(8)


def _write_local(fd: int, chunk: bytes, dest: Path) -> None:
    view = memoryview(chunk)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise LocalFileError(f"cannot write {dest}: {exc.strerror or exc}") from exc
