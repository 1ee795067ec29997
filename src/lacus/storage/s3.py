"""A storage backend on an S3 object store (AWS, SeaweedFS, MinIO, Ceph RGW...), through botocore.

The RSE prefix is ``bucket/optional/key/prefix``: the file ``virgo/ab/f`` is the object
``optional/key/prefix/virgo/ab/f`` in ``bucket``, addressed path-style so that any endpoint works.

Writing. A file that fits in one part (8 MiB by default) is one PutObject; a larger one is a
multipart upload: while one part is sent, the next is read from the source into the other of two
reused buffers, so memory stays at two parts whatever the size. An object appears under its name
only when its upload completes (S3 never shows a partial object); on any failure the multipart
upload is aborted. Only if the server dies mid-put can an aborted upload stay pending on it:
invisible, never an object, removed by the bucket's ``AbortIncompleteMultipartUpload`` lifecycle
rule. Without ``overwrite`` the put checks with HEAD first and sends ``If-None-Match: *``, so a
file written concurrently under the same name is not replaced (a server that ignores the header
leaves the window between HEAD and the write).

Checksums. Size, adler32 and md5 are computed while streaming. They are stored with the object
for ``checksum``: as metadata (``x-amz-meta-adler32``, ``x-amz-meta-md5``) on a single-part
object, as object tags on a multipart one (its metadata is fixed before its bytes are read).

Verification (``put_verified``) trusts nothing Lacus wrote itself, only what the storage computed
over the bytes it received: the ETag of an object or part is the MD5 of its bytes (of unencrypted
objects on AWS, SeaweedFS, MinIO, Ceph), so each part's ETag must equal the MD5 computed here, and
HEAD of the final name must show the size written and the ETag those MD5s make. That costs one MD5
pass in this process and no download; where the ETags are not MD5s, the object is read back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import boto3
import urllib3.exceptions
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from lacus.checksums import CHUNK_SIZE, Checksums, format_adler32
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    InvalidInput,
    LacusError,
    LocalFileError,
    StorageError,
    StorageFileNotFound,
    StoragePermissionDenied,
    StorageUnavailable,
)
from lacus.storage import _options
from lacus.storage._base import (
    FileStat,
    StreamHasher,
    adler32,
    check_path,
    check_range,
    walk_sorted,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["S3Backend"]

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's smallest part but the last
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's largest part
_MAX_PARTS = 10_000
_GROW_EVERY = 1_000  # the part size doubles every 1000 parts: 8 MiB parts reach 8 TiB
_FIRST_BUFFER = 64 * 1024  # a small file never allocates a whole part
_READ_STEP = MiB  # the source is read (and hashed) in steps of at most this size
_CONNECT_TIMEOUT = 5.0
_ATTEMPTS = 2  # one retry: a dead server fails within seconds
_ADLER32_RE = re.compile(r"[0-9a-f]{8}")
_MD5_RE = re.compile(r"[0-9a-f]{32}")
_ETAG_RE = re.compile(r"([0-9a-f]{32})(?:-([0-9]+))?")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-_]{1,254}")

_S3_ERRORS = (ClientError, BotoCoreError, urllib3.exceptions.HTTPError, OSError)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_DENIED = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccountProblem",
}
_FULL = {"QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"}
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_UNAVAILABLE = {"SlowDown", "ServiceUnavailable", "503"}

_OPTIONS = ("access_key", "secret_key", "region", "secure", "verify", "timeout", "part_size")

_Parts = list[dict[str, Any]]  # aliases: inside S3Backend, ``list`` is its method
_Digests = list[str]

_session_lock = threading.Lock()
_session: boto3.session.Session | None = None  # made on first use: clients share its models


def _new_client(
    endpoint: str, config: Config, credentials: tuple[str, str] | None, verify: bool | str
) -> S3Client:
    """A botocore client that uses only the credentials given (no files, no instance metadata)."""
    global _session
    access_key, secret_key = credentials or (None, None)
    with _session_lock:  # a boto3 session is not thread-safe; its clients are
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
            verify=verify,
        )


class S3Backend:
    """Objects under one key prefix of one bucket on an S3 endpoint.

    ``credentials`` is ``(access_key, secret_key)``, or None for anonymous requests; no other
    source of credentials is consulted (no configuration files, no instance metadata).
    """

    def __init__(
        self,
        endpoint: str,
        prefix: str,
        *,
        credentials: tuple[str, str] | None = None,
        region: str = "us-east-1",
        verify: bool | str = True,
        timeout: float = 60.0,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        bucket, _, key_prefix = prefix.strip("/").partition("/")
        if not _BUCKET_RE.fullmatch(bucket):
            raise InvalidInput(
                f"invalid S3 prefix {prefix!r}: it must start with a bucket name "
                "(lower-case letters, digits, '.', '-')"
            )
        key_prefix = check_path(key_prefix, allow_empty=True)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise InvalidInput(
                f"invalid S3 part_size {part_size}: it must be between {MIN_PART_SIZE} and "
                f"{MAX_PART_SIZE} bytes"
            )
        if timeout <= 0:
            raise InvalidInput(f"invalid S3 timeout {timeout}: it must be positive")
        self._endpoint = endpoint.rstrip("/")
        self._bucket = bucket
        self._root = f"{key_prefix}/" if key_prefix else ""
        self._part_size = part_size
        netloc = self._endpoint.partition("://")[2]
        self.url = f"s3://{netloc}/{bucket}" + (f"/{key_prefix}" if key_prefix else "")
        self._credentials = credentials
        self._config = Config(
            region_name=region,
            signature_version=UNSIGNED if credentials is None else "s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=min(timeout, _CONNECT_TIMEOUT),
            read_timeout=timeout,
            retries={"total_max_attempts": _ATTEMPTS, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            tcp_keepalive=True,
            user_agent_extra="lacus",
        )
        self._verify = verify
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_protocol(
        cls, *, prefix: str, hostname: str = "", port: int = 0, **options: object
    ) -> S3Backend:
        """Build from an RSE protocol: the endpoint is ``hostname:port``, ``prefix`` the bucket.

        Options: ``access_key`` and ``secret_key`` (default: the environment's
        ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``; anonymous without either),
        ``region`` (us-east-1), ``secure`` (https, the default, or http), ``verify`` (check the
        server's certificate, or the path of a CA bundle), ``timeout`` (seconds a request may
        wait for the server, 60), ``part_size`` (bytes in each part of a multipart upload).
        """
        _options.check_names("s3", options, _OPTIONS)
        host = _options.url_host("s3", hostname)
        secure = _options.typed("s3", options, "secure", bool, True)
        env = os.environ
        access_key = _options.typed("s3", options, "access_key", str, env.get("AWS_ACCESS_KEY_ID"))
        secret_key = _options.typed(
            "s3", options, "secret_key", str, env.get("AWS_SECRET_ACCESS_KEY")
        )
        if (access_key is None) != (secret_key is None):
            raise InvalidInput("the s3 backend needs both access_key and secret_key, or neither")
        verify = _options.verify("s3", options)
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise InvalidInput(f"the s3 option verify names no CA bundle file: {verify}")
        timeout = _options.positive_seconds("s3", "timeout", options.get("timeout", 60.0))
        endpoint = f"{'https' if secure else 'http'}://{host}" + (f":{port}" if port else "")
        credentials = (access_key, secret_key) if access_key and secret_key else None
        part_size = _options.typed("s3", options, "part_size", int, DEFAULT_PART_SIZE)
        return cls(
            endpoint,
            prefix,
            credentials=credentials,
            region=_options.typed("s3", options, "region", str, "us-east-1") or "us-east-1",
            verify=verify,
            timeout=timeout,
            part_size=part_size or DEFAULT_PART_SIZE,
        )

    def __repr__(self) -> str:
        return f"S3Backend({self.url!r})"

    @property
    def _s3(self) -> S3Client:
        """The botocore client, made on first use (a backend that is never used costs nothing)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _new_client(
                        self._endpoint, self._config, self._credentials, self._verify
                    )
        return self._client

    # -- the storage protocol -----------------------------------------------------------------

    def stat(self, path: str) -> FileStat:
        path = check_path(path)
        head = self._head(path, "reading")
        return FileStat(
            path=path, bytes=int(head["ContentLength"]), mtime=head["LastModified"].timestamp()
        )

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        return self._put(path, source, md5=md5, overwrite=overwrite, verify=False)

    def put_verified(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        """``put``, checked against the MD5s the storage computed over the bytes it received.

        Each part's ETag must be the MD5 of that part as computed here, and HEAD of the final
        name the size written and the multipart ETag; otherwise ChecksumMismatch, leaving
        nothing. Where ETags are not MD5s (encrypted objects), the object is read back instead.
        """
        return self._put(path, source, md5=md5, overwrite=overwrite, verify=True)

    def get(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = check_path(path)
        with self._errors(path, "reading"):
            body = self._s3.get_object(Bucket=self._bucket, Key=self._key(path))["Body"]
        return self._chunks(body, path, chunk_size)

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``ReadsRanges``: a GET with ``Range``."""
        check_range(start, length)
        path = check_path(path)
        if length == 0:
            self._head(path, "reading")
            return b""
        wanted = f"bytes={start}-{start + length - 1}"
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self._key(path), Range=wanted)[
                "Body"
            ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise self._error(exc, path, "reading") from exc
            self._head(path, "reading")  # the file ends before start
            return b""
        except _S3_ERRORS as exc:
            raise self._error(exc, path, "reading") from exc
        return b"".join(self._chunks(body, path, CHUNK_SIZE))[:length]

    def delete(self, path: str) -> None:
        path = check_path(path)
        self._head(path, "deleting")  # S3 deletes a missing key without a word
        with self._errors(path, "deleting"):
            self._s3.delete_object(Bucket=self._bucket, Key=self._key(path))

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = check_path(prefix, allow_empty=True)
        return self._list(prefix)

    def scan(self, prefix: str = "") -> Iterator[FileStat]:
        """``ScansStorage``: ListObjectsV2 of one directory at a time (``Delimiter='/'``),
        sizes and mtimes from the listing. AWS lists a bucket's keys in UTF-8 byte order, but
        SeaweedFS lists them directory by directory (``a/x`` before ``a-b``): the order is made
        here, not trusted. There are no temporary files: an upload is invisible until it ends.
        """
        return self._scan(check_path(prefix, allow_empty=True))

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        """The checksum stored with the object by Lacus, else computed by reading it.

        For md5, the ETag of a single-part, unencrypted object is the storage's own MD5.
        """
        if algorithm not in ("adler32", "md5"):
            raise InvalidInput(f"unknown checksum algorithm {algorithm!r}; use adler32 or md5")
        path = check_path(path)
        head = self._head(path, "reading")
        pattern = _ADLER32_RE if algorithm == "adler32" else _MD5_RE
        stored = str(head.get("Metadata", {}).get(algorithm, "")).lower()
        if pattern.fullmatch(stored):
            return stored
        etag = _etag(head)
        if algorithm == "md5" and etag and not etag[1] and _etag_is_md5(head):
            return etag[0]
        tagged = head.get("TagCount")  # not every server tells: a multipart object may be tagged
        if tagged or (tagged is None and etag and etag[1]):
            value = self._tagged(path, algorithm)
            if pattern.fullmatch(value):
                return value
        sums = self._read_checksums(path, head, md5=algorithm == "md5")
        return sums.md5 if algorithm == "md5" and sums.md5 else sums.adler32

    # -- writing ------------------------------------------------------------------------------

    def _put(
        self, path: str, source: BinaryIO, *, md5: bool, overwrite: bool, verify: bool
    ) -> Checksums:
        path = check_path(path)
        if not overwrite and self._exists(path):
            raise FileAlreadyOnStorage(f"{self.url}/{path} exists already")
        with StreamHasher(md5=md5) as hasher:
            reader = _SourceReader(source, f"{self.url}/{path}", hasher, part_md5=verify)
            buffer = bytearray(_FIRST_BUFFER)  # grows 16-fold at a time up to a whole part
            filled, more = reader.fill(memoryview(buffer), 0)
            while more and len(buffer) < (part_size := _part_size(self._part_size, 1)):
                buffer = _grown(buffer, min(16 * len(buffer), part_size))
                filled, more = reader.fill(memoryview(buffer), filled)
            if not more:
                return self._put_single(path, memoryview(buffer)[:filled], reader, overwrite)
            return self._put_multipart(path, buffer, filled, reader, overwrite=overwrite)

    def _put_single(
        self, path: str, data: memoryview, reader: _SourceReader, overwrite: bool
    ) -> Checksums:
        sums = reader.hasher.result()
        part_md5 = reader.part_md5()
        metadata = {"adler32": sums.adler32} | ({"md5": sums.md5} if sums.md5 else {})
        extra: dict[str, Any] = {} if overwrite else {"IfNoneMatch": "*"}
        if content_md5 := part_md5 or sums.md5:  # the storage refuses other bytes than these
            extra["ContentMD5"] = base64.b64encode(bytes.fromhex(content_md5)).decode()
        with self._errors(path, "writing"):
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._key(path),
                Body=cast("IO[bytes]", _ViewReader(data)),
                ContentLength=len(data),
                ContentType="application/octet-stream",
                Metadata=metadata,
                **extra,
            )
        if part_md5 is not None:
            try:
                self._verify_written(path, sums, [part_md5])
            except BaseException:
                with contextlib.suppress(*_S3_ERRORS):
                    self._s3.delete_object(Bucket=self._bucket, Key=self._key(path))
                raise
        return sums

    def _put_multipart(
        self, path: str, buffer: bytearray, filled: int, reader: _SourceReader, *, overwrite: bool
    ) -> Checksums:
        """Upload part 1 (in ``buffer``) and the rest of the source, one part in flight while
        the next is read into the other of two buffers."""
        key = self._key(path)
        with self._errors(path, "writing"):
            upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType="application/octet-stream"
            )["UploadId"]
        parts: _Parts = []
        part_md5s: _Digests = []
        buffers = [buffer, bytearray()]
        completed = False
        try:
            with ThreadPoolExecutor(1, "lacus-s3-upload") as uploader:
                in_flight: Future[dict[str, Any]] | None = None
                number, more = 1, True
                while True:
                    slot = (number - 1) % 2
                    if number > 1:  # this buffer's last part is stored: refill it
                        reader.hasher.result()  # the hashing threads are done with it too
                        if len(buffers[slot]) < (size := _part_size(self._part_size, number)):
                            buffers[slot] = bytearray(size)
                        filled, more = reader.fill(memoryview(buffers[slot]), 0)
                    part_md5 = reader.part_md5()
                    if in_flight is not None:
                        parts.append(in_flight.result())
                    data = memoryview(buffers[slot])[:filled]
                    in_flight = uploader.submit(
                        self._upload_part, path, upload_id, number, data, part_md5
                    )
                    if part_md5 is not None:
                        part_md5s.append(part_md5)
                    if not more:
                        break
                    number += 1
                    if number > _MAX_PARTS:
                        raise StorageError(f"{self.url}/{path}: too large for one S3 object")
                parts.append(in_flight.result())
            sums = reader.hasher.result()
            extra: dict[str, Any] = {} if overwrite else {"IfNoneMatch": "*"}
            with self._errors(path, "writing"):
                self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                    **extra,
                )
            completed = True
            if part_md5s:
                self._verify_written(path, sums, part_md5s)
            self._tag(path, sums)
        except BaseException:  # the part in flight has ended: the uploader was shut down
            with contextlib.suppress(*_S3_ERRORS):
                if completed:
                    self._s3.delete_object(Bucket=self._bucket, Key=key)
                else:
                    self._s3.abort_multipart_upload(
                        Bucket=self._bucket, Key=key, UploadId=upload_id
                    )
            raise
        return sums

    def _upload_part(
        self, path: str, upload_id: str, number: int, data: memoryview, md5: str | None
    ) -> dict[str, Any]:
        with self._errors(path, "writing"):
            etag = self._s3.upload_part(
                Bucket=self._bucket,
                Key=self._key(path),
                UploadId=upload_id,
                PartNumber=number,
                Body=cast("IO[bytes]", _ViewReader(data)),
                ContentLength=len(data),
            )["ETag"]
        if md5 is not None:
            self._check_part(path, number, etag, md5)
        return {"PartNumber": number, "ETag": etag}

    def _tag(self, path: str, sums: Checksums) -> None:
        """Store the checksums of a multipart object as its tags; ``checksum`` computes them
        again if this fails (the object itself is complete and correct)."""
        tags = [{"Key": "adler32", "Value": sums.adler32}]
        if sums.md5:
            tags.append({"Key": "md5", "Value": sums.md5})
        with contextlib.suppress(*_S3_ERRORS):
            self._s3.put_object_tagging(
                Bucket=self._bucket,
                Key=self._key(path),
                Tagging={"TagSet": tags},  # type: ignore[typeddict-item]
            )

    def _tagged(self, path: str, algorithm: str) -> str:
        """The tag ``algorithm`` of the object, or "" (also when reading tags is not allowed)."""
        try:
            with self._errors(path, "reading the tags of"):
                tags = self._s3.get_object_tagging(Bucket=self._bucket, Key=self._key(path))
        except StoragePermissionDenied:
            return ""
        values = {tag["Key"]: str(tag["Value"]).lower() for tag in tags.get("TagSet", [])}
        return values.get(algorithm, "")

    def _check_part(self, path: str, number: int, etag: str, md5: str) -> None:
        match = _ETAG_RE.fullmatch(etag.strip('"').lower())
        if match and not match.group(2) and match.group(1) != md5:
            raise ChecksumMismatch(
                f"{self.url}/{path}: the storage received part {number} with MD5 "
                f"{match.group(1)}, {md5} was sent"
            )

    def _verify_written(self, path: str, sums: Checksums, part_md5s: _Digests) -> None:
        """Check what HEAD shows under the final name against what the storage received."""
        head = self._head(path, "verifying")
        where = f"{self.url}/{path}"
        size = int(head["ContentLength"])
        if size != sums.bytes:
            raise ChecksumMismatch(f"{where}: the storage holds {size} bytes, {sums.bytes} sent")
        etag = _etag(head)
        if etag and _etag_is_md5(head):
            if len(part_md5s) == 1 and not etag[1]:
                expected = part_md5s[0]
            else:
                joined = b"".join(bytes.fromhex(digest) for digest in part_md5s)
                expected = f"{_md5(joined)}-{len(part_md5s)}"
            stored = "-".join(filter(None, etag))
            if stored != expected:
                raise ChecksumMismatch(
                    f"{where}: the storage holds ETag {stored}, the bytes sent make {expected}"
                )
            return
        read = self._read_checksums(path, head, md5=False)  # its ETags are not MD5s
        if read.adler32 != sums.adler32:
            raise ChecksumMismatch(
                f"{where}: the storage holds adler32 {read.adler32}, {sums.adler32} was sent"
            )

    # -- reading ------------------------------------------------------------------------------

    def _chunks(self, body: Any, path: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors(path, "reading"):
                while chunk := body.read(chunk_size):
                    yield chunk
        finally:
            with contextlib.suppress(*_S3_ERRORS):
                body.close()

    def _read_checksums(self, path: str, head: dict[str, Any], *, md5: bool) -> Checksums:
        """Size, adler32 (and md5) of the object's bytes, read from the storage now."""
        extra = {"IfMatch": head["ETag"]} if head.get("ETag") else {}
        with self._errors(path, "reading"):
            body = self._s3.get_object(Bucket=self._bucket, Key=self._key(path), **extra)["Body"]
        value, size = 1, 0
        digest = hashlib.md5(usedforsecurity=False) if md5 else None
        for chunk in self._chunks(body, path, CHUNK_SIZE):
            value = adler32(chunk, value)
            size += len(chunk)
            if digest is not None:
                digest.update(chunk)
        return Checksums(size, format_adler32(value), digest.hexdigest() if digest else None)

    def _head(self, path: str, doing: str) -> dict[str, Any]:
        with self._errors(path, doing):
            return dict(self._s3.head_object(Bucket=self._bucket, Key=self._key(path)))

    def _exists(self, path: str) -> bool:
        try:
            self._head(path, "writing")
        except StorageFileNotFound:
            return False
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        """One flat listing (the fastest: up to 1000 keys a request), in the server's order."""
        if prefix and self._object(prefix) is not None:  # a file, then the files below it
            yield prefix
        below = self._key(prefix) + "/" if prefix else self._root
        for page in self._pages(prefix, below):
            for item in page.get("Contents", []):
                path = item["Key"][len(self._root) :]
                if _is_path(path):  # directory markers and unaddressable keys are skipped
                    yield path

    def _scan(self, prefix: str) -> Iterator[FileStat]:
        if prefix and (item := self._object(prefix)) is not None:
            yield FileStat(prefix, int(item["Size"]), item["LastModified"].timestamp())
        for path, item in walk_sorted(prefix, self._directory, parts=True):
            yield FileStat(path, int(item["Size"]), item["LastModified"].timestamp())

    def _object(self, path: str) -> dict[str, Any] | None:
        """The listing's item of the object ``path``, None if there is none."""
        key = self._key(path)
        with self._errors(path, "listing"):
            first = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=key, MaxKeys=1)
        return next((dict(item) for item in first.get("Contents", []) if item["Key"] == key), None)

    def _directory(self, directory: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """The names in ``directory``: ``(name, item)`` for an object, ``(name, None)`` for a
        common prefix (a subdirectory); the directory marker's name is ''."""
        below = self._key(directory) + "/" if directory else self._root
        for page in self._pages(directory, below, delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                yield common.get("Prefix", "")[len(below) : -1], None
            for item in page.get("Contents", []):
                yield item["Key"][len(below) :], dict(item)

    def _pages(self, path: str, prefix: str, *, delimiter: str = "") -> Iterator[dict[str, Any]]:
        """The pages of a ListObjectsV2 of the keys starting with ``prefix``, one request at a
        time; ``path`` is named in errors."""
        query: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        if delimiter:
            query["Delimiter"] = delimiter
        while True:
            with self._errors(path, "listing"):
                page: dict[str, Any] = dict(self._s3.list_objects_v2(**query))
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            query["ContinuationToken"] = token

    # -- helpers ------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return self._root + path

    @contextlib.contextmanager
    def _errors(self, path: str, doing: str) -> Iterator[None]:
        """Turn whatever botocore, urllib3 or the socket raise into one Lacus error."""
        try:
            yield
        except _S3_ERRORS as exc:
            raise self._error(exc, path, doing) from exc

    def _error(self, exc: BaseException, path: str, doing: str) -> LacusError:
        where = f"{self.url}/{path}" if path else self.url
        if not isinstance(exc, ClientError):
            reason = _one_line(str(exc) or type(exc).__name__)
            if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
                return StorageUnavailable(
                    f"cannot reach {self._endpoint} {doing} {where}: {reason}"
                )
            if isinstance(exc, ConnectionClosedError | ConnectionError):
                return StorageUnavailable(f"storage failed {doing} {where}: {reason}")
            return StorageError(f"storage failed {doing} {where}: {reason}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(error.get("Message", "")).strip()
        reason = _one_line(f"{code}: {message}" if message and message != code else code)
        if code == "NoSuchBucket":
            reason = f"bucket {self._bucket} is missing"
            return _options.failure("failed", self.url, path, doing, reason)
        kind = _kind(code, status)
        if kind == "exists" and doing != "writing":
            return StorageError(f"{where} changed while {doing} it")
        if kind == "failed" and code in _BAD_DIGEST:
            return ChecksumMismatch(f"{where}: the storage received other bytes than sent")
        if kind == "failed" and (code in _UNAVAILABLE or status == 503):
            return StorageUnavailable(f"storage failed {doing} {where}: {reason}")
        return _options.failure(kind, self.url, path, doing, reason or str(status))


class _SourceReader:
    """Reads the source into the caller's buffers, hashing each piece as it arrives.

    The stream's size and checksums go to ``hasher``; with ``part_md5``, each part's MD5 is also
    computed here, in the reading thread, before the bytes can change on their way out.
    """

    def __init__(
        self, source: BinaryIO, where: str, hasher: StreamHasher, *, part_md5: bool
    ) -> None:
        self._source = source
        self._readinto: Callable[[memoryview], int | None] | None = getattr(
            source, "readinto", None
        )
        self._where = where
        self.hasher = hasher
        self._part = hashlib.md5(usedforsecurity=False) if part_md5 else None
        self._carry = b""  # the byte read to learn whether the source has more

    def fill(self, view: memoryview, filled: int) -> tuple[int, bool]:
        """Read into ``view[filled:]`` until it is full or the source ends.

        Return how much of ``view`` is filled and whether the source has more.
        """
        if self._carry:
            view[filled] = self._carry[0]
            self._update_part(view[filled : filled + 1])
            filled += 1
            self._carry = b""
        while filled < len(view):
            end = min(len(view), filled + _READ_STEP)
            count = self._read(view[filled:end])
            if not count:
                return filled, False
            self.hasher.update(view[filled : filled + count])
            self._update_part(view[filled : filled + count])
            filled += count
        byte = bytearray(1)
        if self._read(memoryview(byte)):
            self.hasher.update(byte)
            self._carry = bytes(byte)
        return filled, bool(self._carry)

    def part_md5(self) -> str | None:
        """The MD5 of the part read since the last call (None without ``part_md5``)."""
        if self._part is None:
            return None
        digest = self._part.hexdigest()
        self._part = hashlib.md5(usedforsecurity=False)
        return digest

    def _update_part(self, chunk: memoryview) -> None:
        if self._part is not None:
            self._part.update(chunk)

    def _read(self, view: memoryview) -> int:
        try:
            if self._readinto is not None:
                count = self._readinto(view)
            elif (data := self._source.read(len(view))) is not None:
                count = len(data)
                view[:count] = data
            else:
                count = None
        except OSError as exc:
            raise LocalFileError(f"cannot read the data for {self._where}: {exc}") from exc
        if count is None:
            raise LocalFileError(f"the data for {self._where} is a non-blocking stream")
        return count


class _ViewReader(io.RawIOBase):
    """A seekable file over a memoryview: botocore signs, sends and retries it without a copy."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        count = max(0, min(len(target), len(self._view) - self._position))
        target[:count] = self._view[self._position : self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def __len__(self) -> int:
        return len(self._view)


def _kind(code: str, status: int) -> _options.Kind:
    """What an S3 error code or HTTP status says of the request's failure."""
    if code in _NOT_FOUND or status == 404:
        return "missing"
    if code in _DENIED or status == 403:
        return "denied"
    if status == 412:  # If-None-Match: * on a write
        return "exists"
    if code in _FULL or status == 507:
        return "full"
    return "failed"


def _part_size(base: int, number: int) -> int:
    """The size of part ``number``: ``base``, doubled every 1000 parts, at most 5 GiB."""
    return min(base << ((number - 1) // _GROW_EVERY), MAX_PART_SIZE)


def _grown(buffer: bytearray, size: int) -> bytearray:
    grown = bytearray(size)
    grown[: len(buffer)] = buffer
    return grown


def _md5(data: bytes | memoryview) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _etag(head: dict[str, Any]) -> tuple[str, str | None] | None:
    """The ETag as (32 hex digits, number of parts or None), if it has the MD5 form."""
    match = _ETAG_RE.fullmatch(str(head.get("ETag", "")).strip('"').lower())
    return (match.group(1), match.group(2)) if match else None


def _etag_is_md5(head: dict[str, Any]) -> bool:
    """Whether ETags of this object are MD5s: not so under SSE-KMS or customer keys."""
    return not head.get("SSECustomerAlgorithm") and head.get("ServerSideEncryption") in (
        None,
        "AES256",
    )


def _is_path(path: str) -> bool:
    try:
        check_path(path)
    except LacusError:
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.split())
