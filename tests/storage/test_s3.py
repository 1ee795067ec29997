"""The S3 backend against a real SeaweedFS server: the conformance suite, then what is S3's own.

Multipart uploads, aborted uploads that leave nothing pending, the checksums stored with the
objects, verification that trusts only the storage's ETags, listing past a page, and errors.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from lacus.checksums import Checksums
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    InvalidInput,
    LocalFileError,
    StorageError,
    StorageFileNotFound,
    StoragePermissionDenied,
)
from lacus.storage import StorageBackend, VerifyingBackend, open_backend, write_verified
from lacus.storage.s3 import (
    DEFAULT_PART_SIZE,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    S3Backend,
    _part_size,
)
from tests.servers.seaweedfs import SeaweedFS

from .conformance import MiB, NetworkStorageConformance, PatternSource, read_all


class TestS3(NetworkStorageConformance):
    @pytest.fixture
    def backend(self, seaweedfs_server: SeaweedFS) -> StorageBackend:
        # A put holds two parts in memory: with the smallest parts S3 allows (5 MiB), within the
        # suite's bound for a 64 MiB file (16 MiB), and more parts for the suite's failures.
        return seaweedfs_server.backend(part_size=MIN_PART_SIZE)

    @pytest.fixture
    def storage_dir(self) -> None:
        """None: a put is one PutObject or a multipart upload, and an upload its writer never
        finished is no object, never listed; S3 has no temporary files to leave behind."""
        return None

    @pytest.fixture
    def server(self, seaweedfs_server: SeaweedFS) -> SeaweedFS:
        return seaweedfs_server

    @pytest.fixture
    def denied_backend(self, seaweedfs_server: SeaweedFS) -> StorageBackend:
        prefix = "read-only"
        seaweedfs_server.backend(prefix).put("virgo/there", io.BytesIO(b"x"), overwrite=True)
        return seaweedfs_server.backend(prefix, read_only=True)


@pytest.fixture
def s3(seaweedfs_server: SeaweedFS) -> S3Backend:
    """A fresh location whose multipart uploads use the smallest parts S3 allows (5 MiB)."""
    return seaweedfs_server.backend(part_size=MIN_PART_SIZE)


def key_prefix(server: SeaweedFS, backend: S3Backend) -> str:
    """Where the backend's files are in the bucket."""
    return backend.url.split(f"/{server.bucket}/", 1)[1]


def object_keys(server: SeaweedFS, backend: S3Backend) -> list[str]:
    prefix = key_prefix(server, backend) + "/"
    listing = server.client().list_objects_v2(Bucket=server.bucket, Prefix=prefix)
    return [item["Key"][len(prefix) :] for item in listing.get("Contents", [])]


def open_as_admin(
    server: SeaweedFS, prefix: str, *, port: int, **options: object
) -> StorageBackend:
    return open_backend(
        "s3",
        prefix=prefix,
        hostname="127.0.0.1",
        port=port,
        access_key=server.access_key,
        secret_key=server.secret_key,
        **({"secure": False} if port == server.port else {}) | options,
    )


def pending_uploads(server: SeaweedFS, backend: S3Backend) -> list[str]:
    prefix = key_prefix(server, backend) + "/"
    uploads = server.client().list_multipart_uploads(Bucket=server.bucket, Prefix=prefix)
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


def test_multipart_upload_of_a_file_larger_than_a_part(
    seaweedfs_server: SeaweedFS, s3: S3Backend
) -> None:
    source = PatternSource(2 * MIN_PART_SIZE + 12_345, block=os.urandom(MiB + 3))
    sums = s3.put("virgo/big", source)
    assert sums == source.expected()
    head = seaweedfs_server.client().head_object(
        Bucket=seaweedfs_server.bucket, Key=f"{key_prefix(seaweedfs_server, s3)}/virgo/big"
    )
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 MiB, 5 MiB, the rest
    assert s3.stat("virgo/big").bytes == source.size
    digest = hashlib.md5()
    for chunk in s3.get("virgo/big"):
        digest.update(chunk)
    assert digest.hexdigest() == sums.md5
    assert pending_uploads(seaweedfs_server, s3) == []


def test_a_file_of_exactly_one_part_is_one_put(seaweedfs_server: SeaweedFS, s3: S3Backend) -> None:
    data = os.urandom(MIN_PART_SIZE)
    sums = s3.put("exact", io.BytesIO(data))
    head = seaweedfs_server.client().head_object(
        Bucket=seaweedfs_server.bucket, Key=f"{key_prefix(seaweedfs_server, s3)}/exact"
    )
    assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest() == sums.md5
    assert head["Metadata"] == {"adler32": sums.adler32, "md5": sums.md5}


@pytest.mark.parametrize("fail_at", [3 * MiB, 12 * MiB])
def test_failed_upload_leaves_no_object_and_no_pending_upload(
    seaweedfs_server: SeaweedFS, s3: S3Backend, fail_at: int
) -> None:
    s3.put("kept", io.BytesIO(b"kept"))
    source = PatternSource(
        20 * MiB, block=os.urandom(MiB), fail_at=fail_at, error=OSError(5, "Input/output error")
    )
    with pytest.raises(LocalFileError, match="Input/output error"):
        s3.put("virgo/broken", source)
    assert object_keys(seaweedfs_server, s3) == ["kept"]
    assert pending_uploads(seaweedfs_server, s3) == []


def test_interrupted_upload_is_aborted(seaweedfs_server: SeaweedFS, s3: S3Backend) -> None:
    source = PatternSource(
        30 * MiB, block=os.urandom(MiB), fail_at=17 * MiB, error=KeyboardInterrupt()
    )
    with pytest.raises(KeyboardInterrupt):
        s3.put("virgo/interrupted", source)
    assert object_keys(seaweedfs_server, s3) == []
    assert pending_uploads(seaweedfs_server, s3) == []


def test_checksums_are_stored_with_the_objects(seaweedfs_server: SeaweedFS, s3: S3Backend) -> None:
    small = os.urandom(1000)
    small_sums = s3.put("small", io.BytesIO(small))
    big = PatternSource(MIN_PART_SIZE + 1, block=os.urandom(MiB))
    big_sums = s3.put("big", big)
    client, bucket = seaweedfs_server.client(), seaweedfs_server.bucket
    prefix = key_prefix(seaweedfs_server, s3)
    head = client.head_object(Bucket=bucket, Key=f"{prefix}/small")
    assert head["Metadata"] == {"adler32": small_sums.adler32, "md5": small_sums.md5}
    tags = client.get_object_tagging(Bucket=bucket, Key=f"{prefix}/big")["TagSet"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {
        "adler32": big_sums.adler32,
        "md5": big_sums.md5,
    }
    assert s3.checksum("small") == small_sums.adler32
    assert s3.checksum("big") == big_sums.adler32
    assert s3.checksum("big", "md5") == big_sums.md5

    # checksum answers from what is stored: a value planted there is what it says
    client.put_object(
        Bucket=bucket, Key=f"{prefix}/planted", Body=b"abc", Metadata={"adler32": "0badc0de"}
    )
    assert s3.checksum("planted") == "0badc0de"


def test_checksums_of_objects_written_by_others_are_computed(
    seaweedfs_server: SeaweedFS, s3: S3Backend
) -> None:
    client, bucket = seaweedfs_server.client(), seaweedfs_server.bucket
    prefix = key_prefix(seaweedfs_server, s3)
    data = os.urandom(100_000)
    client.put_object(Bucket=bucket, Key=f"{prefix}/foreign", Body=data)
    assert s3.checksum("foreign") == f"{zlib.adler32(data):08x}"
    assert s3.checksum("foreign", "md5") == hashlib.md5(data).hexdigest()
    upload = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/foreign-mp")
    parts = []
    for number, part in enumerate([data * 60, data], start=1):
        etag = client.upload_part(
            Bucket=bucket,
            Key=f"{prefix}/foreign-mp",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=part,
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=f"{prefix}/foreign-mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
    )
    everything = data * 61
    assert s3.checksum("foreign-mp") == f"{zlib.adler32(everything):08x}"
    assert s3.checksum("foreign-mp", "md5") == hashlib.md5(everything).hexdigest()


@pytest.mark.parametrize("size", [0, 1000, MIN_PART_SIZE, 2 * MIN_PART_SIZE + 1])
def test_put_verified(seaweedfs_server: SeaweedFS, s3: S3Backend, size: int) -> None:
    assert isinstance(s3, VerifyingBackend)
    source = PatternSource(size, block=os.urandom(MiB))
    sums = s3.put_verified("virgo/verified", source, md5=False)
    expected = source.expected()
    assert sums == Checksums(expected.bytes, expected.adler32, None)
    assert s3.stat("virgo/verified").bytes == size
    assert pending_uploads(seaweedfs_server, s3) == []
    written = write_verified(s3, "virgo/again", PatternSource(size, block=source.block))
    assert written == expected


class Shifty(io.RawIOBase):
    """``size`` bytes of 'a' in reads of 64 KiB; each read changes the first byte of the one
    before, after Lacus hashed it: the bytes sent are not the bytes read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0
        self.previous: memoryview | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.previous is not None:
            self.previous[0:1] = b"b"
        view = memoryview(buffer).cast("B")[
            : min(len(buffer), 64 * 1024, self.size - self.position)
        ]
        view[:] = b"a" * len(view)
        self.position += len(view)
        self.previous = view if len(view) > 1 else None
        return len(view)


@pytest.mark.parametrize(("size", "message"), [(300_000, "other bytes"), (7 * MiB, "part 1")])
def test_put_verified_catches_bytes_changed_after_they_were_read(
    seaweedfs_server: SeaweedFS, s3: S3Backend, size: int, message: str
) -> None:
    with pytest.raises(ChecksumMismatch, match=message):
        s3.put_verified("virgo/changed", Shifty(size))  # type: ignore[arg-type]
    with pytest.raises(StorageFileNotFound):
        s3.stat("virgo/changed")
    assert pending_uploads(seaweedfs_server, s3) == []


def test_overwrite_is_refused_before_and_after_streaming(
    seaweedfs_server: SeaweedFS, s3: S3Backend
) -> None:
    s3.put("f", io.BytesIO(b"first"))
    with pytest.raises(FileAlreadyOnStorage):
        s3.put("f", PatternSource(2 * MIN_PART_SIZE, block=os.urandom(MiB)))
    client, bucket = seaweedfs_server.client(), seaweedfs_server.bucket
    prefix = key_prefix(seaweedfs_server, s3)
    for size in (10, MIN_PART_SIZE + 10):  # the name is taken while the bytes are on their way
        key = f"{prefix}/raced-{size}"
        source = PatternSource(size, block=os.urandom(MiB))
        source.on_read = lambda key=key, source=source: (
            source.position == 0 and client.put_object(Bucket=bucket, Key=key, Body=b"winner")
        )
        with pytest.raises(FileAlreadyOnStorage):
            s3.put(f"raced-{size}", source)
        assert read_all(s3, f"raced-{size}") == b"winner"
    assert pending_uploads(seaweedfs_server, s3) == []


def test_listing_past_one_page(seaweedfs_server: SeaweedFS) -> None:
    backend = seaweedfs_server.backend()
    names = [f"many/f{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: backend.put(name, io.BytesIO(b"x"), overwrite=True), names))
    backend.put("manyother", io.BytesIO(b"x"))
    assert list(backend.list("many")) == names
    assert len(list(backend.list())) == 1004


def test_list_treats_its_prefix_as_a_directory(s3: S3Backend) -> None:
    for path in ("virgo/a", "virgo2/b", "virgo-x", "virgo/sub/c"):
        s3.put(path, io.BytesIO(b"x"))
    assert list(s3.list("virgo")) == ["virgo/a", "virgo/sub/c"]
    assert list(s3.list("virgo-x")) == ["virgo-x"]
    assert list(s3.list("virg")) == []


def test_keys_no_path_can_name_are_not_listed(seaweedfs_server: SeaweedFS, s3: S3Backend) -> None:
    client, bucket = seaweedfs_server.client(), seaweedfs_server.bucket
    prefix = key_prefix(seaweedfs_server, s3)
    s3.put("good", io.BytesIO(b"x"))
    client.put_object(Bucket=bucket, Key=f"{prefix}/folder/", Body=b"")
    assert list(s3.list()) == ["good"]


def test_open_backend_by_scheme(seaweedfs_server: SeaweedFS) -> None:
    backend = open_backend(
        "s3",
        prefix=f"{seaweedfs_server.bucket}/opened",
        hostname="127.0.0.1",
        port=seaweedfs_server.port,
        access_key=seaweedfs_server.access_key,
        secret_key=seaweedfs_server.secret_key,
        secure=False,
    )
    assert isinstance(backend, S3Backend)
    assert backend.url == f"s3://127.0.0.1:{seaweedfs_server.port}/lacus/opened"
    backend.put("f", io.BytesIO(b"opened"), overwrite=True)
    assert read_all(backend, "f") == b"opened"


def test_credentials_from_the_environment(
    seaweedfs_server: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs_server.ro_access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs_server.ro_secret_key)
    backend = open_backend(
        "s3", prefix="lacus/env", hostname="127.0.0.1", port=seaweedfs_server.port, secure=False
    )
    assert list(backend.list()) == []
    with pytest.raises(StoragePermissionDenied):
        backend.put("f", io.BytesIO(b"x"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "blue"}, "colour"),
        ({"secure": "yes"}, "secure"),
        ({"timeout": "soon"}, "timeout"),
        ({"part_size": 1000}, "part_size"),
        ({"access_key": "only-one"}, "both"),
        ({"verify": "/no/such/ca.pem"}, "CA bundle"),
        ({"region": 3}, "region"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_backend("s3", prefix="bucket", hostname="127.0.0.1", port=1, **options)


@pytest.mark.parametrize("prefix", ["", "/", "Bad_Bucket!", "bucket/../x"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        open_backend("s3", prefix=prefix, hostname="127.0.0.1", port=1)


def test_wrong_credentials_and_missing_bucket(seaweedfs_server: SeaweedFS) -> None:
    stranger = open_backend(
        "s3",
        prefix="lacus/x",
        hostname="127.0.0.1",
        port=seaweedfs_server.port,
        access_key="nobody",
        secret_key="wrong",
        secure=False,
    )
    with pytest.raises(StoragePermissionDenied, match="lacus/x"):
        list(stranger.list())
    with pytest.raises(StoragePermissionDenied):
        stranger.put("f", io.BytesIO(b"x"))
    anonymous = open_backend(
        "s3", prefix="lacus", hostname="127.0.0.1", port=seaweedfs_server.port, secure=False
    )
    with pytest.raises(StoragePermissionDenied):
        list(anonymous.list())
    missing = open_as_admin(seaweedfs_server, "no-such-bucket", port=seaweedfs_server.port)
    with pytest.raises(StorageError, match="no-such-bucket"):
        missing.put("f", io.BytesIO(b"x"))
    with pytest.raises(StorageError, match="no-such-bucket"):
        list(missing.list())


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # verify=False
def test_https_with_the_servers_ca(seaweedfs_server: SeaweedFS) -> None:
    def over_https(**options: object) -> StorageBackend:
        return open_as_admin(
            seaweedfs_server, "lacus/tls", port=seaweedfs_server.https_port, **options
        )

    trusting = over_https(verify=str(seaweedfs_server.ca_file))
    assert trusting.url == f"s3://127.0.0.1:{seaweedfs_server.https_port}/lacus/tls"
    sums = trusting.put("f", io.BytesIO(b"secret"), overwrite=True)
    assert read_all(trusting, "f") == b"secret"
    assert trusting.checksum("f") == sums.adler32
    with pytest.raises(StorageError, match=r"certificate verify failed") as raised:
        over_https().stat("f")  # the test CA is not among the system's
    assert trusting.url in str(raised.value)
    assert read_all(over_https(verify=False), "f") == b"secret"


def test_default_parts_reach_the_largest_s3_object() -> None:
    sizes = [_part_size(DEFAULT_PART_SIZE, number) for number in range(1, 10_001)]
    assert sizes[0] == DEFAULT_PART_SIZE
    assert sum(sizes) >= 5 * 1024**4  # 5 TiB in at most 10,000 parts
    assert max(sizes) <= MAX_PART_SIZE


def test_nothing_listens() -> None:
    backend = open_backend("s3", prefix="lacus", hostname="127.0.0.1", port=1, secure=False)
    with pytest.raises(StorageError, match=r"s3://127\.0\.0\.1:1/lacus"):
        backend.stat("f")
