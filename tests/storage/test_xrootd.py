"""The root:// backend against a real XRootD server (``tests/servers/xrootd.py``).

The network conformance suite, plus what only XRootD shows: the server's own checksums, writes
that are verified on the server before they take their name, POSC (a writer that dies leaves
nothing), third-party copies between two servers, and servers that never answer.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lacus.checksums import Checksums
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    InvalidInput,
    LocalFileError,
    ProtocolNotFound,
    StorageError,
    StorageFileNotFound,
    StorageFull,
)
from lacus.storage import StorageBackend, ThirdPartyCopy, VerifyingBackend, open_backend
from lacus.storage.verified import write_verified
from lacus.storage.xrootd import XRootDBackend  # its XRootD client is imported when it is used
from tests.conftest import require_component
from tests.servers.xrootd import XRootDServer

from .conformance import MiB, NetworkStorageConformance, PatternSource, expected_checksums, read_all


def make_backend(url: str, **options: float) -> XRootDBackend:
    try:
        return XRootDBackend(url, **options)
    except ProtocolNotFound as exc:
        require_component("the XRootD Python client", str(exc))
        raise


def fresh_prefix() -> str:
    return f"rse-{secrets.token_hex(4)}"


def files_under(root: Path) -> list[str]:
    """Every file below ``root``, hidden ones included."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if not path.is_dir())


def wait_until(condition: object, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.1)
    return False


class TestXRootD(NetworkStorageConformance):
    @pytest.fixture
    def server(self, xrootd_server: XRootDServer) -> XRootDServer:
        return xrootd_server

    @pytest.fixture
    def rse_prefix(self) -> str:  # not ``prefix``: a conformance test's parameter
        return fresh_prefix()

    @pytest.fixture
    def backend(self, xrootd_server: XRootDServer, rse_prefix: str) -> StorageBackend:
        return make_backend(xrootd_server.root_url(rse_prefix), timeout=10)

    @pytest.fixture
    def storage_dir(self, xrootd_server: XRootDServer, rse_prefix: str) -> Path:
        return xrootd_server.export_dir / rse_prefix

    @pytest.fixture
    def denied_backend(self, xrootd_server: XRootDServer) -> StorageBackend:
        return make_backend(xrootd_server.root_url(xrootd_server.readonly_prefix), timeout=10)


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


@pytest.fixture
def backend(xrootd_server: XRootDServer, prefix: str) -> StorageBackend:
    return make_backend(xrootd_server.root_url(prefix), timeout=10)


def test_files_land_under_the_prefix_with_nothing_else(
    xrootd_server: XRootDServer, backend: StorageBackend, prefix: str
) -> None:
    data = os.urandom(5 * MiB + 3)
    backend.put("virgo/ab/cd/file.h5", io.BytesIO(data))
    root = xrootd_server.export_dir / prefix
    assert files_under(root) == ["virgo/ab/cd/file.h5"]
    assert (root / "virgo/ab/cd/file.h5").read_bytes() == data
    assert backend.url == xrootd_server.root_url(prefix)
    assert isinstance(backend, ThirdPartyCopy)
    assert backend.url_of("virgo/ab/cd/file.h5") == xrootd_server.root_url(
        f"{prefix}/virgo/ab/cd/file.h5"
    )


def test_a_directory_is_not_a_file(backend: StorageBackend) -> None:
    backend.put("dir/file", io.BytesIO(b"x"))
    for operation in (
        lambda: backend.stat("dir"),
        lambda: backend.get("dir"),
        lambda: backend.checksum("dir"),
        lambda: backend.checksum("dir", "md5"),
        lambda: backend.delete("dir"),
    ):
        with pytest.raises(StorageFileNotFound):
            operation()
    assert list(backend.list()) == ["dir/file"]


def test_server_checksums_equal_ours(
    xrootd_server: XRootDServer, backend: StorageBackend, prefix: str
) -> None:
    data = os.urandom(3 * MiB + 11)
    sums = backend.put("f", io.BytesIO(data))
    assert sums == expected_checksums(data)
    server = f"{xrootd_server.host}:{xrootd_server.root_port}"
    answer = subprocess.run(
        ["xrdfs", server, "query", "checksum", f"/{prefix}/f"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert answer == ["adler32", sums.adler32]
    assert backend.checksum("f") == sums.adler32
    assert backend.checksum("f", "md5") == sums.md5


def test_md5_is_computed_when_the_server_has_none(
    second_xrootd_server: XRootDServer, prefix: str
) -> None:
    backend = make_backend(second_xrootd_server.root_url(prefix), timeout=10)
    data = os.urandom(MiB + 5)
    backend.put("f", io.BytesIO(data))
    assert backend.checksum("f", "md5") == hashlib.md5(data).hexdigest()
    assert backend.checksum("f") == f"{zlib.adler32(data):08x}"


def test_put_verified_round_trip(backend: StorageBackend) -> None:
    assert isinstance(backend, VerifyingBackend)
    data = os.urandom(2 * MiB)
    sums = write_verified(backend, "virgo/f", io.BytesIO(data))
    assert sums == expected_checksums(data)
    assert read_all(backend, "virgo/f") == data


def test_bytes_corrupted_on_the_server_are_caught_before_the_move(
    xrootd_server: XRootDServer, prefix: str
) -> None:
    backend = make_backend(xrootd_server.root_url(prefix), chunk_size=64 * 1024)
    assert isinstance(backend, VerifyingBackend)
    directory = xrootd_server.export_dir / prefix / "virgo"
    corrupted: list[Path] = []

    def corrupt_the_stored_bytes_once_a_mib_is_written() -> None:
        written = list(directory.iterdir()) if directory.exists() else []
        if not corrupted and written and written[0].stat().st_size > MiB:
            with written[0].open("r+b") as stored:  # the hidden file being written
                byte = stored.read(1)
                stored.seek(0)
                stored.write(bytes([byte[0] ^ 0xFF]))
            corrupted.append(written[0])

    source = PatternSource(
        3 * MiB, block=os.urandom(MiB), on_read=corrupt_the_stored_bytes_once_a_mib_is_written
    )
    with pytest.raises(ChecksumMismatch, match="adler32"):
        backend.put_verified("virgo/f", source)
    assert corrupted
    assert files_under(xrootd_server.export_dir / prefix) == []
    with pytest.raises(StorageFileNotFound):
        backend.stat("virgo/f")


def test_failed_put_leaves_no_hidden_file(
    xrootd_server: XRootDServer, backend: StorageBackend, prefix: str
) -> None:
    backend.put("virgo/kept", io.BytesIO(b"kept"))
    source = PatternSource(
        20 * MiB, block=os.urandom(MiB), fail_at=9 * MiB, error=OSError(5, "I/O error")
    )
    with pytest.raises(LocalFileError, match="I/O error"):
        backend.put("virgo/broken", source)
    assert files_under(xrootd_server.export_dir / prefix) == ["virgo/kept"]


def test_a_writer_that_dies_leaves_nothing(xrootd_server: XRootDServer, prefix: str) -> None:
    """POSC: the server removes the hidden file of a writer killed mid-put."""
    url = xrootd_server.root_url(prefix)
    writer = (
        "import itertools, sys\n"
        "from lacus.storage.xrootd import XRootDBackend\n"
        "class Endless:\n"
        "    def read(self, size):\n"
        "        return b'x' * min(size, 65536)\n"
        f"XRootDBackend({url!r}).put('virgo/file', Endless())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", writer], stderr=subprocess.DEVNULL)
    root = xrootd_server.export_dir / prefix
    try:
        assert wait_until(lambda: _grown(root)), "the writer wrote nothing"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert wait_until(lambda: files_under(root) == []), files_under(root)


def _grown(root: Path) -> bool:
    """Whether a file of more than 1 MiB is being written below ``root``."""
    try:
        return any(path.stat().st_size > MiB for path in root.rglob("*") if path.is_file())
    except FileNotFoundError:
        return False


def test_full_storage_raises_storage_full_and_leaves_nothing(
    xrootd_server: XRootDServer, prefix: str
) -> None:
    mountpoint = xrootd_server.export_dir / prefix
    mountpoint.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(mountpoint)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        require_component("a tmpfs mount", f"{' '.join(command)}: {result.stderr.strip()}")
    try:
        backend = make_backend(xrootd_server.root_url(prefix), timeout=10)
        with pytest.raises(StorageFull, match="is full") as raised:
            backend.put("virgo/big", PatternSource(3 * MiB, block=os.urandom(MiB)))
        assert backend.url in str(raised.value)
        assert files_under(mountpoint) == []
        assert backend.put("virgo/small", io.BytesIO(b"fits")).bytes == 4
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


# -- third-party copy ----------------------------------------------------------------------


@dataclass
class TwoServers:
    source: XRootDBackend
    destination: XRootDBackend
    destination_dir: Path  # the destination's files, on disk


@pytest.fixture
def two_servers(xrootd_server: XRootDServer, second_xrootd_server: XRootDServer) -> TwoServers:
    prefix = fresh_prefix()
    return TwoServers(
        source=make_backend(xrootd_server.root_url(fresh_prefix()), timeout=10),
        destination=make_backend(second_xrootd_server.root_url(prefix), timeout=10),
        destination_dir=second_xrootd_server.export_dir / prefix,
    )


def test_third_party_copy_between_two_servers(two_servers: TwoServers) -> None:
    source, destination = two_servers.source, two_servers.destination
    data = os.urandom(6 * MiB + 1)
    sums = source.put("virgo/ab/file", io.BytesIO(data))
    source_url = source.url_of("virgo/ab/file")
    assert destination.can_pull_from(source_url)

    destination.pull("copies/file", source_url, size=len(data))

    assert destination.stat("copies/file").bytes == len(data)
    assert destination.checksum("copies/file") == sums.adler32
    assert read_all(destination, "copies/file") == data
    with pytest.raises(FileAlreadyOnStorage):
        destination.pull("copies/file", source_url, size=len(data))
    destination.pull("copies/file", source_url, size=len(data), overwrite=True)
    assert destination.checksum("copies/file") == sums.adler32
    assert files_under(two_servers.destination_dir) == ["copies/file"]


def test_third_party_copy_failures_leave_nothing(two_servers: TwoServers) -> None:
    source, destination = two_servers.source, two_servers.destination
    source.put("f", io.BytesIO(b"twelve bytes"))
    with pytest.raises(StorageFileNotFound):
        destination.pull("missing", source.url_of("no/such/file"), size=1)
    with pytest.raises(ChecksumMismatch, match="12 bytes"):
        destination.pull("short", source.url_of("f"), size=13)
    with pytest.raises(InvalidInput):
        destination.pull("f", "https://example.org/f", size=12)
    assert list(destination.list()) == []
    assert (
        not two_servers.destination_dir.exists() or files_under(two_servers.destination_dir) == []
    )


def test_can_pull_only_from_xrootd_servers_that_answer(
    two_servers: TwoServers, xrootd_server: XRootDServer
) -> None:
    destination = two_servers.destination
    assert not destination.can_pull_from(xrootd_server.http_url("f"))
    assert not destination.can_pull_from("s3://bucket/f")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert not destination.can_pull_from(f"root://127.0.0.1:{port}//f")


# -- servers that do not answer ----------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_server_that_never_answers_fails_within_the_timeout(silent_server: int) -> None:
    backend = make_backend(f"root://127.0.0.1:{silent_server}//data", timeout=2)
    for operation in (
        lambda: backend.stat("f"),
        lambda: backend.put("f", io.BytesIO(b"x")),
        lambda: backend.get("f"),
        lambda: list(backend.list()),
    ):
        with pytest.raises(StorageError) as raised:
            operation()
        assert backend.url in str(raised.value)
        assert "\n" not in str(raised.value)


def test_a_stopped_server_fails_fast_and_works_again_once_restarted(
    xrootd_server: XRootDServer, backend: StorageBackend
) -> None:
    backend.put("f", io.BytesIO(b"data"))
    xrootd_server.kill()
    try:
        with pytest.raises(StorageError, match="failed reading"):
            backend.stat("f")
    finally:
        xrootd_server.start()
    assert backend.stat("f").bytes == 4


# -- building a backend ------------------------------------------------------------------


def test_open_backend_by_scheme(xrootd_server: XRootDServer, prefix: str) -> None:
    make_backend(xrootd_server.root_url(prefix))  # skips when the client is missing
    backend = open_backend(
        "root",
        prefix=f"/{prefix}",
        hostname=xrootd_server.host,
        port=xrootd_server.root_port,
        timeout=5,
        tpc_timeout=60,
    )
    assert backend.url == xrootd_server.root_url(prefix)
    sums = backend.put("f", io.BytesIO(b"hello"), md5=False)
    assert sums == Checksums(5, f"{zlib.adler32(b'hello'):08x}", None)
    default_port = open_backend("root", prefix="/data", hostname="eos.example.org")
    assert default_port.url == "root://eos.example.org:1094//data"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "blue"}, "colour"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"chunk_size": 10}, "chunk_size"),
    ],
)
def test_bad_options_are_refused(
    xrootd_server: XRootDServer, options: dict[str, object], message: str
) -> None:
    make_backend(xrootd_server.root_url("x"))
    with pytest.raises(InvalidInput, match=message):
        open_backend("root", prefix="/data", hostname="h", port=1094, **options)


def test_a_url_that_is_not_xrootd_is_refused(xrootd_server: XRootDServer) -> None:
    with pytest.raises(InvalidInput, match="not an XRootD URL"):
        make_backend(xrootd_server.http_url("data"))
    with pytest.raises(InvalidInput, match="hostname"):
        open_backend("root", prefix="/data", hostname="", port=1094)


def test_without_the_xrootd_client_the_error_says_what_to_install() -> None:
    script = (
        "import sys\n"
        "sys.modules['XRootD'] = None  # as if the package were not installed\n"
        "import lacus.storage\n"
        "from lacus.errors import ProtocolNotFound\n"
        "try:\n"
        "    lacus.storage.open_backend('root', prefix='/data', hostname='eos.example.org')\n"
        "except ProtocolNotFound as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "pip install 'lacus[xrootd]'" in result.stdout
