"""A storage backend on a local or mounted POSIX file system."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from lacus.checksums import CHUNK_SIZE, Checksums, format_adler32
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    InvalidInput,
    InvalidName,
    LacusError,
    LocalFileError,
    StorageError,
    StorageFileNotFound,
    StorageFull,
    StoragePermissionDenied,
)
from lacus.storage._base import (
    FileStat,
    StreamHasher,
    adler32,
    check_path,
    check_range,
    is_part_of,
    part_name,
    walk_sorted,
)
from lacus.storage._options import check_names, file_mode, typed

__all__ = ["PosixBackend"]

_FIRST_READ = 64 * 1024  # a small file never allocates a whole chunk
_DEPTH = 2  # chunks being hashed while the next one is read and written
_PARALLEL_MIN = 32 * 1024 * 1024  # checksum files this large in several threads
_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV)
_ADLER_BASE = 65521
_COPY_CHUNK = 8 * 1024 * 1024  # bytes per in-kernel copy call (copy_from), read back behind it
_READ_BACK_BUFFER = 1024 * 1024  # read back in pieces that stay in the CPU's cache
_RANGE_READ = 1 << 30  # bytes per positioned read of get_range: up to 1 GiB, one buffer, no join
_NO_KERNEL_COPY = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
FILE_MODE = 0o640
"""The permission bits of stored files: not world-readable (the ``file_mode`` option)."""
DIR_MODE = 0o750
"""The permission bits of the directories made for them (the ``dir_mode`` option)."""


class PosixBackend:
    """Files under one directory, written atomically with their checksums computed in the same pass.

    ``fsync`` makes a returned ``put`` durable: the file and its directory are flushed to disk.
    Files get the permission bits ``file_mode`` and the directories made for them ``dir_mode``
    whatever the process's umask (default 0640 and 0750: nobody but the storage's owner and its
    group reads them, embargoed or not).
    """

    def __init__(
        self,
        prefix: str | Path,
        *,
        fsync: bool = True,
        chunk_size: int = CHUNK_SIZE,
        file_mode: int = FILE_MODE,
        dir_mode: int = DIR_MODE,
    ) -> None:
        if chunk_size < _FIRST_READ:
            raise ValueError(f"chunk_size must be at least {_FIRST_READ} bytes")
        self._root = os.path.realpath(os.fspath(prefix))
        self._inside = os.path.join(self._root, "")  # the root and its separator
        self._fsync = fsync
        self._chunk_size = chunk_size
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self.url = Path(self._root).as_uri()

    @classmethod
    def from_protocol(
        cls, *, prefix: str, hostname: str = "", port: int = 0, **options: object
    ) -> PosixBackend:
        """Build from an RSE protocol; ``hostname`` and ``port`` mean nothing to a local path.
        Options: ``fsync`` (bool), ``chunk_size`` (int), ``file_mode`` and ``dir_mode`` (octal
        permission bits, e.g. "0640" and "0750")."""
        check_names("posix", options, ("chunk_size", "dir_mode", "file_mode", "fsync"))
        return cls(
            prefix,
            fsync=typed("posix", options, "fsync", bool, True),
            chunk_size=typed("posix", options, "chunk_size", int, CHUNK_SIZE),
            file_mode=file_mode(
                "posix", "file_mode", options.get("file_mode", FILE_MODE), owner=0o600
            ),
            dir_mode=file_mode("posix", "dir_mode", options.get("dir_mode", DIR_MODE), owner=0o700),
        )

    def __repr__(self) -> str:
        return f"PosixBackend({self._root!r}, fsync={self._fsync})"

    def stat(self, path: str) -> FileStat:
        path = check_path(path)
        info = self._stat_file(self._full(path), path)
        return FileStat(path=path, bytes=info.st_size, mtime=info.st_mtime)

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        return self._put(
            path,
            overwrite=overwrite,
            write=lambda fd: self._write_stream(source, fd, md5=md5, path=path, verify=False),
        )

    def put_verified(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        """``put``, reading the file back from the storage before it takes its name.

        A helper thread reads the bytes back behind the writer (from the file, never from the
        write buffers) and sums their adler32; a different size or adler32 raises ChecksumMismatch
        and nothing is left on the storage.
        """
        return self._put(
            path,
            overwrite=overwrite,
            write=lambda fd: self._write_stream(source, fd, md5=md5, path=path, verify=True),
        )

    def copy_from(
        self,
        path: str,
        source: PosixBackend,
        source_path: str,
        *,
        expected: Checksums,
        overwrite: bool = False,
    ) -> Checksums:
        """Copy ``source_path`` of another POSIX storage on this machine to ``path``, verified.

        The kernel moves the bytes (``copy_file_range``: no copy through this process; a reflink
        or a server-side copy where the file system offers one). A helper thread reads the new
        file back behind the copy and sums it (adler32, md5 when ``expected`` has one); the file
        takes its name only if its size and checksums equal ``expected``, else ChecksumMismatch
        and nothing is left. The returned checksums are those of the bytes read back. The
        source's errors are reported as the source storage's (StorageFileNotFound...).
        """
        path = check_path(path)
        source_path = check_path(source_path)
        full = source._full(source_path)
        try:
            source_fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise source._error(exc, source_path, "reading") from exc
        try:
            info = os.fstat(source_fd)
            if not stat.S_ISREG(info.st_mode):
                raise StorageFileNotFound(f"{source.url}/{source_path} is not a file")
            if info.st_size != expected.bytes:  # nothing to copy: the source is not the file
                raise ChecksumMismatch(
                    f"{self.url}/{path}: the copy of {source.url}/{source_path} would have "
                    f"{info.st_size} bytes, expected {expected.bytes}"
                )
            return self._put(
                path,
                overwrite=overwrite,
                write=lambda fd: self._write_copy(
                    source, source_path, source_fd, fd, path=path, expected=expected
                ),
            )
        finally:
            os.close(source_fd)

    def _put(self, path: str, *, overwrite: bool, write: Callable[[int], Checksums]) -> Checksums:
        """Make ``path`` from what ``write(fd)`` writes (and checks) into a hidden temporary
        file (``fd``, readable too), then give it its name; on any failure nothing is left."""
        path = check_path(path)
        full = self._full(path)
        if not overwrite and os.path.lexists(full):
            raise FileAlreadyOnStorage(f"{self.url}/{path} exists already")
        directory, name = os.path.split(full)
        temporary = os.path.join(directory, part_name(name))
        placed = False
        try:
            fd, created = _create(
                temporary, directory, self._root, file_mode=self._file_mode, dir_mode=self._dir_mode
            )
            try:
                sums = write(fd)
            finally:
                os.close(fd)
            self._place(temporary, full, path, overwrite=overwrite)
            placed = True
            if self._fsync:  # the new name, and the names of the directories made for it
                for parent in sorted(
                    {directory, *(os.path.dirname(d) for d in created)}, reverse=True
                ):
                    _fsync_directory(parent)
        except BaseException as exc:
            _remove_quietly(temporary)
            if placed:
                _remove_quietly(full)
            self._prune(directory)
            if isinstance(exc, OSError):
                raise self._error(exc, path, "writing", missing=False) from exc
            raise
        return sums

    def _write_stream(
        self, source: BinaryIO, fd: int, *, md5: bool, path: str, verify: bool
    ) -> Checksums:
        with _ReadBack(fd, self._chunk_size, enabled=verify, write_out=self._fsync) as read_back:
            sums = self._copy(source, fd, md5=md5, path=path, read_back=read_back)
            if self._fsync:
                os.fsync(fd)
            if verify:
                self._verify(sums, read_back.result(), os.fstat(fd).st_size, path)
        return sums

    def _write_copy(
        self,
        source: PosixBackend,
        source_path: str,
        source_fd: int,
        fd: int,
        *,
        path: str,
        expected: Checksums,
    ) -> Checksums:
        md5 = expected.md5 is not None
        with _ReadBack(fd, _COPY_CHUNK, md5=md5, write_out=self._fsync) as read_back:
            copy = _KernelCopy(source_fd, fd)
            written = 0
            while written < expected.bytes:  # the catalog's bytes, checked below (a source
                try:  # that shrank meanwhile ends early and its size differs)
                    count = copy(min(_COPY_CHUNK, expected.bytes - written))
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ESTALE):  # the source vanished
                        raise source._error(exc, source_path, "reading") from exc
                    raise
                if not count:
                    break
                written += count
                read_back.advance(written)
            if self._fsync:
                os.fsync(fd)
            count, value, digest = read_back.result()
        size = os.fstat(fd).st_size
        stored = Checksums(bytes=count, adler32=format_adler32(value), md5=digest)
        if count != written or size != written:
            raise ChecksumMismatch(
                f"{self.url}/{path}: the storage holds {size} bytes ({count} read back), "
                f"{written} bytes were copied"
            )
        wrong = _differences(stored, expected)
        if wrong:
            raise ChecksumMismatch(
                f"{self.url}/{path}: the copy of {source.url}/{source_path} has {wrong}"
            )
        return stored

    def get(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = check_path(path)
        full = self._full(path)
        self._stat_file(full, path)
        return self._chunks(full, path, chunk_size)

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``ReadsRanges``: positioned reads of the file, nothing before ``start`` read."""
        check_range(start, length)
        path = check_path(path)
        full = self._full(path)
        self._stat_file(full, path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._error(exc, path, "reading") from exc
        try:
            parts: list[bytes] = []
            while length > 0:
                part = os.pread(fd, min(length, _RANGE_READ), start)
                if not part:
                    break
                parts.append(part)
                start += len(part)
                length -= len(part)
        except OSError as exc:
            raise self._error(exc, path, "reading") from exc
        finally:
            os.close(fd)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def delete(self, path: str) -> None:
        path = check_path(path)
        full = self._full(path)
        try:
            os.unlink(full)
        except OSError as exc:
            if os.path.isdir(full):
                raise StorageFileNotFound(f"{self.url}/{path} is a directory, not a file") from exc
            raise self._error(exc, path, "deleting") from exc
        self._prune(os.path.dirname(full))

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = check_path(prefix, allow_empty=True)
        top = self._full(prefix) if prefix else self._root
        return (path for path, _ in self._walk(top, prefix, parts=False))

    def scan(self, prefix: str = "") -> Iterator[FileStat]:
        """``ScansStorage``: ``os.scandir`` directory by directory, each file's size and mtime
        from a stat of its entry (following a symbolic link, as ``stat`` does)."""
        prefix = check_path(prefix, allow_empty=True)
        return self._scan(self._full(prefix) if prefix else self._root, prefix)

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        if algorithm not in ("adler32", "md5"):
            raise InvalidInput(f"unknown checksum algorithm {algorithm!r}; use adler32 or md5")
        path = check_path(path)
        full = self._full(path)
        size = self._stat_file(full, path).st_size
        try:
            if algorithm == "md5":
                digest = _md5_file(full, self._chunk_size)
            else:
                digest = format_adler32(_adler32_file(full, size, self._chunk_size))
            if os.stat(full).st_size != size:
                raise StorageError(f"{self.url}/{path} changed while its checksum was computed")
        except OSError as exc:
            raise self._error(exc, path, "reading") from exc
        return digest

    def remove_temporaries(self, path: str) -> int:
        """Delete the temporary files of puts of ``path`` whose writer was killed before it
        could (``RemovesTemporaries``); how many."""
        path = check_path(path)
        directory, name = os.path.split(self._full(path))
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._error(exc, path, "listing") from exc
        removed = 0
        for entry in names:
            if not is_part_of(entry, name):
                continue
            try:
                os.unlink(os.path.join(directory, entry))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._error(exc, path, "deleting") from exc
            removed += 1
        return removed

    # -- helpers ------------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        full = _resolved(os.path.join(self._root, path))
        if full != self._root and not full.startswith(self._inside):  # both resolved
            raise InvalidName(f"invalid storage path {path!r}: it leads outside {self.url}")
        return full

    def _stat_file(self, full: str, path: str) -> os.stat_result:
        try:
            info = os.stat(full)
        except OSError as exc:
            raise self._error(exc, path, "reading") from exc
        if not stat.S_ISREG(info.st_mode):
            raise StorageFileNotFound(f"{self.url}/{path} is not a file")
        return info

    def _error(self, exc: OSError, path: str, doing: str, *, missing: bool = True) -> LacusError:
        where = f"{self.url}/{path}" if path else self.url
        reason = exc.strerror or str(exc)
        if exc.errno in _FULL:
            return StorageFull(f"storage {self.url} is full: cannot write {path} ({reason})")
        if exc.errno in _DENIED:
            return StoragePermissionDenied(f"storage refused {doing} {where}: {reason}")
        if missing and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return StorageFileNotFound(f"{where} does not exist")
        return StorageError(f"storage failed {doing} {where}: {reason}")

    def _verify(
        self, sums: Checksums, read: tuple[int, int, str | None], size: int, path: str
    ) -> None:
        stored = Checksums(bytes=size, adler32=format_adler32(read[1]))
        if read[0] != sums.bytes or size != sums.bytes or stored.adler32 != sums.adler32:
            raise ChecksumMismatch(
                f"{self.url}/{path}: the storage holds {size} bytes with adler32 "
                f"{stored.adler32}, {sums.bytes} bytes with adler32 {sums.adler32} were written"
            )

    def _copy(
        self, source: BinaryIO, fd: int, *, md5: bool, path: str, read_back: _ReadBack
    ) -> Checksums:
        readinto: Callable[[memoryview], int | None] | None = getattr(source, "readinto", None)
        buffers: list[bytearray] = []
        slot = 0
        written = 0
        size = _FIRST_READ  # grows to a whole chunk once a read fills its buffer
        with StreamHasher(md5=md5, depth=_DEPTH) as hasher:
            while True:
                if slot == len(buffers):
                    buffers.append(bytearray(size))
                elif len(buffers[slot]) < size:
                    buffers[slot] = bytearray(size)
                chunk = self._read(source, readinto, buffers[slot], path)
                if not chunk:
                    return hasher.result()
                hasher.update(chunk)
                self._write(fd, chunk)
                written += len(chunk)
                read_back.advance(written)
                if len(chunk) == len(buffers[slot]):
                    size = self._chunk_size
                slot = (slot + 1) % (_DEPTH + 1)

    def _read(
        self,
        source: BinaryIO,
        readinto: Callable[[memoryview], int | None] | None,
        buffer: bytearray,
        path: str,
    ) -> memoryview:
        """Fill ``buffer`` from ``source``; short only at the end, whatever the read sizes."""
        view = memoryview(buffer)
        filled = 0
        try:
            while filled < len(view):
                if readinto is not None:
                    count = readinto(view[filled:])
                elif (data := source.read(len(view) - filled)) is not None:
                    count = len(data)
                    view[filled : filled + count] = data
                else:
                    count = None
                if count is None:
                    raise LocalFileError(f"the data for {self.url}/{path} is a non-blocking stream")
                if not count:
                    break
                filled += count
        except OSError as exc:
            raise LocalFileError(f"cannot read the data for {self.url}/{path}: {exc}") from exc
        return view[:filled]

    def _write(self, fd: int, data: memoryview | bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _place(self, temporary: str, full: str, path: str, *, overwrite: bool) -> None:
        """Give ``temporary`` its final name; without ``overwrite``, never replace a file."""
        if overwrite:
            os.replace(temporary, full)
            return
        try:  # a hard link fails if the name exists, where rename would replace the file
            os.link(temporary, full)
        except FileExistsError:
            raise FileAlreadyOnStorage(f"{self.url}/{path} exists already") from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(full):
                raise FileAlreadyOnStorage(f"{self.url}/{path} exists already") from None
            os.rename(temporary, full)
            return
        try:
            os.unlink(temporary)
        except OSError:
            _remove_quietly(full)
            raise

    def _chunks(self, full: str, path: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with open(full, "rb", buffering=0) as stream:
                while chunk := stream.read(chunk_size):
                    yield chunk
        except OSError as exc:
            raise self._error(exc, path, "reading") from exc

    def _prune(self, directory: str) -> None:
        while directory != self._root and directory.startswith(self._root):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    def _scan(self, top: str, prefix: str) -> Iterator[FileStat]:
        for path, found in self._walk(top, prefix, parts=True):
            try:
                info = os.stat(found)
            except FileNotFoundError:
                continue  # deleted since its directory was listed (or a dangling link)
            except OSError as exc:
                raise self._error(exc, path, "listing") from exc
            yield FileStat(path=path, bytes=info.st_size, mtime=info.st_mtime)

    def _walk(
        self, top: str, prefix: str, *, parts: bool
    ) -> Iterator[tuple[str, str | os.DirEntry[str]]]:
        """``(path, entry)`` of the files below ``top`` (``prefix``) in the order of ``scan``;
        ``prefix`` itself (its full path as entry) if it is a file. The directories reached by
        a symbolic link are not walked (as ``os.walk``), the files it names are listed."""
        if os.path.isfile(top):
            yield prefix, top
            return

        def children(directory: str) -> list[tuple[str, os.DirEntry[str] | None]]:
            full = os.path.join(top, directory[len(prefix) :].lstrip("/"))
            try:
                with os.scandir(full) as entries:
                    return [
                        (entry.name, None if is_dir else entry)
                        for entry in entries
                        if not ((is_dir := entry.is_dir()) and entry.is_symlink())
                    ]
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):  # missing, or removed meanwhile
                    return []
                raise self._error(exc, directory, "listing") from exc

        yield from walk_sorted(prefix, children, parts=parts)


def _create(
    temporary: str, directory: str, root: str, *, file_mode: int, dir_mode: int
) -> tuple[int, list[str]]:
    """Open ``temporary`` for writing, making its directory; return the fd and the dirs made.
    The file gets ``file_mode``, the directories made ``dir_mode`` (exactly: not the umask's)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # read back through it too
    created: list[str] = []
    for attempt in range(3):  # a concurrent delete may prune the directory just made
        try:
            fd = os.open(temporary, flags, file_mode)  # the umask can only take bits away
        except FileNotFoundError:
            if attempt == 2:
                raise
        else:
            try:
                _set_mode(temporary, file_mode, fd=fd)
            except BaseException:
                os.close(fd)
                raise
            return fd, created
        missing: list[str] = []  # the storage's root too, before its first file
        parent = directory
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        created.extend(made for made in missing if made.startswith(root + os.sep))
        with contextlib.suppress(FileNotFoundError):  # pruned meanwhile: the next try makes it
            for made in reversed(missing):
                try:
                    os.mkdir(made, dir_mode)
                except FileExistsError:
                    continue
                _set_mode(made, dir_mode)
    raise AssertionError("unreachable")


def _set_mode(path: str, mode: int, *, fd: int | None = None) -> None:
    """Give ``path`` (just created by this process) exactly ``mode``: the umask may have taken
    bits away. A file system that keeps modes of its own (some FUSE or CIFS mounts) leaves the
    stricter ones the umask gave."""
    try:
        current = os.fstat(fd) if fd is not None else os.stat(path)
        if stat.S_IMODE(current.st_mode) != mode:
            os.chmod(fd if fd is not None else path, mode)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
            raise


class _ReadBack:
    """Reads a file back from the storage behind its writer, in a thread, summing its adler32
    (and md5 when asked).

    The thread starts once two chunks are written (small files are read back at the end) and
    reads whenever a whole chunk is waiting; ``result`` reads what is left. With ``write_out``
    (the file will be fsynced), each range read back is handed to the disk at once and leaves
    the page cache once written (``POSIX_FADV_DONTNEED``), so the final fsync has little left to
    wait for and a large copy does not fill the page cache with dirty pages.
    """

    def __init__(
        self,
        fd: int,
        chunk_size: int,
        *,
        enabled: bool = True,
        md5: bool = False,
        write_out: bool = False,
    ) -> None:
        self._enabled = enabled
        self._fd = fd  # the writer's (readable); positioned reads leave its offset alone
        self._chunk_size = chunk_size
        self._buffer: memoryview | None = None
        self._offset = 0
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._write_out = write_out and hasattr(os, "posix_fadvise")
        self._written = 0
        self._stopping = False
        self._changed = threading.Condition()
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[None] | None = None

    def __enter__(self) -> _ReadBack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(Exception):
            self._stop()

    def advance(self, written: int) -> None:
        """The writer has written ``written`` bytes so far."""
        if not self._enabled:
            return
        with self._changed:
            self._written = written
            self._changed.notify()
        if self._pool is None and written >= 2 * self._chunk_size:
            self._pool = ThreadPoolExecutor(1, "lacus-read-back")
            self._future = self._pool.submit(self._follow)

    def result(self) -> tuple[int, int, str | None]:
        """Once the writer is done: the number of bytes read back, their adler32 and md5."""
        self._stop()
        self._read_to(self._written)
        return self._offset, self._adler, None if self._md5 is None else self._md5.hexdigest()

    def _follow(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and self._written - self._offset < self._chunk_size:
                    self._changed.wait()
                if self._stopping:
                    return
                end = self._written
            start = self._offset
            self._read_to(end)
            if self._write_out:
                os.posix_fadvise(self._fd, start, end - start, os.POSIX_FADV_DONTNEED)

    def _read_to(self, end: int) -> None:
        wanted = min(self._chunk_size, _READ_BACK_BUFFER, max(end - self._offset, _FIRST_READ))
        if self._buffer is None or len(self._buffer) < wanted:  # a small file, a small buffer
            self._buffer = memoryview(bytearray(wanted))
        while self._offset < end:
            size = min(len(self._buffer), end - self._offset)
            count = os.preadv(self._fd, [self._buffer[:size]], self._offset)
            if not count:
                raise OSError(errno.EIO, "the file is shorter than the bytes written")
            self._adler = adler32(self._buffer[:count], self._adler)
            if self._md5 is not None:
                self._md5.update(self._buffer[:count])
            self._offset += count

    def _stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._future is not None:
            future, self._future = self._future, None
            future.result()


class _KernelCopy:
    """Copies from the current offset of one file to that of another in the kernel, in calls of
    up to ``count`` bytes (0 at the end of the source): ``copy_file_range``, else ``sendfile``,
    else read and write, whichever the file systems allow (old kernels, some file systems)."""

    def __init__(self, source_fd: int, fd: int) -> None:
        self._source_fd = source_fd
        self._fd = fd
        self._method = "copy_file_range" if hasattr(os, "copy_file_range") else "sendfile"

    def __call__(self, count: int) -> int:
        if self._method == "copy_file_range":
            try:
                return os.copy_file_range(self._source_fd, self._fd, count)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._method = "sendfile"
        if self._method == "sendfile":
            try:
                return os.sendfile(self._fd, self._source_fd, None, count)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._method = "read"
        data = os.read(self._source_fd, min(count, CHUNK_SIZE))
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return len(data)


def _differences(found: Checksums, expected: Checksums) -> str:
    """What differs between ``found`` and ``expected``, in words ('' when nothing does)."""
    if found.bytes != expected.bytes:
        return f"{found.bytes} bytes, expected {expected.bytes}"
    if found.adler32 != expected.adler32.lower().zfill(8):
        return f"adler32 {found.adler32}, expected {expected.adler32}"
    if expected.md5 and found.md5 and found.md5 != expected.md5.lower():
        return f"md5 {found.md5}, expected {expected.md5}"
    return ""


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _md5_file(full: str, chunk_size: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    buffer = memoryview(bytearray(chunk_size))
    with open(full, "rb", buffering=0) as stream:
        while count := stream.readinto(buffer):
            digest.update(buffer[:count])
    return digest.hexdigest()


def _adler32_file(full: str, size: int, chunk_size: int) -> int:
    """adler32 of a file, its parts read and summed in parallel threads when it is large."""
    workers = min(len(os.sched_getaffinity(0)), 4)
    if workers < 2 or size < _PARALLEL_MIN:
        return _adler32_range(full, 0, size, chunk_size)
    step = -(-size // workers)
    ranges = [(start, min(step, size - start)) for start in range(0, size, step)]
    with ThreadPoolExecutor(len(ranges), "lacus-checksum") as pool:
        parts = list(pool.map(lambda r: _adler32_range(full, r[0], r[1], chunk_size), ranges))
    value = parts[0]
    for part, (_, length) in zip(parts[1:], ranges[1:], strict=True):
        value = adler32_combine(value, part, length)
    return value


def _adler32_range(full: str, start: int, length: int, chunk_size: int) -> int:
    value = 1
    buffer = memoryview(bytearray(max(1, min(chunk_size, length))))
    with open(full, "rb", buffering=0) as stream:
        stream.seek(start)
        while length > 0:
            count = stream.readinto(buffer[: min(length, len(buffer))])
            if not count:
                raise OSError(errno.EIO, "the file is shorter than its size")
            value = adler32(buffer[:count], value)
            length -= count
    return value


def adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """adler32 of A+B from adler32(A), adler32(B) and len(B), as zlib's ``adler32_combine``."""
    rem = length2 % _ADLER_BASE
    a1, b1 = adler1 & 0xFFFF, adler1 >> 16
    a2, b2 = adler2 & 0xFFFF, adler2 >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (rem * a1 + b1 + b2 - rem) % _ADLER_BASE
    return (b << 16) | a


_PROC_FDS = "/proc/self/fd"
_BY_KERNEL = hasattr(os, "O_PATH") and os.path.isdir(_PROC_FDS)


def _resolved(path: str) -> str:
    """``path`` with every symbolic link resolved (``os.path.realpath``). An existing path is
    resolved by the kernel: opened without being read (``O_PATH``) and named again through
    ``/proc`` — three system calls where ``realpath`` makes one ``lstat`` per component of the
    path (the containment check of every file a non-admin registers, or the scrubber reads)."""
    if _BY_KERNEL:
        try:
            handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:  # not there (yet): resolve what exists, as realpath does
            return os.path.realpath(path)
        try:
            return os.readlink(f"{_PROC_FDS}/{handle}")
        finally:
            os.close(handle)
    return os.path.realpath(path)
