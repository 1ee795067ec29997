"""A storage backend on a WebDAV server: ``davs://`` (HTTPS) or ``dav://`` (plain HTTP).

Every transfer streams through one pooled ``httpx.Client``; no file is ever held in memory. A put
writes a hidden temporary file (``PUT``), then gives it its name (``MOVE``, ``Overwrite: F``), so
a file never appears before it is complete. Checksums come from the server when it offers them
(RFC 3230 ``Want-Digest``, as XRootD and dCache do), else from reading the file back. With
``tpc=True`` the server pulls files from other servers itself (HTTP third-party copy, pull mode:
``COPY`` with a ``Source`` header), as XRootD, dCache, StoRM and EOS do.

Servers differ; what this backend does about it (tested against Apache mod_dav and XrdHttp):

- a path below a file: Apache answers PROPFIND with 400, XrdHttp with 500 "not a directory";
  both mean "no such file". XrdHttp words its refusals in 500s ("file path marked read/only"),
  read here as permission denied, missing or full.
- XrdHttp reads a chunked PUT body only after answering ``Expect: 100-continue``, so every PUT
  asks for it.
- XrdHttp ignores ``Overwrite: F`` on MOVE: the backend checks that the name is free before it
  writes, so only a concurrent writer in the moment between that check and the MOVE can lose.
- A put the server drops (it stopped) leaves XrdHttp's partial temporary file: the backend
  deletes it at its next put, once the server answers again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hashlib
import io
import os
import posixpath
import queue
import ssl
import stat
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit
from xml.parsers import expat

import httpx

from lacus.checksums import CHUNK_SIZE, Checksums, adler32_combine, format_adler32
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    InvalidInput,
    LacusError,
    LocalFileError,
    StorageError,
    StorageFileNotFound,
    StorageFull,
    StoragePermissionDenied,
    StorageUnavailable,
    UnsupportedOperation,
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
from lacus.storage._wire import WireTransport

__all__ = ["PlainWebDAVBackend", "WebDAVBackend"]

_PIECE = 1024 * 1024  # bytes read from the source and sent per write
_PART = 64 * 1024 * 1024  # a verified put of 2 parts or more is written in parts, read back behind
_DRAINED = 64 * 1024  # an unread answer body up to this size is read before closing
_MAX_ORPHANS = 1000  # temporary files remembered for deletion once the server is back
_HTTP_SCHEMES = {"davs": "https", "https": "https", "dav": "http", "http": "http"}
_OPTIONS = ("verify", "timeout", "token", "tpc")
_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"
)
_REDIRECTS = ("GET", "HEAD", "PROPFIND")  # bodiless reads may follow a redirect to a data server
_RETRIED = ("GET", "HEAD", "PROPFIND", "MKCOL", "DELETE")  # sent again once on a stale connection


_Names = list[str]  # ``list`` is a method name in the backend class
_Flags = list[bool]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One resource of a PROPFIND answer."""

    path: str  # the server path, unquoted, without a trailing slash
    is_dir: bool
    size: int
    mtime: float


_Children = list[tuple[str, _Entry | None]]  # a collection's names, the entry of each file


class WebDAVBackend:
    """Files under one WebDAV collection, e.g. ``WebDAVBackend("davs://host:443/webdav/rse1")``.

    ``verify`` is True (the system's CAs), False, or the path of a CA file or directory (such as
    ``/etc/grid-security/certificates``);
    ``token`` is sent as ``Authorization: Bearer``; ``timeout`` bounds every connect and every
    wait for bytes; ``tpc`` lets the server pull files from other servers (``pull``).
    """

    _default_scheme = "davs"

    def __init__(
        self,
        url: str,
        *,
        verify: bool | str = True,
        timeout: float = 60.0,
        token: str | None = None,
        tpc: bool = False,
    ) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _HTTP_SCHEMES or not parts.hostname:
            raise InvalidInput(f"not a WebDAV URL: {url!r} (davs://host:port/prefix)")
        if parts.query or parts.fragment:
            raise InvalidInput(f"a WebDAV prefix has no query or fragment: {url!r}")
        timeout = _options.positive_seconds("WebDAV", "timeout", timeout)
        if token is not None and (not isinstance(token, str) or not token.isprintable()):
            raise InvalidInput("token must be a printable string")
        self._root = unquote(parts.path).rstrip("/")  # "" for the server's root
        self._origin = f"{_HTTP_SCHEMES[scheme]}://{parts.netloc}"
        self._timeout = float(timeout)
        self._tpc = bool(tpc)
        self._digests: dict[str, bool] = {}  # algorithm -> whether the server sends a Digest
        self._orphans: set[str] = set()  # temporary files a failed put could not delete yet
        self._part_puts: bool | None = None  # whether puts go in parts (``_reads_back_parts``)
        self.url = f"{scheme}://{parts.netloc}{self._root}"
        headers = {"User-Agent": "lacus-webdav", "Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(  # bodies move 1 MiB per call, see storage/_wire.py
            transport=WireTransport(_ssl_context(verify), max_idle=8),
            timeout=httpx.Timeout(self._timeout),
            headers=headers,
            trust_env=False,
        )

    @classmethod
    def from_protocol(
        cls, *, prefix: str, hostname: str = "", port: int = 0, **options: object
    ) -> WebDAVBackend:
        """Build from an RSE protocol (``davs``, or ``dav`` for plain HTTP)."""
        _options.check_names("WebDAV", options, _OPTIONS)
        host = _options.url_host("WebDAV", hostname)
        if not isinstance(port, int) or not 0 <= port < 65536:
            raise InvalidInput(f"invalid port {port!r}")
        verify = _options.verify("WebDAV", options)
        timeout = options.get("timeout", 60.0)
        token = options.get("token")
        tpc = _options.typed("WebDAV", options, "tpc", bool, False)
        netloc = f"{host}:{port}" if port else host
        path = "/" + quote(prefix.strip("/"), safe="/") if prefix.strip("/") else ""
        return cls(
            f"{cls._default_scheme}://{netloc}{path}",
            verify=verify,
            timeout=timeout,  # type: ignore[arg-type]  # checked by __init__
            token=token,  # type: ignore[arg-type]
            tpc=tpc,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> WebDAVBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the storage protocol -----------------------------------------------------------------

    def stat(self, path: str) -> FileStat:
        path = check_path(path)
        entry = self._file(path)
        return FileStat(path=path, bytes=entry.size, mtime=entry.mtime)

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        return self._put(path, source, md5=md5, overwrite=overwrite, verify=False)

    def put_verified(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        """``put``, checking the size and adler32 of the stored bytes before they take the name.

        The adler32 is the server's (``Want-Digest``) when it offers one, else the file is read
        back; a mismatch raises ChecksumMismatch and nothing is left on the storage.
        """
        return self._put(path, source, md5=md5, overwrite=overwrite, verify=True)

    def get(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        return self._get(check_path(path), chunk_size)

    def _get(self, path: str, chunk_size: int) -> Iterator[bytes]:
        response = self._send("GET", path, "reading", stream=True)
        try:
            self._check(response, path, "reading", ok=(200,))
        except BaseException:
            _finish(response)
            raise
        return _Download(  # pieces of at most 1 MiB: memory stays small whatever chunk_size
            response, min(chunk_size, _PIECE), lambda exc: self._broken(exc, path, "reading")
        )

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``ReadsRanges``: GETs with ``Range``; UnsupportedOperation if the server answers
        with another part of the file, or the whole of it.

        XrdHttp 5.5 answers a range that goes past the end of the file with fewer bytes than
        the file has there, and closes the connection: the rest is asked for again, now
        ending at the end of the file (``Content-Range`` told its size)."""
        check_range(start, length)
        path = check_path(path)
        if length == 0:
            self._file(path)
            return b""
        received = bytearray()
        while True:
            first = start + len(received)
            end = start + length - 1
            response = self._send(
                "GET", path, "reading", headers={"Range": f"bytes={first}-{end}"}, stream=True
            )
            with _finishing(response):
                if response.status_code == 416:  # the file ends before ``first``
                    self._file(path)
                    return bytes(received)
                self._check(response, path, "reading", ok=(200, 206))
                answered = response.headers.get("Content-Range", "")
                if response.status_code != 206 or not answered.startswith(f"bytes {first}-"):
                    raise UnsupportedOperation(  # the whole file is not read here
                        f"{self._where(path)}: the storage does not serve parts of files "
                        f"(asked for bytes {first}-{end}, answered {response.status_code} "
                        f"{answered})"
                    )
                total = answered.rpartition("/")[2]
                if total.isdigit():
                    length = min(length, int(total) - start)
                before = len(received)
                broken = _range_body(response, received, length)
            if broken is None or len(received) >= length:
                del received[length:]
                return bytes(received)
            if len(received) == before and end < start + length:  # asked within the file
                raise self._broken(broken, path, "reading") from broken

    def delete(self, path: str) -> None:
        path = check_path(path)
        self._file(path)  # a DELETE of a collection would delete everything below it
        response = self._send("DELETE", path, "deleting")
        self._check(response, path, "deleting", ok=(200, 204))

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = check_path(prefix, allow_empty=True)
        return (found.path for found in self._walk(prefix, parts=False))

    def scan(self, prefix: str = "") -> Iterator[FileStat]:
        """``ScansStorage``: a PROPFIND (Depth 1) of each collection, sizes and mtimes from
        ``getcontentlength`` and ``getlastmodified`` (whole seconds)."""
        return self._walk(check_path(prefix, allow_empty=True), parts=True)

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        if algorithm not in ("adler32", "md5"):
            raise InvalidInput(f"unknown checksum algorithm {algorithm!r}; use adler32 or md5")
        path = check_path(path)
        self._file(path)
        return self._server_digest(path, algorithm) or self._read_digest(path, algorithm)

    def remove_temporaries(self, path: str) -> int:
        """Delete the temporary files of puts of ``path`` whose writer died between its PUT and
        its MOVE (``RemovesTemporaries``); how many."""
        path = check_path(path)
        parent, _, name = path.rpartition("/")
        response = self._send("PROPFIND", parent, "listing", headers={"Depth": "1"}, stream=True)
        found: _Names = []
        with _finishing(response):
            if self._missing(response, parent):
                return 0
            self._check(response, parent, "listing", ok=(207,))
            own = self._server_path(parent)
            for entry in self._entries(response, parent):
                directory, _, child = entry.path.rpartition("/")
                if directory == own and not entry.is_dir and is_part_of(child, name):
                    found.append(f"{parent}/{child}" if parent else child)
        removed = 0
        for temporary in found:
            response = self._send("DELETE", temporary, "deleting")
            removed += response.status_code in (200, 204)
        return removed

    # -- third-party copy ---------------------------------------------------------------------

    def url_of(self, path: str) -> str:
        """The HTTP(S) URL another server reads ``path`` from."""
        return self._http_url(check_path(path))

    def can_pull_from(self, url: str) -> bool:
        """With ``tpc``: whether ``url`` is an HTTP(S)/WebDAV URL the server can pull from."""
        parts = urlsplit(url)
        return self._tpc and parts.scheme.lower() in _HTTP_SCHEMES and bool(parts.hostname)

    def pull(self, path: str, source_url: str, *, size: int, overwrite: bool = False) -> None:
        """Have the server copy ``source_url`` to ``path`` (HTTP-TPC pull mode), all or nothing.

        The server writes a temporary name, whose size is checked before it takes its name.
        """
        if not self._tpc:
            raise UnsupportedOperation(f"third-party copy is not enabled for {self.url} (tpc)")
        if not self.can_pull_from(source_url):
            raise InvalidInput(f"{self.url} cannot pull from {source_url!r}")
        path = check_path(path)
        source = urlsplit(source_url)
        source_url = source._replace(scheme=_HTTP_SCHEMES[source.scheme.lower()]).geturl()
        temporary = self._prepare(path, overwrite=overwrite)
        try:
            self._copy_from(temporary, path, source_url)
            stored = self._file(temporary).size
            if stored != size:
                raise ChecksumMismatch(
                    f"{self._where(path)}: the copy from {source_url} has {stored} bytes, "
                    f"expected {size}"
                )
            self._move(temporary, path, overwrite=overwrite)
        except BaseException:
            self._remove_quietly(temporary)
            raise

    # -- writing ------------------------------------------------------------------------------

    def _put(
        self, path: str, source: BinaryIO, *, md5: bool, overwrite: bool, verify: bool
    ) -> Checksums:
        path = check_path(path)
        temporary = self._prepare(path, overwrite=overwrite)
        try:
            size = _known_size(source)
            if verify and size is not None and size >= 2 * _PART and self._reads_back_parts(path):
                sums = self._upload_in_parts(temporary, path, source, size, md5=md5)
            else:
                sums = self._upload(temporary, path, source, size, md5=md5)
                if verify:
                    self._verify(temporary, path, sums)
            self._move(temporary, path, overwrite=overwrite)
        except BaseException:
            self._remove_quietly(temporary)
            raise
        return sums

    def _prepare(self, path: str, *, overwrite: bool) -> str:
        """Refuse an existing ``path`` (or a collection), make its parents; a temporary name."""
        if self._orphans:
            self._remove_orphans()
        existing = self._find(path)
        if existing is not None and existing.is_dir:
            raise FileAlreadyOnStorage(f"{self._where(path)} is a directory")
        if existing is not None and not overwrite:
            raise FileAlreadyOnStorage(f"{self._where(path)} exists already")
        parent, _, name = path.rpartition("/")
        self._make_collections(parent, path)
        return f"{parent}/{part_name(name)}" if parent else part_name(name)

    def _make_collections(self, parent: str, path: str) -> None:
        """MKCOL ``parent`` (relative) and whatever above it is missing, deepest first."""
        missing: list[str] = []
        directory = self._server_path(parent)
        while True:
            response = self._request("MKCOL", directory, path, "writing")
            if response.status_code == 409 and directory not in ("", "/"):
                missing.append(directory)  # its parent is missing too
                directory = posixpath.dirname(directory)
                continue
            self._check_mkcol(response, directory, path)
            break
        for directory in reversed(missing):
            response = self._request("MKCOL", directory, path, "writing")
            self._check_mkcol(response, directory, path)

    def _check_mkcol(self, response: httpx.Response, directory: str, path: str) -> None:
        if response.status_code == 405:  # the collection exists already
            return
        if response.status_code == 403 and self._is_collection(directory, path):
            return  # a concurrent put made it meanwhile (Apache: 403, "File exists")
        self._check(response, path, "writing", ok=(200, 201, 204))

    def _is_collection(self, directory: str, path: str) -> bool:
        """Whether the server path ``directory`` is a collection now."""
        response = self._request(
            "PROPFIND", directory, path, "writing", headers={"Depth": "0"}, stream=True
        )
        with _finishing(response):
            if response.status_code != 207:
                return False
            return any(entry.is_dir for entry in self._entries(response, path))

    def _upload(
        self, temporary: str, path: str, source: BinaryIO, size: int | None, *, md5: bool
    ) -> Checksums:
        finished: _Flags = []
        # XrdHttp (5.5) reads a chunked body only once it has answered 100 Continue, and waits
        # forever for the body of an empty PUT that asked for it
        headers = {"Expect": "100-continue"} if size != 0 else {}
        if size is not None:  # a plain body: no chunk framing, no copy of each piece by h11
            headers["Content-Length"] = str(size)
        with StreamHasher(md5=md5) as hasher:
            self._put_body(
                temporary, path, headers, self._body(source, hasher, path, size, finished), finished
            )
            return hasher.result()

    def _put_body(
        self,
        temporary: str,
        path: str,
        headers: dict[str, str],
        body: Iterator[bytes],
        finished: _Flags,
    ) -> None:
        """PUT ``body`` (which appends to ``finished`` once all sent) to ``temporary``."""
        response = self._send(
            "PUT", temporary, "writing", headers=headers, content=body, target=path
        )
        self._check(response, path, "writing", ok=(200, 201, 204))
        if not finished:
            raise StorageError(
                f"storage failed writing {self._where(path)}: it answered "
                f"{response.status_code} before it received all the data"
            )

    def _body(
        self,
        source: BinaryIO,
        hasher: StreamHasher,
        path: str,
        size: int | None,
        finished: _Flags,
        *,
        ends: bool = True,
    ) -> Iterator[bytes]:
        """The bytes of ``source`` in pieces of ``_PIECE``, hashed on the way.

        With a ``size`` announced, exactly that many bytes, or LocalFileError; and when the body
        ``ends`` the source (not a part of it), nothing after them.
        """
        where = self._where(path)
        sent = 0
        while size is None or sent < size:
            piece = _read_piece(source, _PIECE if size is None else min(_PIECE, size - sent), where)
            if not piece:
                break
            hasher.update(piece)
            sent += len(piece)
            yield piece
        if size is not None and (sent != size or (ends and _read_piece(source, 1, where))):
            raise LocalFileError(f"the data for {where} changed size while it was sent")
        finished.append(True)

    def _upload_in_parts(
        self, temporary: str, path: str, source: BinaryIO, size: int, *, md5: bool
    ) -> Checksums:
        """Write ``size`` bytes of ``source`` in parts of ``_PART`` (PUT with ``Content-Range``),
        each part read back by a helper thread while the next one is written. Should the server
        answer a ranged GET with the whole file after all (Apache does where an output filter
        rewrites bodies), the whole file is read back at the end instead.

        Verification stays whole: every byte stored is read back once its part was written, the
        adler32 of all parts read back (combined in order) must equal the adler32 of the bytes
        sent, and the stored file must have exactly ``size`` bytes. Only the waiting goes: the
        read-back of part k overlaps the writing of part k + 1, instead of a second pass over
        the whole file once it is written.
        """
        where = self._where(path)
        with (
            StreamHasher(md5=md5) as hasher,
            _ReadBack(
                lambda start, length: self._read_range(temporary, path, start, length)
            ) as read_back,
        ):
            start = 0
            while start < size:
                length = min(_PART, size - start)
                finished: _Flags = []
                body = self._body(
                    source, hasher, path, length, finished, ends=start + length == size
                )
                headers = {
                    "Expect": "100-continue",
                    "Content-Length": str(length),
                    "Content-Range": f"bytes {start}-{start + length - 1}/*",
                }
                self._put_body(temporary, path, headers, body, finished)
                read_back.add(start, length)  # raises what reading back an earlier part found
                start += length
            sums = hasher.result()
            stored = read_back.result()
        if stored is None:  # the server answered a ranged GET with the whole file (a filter)
            self._part_puts = False
            self._verify(temporary, path, sums)  # read back the whole file after all
            return sums
        stored_size = self._file(temporary).size
        if stored_size != sums.bytes or stored != sums.adler32:
            raise ChecksumMismatch(
                f"{where}: the storage holds {stored_size} bytes with adler32 {stored}, "
                f"{sums.bytes} bytes with adler32 {sums.adler32} were written"
            )
        return sums

    def _read_range(self, temporary: str, path: str, start: int, length: int) -> int:
        """The adler32 of ``length`` stored bytes of ``temporary`` from ``start`` (a ranged GET);
        ChecksumMismatch when the storage holds fewer."""
        end = start + length - 1
        response = self._send(
            "GET", temporary, "reading", headers={"Range": f"bytes={start}-{end}"}, stream=True,
            target=path,
        )  # fmt: skip
        with _finishing(response):
            if response.status_code == 200:
                raise _RangesIgnored
            if response.status_code == 416:
                raise ChecksumMismatch(
                    f"{self._where(path)}: the storage holds less than the {end + 1} bytes written"
                )
            self._check(response, path, "reading", ok=(206,))
            answered = response.headers.get("Content-Range", "")
            if not answered.startswith(f"bytes {start}-{end}/"):
                raise ChecksumMismatch(
                    f"{self._where(path)}: asked for bytes {start}-{end} of the bytes written, "
                    f"the storage answered {answered or 'without Content-Range'}"
                )
            value, received = 1, 0
            try:
                for piece in response.iter_bytes():
                    value = adler32(piece, value)
                    received += len(piece)
            except httpx.HTTPError as exc:
                raise self._broken(exc, path, "reading") from exc
        if received != length:
            raise ChecksumMismatch(
                f"{self._where(path)}: read back {received} of the {length} bytes written from "
                f"byte {start}"
            )
        return value

    def _reads_back_parts(self, path: str) -> bool:
        """Whether large verified puts go in parts, read back behind the writing: the server
        writes ``Content-Range`` PUTs into a file (Apache mod_dav does, most servers refuse
        or ignore them), serves ranged GETs, and sends no digests (else it vouches itself, no
        read-back is needed). Found out once, with a probe file beside ``path``."""
        if self._part_puts is None:
            parent = path.rpartition("/")[0]
            name = part_name("lacus-range-probe")
            probe = f"{parent}/{name}" if parent else name
            try:
                self._part_puts = self._probe_part_puts(probe, path)
            finally:
                self._remove_quietly(probe)
        return self._part_puts

    def _probe_part_puts(self, probe: str, path: str) -> bool:
        def put(data: bytes, start: int) -> bool:
            headers = {"Content-Range": f"bytes {start}-{start + len(data) - 1}/*"}
            response = self._send(
                "PUT", probe, "writing", headers=headers, content=iter([data]), target=path
            )
            _finish(response)
            return response.status_code in (200, 201, 204)

        if not put(b"ab", 0):
            return False
        if self._server_digest(probe, "adler32") is not None:
            return False  # the server vouches for what it stores
        if not put(b"c", 1):
            return False
        whole = self._send("GET", probe, "reading", target=path)
        ranged = self._send("GET", probe, "reading", headers={"Range": "bytes=1-1"}, target=path)
        return (whole.status_code, whole.content, ranged.status_code, ranged.content) == (
            200,
            b"ac",
            206,
            b"c",
        )

    def _verify(self, temporary: str, path: str, sums: Checksums) -> None:
        size = self._file(temporary).size
        stored = self._server_digest(temporary, "adler32") or self._read_digest(
            temporary, "adler32"
        )
        if size != sums.bytes or stored != sums.adler32:
            raise ChecksumMismatch(
                f"{self._where(path)}: the storage holds {size} bytes with adler32 {stored}, "
                f"{sums.bytes} bytes with adler32 {sums.adler32} were written"
            )

    def _move(self, temporary: str, path: str, *, overwrite: bool) -> None:
        headers = {"Destination": self._http_url(path), "Overwrite": "T" if overwrite else "F"}
        response = self._send("MOVE", temporary, "writing", headers=headers, target=path)
        if response.status_code == 412:
            raise FileAlreadyOnStorage(f"{self._where(path)} exists already")
        self._check(response, path, "writing", ok=(200, 201, 204))

    def _copy_from(self, temporary: str, path: str, source_url: str) -> None:
        """COPY with a Source header; the server streams progress, then success or failure."""
        headers = {"Source": source_url, "Overwrite": "T", "Credential": "none"}
        doing = f"copying {source_url} to"
        response = self._send("COPY", temporary, doing, headers=headers, stream=True, target=path)
        try:
            self._check(response, path, doing, ok=(200, 201, 202))
            outcome = ""
            try:
                for line in response.iter_lines():
                    text = line.strip()
                    if text.lower().startswith(("success", "failure", "failed")):
                        outcome = text
                        break
            except httpx.HTTPError as exc:
                raise self._broken(exc, path, doing) from exc
        finally:
            _finish(response)
        if not outcome.lower().startswith("success"):
            reason = _one_line(outcome) or "the server ended its answer without a result"
            raise StorageError(f"storage failed {doing} {self._where(path)}: {reason}")

    def _remove_quietly(self, path: str) -> None:
        """Delete a temporary file; if the server cannot be asked now, ask again later."""
        try:
            status = self._send("DELETE", path, "deleting").status_code
        except (LacusError, httpx.HTTPError):
            status = 503
        if status >= 500 and len(self._orphans) < _MAX_ORPHANS:
            self._orphans.add(path)

    def _remove_orphans(self) -> None:
        """Delete the temporary files left by puts the server dropped (it is back now)."""
        for path in list(self._orphans):
            self._orphans.discard(path)
            self._remove_quietly(path)
            if path in self._orphans:  # the server is not back yet
                return

    # -- reading ------------------------------------------------------------------------------

    def _find(self, path: str) -> _Entry | None:
        """The resource at ``path`` (relative), or None if there is none."""
        response = self._send("PROPFIND", path, "reading", headers={"Depth": "0"}, stream=True)
        with _finishing(response):
            if self._missing(response, path):
                return None
            self._check(response, path, "reading", ok=(207,))
            entries = list(self._entries(response, path))
        if not entries:
            raise StorageError(f"storage failed reading {self._where(path)}: empty PROPFIND")
        return entries[0]

    def _file(self, path: str) -> _Entry:
        entry = self._find(path)
        if entry is None:
            raise StorageFileNotFound(f"{self._where(path)} does not exist")
        if entry.is_dir:
            raise StorageFileNotFound(f"{self._where(path)} is a directory, not a file")
        return entry

    def _missing(self, response: httpx.Response, path: str) -> bool:
        """Whether a PROPFIND answer means: no such resource.

        Apache answers 400 for a path below a file (HEAD tells that apart from a bad request),
        XrdHttp 500 with "not a directory".
        """
        status = response.status_code
        if status in (404, 410) or _status_kind(status, _short_body(response)) == "missing":
            return True
        if status in (400, 409):
            head = self._send("HEAD", path, "reading")
            return head.status_code in (404, 410)
        return False

    def _walk(self, prefix: str, *, parts: bool) -> Iterator[FileStat]:
        """The files below ``prefix`` in the order of ``scan``; ``prefix`` if it is a file."""
        top = self._children(prefix)
        if isinstance(top, _Entry):
            yield FileStat(path=prefix, bytes=top.size, mtime=top.mtime)
            return

        def children(directory: str) -> _Children:
            found = top if directory == prefix else self._children(directory)
            return found if isinstance(found, list) else []  # became a file meanwhile

        for path, entry in walk_sorted(prefix, children, parts=parts):
            yield FileStat(path=path, bytes=entry.size, mtime=entry.mtime)

    def _children(self, directory: str) -> _Children | _Entry:
        """The names in the collection ``directory``, with the entry of each file (None for a
        collection); [] if there is none; the entry of ``directory`` if it is a file."""
        response = self._send("PROPFIND", directory, "listing", headers={"Depth": "1"}, stream=True)
        found: _Children = []
        with _finishing(response):
            if self._missing(response, directory):
                return found
            self._check(response, directory, "listing", ok=(207,))
            own = self._server_path(directory)
            for index, entry in enumerate(self._entries(response, directory)):
                if entry.path == own or (index == 0 and not entry.path.startswith(own + "/")):
                    if not entry.is_dir:
                        return entry
                    continue
                parent, _, name = entry.path.rpartition("/")
                if parent == own:
                    found.append((name, None if entry.is_dir else entry))
        return found

    def _entries(self, response: httpx.Response, path: str) -> Iterator[_Entry]:
        parser = _Multistatus()
        try:
            for piece in response.iter_bytes():
                parser.feed(piece)
                yield from parser.take()
            parser.feed(b"", final=True)
        except httpx.HTTPError as exc:
            raise self._broken(exc, path, "listing") from exc
        except (expat.ExpatError, ValueError) as exc:
            raise StorageError(
                f"storage failed listing {self._where(path)}: unreadable PROPFIND answer ({exc})"
            ) from exc
        yield from parser.take()

    def _server_digest(self, path: str, algorithm: str) -> str | None:
        """The checksum the server computes (RFC 3230), or None if it offers none."""
        if self._digests.get(algorithm) is False:
            return None
        response = self._send("HEAD", path, "reading", headers={"Want-Digest": algorithm})
        self._check(response, path, "reading", ok=(200,))
        value = _parse_digest(response.headers.get("Digest", ""), algorithm)
        if "Digest" not in response.headers:
            self._digests[algorithm] = False
        return value

    def _read_digest(self, path: str, algorithm: str) -> str:
        """The checksum of the file's bytes, read from the storage."""
        if algorithm == "md5":
            digest = hashlib.md5(usedforsecurity=False)
            for chunk in self._get(path, _PIECE):
                digest.update(chunk)
            return digest.hexdigest()
        value = 1
        for chunk in self._get(path, _PIECE):
            value = adler32(chunk, value)
        return format_adler32(value)

    # -- HTTP ---------------------------------------------------------------------------------

    def _server_path(self, path: str) -> str:
        return f"{self._root}/{path}" if path else self._root or "/"

    def _http_url(self, path: str) -> str:
        return self._origin + quote(self._server_path(path), safe="/")

    def _where(self, path: str) -> str:
        return f"{self.url}/{path}" if path else self.url

    def _send(
        self,
        method: str,
        path: str,
        doing: str,
        *,
        headers: dict[str, str] | None = None,
        content: Iterator[bytes] | None = None,
        stream: bool = False,
        target: str | None = None,
    ) -> httpx.Response:
        """Send one request for ``path`` (relative); ``target`` is the path named in errors."""
        return self._request(
            method,
            self._server_path(path),
            path if target is None else target,
            doing,
            headers=headers,
            content=content,
            stream=stream,
        )

    def _request(
        self,
        method: str,
        server_path: str,
        path: str,
        doing: str,
        *,
        headers: dict[str, str] | None = None,
        content: Iterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        if method == "PROPFIND":
            headers = {**(headers or {}), "Content-Type": "application/xml; charset=utf-8"}
        request = self._client.build_request(
            method,
            self._origin + quote(server_path, safe="/"),
            headers=headers,
            content=_PROPFIND if method == "PROPFIND" else content,
        )
        for attempt in (1, 2):
            try:
                return self._client.send(
                    request, stream=stream, follow_redirects=method in _REDIRECTS
                )
            except httpx.RemoteProtocolError as exc:  # a kept-alive connection was closed
                if attempt == 2 or method not in _RETRIED:
                    raise self._broken(exc, path, doing) from exc
            except httpx.HTTPError as exc:
                raise self._broken(exc, path, doing) from exc
        raise AssertionError("unreachable")

    def _broken(self, exc: Exception, path: str, doing: str) -> StorageError:
        """The error for a request that got no (complete) answer."""
        where = self._where(path)
        if isinstance(exc, httpx.ConnectTimeout):
            return StorageUnavailable(
                f"cannot reach {where}: no connection within {self._timeout:g} s"
            )
        if isinstance(exc, httpx.ConnectError):
            return StorageUnavailable(f"cannot reach {where}: {_one_line(str(exc))}")
        if isinstance(exc, httpx.TimeoutException):
            return StorageError(
                f"storage failed {doing} {where}: no answer within {self._timeout:g} s"
            )
        reason = _one_line(str(exc)) or type(exc).__name__
        return StorageError(f"storage failed {doing} {where}: connection lost ({reason})")

    def _check(
        self, response: httpx.Response, path: str, doing: str, *, ok: tuple[int, ...]
    ) -> None:
        status = response.status_code
        if status in ok:
            return
        where = self._where(path)
        reason = f"{status} {response.reason_phrase}".strip()
        detail = _short_body(response)
        if detail:
            reason += f": {detail}"
        kind = _status_kind(status, detail)
        if kind == "denied":
            raise StoragePermissionDenied(f"storage refused {doing} {where}: {reason}")
        if kind == "missing":
            raise StorageFileNotFound(f"{where} does not exist")
        if kind == "full":
            raise StorageFull(f"storage {self.url} is full: cannot write {path} ({reason})")
        if status in (301, 302, 303, 307, 308):
            reason += f" to {response.headers.get('Location', '?')} (not followed)"
        raise StorageError(f"storage failed {doing} {where}: {reason}")


class PlainWebDAVBackend(WebDAVBackend):
    """WebDAV over plain HTTP (``dav://``): for test beds and trusted networks only."""

    _default_scheme = "dav"


class _Download(Iterator[bytes]):
    """The body of a GET in chunks of at most ``chunk_size``; closes the response when done."""

    def __init__(
        self,
        response: httpx.Response,
        chunk_size: int,
        broken: Callable[[Exception], StorageError],
    ) -> None:
        self._response = response
        self._chunks = self._read(chunk_size, broken)

    def __iter__(self) -> _Download:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()
        self._response.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._response.close()

    def _read(
        self, chunk_size: int, broken: Callable[[Exception], StorageError]
    ) -> Generator[bytes, None, None]:
        pending: list[bytes] = []
        size = 0
        try:
            for piece in self._response.iter_bytes():
                while piece:
                    room = chunk_size - size
                    if len(piece) < room:
                        pending.append(piece)
                        size += len(piece)
                        break
                    pending.append(piece[:room])
                    piece = piece[room:]
                    yield b"".join(pending)
                    pending, size = [], 0
            if pending:
                yield b"".join(pending)
        except httpx.HTTPError as exc:
            raise broken(exc) from exc
        finally:
            self._response.close()


class _RangesIgnored(Exception):
    """The server answered a ranged GET with the whole file."""


class _ReadBack:
    """Parts of a file read back in a helper thread, in order, while the writer goes on: ``add``
    a part once written (raises what reading an earlier part found), ``result`` waits for the
    last one and gives the adler32 of them all, or None if the server ignored a range (no more
    parts are read then); leaving the ``with`` block stops the thread."""

    def __init__(self, read: Callable[[int, int], int]) -> None:
        self._read = read
        self._parts: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._failure: BaseException | None = None
        self._ranged = True
        self._value = 1
        self._next = 0  # where the next part must start: parts are contiguous, in order
        self._thread = threading.Thread(target=self._run, name="lacus-read-back", daemon=True)
        self._thread.start()

    def __enter__(self) -> _ReadBack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def add(self, start: int, length: int) -> None:
        if start != self._next:
            raise ValueError(f"parts must follow each other: {start} after {self._next}")
        self._next = start + length
        self._raise_failure()
        self._parts.put((start, length))

    def result(self) -> str | None:
        self._stop()
        self._raise_failure()
        return format_adler32(self._value) if self._ranged else None

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._parts.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (part := self._parts.get()) is not None:
            if self._failure is not None or not self._ranged:
                continue  # drain until stopped
            start, length = part
            try:
                self._value = adler32_combine(self._value, self._read(start, length), length)
            except _RangesIgnored:
                self._ranged = False
            except BaseException as exc:  # noqa: BLE001 - raised in the writer's thread
                self._failure = exc


class _Multistatus:
    """An incremental parser of a WebDAV ``multistatus`` answer; refuses DTDs and entities."""

    def __init__(self) -> None:
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._text
        self._parser.StartDoctypeDeclHandler = self._refuse
        self._parser.EntityDeclHandler = self._refuse
        self._done: list[_Entry] = []
        self._text_parts: list[str] = []
        self._in_response = False
        self._props: dict[str, str] = {}
        self._prop: dict[str, str] = {}
        self._href = ""

    def feed(self, data: bytes, *, final: bool = False) -> None:
        self._parser.Parse(data, final)

    def take(self) -> list[_Entry]:
        done, self._done = self._done, []
        return done

    @staticmethod
    def _refuse(*args: object) -> None:
        raise ValueError("a DTD or entity in a PROPFIND answer")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self._text_parts = []
        if name == "DAV: response":
            self._in_response, self._props, self._href = True, {}, ""
        elif name == "DAV: propstat":
            self._prop = {}
        elif name == "DAV: collection":
            self._prop["collection"] = "1"

    def _text(self, data: str) -> None:
        self._text_parts.append(data)

    def _end(self, name: str) -> None:
        text = "".join(self._text_parts).strip()
        self._text_parts = []
        if not self._in_response:
            return
        if name == "DAV: href" and not self._href:
            self._href = text
        elif name in ("DAV: getcontentlength", "DAV: getlastmodified") and text:
            self._prop[name.partition(" ")[2]] = text
        elif name == "DAV: iscollection" and text == "1":  # LCGDM's, where no resourcetype
            self._prop["collection"] = "1"
        elif name == "DAV: status":
            self._prop["status"] = text
        elif name == "DAV: propstat":
            if _status_code(self._prop.get("status", "")) == 200:
                self._props.update(self._prop)
        elif name == "DAV: response":
            self._in_response = False
            if self._href:
                self._done.append(self._entry())

    def _entry(self) -> _Entry:
        path = unquote(urlsplit(self._href).path).rstrip("/") or "/"
        size = self._props.get("getcontentlength", "0")
        modified = self._props.get("getlastmodified")
        mtime = 0.0
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = email.utils.parsedate_to_datetime(modified).timestamp()
        return _Entry(
            path=path,
            is_dir="collection" in self._props,
            size=int(size) if size.isdigit() else 0,
            mtime=mtime,
        )


def _status_code(status_line: str) -> int:
    """200 from ``HTTP/1.1 200 OK``; 0 when unreadable."""
    parts = status_line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _parse_digest(header: str, algorithm: str) -> str | None:
    """The ``algorithm`` value of an RFC 3230 Digest header, in Rucio's hex form."""
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() != algorithm or not value:
            continue
        value = value.strip()
        if algorithm == "adler32":
            if 0 < len(value) <= 8 and all(c in "0123456789abcdefABCDEF" for c in value):
                return value.lower().zfill(8)
            return None
        if len(value) == 32 and all(c in "0123456789abcdefABCDEF" for c in value):
            return value.lower()
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.b64decode(value, validate=True)
            if len(raw) == 16:
                return raw.hex()
    return None


def _known_size(source: BinaryIO) -> int | None:
    """How many bytes are left in a regular file, a BytesIO, or a stream that tells
    (``remaining_bytes()``, as ``ChunkReader`` does with a size); None for anything else."""
    remaining = getattr(source, "remaining_bytes", None)
    if callable(remaining):
        told = remaining()
        return told if isinstance(told, int) and told >= 0 else None
    try:
        if isinstance(source, io.BytesIO):
            with source.getbuffer() as view:
                return max(len(view) - source.tell(), 0)
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(info.st_size - source.tell(), 0)
    except (AttributeError, OSError, ValueError):
        return None


def _read_piece(source: BinaryIO, size: int, where: str) -> bytes:
    """Up to ``size`` bytes of ``source``; short only at its end, whatever its read sizes."""
    pieces: list[bytes] = []
    wanted = size
    try:
        while wanted:
            data = source.read(wanted)
            if data is None:
                raise LocalFileError(f"the data for {where} is a non-blocking stream")
            if not data:
                break
            pieces.append(data)
            wanted -= len(data)
    except OSError as exc:
        raise LocalFileError(f"cannot read the data for {where}: {exc}") from exc
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """True: the system's CAs (OpenSSL's default paths, SSL_CERT_FILE / SSL_CERT_DIR)."""
    if verify is True:
        return ssl.create_default_context()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if not isinstance(verify, str) or not verify:
        raise InvalidInput("verify must be true, false or the path of a CA bundle")
    try:
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"cannot use {verify!r} as the CA bundle: {exc}") from exc


def _range_body(
    response: httpx.Response, received: bytearray, length: int
) -> httpx.HTTPError | None:
    """Add the body of a 206 to ``received`` (until it holds ``length`` bytes); the error that
    cut it short, if one did."""
    try:
        for piece in response.iter_bytes():
            received += piece
            if len(received) >= length:
                return None
    except httpx.HTTPError as exc:
        return exc
    return None


def _finish(response: httpx.Response) -> None:
    """Close ``response``, reading a short body first so that its connection can serve again.

    Else every PROPFIND of a missing file costs a new TLS connection, and XrdHttp (5.5) logs a
    send failure for each; a run of those once left it answering nothing for minutes.
    """
    length = response.headers.get("Content-Length", "")
    if not response.is_stream_consumed and length.isdigit() and int(length) <= _DRAINED:
        with contextlib.suppress(httpx.HTTPError):
            response.read()
    response.close()


@contextlib.contextmanager
def _finishing(response: httpx.Response) -> Iterator[httpx.Response]:
    try:
        yield response
    finally:
        _finish(response)


def _short_body(response: httpx.Response) -> str:
    """The first line of a short plain-text error body (XrdHttp explains itself there)."""
    kind = response.headers.get("Content-Type", "text/plain")
    length = response.headers.get("Content-Length", "")
    if not kind.startswith("text/plain") or not length.isdigit() or int(length) > 4096:
        return ""
    with contextlib.suppress(httpx.HTTPError):
        return _one_line(response.read().decode("utf-8", "replace"))
    return ""


# What the first line of a 500's body says, as XrdHttp words its errors (the server's strerror)
_SAID = {
    "denied": ("read/only", "read-only", "permission denied", "not authorized"),
    "missing": ("no such file", "not a directory"),
    "full": ("no space left", "quota exceeded", "disk quota"),
}


def _status_kind(status: int, detail: str) -> str:
    """``denied``, ``missing``, ``full``, or ``failed``."""
    if status in (401, 403):
        return "denied"
    if status in (404, 410):
        return "missing"
    if status == 507:
        return "full"
    if status == 500:
        said = detail.lower()
        for kind, phrases in _SAID.items():
            if any(phrase in said for phrase in phrases):
                return kind
    return "failed"


def _one_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= 200 else line[:197] + "..."
