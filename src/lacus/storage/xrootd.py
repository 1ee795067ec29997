"""A storage backend on an XRootD server (``root://``), through the XRootD Python client.

The client (``pip install 'lacus[xrootd]'``) is imported when the first backend is made, so
``import lacus.storage`` never needs it. The XRootD client's settings are process-wide; the first
backend sets the ones that decide how long a dead server can hold a worker, unless the
environment already sets them (``XRD_CONNECTIONWINDOW`` and so on):

* ``ConnectionWindow`` 10 s and ``ConnectionRetry`` 1: an unreachable server fails in seconds,
  not after 5 x 120 s;
* ``StreamErrorWindow`` 0: a server that was down is tried again at the next request, instead of
  every request failing for 30 minutes after one connection error;
* ``TimeoutResolution`` 1 s: a request's timeout is honoured to the second, not to 15 s.

Writes go to a hidden temporary name opened with POSC (persist on successful close, so the server
removes it if this process dies mid-write), then move to the final name. XRootD's move replaces
an existing file, so without ``overwrite`` the name is checked just before the move: two writers
racing for the same new name within that instant may both succeed, the last one winning.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import os
import re
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from lacus.checksums import CHUNK_SIZE, Checksums
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    InvalidInput,
    LacusError,
    LocalFileError,
    ProtocolNotFound,
    StorageError,
    StorageFileNotFound,
)
from lacus.storage import _options
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

__all__ = ["XRootDBackend"]

_DEFAULT_PORT = 1094
_FIRST_READ = 64 * 1024  # a small file never allocates a whole chunk
_CLIENT_SETTINGS = {
    "ConnectionWindow": 10,
    "ConnectionRetry": 1,
    "StreamErrorWindow": 0,
    "TimeoutResolution": 1,
}
_SCHEMES = ("root", "roots")

# XRootD status codes (XrdClStatus.hh) and the server's error numbers (XProtocol.hh)
_SERVER_ERROR = 400  # errErrorResponse: the server answered with one of the kXR_ codes below
_NO_SPACE, _OVER_QUOTA = 3009, 3021
_NOT_AUTHORIZED, _READ_ONLY_FS, _AUTH_FAILED = 3010, 3025, 3030
_NOT_FOUND, _NOT_A_FILE, _IS_A_DIRECTORY = 3011, 3015, 3016
_UNSUPPORTED, _EXISTS = 3013, 3018
_IS_DIR_FLAG, _OTHER_FLAG = 2, 4  # StatInfoFlags.IS_DIR, StatInfoFlags.OTHER
_MISSING_TEXT = ("no such file", "not a directory", "is a directory")
_DENIED_TEXT = ("read/only", "read-only", "permission denied", "not authorized")
_FULL_TEXT = ("no space", "quota")
_SERVER_MESSAGE = re.compile(r"\[\d+\]\s*(.*)", re.DOTALL)


@functools.cache
def _client() -> Any:
    """The XRootD client module, its process-wide settings made safe for workers (once)."""
    try:  # imported by name: the bindings have no type information worth checking
        client = importlib.import_module("XRootD.client")
    except ImportError as exc:
        raise ProtocolNotFound(
            "the root:// backend needs the XRootD Python client: "
            f"pip install 'lacus[xrootd]' ({exc})"
        ) from exc
    for name, value in _CLIENT_SETTINGS.items():
        if f"XRD_{name.upper()}" not in os.environ:
            client.EnvPutInt(name, value)
    return client


def _flags() -> Any:
    _client()
    return importlib.import_module("XRootD.client.flags")


def _reason(status: Any) -> str:
    """The server's one-line reason in an XRootD status, without the client's decorations."""
    message = str(getattr(status, "message", "") or status).strip()
    if (match := _SERVER_MESSAGE.search(message)) is not None:
        message = match.group(1)
    message = re.sub(r"^\[(ERROR|FATAL)\]\s*", "", message)
    return " ".join(message.split()) or "unknown error"


def _seconds(value: object, name: str) -> int:
    """Whole seconds, at least one (XRootD's timeouts are integers)."""
    return max(1, math.ceil(_options.positive_seconds("root", name, value)))


def _kind(code: int, text: str) -> _options.Kind | None:
    """What a server's error number and (lower-case) message say of a failure; None: the
    server cannot do it at all."""
    if code in (_NO_SPACE, _OVER_QUOTA) or any(word in text for word in _FULL_TEXT):
        return "full"
    if code in (_NOT_AUTHORIZED, _READ_ONLY_FS, _AUTH_FAILED) or any(
        word in text for word in _DENIED_TEXT
    ):
        return "denied"
    if code == _EXISTS or "file exists" in text:
        return "exists"
    if code in (_NOT_FOUND, _NOT_A_FILE, _IS_A_DIRECTORY) or any(
        word in text for word in _MISSING_TEXT
    ):
        return "missing"
    if code == _UNSUPPORTED or "not supported" in text:
        return None
    return "failed"


class XRootDBackend:
    """Files under one directory of an XRootD server: ``root://host:port//prefix``.

    ``timeout`` bounds every request (open, each chunk read or written, stat, move...);
    ``tpc_timeout`` bounds a whole third-party copy.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60,
        tpc_timeout: float = 3600,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise InvalidInput(f"not an XRootD URL: {url!r} (expected root://host:port//path)")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise InvalidInput("the root backend's chunk_size must be a number of bytes")
        if chunk_size < _FIRST_READ:
            raise InvalidInput(f"the root backend's chunk_size must be at least {_FIRST_READ}")
        client = _client()
        try:
            port = parts.port or _DEFAULT_PORT
        except ValueError as exc:
            raise InvalidInput(f"not an XRootD URL: {url!r} ({exc})") from exc
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._server = f"{parts.scheme}://{host}:{port}"
        self._root = "/" + parts.path.strip("/")
        self._timeout = _seconds(timeout, "timeout")
        self._tpc_timeout = _seconds(tpc_timeout, "tpc_timeout")
        self._chunk_size = chunk_size
        self._fs = client.FileSystem(self._server)
        self._md5_on_server = True
        self.url = f"{self._server}/{self._root}"

    @classmethod
    def from_protocol(
        cls, *, prefix: str, hostname: str = "", port: int = 0, **options: object
    ) -> XRootDBackend:
        """Build from an RSE protocol (``port`` 0 means XRootD's 1094).

        Options: ``timeout`` (seconds per request), ``tpc_timeout`` (seconds per third-party
        copy), ``chunk_size`` (bytes per read or write).
        """
        _options.check_names("root", options, ("timeout", "tpc_timeout", "chunk_size"))
        host = _options.url_host("root", hostname)
        url = f"root://{host}:{port or _DEFAULT_PORT}//{prefix.strip('/')}"
        timeout = options.get("timeout", 60)
        tpc_timeout = options.get("tpc_timeout", 3600)
        chunk_size = options.get("chunk_size", CHUNK_SIZE)
        return cls(
            url,
            timeout=_seconds(timeout, "timeout"),
            tpc_timeout=_seconds(tpc_timeout, "tpc_timeout"),
            chunk_size=chunk_size,  # type: ignore[arg-type]  # checked by __init__
        )

    def __repr__(self) -> str:
        return f"XRootDBackend({self.url!r}, timeout={self._timeout})"

    # -- StorageBackend -----------------------------------------------------------------------

    def stat(self, path: str) -> FileStat:
        path = check_path(path)
        info = self._stat_file(self._full(path), path)
        return FileStat(path=path, bytes=int(info.size), mtime=float(info.modtime))

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        return self._put(path, source, md5=md5, overwrite=overwrite, verify=False)

    def put_verified(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        """``put``, asking the server for the size and adler32 of its copy before the move.

        A different size or adler32 raises ChecksumMismatch and nothing is left on the storage.
        """
        return self._put(path, source, md5=md5, overwrite=overwrite, verify=True)

    def get(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = check_path(path)
        handle = _client().File()
        status, _ = handle.open(
            self._url(self._full(path)), _flags().OpenFlags.READ, timeout=self._timeout
        )
        if not status.ok:
            raise self._error(status, path, "reading")
        return self._chunks(handle, path, chunk_size)

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``ReadsRanges``: reads at an offset of the opened file."""
        check_range(start, length)
        path = check_path(path)
        handle = _client().File()
        status, _ = handle.open(
            self._url(self._full(path)), _flags().OpenFlags.READ, timeout=self._timeout
        )
        if not status.ok:
            raise self._error(status, path, "reading")
        parts: list[bytes] = []
        try:
            while length > 0:
                status, data = handle.read(start, min(length, CHUNK_SIZE), timeout=self._timeout)
                if not status.ok:
                    raise self._error(status, path, "reading")
                if not data:
                    break
                parts.append(bytes(data))
                start += len(data)
                length -= len(data)
        finally:
            handle.close(timeout=self._timeout)
        return b"".join(parts)

    def delete(self, path: str) -> None:
        path = check_path(path)
        full = self._full(path)
        status, _ = self._fs.rm(full, timeout=self._timeout)
        if status.ok:
            return
        error = self._error(status, path, "deleting")
        if not isinstance(error, StorageFileNotFound):
            self._stat_file(full, path)  # a directory is no file: StorageFileNotFound
        raise error

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = check_path(prefix, allow_empty=True)
        return (path for path, _ in self._walk(prefix, parts=False))

    def scan(self, prefix: str = "") -> Iterator[FileStat]:
        """``ScansStorage``: a ``dirlist`` with ``STAT`` of each directory, sizes and mtimes
        (whole seconds) from the server's stat of each entry."""
        prefix = check_path(prefix, allow_empty=True)
        return (
            FileStat(path=path, bytes=int(info.size), mtime=float(info.modtime))
            for path, info in self._walk(prefix, parts=True)
            if info is not None  # the server could not stat it: gone since it was listed
        )

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        if algorithm not in ("adler32", "md5"):
            raise InvalidInput(f"unknown checksum algorithm {algorithm!r}; use adler32 or md5")
        path = check_path(path)
        full = self._full(path)
        # a file first: XRootD 5.5 sometimes never answers a checksum asked of a directory
        self._stat_file(full, path)
        if algorithm == "md5" and not self._md5_on_server:
            return self._computed_md5(path)
        try:
            return self._server_checksum(full, path, algorithm)
        except _Unsupported:
            if algorithm == "adler32":
                return self._computed_adler32(path)
            self._md5_on_server = False
            return self._computed_md5(path)

    def remove_temporaries(self, path: str) -> int:
        """Delete the temporary files of puts of ``path`` whose writer died after closing them
        (POSC removes those still open) and before the move (``RemovesTemporaries``); how many."""
        path = check_path(path)
        directory, _, name = self._full(path).rpartition("/")
        status, listing = self._fs.dirlist(directory, timeout=self._timeout)
        if not status.ok:
            error = self._error(status, path, "listing")
            if isinstance(error, StorageFileNotFound):
                return 0
            raise error
        removed = 0
        for entry in listing:
            if is_part_of(str(entry.name), name):
                status, _ = self._fs.rm(f"{directory}/{entry.name}", timeout=self._timeout)
                removed += bool(status.ok)
        return removed

    # -- ThirdPartyCopy -----------------------------------------------------------------------

    def url_of(self, path: str) -> str:
        return self._url(self._full(check_path(path)))

    def can_pull_from(self, url: str) -> bool:
        """A ``root://`` URL whose server answers a ping from here within the timeout."""
        parts = urlsplit(url)
        try:
            if parts.scheme not in _SCHEMES or not parts.hostname:
                return False
            server = f"{parts.scheme}://{parts.netloc}"
        except ValueError:
            return False
        status, _ = _client().FileSystem(server).ping(timeout=min(self._timeout, 10))
        return bool(status.ok)

    def pull(self, path: str, source_url: str, *, size: int, overwrite: bool = False) -> None:
        """Have this server copy ``source_url`` (another XRootD server, or this one) to ``path``.

        The server pulls into a temporary name (``xrdcp --tpc only``: the bytes never pass
        through this process), its size is checked, then it takes its name.
        """
        path = check_path(path)
        if urlsplit(source_url).scheme not in _SCHEMES:
            raise InvalidInput(f"the root backend pulls only from root:// URLs, not {source_url}")
        full = self._full(path)
        if not overwrite:
            self._refuse_existing(full, path)
        temporary = self._temporary(full)
        try:
            process = _client().CopyProcess()
            process.add_job(
                source_url,
                self._url(temporary),
                force=False,
                posc=True,
                mkdir=True,
                thirdparty="only",
                inittimeout=self._timeout,
                tpctimeout=self._tpc_timeout,
            )
            status = process.prepare()
            if status.ok:
                status, results = process.run()
                if status.ok and results:
                    status = results[0].get("status", status)
            if not status.ok:
                raise self._error(status, path, f"copying {source_url} to")
            stored = int(self._stat_file(temporary, path).size)
            if stored != size:
                raise ChecksumMismatch(
                    f"{self.url}/{path}: {stored} bytes arrived from {source_url}, "
                    f"{size} were expected"
                )
            self._place(temporary, full, path, overwrite=overwrite)
        except BaseException:
            self._remove_quietly(temporary)
            raise

    # -- helpers ------------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        return f"{self._root.rstrip('/')}/{path}" if path else self._root

    def _url(self, full: str) -> str:
        return f"{self._server}/{full}"

    def _temporary(self, full: str) -> str:
        directory, _, name = full.rpartition("/")
        return f"{directory}/{part_name(name)}"

    def _error(self, status: Any, path: str, doing: str) -> LacusError:
        """The Lacus error for a failed XRootD request about ``path``."""
        where = f"{self.url}/{path}" if path else self.url
        reason = _reason(status)
        if getattr(status, "code", None) != _SERVER_ERROR:  # no answer: connection, timeout
            return StorageError(f"storage {self.url} failed {doing} {where}: {reason}")
        kind = _kind(getattr(status, "errno", 0), reason.lower())
        if kind is None:
            return _Unsupported(f"storage {self.url} cannot do this ({doing} {where}): {reason}")
        return _options.failure(kind, self.url, path, doing, reason)

    def _stat_file(self, full: str, path: str) -> Any:
        status, info = self._fs.stat(full, timeout=self._timeout)
        if not status.ok:
            raise self._error(status, path, "reading")
        if int(info.flags) & (_IS_DIR_FLAG | _OTHER_FLAG):
            raise StorageFileNotFound(f"{self.url}/{path} is not a file")
        return info

    def _exists(self, full: str, path: str) -> bool:
        try:
            self._stat_file(full, path)
        except StorageFileNotFound:
            return False
        return True

    def _refuse_existing(self, full: str, path: str) -> None:
        if self._exists(full, path):
            raise FileAlreadyOnStorage(f"{self.url}/{path} exists already")

    def _put(
        self, path: str, source: BinaryIO, *, md5: bool, overwrite: bool, verify: bool
    ) -> Checksums:
        path = check_path(path)
        full = self._full(path)
        if not overwrite:
            self._refuse_existing(full, path)
        temporary = self._temporary(full)
        flags = _flags().OpenFlags
        handle = _client().File()
        status, _ = handle.open(
            self._url(temporary),
            flags.NEW | flags.MAKEPATH | flags.POSC,
            0o644,
            timeout=self._timeout,
        )
        if not status.ok:
            raise self._error(status, path, "writing")
        try:
            try:
                sums = self._send(source, handle, md5=md5, path=path)
            finally:  # after a failure too: a closed file can be removed at once
                status, _ = handle.close(timeout=self._timeout)
            if not status.ok:
                raise self._error(status, path, "writing")
            if verify:
                self._verify(temporary, sums, path)
            self._place(temporary, full, path, overwrite=overwrite)
        except BaseException:
            self._remove_quietly(temporary)
            raise
        return sums

    def _send(self, source: BinaryIO, handle: Any, *, md5: bool, path: str) -> Checksums:
        offset = 0
        size = _FIRST_READ  # grows to a whole chunk once a read fills it
        # depth 1: one chunk hashed in a thread while the next is written (bounded memory)
        with StreamHasher(md5=md5, depth=1) as hasher:
            while chunk := self._read(source, size, path):
                hasher.update(chunk)
                status, _ = handle.write(chunk, offset, len(chunk), timeout=self._timeout)
                if not status.ok:
                    raise self._error(status, path, "writing")
                offset += len(chunk)
                if len(chunk) == size:
                    size = self._chunk_size
            return hasher.result()

    def _read(self, source: BinaryIO, size: int, path: str) -> bytes:
        """Up to ``size`` bytes from ``source``: short only at its end, whatever its reads."""
        pieces: list[bytes] = []
        wanted = size
        try:
            while wanted > 0:
                data = source.read(wanted)
                if data is None:
                    raise LocalFileError(f"the data for {self.url}/{path} is a non-blocking stream")
                if not data:
                    break
                pieces.append(bytes(data))
                wanted -= len(data)
        except OSError as exc:
            raise LocalFileError(f"cannot read the data for {self.url}/{path}: {exc}") from exc
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _verify(self, temporary: str, sums: Checksums, path: str) -> None:
        stored_size = int(self._stat_file(temporary, path).size)
        try:
            stored = self._server_checksum(temporary, path, "adler32")
        except _Unsupported:
            stored = self._adler32_of(temporary, path)
        if stored_size != sums.bytes or stored != sums.adler32:
            raise ChecksumMismatch(
                f"{self.url}/{path}: the storage holds {stored_size} bytes with adler32 "
                f"{stored}, {sums.bytes} bytes with adler32 {sums.adler32} were written"
            )

    def _place(self, temporary: str, full: str, path: str, *, overwrite: bool) -> None:
        """Give ``temporary`` its final name (XRootD's move replaces an existing file)."""
        if not overwrite:
            self._refuse_existing(full, path)
        status, _ = self._fs.mv(temporary, full, timeout=self._timeout)
        if not status.ok:
            raise self._error(status, path, "writing")

    def _remove_quietly(self, full: str) -> None:
        """Remove ``full`` if the server lets us: another error is being raised."""
        self._fs.rm(full, timeout=self._timeout)  # its status is not checked, on purpose

    def _chunks(self, handle: Any, path: str, chunk_size: int) -> Iterator[bytes]:
        offset = 0
        try:
            while True:
                status, data = handle.read(offset, chunk_size, timeout=self._timeout)
                if not status.ok:
                    raise self._error(status, path, "reading")
                if not data:
                    return
                offset += len(data)
                yield bytes(data)
        finally:
            handle.close(timeout=self._timeout)

    def _walk(self, prefix: str, *, parts: bool) -> Iterator[tuple[str, Any]]:
        """``(path, statinfo)`` of the files below ``prefix`` in the order of ``scan``
        (``prefix`` itself if it is a file); statinfo is None if the server could not stat it."""
        full = self._full(prefix)
        status, info = self._fs.stat(full, timeout=self._timeout)
        if not status.ok:
            error = self._error(status, prefix, "listing")
            if isinstance(error, StorageFileNotFound):
                return
            raise error
        if not int(info.flags) & _IS_DIR_FLAG:
            yield prefix, info
            return
        dirlist_stat = _flags().DirListFlags.STAT

        def children(directory: str) -> Iterator[tuple[str, Any]]:
            status, listing = self._fs.dirlist(
                self._full(directory), dirlist_stat, timeout=self._timeout
            )
            if not status.ok:
                error = self._error(status, directory, "listing")
                if isinstance(error, StorageFileNotFound):
                    return  # removed while we were listing
                raise error
            for entry in listing:
                info = entry.statinfo
                is_dir = info is not None and int(info.flags) & _IS_DIR_FLAG
                yield str(entry.name), None if is_dir else entry

        for path, entry in walk_sorted(prefix, children, parts=parts):
            yield path, entry.statinfo

    def _server_checksum(self, full: str, path: str, algorithm: str) -> str:
        query = full if algorithm == "adler32" else f"{full}?cks.type={algorithm}"
        status, response = self._fs.query(_flags().QueryCode.CHECKSUM, query, timeout=self._timeout)
        if not status.ok:
            raise self._error(status, path, f"computing the {algorithm} of")
        answer = bytes(response or b"").decode(errors="replace").strip("\x00 \n").split()
        if len(answer) == 2 and answer[0].lower() != algorithm:  # it has only another one
            raise _Unsupported(f"storage {self.url} has no {algorithm}, only {answer[0]}")
        if len(answer) != 2:
            raise StorageError(
                f"storage {self.url} answered {' '.join(answer)!r} for the {algorithm} of {path}"
            )
        width = 8 if algorithm == "adler32" else 32
        try:
            return f"{int(answer[1], 16):0{width}x}"
        except ValueError:
            raise StorageError(
                f"storage {self.url} answered {answer[1]!r} for the {algorithm} of {path}"
            ) from None

    def _computed_adler32(self, path: str) -> str:
        return self._adler32_of(self._full(path), path)

    def _adler32_of(self, full: str, path: str) -> str:
        value = 1
        for chunk in self._read_file(full, path):
            value = adler32(chunk, value)
        return f"{value & 0xFFFFFFFF:08x}"

    def _computed_md5(self, path: str) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in self._read_file(self._full(path), path):
            digest.update(chunk)
        return digest.hexdigest()

    def _read_file(self, full: str, path: str) -> Iterator[bytes]:
        handle = _client().File()
        status, _ = handle.open(self._url(full), _flags().OpenFlags.READ, timeout=self._timeout)
        if not status.ok:
            raise self._error(status, path, "reading")
        return self._chunks(handle, path, self._chunk_size)


class _Unsupported(StorageError):
    """The server does not offer what was asked (a checksum type): computed here instead."""
