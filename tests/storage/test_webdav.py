"""The WebDAV backend against a real Apache httpd with mod_dav over HTTPS (tests.servers.apache).

The conformance suites run on it, then what only WebDAV shows: collections made on the way,
server-side checks of what was written, bearer tokens, TLS verification, plain HTTP.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    StorageUnavailable,
    UnsupportedOperation,
)
from lacus.storage import StorageBackend, ThirdPartyCopy, open_backend, write_verified
from lacus.storage.webdav import PlainWebDAVBackend, WebDAVBackend
from tests.conftest import require_component
from tests.servers.apache import ApacheServer
from tests.servers.xrootd import XRootDServer

from .conformance import (
    MiB,
    NetworkStorageConformance,
    PatternSource,
    expected_checksums,
    files_under,
    read_all,
)


def fresh_prefix() -> str:
    return f"rse-{secrets.token_hex(4)}"


class TestWebDAVApache(NetworkStorageConformance):
    @pytest.fixture
    def server(self, apache_server: ApacheServer) -> ApacheServer:
        return apache_server

    @pytest.fixture
    def rse_prefix(self) -> str:  # not ``prefix``: a conformance test's parameter
        return fresh_prefix()

    @pytest.fixture
    def backend(self, apache_server: ApacheServer, rse_prefix: str) -> Iterator[StorageBackend]:
        with apache_server.backend(rse_prefix) as backend:
            yield backend

    @pytest.fixture
    def storage_dir(self, apache_server: ApacheServer, rse_prefix: str) -> Path:
        return apache_server.root_dir / rse_prefix

    @pytest.fixture
    def denied_backend(self, apache_server: ApacheServer) -> Iterator[StorageBackend]:
        with apache_server.backend("readonly/rse") as backend:
            yield backend


@pytest.fixture
def apache(apache_server: ApacheServer) -> ApacheServer:
    return apache_server


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


def test_collections_are_made_on_the_way_down(apache: ApacheServer) -> None:
    deep = f"{fresh_prefix()}/site/disk1"  # the prefix itself does not exist yet
    with apache.backend(deep) as backend:
        sums = backend.put("virgo/ab/cd/file.h5", io.BytesIO(b"data"))
        backend.put("virgo/ab/ef/other.h5", io.BytesIO(b"more"))
        assert sums == expected_checksums(b"data")
        assert backend.url == f"{apache.base_url}/{deep}"
    assert files_under(apache.root_dir / deep) == ["virgo/ab/cd/file.h5", "virgo/ab/ef/other.h5"]
    assert (apache.root_dir / deep / "virgo/ab/cd/file.h5").read_bytes() == b"data"


def test_failed_put_leaves_no_file_on_the_server(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(prefix) as backend:
        backend.put("virgo/kept", io.BytesIO(b"kept"))
        source = PatternSource(
            20 * MiB, block=os.urandom(MiB), fail_at=5 * MiB, error=OSError(5, "I/O error")
        )
        with pytest.raises(LocalFileError, match="I/O error"):
            backend.put("virgo/ab/broken", source)
        with pytest.raises(FileAlreadyOnStorage):
            backend.put("virgo/kept", io.BytesIO(b"x" * 3 * MiB))
    assert files_under(apache.root_dir / prefix) == ["virgo/kept"]
    assert (apache.root_dir / prefix / "virgo/kept").read_bytes() == b"kept"


def test_a_collection_is_not_a_file(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(prefix) as backend:
        backend.put("dir/file", io.BytesIO(b"x"))
        for operation in (
            lambda: backend.stat("dir"),
            lambda: backend.delete("dir"),
            lambda: backend.checksum("dir"),
        ):
            with pytest.raises(StorageFileNotFound, match="directory"):
                operation()
        with pytest.raises(FileAlreadyOnStorage, match="directory"):
            backend.put("dir", io.BytesIO(b"would replace the collection"), overwrite=True)
        assert list(backend.list()) == ["dir/file"]


def test_missing_file_errors_name_the_url(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(prefix) as backend:
        with pytest.raises(StorageFileNotFound, match=f"{backend.url}/nothing/here does not"):
            backend.get("nothing/here")
        with pytest.raises(StorageFileNotFound):
            backend.delete("nothing")


def test_verified_put_reads_back_without_a_server_digest(apache: ApacheServer) -> None:
    """Apache offers no Digest: the backend reads the temporary file back before naming it."""
    prefix = f"corrupting/{fresh_prefix()}"
    with apache.backend(prefix) as backend:
        clean = b"bytes that the server returns as they are"
        assert backend.put_verified("clean", io.BytesIO(clean)) == expected_checksums(clean)
        with pytest.raises(ChecksumMismatch, match="adler32"):
            backend.put_verified("virgo/f", io.BytesIO(b"lacus lacus\n" * 100_000))
        with pytest.raises(ChecksumMismatch):
            write_verified(backend, "virgo/g", io.BytesIO(b"a lacus file"))
        assert sorted(backend.list()) == ["clean"]
    assert files_under(apache.root_dir / prefix) == ["clean"]


def test_bearer_token_is_sent(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(f"tokened/{prefix}", token=apache.token) as backend:
        backend.put("virgo/file", io.BytesIO(b"secret"))
        assert read_all(backend, "virgo/file") == b"secret"
        assert list(backend.list()) == ["virgo/file"]
    for token in (None, "wrong-token"):
        with apache.backend(f"tokened/{prefix}", token=token) as backend:
            with pytest.raises(StoragePermissionDenied, match="403"):
                backend.stat("virgo/file")
            with pytest.raises(StoragePermissionDenied):
                backend.put("virgo/other", io.BytesIO(b"x"))
    assert files_under(apache.root_dir / "tokened" / prefix) == ["virgo/file"]


def test_the_server_certificate_is_verified(apache: ApacheServer, prefix: str) -> None:
    with (
        apache.backend(prefix, verify=True) as backend,  # the system CAs do not know it
        pytest.raises(StorageUnavailable, match=r"(?i)certificate"),
    ):
        backend.put("f", io.BytesIO(b"x"))
    with apache.backend(prefix, verify=False) as backend:
        backend.put("f", io.BytesIO(b"x"))
        assert read_all(backend, "f") == b"x"


def test_open_backend_davs_and_dav(apache: ApacheServer, prefix: str) -> None:
    port = int(apache.base_url.rsplit(":", 1)[1])
    backend = open_backend(
        "davs", prefix=f"/{prefix}/", hostname="127.0.0.1", port=port, verify=apache.ca_path
    )
    assert isinstance(backend, WebDAVBackend)
    with backend:
        assert backend.url == f"davs://127.0.0.1:{port}/{prefix}"
        backend.put("virgo/f", io.BytesIO(b"over https"))
    plain_port = int(apache.http_url.rsplit(":", 1)[1])
    plain = open_backend("dav", prefix=prefix, hostname="127.0.0.1", port=plain_port)
    assert isinstance(plain, PlainWebDAVBackend)
    with plain:
        assert plain.url == f"dav://127.0.0.1:{plain_port}/{prefix}"
        assert read_all(plain, "virgo/f") == b"over https"
        assert plain.checksum("virgo/f") == expected_checksums(b"over https").adler32


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"colour": "blue"}, "colour"),
        ({"verify": 3}, "verify"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"tpc": "yes"}, "tpc"),
        ({"token": 42}, "token"),
        ({"verify": "/no/such/ca.pem"}, "CA bundle"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        open_backend("davs", prefix="/rse", hostname="127.0.0.1", port=443, **options)


def test_bad_urls_are_rejected() -> None:
    for url in ("ftp://host/rse", "https:///rse", "https://host/rse?x=1"):
        with pytest.raises(InvalidInput):
            WebDAVBackend(url)
    with pytest.raises(InvalidInput, match="hostname"):
        open_backend("davs", prefix="/rse")


def test_no_third_party_copy_unless_enabled(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(prefix) as backend:
        assert isinstance(backend, ThirdPartyCopy)
        source = f"{apache.base_url}/{prefix}/elsewhere"
        assert not backend.can_pull_from(source)
        with pytest.raises(UnsupportedOperation, match="tpc"):
            backend.pull("f", source, size=1)
        assert backend.url_of("virgo/a b+c") == f"{apache.base_url}/{prefix}/virgo/a%20b%2Bc"
    with apache.backend(prefix, tpc=True) as backend:
        assert backend.can_pull_from(source)
        assert backend.can_pull_from("davs://other.example.org:443/rse/f")
        assert not backend.can_pull_from("root://other.example.org//rse/f")


def test_names_that_need_quoting(apache: ApacheServer, prefix: str) -> None:
    names = ["with space", "plus+sign", "percent%41", "ünïcode", "semi;colon", "hash#mark"]
    with apache.backend(prefix) as backend:
        for name in names:
            backend.put(f"virgo/{name}", io.BytesIO(name.encode()))
        assert sorted(backend.list()) == sorted(f"virgo/{name}" for name in names)
        for name in names:
            assert read_all(backend, f"virgo/{name}") == name.encode()
            assert backend.stat(f"virgo/{name}").bytes == len(name.encode())
    assert files_under(apache.root_dir / prefix) == sorted(f"virgo/{name}" for name in names)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (the backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"dav://127.0.0.1:{listener.getsockname()[1]}/rse"
        with WebDAVBackend(url, timeout=0.5) as backend:
            with pytest.raises(StorageError, match=r"no answer within 0\.5 s") as raised:
                backend.stat("f")
            assert url in str(raised.value)


def test_overwrite_replaces_the_file(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(prefix) as backend:
        backend.put("f", io.BytesIO(b"first"))
        sums = backend.put("f", PatternSource(3 * MiB, block=os.urandom(MiB)), overwrite=True)
        assert backend.stat("f").bytes == 3 * MiB
        assert backend.checksum("f") == sums.adler32
        assert backend.checksum("f", "md5") == sums.md5
    assert files_under(apache.root_dir / prefix) == ["f"]


def test_put_without_md5_returns_none(apache: ApacheServer, prefix: str) -> None:
    with apache.backend(prefix) as backend:
        assert backend.put("f", io.BytesIO(b"abc"), md5=False) == Checksums(
            3, expected_checksums(b"abc").adler32, None
        )


def xrootd_backend(server: XRootDServer, prefix: str, **options: Any) -> WebDAVBackend:
    """The WebDAV backend on XRootD's HTTPS interface (XrdHttp)."""
    return WebDAVBackend(server.http_url(prefix), verify=str(server.ca_path), **options)


class TestWebDAVOnXRootD(NetworkStorageConformance):
    """XrdHttp answers Want-Digest itself and pulls files from other servers (HTTP-TPC)."""

    # XrdHttp 5.5 decodes the path of a MKCOL, GET or PROPFIND but not that of a PUT or of a
    # MOVE's Destination: a put of "é" (or "a+b") stores "%C3%A9", then found by no other request
    escaped_names_work = False

    @pytest.fixture
    def server(self, xrootd_server: XRootDServer) -> XRootDServer:
        return xrootd_server

    @pytest.fixture
    def rse_prefix(self) -> str:  # not ``prefix``: a conformance test's parameter
        return fresh_prefix()

    @pytest.fixture
    def backend(self, xrootd_server: XRootDServer, rse_prefix: str) -> Iterator[StorageBackend]:
        with xrootd_backend(xrootd_server, rse_prefix, tpc=True) as backend:
            yield backend

    @pytest.fixture
    def storage_dir(self, xrootd_server: XRootDServer, rse_prefix: str) -> Path:
        return xrootd_server.export_dir / rse_prefix

    @pytest.fixture
    def denied_backend(self, xrootd_server: XRootDServer) -> Iterator[StorageBackend]:
        with xrootd_backend(xrootd_server, xrootd_server.readonly_prefix) as backend:
            yield backend


def test_third_party_copy_from_apache_to_xrootd(
    apache: ApacheServer, xrootd_server: XRootDServer, prefix: str
) -> None:
    """XRootD pulls a file Apache holds (HTTP-TPC pull mode); the bytes never pass through here.

    Apache is read over plain HTTP: XRootD trusts its own test CA only, not Apache's.
    """
    data = PatternSource(20 * MiB + 3, block=os.urandom(MiB))
    with (
        apache.backend(prefix) as on_apache,
        apache.backend(prefix, plain=True) as apache_plain,
        xrootd_backend(xrootd_server, prefix, tpc=True) as on_xrootd,
    ):
        sums = on_apache.put("virgo/ab/file", data)
        source_url = apache_plain.url_of("virgo/ab/file")
        assert on_xrootd.can_pull_from(source_url)
        on_xrootd.pull("virgo/cd/file", source_url, size=sums.bytes)
        assert on_xrootd.stat("virgo/cd/file").bytes == sums.bytes
        assert on_xrootd.checksum("virgo/cd/file") == sums.adler32  # XRootD's own Digest
        assert on_xrootd.checksum("virgo/cd/file", "md5") == sums.md5
        assert list(on_xrootd.list()) == ["virgo/cd/file"]
        with pytest.raises(FileAlreadyOnStorage):
            on_xrootd.pull("virgo/cd/file", source_url, size=sums.bytes)
    assert files_under(xrootd_server.export_dir / prefix) == ["virgo/cd/file"]


def test_third_party_copy_over_https(xrootd_server: XRootDServer, prefix: str) -> None:
    with xrootd_backend(xrootd_server, prefix, tpc=True) as backend:
        sums = backend.put("one", io.BytesIO(b"copied by the server itself" * 1000))
        backend.pull("two", backend.url_of("one"), size=sums.bytes)
        assert backend.checksum("two") == sums.adler32
        assert sorted(backend.list()) == ["one", "two"]


def test_failed_third_party_copy_leaves_what_was_there(
    apache: ApacheServer, xrootd_server: XRootDServer, prefix: str
) -> None:
    with (
        apache.backend(prefix, plain=True) as on_apache,
        xrootd_backend(xrootd_server, prefix, tpc=True) as on_xrootd,
    ):
        on_apache.put("small", io.BytesIO(b"12345"))
        on_xrootd.put("kept", io.BytesIO(b"kept"))
        with pytest.raises(StorageError, match=r"failure: .*404"):
            on_xrootd.pull("kept", on_apache.url_of("missing"), size=5, overwrite=True)
        with pytest.raises(ChecksumMismatch, match="expected 6"):
            on_xrootd.pull("kept", on_apache.url_of("small"), size=6, overwrite=True)
        with pytest.raises(StorageError, match=r"(?i)certificate"):  # Apache's CA is not trusted
            on_xrootd.pull("new", f"{apache.base_url}/{prefix}/small", size=5)
        assert list(on_xrootd.list()) == ["kept"]
        assert read_all(on_xrootd, "kept") == b"kept"
    assert files_under(xrootd_server.export_dir / prefix) == ["kept"]


@pytest.fixture(params=["apache", "xrootd"])
def dropping_server(
    request: pytest.FixtureRequest, prefix: str
) -> Iterator[tuple[WebDAVBackend, ApacheServer | XRootDServer, Path]]:
    """A backend, its server and the directory on disk behind the backend's prefix."""
    if request.param == "apache":
        apache: ApacheServer = request.getfixturevalue("apache_server")
        with apache.backend(prefix) as backend:
            yield backend, apache, apache.root_dir / prefix
    else:
        xrootd: XRootDServer = request.getfixturevalue("xrootd_server")
        with xrootd_backend(xrootd, prefix) as backend:
            yield backend, xrootd, xrootd.export_dir / prefix


def test_what_a_dropped_put_left_is_deleted_once_the_server_is_back(
    dropping_server: tuple[WebDAVBackend, ApacheServer | XRootDServer, Path],
) -> None:
    """XRootD keeps the bytes of a PUT cut short; the backend deletes them at its next put."""
    backend, server, root = dropping_server

    def stop_after_a_few_mib() -> None:
        if source.position >= 3 * MiB and server.running:
            server.stop()

    source = PatternSource(64 * MiB, block=os.urandom(MiB), on_read=stop_after_a_few_mib)
    try:
        with pytest.raises(StorageError):
            backend.put("virgo/cut", source)
    finally:
        server.start()
    backend.put("virgo/next", io.BytesIO(b"next"))
    # A worker killed mid-write may leave Apache's own temporary file (.davfs.tmp*, which WebDAV
    # never shows): Apache's to clean, not ours. Nothing of Lacus's may stay.
    assert [name for name in files_under(root) if ".davfs.tmp" not in name] == ["virgo/next"]


@pytest.mark.parametrize("change", ["shrinks", "grows"])
def test_a_file_that_changes_size_while_sent_leaves_nothing(
    apache: ApacheServer, prefix: str, tmp_path: Path, change: str
) -> None:
    """A regular file goes with its size announced: if that size turns out wrong, the put fails."""
    local = tmp_path / "data"
    local.write_bytes(os.urandom(3 * MiB))

    class Changing(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            if self.tell() >= MiB and local.stat().st_size == 3 * MiB:
                if change == "shrinks":
                    os.truncate(local, 2 * MiB)
                else:
                    with open(local, "ab") as more:
                        more.write(b"more")
            return data

    with apache.backend(prefix) as backend, Changing(local) as source:
        with pytest.raises(LocalFileError, match="changed size"):
            backend.put("virgo/f", source)  # type: ignore[arg-type]
        assert list(backend.list()) == []
    assert files_under(apache.root_dir / prefix) == []


def test_verify_takes_a_directory_of_hashed_cas(
    apache: ApacheServer, prefix: str, tmp_path: Path
) -> None:
    """Like /etc/grid-security/certificates: CA files named by their subject hash."""
    openssl = shutil.which("openssl")
    if openssl is None:
        require_component("openssl", "the openssl program names CA files by their hash")
        return
    subject_hash = subprocess.run(
        [openssl, "x509", "-subject_hash", "-noout", "-in", apache.ca_path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / "certificates").mkdir()
    shutil.copy(apache.ca_path, tmp_path / "certificates" / f"{subject_hash}.0")
    with apache.backend(prefix, verify=str(tmp_path / "certificates")) as backend:
        backend.put("f", io.BytesIO(b"x"))
        assert read_all(backend, "f") == b"x"


# -- large verified puts in parts, read back behind the writing (Apache: Content-Range PUT) -------


@pytest.fixture
def one_mib_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 1 MiB, so that a few MiB make a put in parts (64 MiB each otherwise)."""
    from lacus.storage import webdav

    monkeypatch.setattr(webdav, "_PART", MiB)


def test_a_large_verified_put_goes_in_parts_read_back_behind(
    apache: ApacheServer, prefix: str, tmp_path: Path, one_mib_parts: None
) -> None:
    data = os.urandom(5 * MiB + 123)
    (tmp_path / "data").write_bytes(data)
    with apache.backend(prefix) as backend, open(tmp_path / "data", "rb") as source:
        assert backend.put_verified("virgo/f", source) == expected_checksums(data)
        assert backend._part_puts is True  # Apache writes Content-Range PUTs into the file
        assert read_all(backend, "virgo/f") == data
        with pytest.raises(FileAlreadyOnStorage):  # parts are written under a hidden name
            backend.put_verified("virgo/f", io.BytesIO(data))
        assert list(backend.list()) == ["virgo/f"]
    assert files_under(apache.root_dir / prefix) == ["virgo/f"]


def test_bytes_the_server_adds_to_a_put_in_parts_are_found(
    apache: ApacheServer, prefix: str, tmp_path: Path, one_mib_parts: None
) -> None:
    """Once four parts are stored, bytes appear past the end of the hidden file (as if the storage
    kept a stale tail): every part reads back right, but the size does not; nothing is left."""
    local = tmp_path / "data"
    local.write_bytes(os.urandom(5 * MiB))
    directory = apache.root_dir / prefix / "virgo"

    class Spoiling(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            if self.tell() == 4 * MiB:  # part 4 starts: parts 0-3 are stored
                (hidden,) = directory.iterdir()
                with open(hidden, "r+b") as stored:
                    stored.seek(6 * MiB)
                    stored.write(b"stale")
            return super().read(size)

    with apache.backend(prefix) as backend, Spoiling(local) as source:
        with pytest.raises(ChecksumMismatch, match=f"holds {6 * MiB + 5} bytes"):
            backend.put_verified("virgo/f", source)  # type: ignore[arg-type]
        assert backend._part_puts is True
    assert files_under(apache.root_dir / prefix) == []


def test_corrupted_bytes_are_found_where_ranges_are_not_served(
    apache: ApacheServer, tmp_path: Path, one_mib_parts: None
) -> None:
    """The ``corrupting/`` location answers GETs through a filter that rewrites the bytes (in the
    fourth part only) and ignores ranges: the parts are read back as a whole file, the
    corruption is found, and the backend writes no more parts there."""
    prefix = f"corrupting/{fresh_prefix()}"
    clean = b"0123456789abcdef\n" * (MiB // 17) + b"\n" * (MiB % 17)  # Substitute works by line
    data = clean * 3 + clean.replace(b"0123456789", b"lacus=data", 1) + clean * 2
    (tmp_path / "data").write_bytes(data)
    with apache.backend(prefix) as backend, open(tmp_path / "data", "rb") as source:
        with pytest.raises(ChecksumMismatch, match="adler32"):
            backend.put_verified("virgo/f", source)
        assert backend._part_puts is False
        assert list(backend.list()) == []
    assert files_under(apache.root_dir / prefix) == []


def test_a_put_in_parts_cut_by_the_server_leaves_no_file(
    apache: ApacheServer, prefix: str, tmp_path: Path, one_mib_parts: None
) -> None:
    """Apache stops in the middle of the third part: no file takes the name, and the temporary
    file is deleted at the next put, once the server is back."""
    local = tmp_path / "data"
    local.write_bytes(os.urandom(8 * MiB))

    class Stopping(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            if self.tell() >= 2 * MiB + MiB // 2 and apache.running:
                apache.stop()
            return super().read(size)

    with apache.backend(prefix) as backend:
        try:
            with Stopping(local) as source, pytest.raises(StorageError):
                backend.put_verified("virgo/cut", source)  # type: ignore[arg-type]
        finally:
            apache.start()
        backend.put("virgo/next", io.BytesIO(b"next"))
        with pytest.raises(StorageFileNotFound):
            backend.stat("virgo/cut")
    assert [name for name in files_under(apache.root_dir / prefix) if ".davfs.tmp" not in name] == [
        "virgo/next"
    ]
