"""The storage protocol, the helpers every backend shares, and the scheme registry."""

from __future__ import annotations

import hashlib
import importlib
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from lacus.checksums import CHUNK_SIZE, Checksums, adler32, format_adler32
from lacus.errors import InvalidName, ProtocolNotFound

__all__ = [
    "CHUNK_SIZE",
    "FileStat",
    "ReadsRanges",
    "RemovesTemporaries",
    "ScansStorage",
    "StorageBackend",
    "StreamHasher",
    "ThirdPartyCopy",
    "VerifyingBackend",
    "adler32",
    "check_path",
    "check_range",
    "is_part_name",
    "is_part_of",
    "known_schemes",
    "open_backend",
    "part_name",
    "walk_sorted",
]

_INLINE_BELOW = 256 * 1024  # smaller chunks are hashed faster than handed to a thread
_PART_RE = re.compile(r"\..+\.lacus-part-[0-9a-f]+")
_Item = TypeVar("_Item")


@dataclass(frozen=True, slots=True)
class FileStat:
    """What the storage says about one file."""

    path: str
    bytes: int
    mtime: float


@runtime_checkable
class StorageBackend(Protocol):
    """Files on one RSE, addressed by paths relative to the RSE's prefix (``virgo/ab/cd/f.h5``).

    Every method raises InvalidName for a path that is absolute, has '..', '.' or empty parts, a
    NUL, or leads outside the prefix; StorageError (or a subclass) when the storage fails.
    """

    url: str  # where the files are, for messages: file:///data/rse1, davs://host:443/prefix

    def stat(self, path: str) -> FileStat:
        """Size and modification time; StorageFileNotFound if there is no such file."""
        ...

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        """Stream ``source`` to ``path``; return the size and checksums of the bytes read.

        All or nothing: on any failure nothing is left on the storage. FileAlreadyOnStorage if the
        file exists and not ``overwrite``; StorageFull, StoragePermissionDenied; LocalFileError
        if reading ``source`` fails.
        """
        ...

    def get(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The file's bytes in chunks of at most ``chunk_size``; StorageFileNotFound at once."""
        ...

    def delete(self, path: str) -> None:
        """Delete the file; StorageFileNotFound if there is no such file."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Paths of the files under the directory ``prefix`` (all files when empty)."""
        ...

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        """The ``adler32`` or ``md5`` of the file as the storage computes it."""
        ...


@runtime_checkable
class ThirdPartyCopy(Protocol):
    """A backend whose storage can pull a file from another storage itself (third-party copy).

    The bytes go source server -> destination server; the worker only asks and then verifies.
    """

    def url_of(self, path: str) -> str:
        """The URL another server uses to read ``path`` from this storage."""
        ...

    def can_pull_from(self, url: str) -> bool:
        """Whether this storage can pull from ``url`` (its scheme and server are reachable)."""
        ...

    def pull(self, path: str, source_url: str, *, size: int, overwrite: bool = False) -> None:
        """Have the storage copy ``source_url`` to ``path``; all or nothing, like ``put``.

        The caller verifies the result with ``stat`` and ``checksum`` before trusting it.
        """
        ...


@runtime_checkable
class VerifyingBackend(StorageBackend, Protocol):
    """A backend that can read a file back while writing it, before the file takes its name."""

    def put_verified(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        """``put``; raise ChecksumMismatch, leaving nothing, if the storage's bytes differ."""
        ...


@runtime_checkable
class ReadsRanges(Protocol):
    """A backend that can read part of a file without reading what comes before it."""

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes from offset ``start`` (fewer only at the end of the file,
        none past it); StorageFileNotFound if there is no such file, UnsupportedOperation if
        the storage cannot read a part of this file (the caller then reads it whole).
        Nothing is verified: only a whole file can be checked against its checksums.
        """
        ...


@runtime_checkable
class RemovesTemporaries(Protocol):
    """A backend that can find the temporary files puts left behind when their writer died."""

    def remove_temporaries(self, path: str) -> int:
        """Delete the hidden temporary files of puts of ``path`` whose writer died before it
        could (a process killed mid-put); return how many. A put of ``path`` running right now
        would lose its temporary file and fail: call it only when no one else writes ``path``.
        """
        ...


@runtime_checkable
class ScansStorage(Protocol):
    """A backend that lists every file with its size and modification time, in the order of
    the paths: what the integrity auditor merges with the catalog's sorted replicas."""

    def scan(self, prefix: str = "") -> Iterator[FileStat]:
        """Every file under the directory ``prefix`` (all files when empty), its path relative
        to the RSE prefix as ``list`` gives it; nothing if ``prefix`` does not exist, only the
        file itself if it names a file (as ``list``).

        Unlike ``list``, the hidden temporary files of unfinished puts (``is_part_name``) are
        included: left by a killed writer, they are dark data the auditor must see.

        The paths come in strictly increasing order of ``str`` (code points: ``"a-b" < "a/x"
        < "ab"``), sorted by the backend, never left to the server's order. The scan streams:
        it holds one directory's listing for each level being walked (``walk_sorted``), never
        the whole tree. ``prefix`` is checked by ``check_path(prefix, allow_empty=True)``
        when ``scan`` is called: InvalidName for an unsafe one. Failures raise StorageError
        (or a subclass) while iterating; a directory removed during the walk is skipped.
        """
        ...


def check_path(path: str, *, allow_empty: bool = False) -> str:
    """Return ``path`` if it is a safe relative path, else raise InvalidName saying why."""
    if not isinstance(path, str):
        raise InvalidName(f"invalid storage path {path!r}: it must be a string")
    shown = repr(path if len(path) <= 80 else path[:77] + "...")
    if "\x00" in path:
        raise InvalidName(f"invalid storage path {shown}: it contains a NUL character")
    if path.startswith("/"):
        raise InvalidName(f"invalid storage path {shown}: it must be relative to the RSE prefix")
    path = path.rstrip("/") if allow_empty else path
    if not path:
        if allow_empty:
            return ""
        raise InvalidName("invalid storage path: it must not be empty")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidName(f"invalid storage path {shown}: empty, '.' or '..' component")
        if is_part_name(part):
            raise InvalidName(f"invalid storage path {shown}: names like this are temporary files")
    return path


def check_range(start: int, length: int) -> None:
    """ValueError unless ``start`` and ``length`` are whole numbers, 0 or more."""
    if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
        raise ValueError(f"a range is a start and a length, 0 or more, not {start!r}, {length!r}")


def part_name(name: str) -> str:
    """Return a hidden, unique name for a file being written before it becomes ``name``."""
    return f".{name}.lacus-part-{secrets.token_hex(6)}"


def is_part_name(name: str) -> bool:
    """Whether ``name`` (one path component) is a temporary file made by ``part_name``."""
    return ".lacus-part-" in name and _PART_RE.fullmatch(name) is not None


def walk_sorted(
    prefix: str,
    children: Callable[[str], Iterable[tuple[str, _Item | None]]],
    *,
    parts: bool = False,
) -> Iterator[tuple[str, _Item]]:
    """``(path, item)`` for every file below the directory ``prefix``, depth first, in
    strictly increasing order of the path strings (what ``ScansStorage.scan`` promises).

    ``children(directory)`` lists one directory (a path relative to the RSE prefix, ``prefix``
    first): ``(name, item)`` for a file, ``(name, None)`` for a directory, nothing for a
    directory that is missing or gone. Names that cannot be a path component ('', '.', '..',
    with '/' or NUL) are skipped, and so are temporary files (``is_part_name``, files or
    directories) unless ``parts``.

    Each listing is sorted by name, a directory's name followed by '/': every path below
    directory ``a`` starts with ``a/``, so ``a-b`` < ``a/x`` < ``ab`` come out as ``str``
    orders them. Memory holds one listing for each level of the directory being walked.
    """

    def listing(directory: str) -> Iterator[tuple[str, _Item | None]]:
        entries = [
            (f"{directory}/{name}" if directory else name, item)
            for name, item in children(directory)
            if name not in ("", ".", "..")
            and "/" not in name
            and "\x00" not in name
            and (parts or not is_part_name(name))
        ]
        entries.sort(key=lambda entry: entry[0] if entry[1] is not None else entry[0] + "/")
        return iter(entries)

    stack = [listing(prefix)]
    while stack:
        for path, item in stack[-1]:
            if item is None:
                stack.append(listing(path))
                break
            yield path, item
        else:
            stack.pop()


def is_part_of(part: str, name: str) -> bool:
    """Whether ``part`` is a temporary file ``part_name(name)`` made (one path component)."""
    prefix = f".{name}.lacus-part-"
    tail = part[len(prefix) :]
    return part.startswith(prefix) and bool(tail) and all(c in "0123456789abcdef" for c in tail)


class StreamHasher:
    """Size, adler32 and md5 of successive chunks, hashed in helper threads beside the I/O.

    ``adler32`` and ``hashlib.md5`` release the GIL on large buffers, so each runs in its own
    thread while the caller reads and writes. The first chunk and small chunks are hashed inline:
    a small file never starts a thread. ``update`` returns once at most ``depth`` chunks are still
    being hashed, so a caller cycling through ``depth + 1`` buffers may refill the oldest one.
    """

    def __init__(self, *, md5: bool = True, depth: int = 2) -> None:
        self._depth = depth
        self._adler = 1
        self._size = 0
        self._hash = hashlib.md5(usedforsecurity=False) if md5 else None
        self._lanes: list[ThreadPoolExecutor] = []
        self._pending: deque[list[Future[None]]] = deque()
        self._started = False

    def __enter__(self) -> StreamHasher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        if not self._started or len(chunk) < _INLINE_BELOW:
            self._started = True
            while self._pending:  # keep the order of the chunks
                self._wait_oldest()
            self._update_all(chunk)
            return
        if not self._lanes:
            self._lanes = [ThreadPoolExecutor(1, "lacus-adler32")]
            if self._hash is not None:
                self._lanes.append(ThreadPoolExecutor(1, "lacus-md5"))
        futures = [self._lanes[0].submit(self._update_adler, chunk)]
        if self._hash is not None:
            futures.append(self._lanes[1].submit(self._hash.update, chunk))
        self._pending.append(futures)
        while len(self._pending) > self._depth:
            self._wait_oldest()

    def _update_all(self, chunk: bytes | bytearray | memoryview) -> None:
        self._update_adler(chunk)
        if self._hash is not None:
            self._hash.update(chunk)

    def _update_adler(self, chunk: bytes | bytearray | memoryview) -> None:
        self._adler = adler32(chunk, self._adler)
        self._size += len(chunk)

    def _wait_oldest(self) -> None:
        for future in self._pending.popleft():
            future.result()

    def result(self) -> Checksums:
        """Wait for the chunks still being hashed and return size, adler32 and md5."""
        while self._pending:
            self._wait_oldest()
        md5 = self._hash.hexdigest() if self._hash is not None else None
        return Checksums(bytes=self._size, adler32=format_adler32(self._adler), md5=md5)

    def close(self) -> None:
        """Stop the helper threads (after the chunk each one is hashing)."""
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)
        self._lanes = []
        self._pending.clear()


# scheme -> ("module:Class", what to tell the user when it cannot be imported)
_BACKENDS: dict[str, tuple[str, str]] = {
    "file": ("lacus.storage.posix:PosixBackend", ""),
    "posix": ("lacus.storage.posix:PosixBackend", ""),
    "davs": ("lacus.storage.webdav:WebDAVBackend", "the WebDAV backend needs httpx"),
    "https": ("lacus.storage.webdav:WebDAVBackend", "the WebDAV backend needs httpx"),
    "dav": ("lacus.storage.webdav:PlainWebDAVBackend", "the WebDAV backend needs httpx"),
    "http": ("lacus.storage.webdav:PlainWebDAVBackend", "the WebDAV backend needs httpx"),
    "root": ("lacus.storage.xrootd:XRootDBackend", "the XRootD backend is not available yet"),
    "s3": ("lacus.storage.s3:S3Backend", "the S3 backend needs boto3 (pip install boto3)"),
}


def known_schemes() -> list[str]:
    """The schemes ``open_backend`` knows, whether or not their backend can be imported here."""
    return sorted(_BACKENDS)


def open_backend(
    scheme: str, *, prefix: str, hostname: str = "", port: int = 0, **options: object
) -> StorageBackend:
    """Return the backend for one RSE protocol; its class is imported only now.

    Each backend class offers ``from_protocol(prefix=, hostname=, port=, **options)``.
    """
    entry = _BACKENDS.get(scheme.lower())
    if entry is None:
        raise ProtocolNotFound(
            f"no storage backend for scheme {scheme!r}; known: {', '.join(known_schemes())}"
        )
    target, unavailable = entry
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        hint = unavailable or f"cannot import {target}"
        raise ProtocolNotFound(
            f"cannot open storage with scheme {scheme!r}: {hint} ({exc})"
        ) from exc
    backend = cls.from_protocol(prefix=prefix, hostname=hostname, port=port, **options)
    if not isinstance(backend, StorageBackend):
        raise ProtocolNotFound(f"{target} does not implement the storage protocol")
    return backend
