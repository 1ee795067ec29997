"""The tests every storage backend passes: subclass ``StorageConformance`` and provide ``backend``.

class TestPosix(StorageConformance):
    @pytest.fixture
    def backend(self, tmp_path): return PosixBackend(tmp_path)

A backend talking to a storage server subclasses ``NetworkStorageConformance`` and also provides
``server`` (the running server, with ``stop()`` and ``start()``) and ``denied_backend``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacus.checksums import Checksums
from lacus.errors import (
    FileAlreadyOnStorage,
    InvalidInput,
    InvalidName,
    LocalFileError,
    StorageError,
    StorageFileNotFound,
    StoragePermissionDenied,
)
from lacus.storage import FileStat, ReadsRanges, ScansStorage, StorageBackend

MiB = 1024 * 1024
BAD_PATHS = ["/etc/passwd", "../outside", "a/../../outside", "a/..", "a/b\x00c", "", "a//b", "./a"]
# names whose paths sort differently by directory than by string: "a-b" < "a.txt" < "a/b-c" <
# "a/b/c" < "ab"; "é" (U+00E9) after "z"; U+FF46 before U+1F600 (UTF-16 would swap them)
TRICKY_PATHS = [
    "a-b",
    "a/x",
    "ab",
    "a/b/c",
    "a/b-c",
    "a/b.d",
    "a.txt",
    "a b/c",
    "Z",
    "z",
    "é",
    "e/é/f",
    "\uff46",  # fullwidth f
    "😀/x",
]


def expected_checksums(data: bytes) -> Checksums:
    """Checksums computed in one shot by zlib and hashlib, independently of Lacus."""
    return Checksums(
        bytes=len(data),
        adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
        md5=hashlib.md5(data).hexdigest(),
    )


class PatternSource(io.RawIOBase):
    """``size`` bytes made from one random block, never held in memory at once.

    ``max_read`` makes reads short, like a pipe or socket; ``fail_at`` raises ``error`` once that
    many bytes have been read; ``on_read`` is called before every read.
    """

    def __init__(
        self,
        size: int,
        *,
        block: bytes,
        max_read: int | None = None,
        fail_at: int | None = None,
        error: BaseException | None = None,
        on_read: object = None,
    ) -> None:
        self.size = size
        self.block = block
        self.position = 0
        self.max_read = max_read
        self.fail_at = fail_at
        self.error = error
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if callable(self.on_read):
            self.on_read()
        if self.fail_at is not None and self.position >= self.fail_at:
            assert self.error is not None
            raise self.error
        view = memoryview(buffer).cast("B")
        count = min(len(view), self.size - self.position, self.max_read or len(view))
        offset = self.position % len(self.block)
        count = min(count, len(self.block) - offset)
        view[:count] = self.block[offset : offset + count]
        self.position += count
        return count

    def expected(self) -> Checksums:
        """The checksums of all the bytes this source yields, computed here chunk by chunk."""
        adler, digest, position = 1, hashlib.md5(), 0
        while position < self.size:
            offset = position % len(self.block)
            piece = self.block[offset : offset + self.size - position]
            adler = zlib.adler32(piece, adler)
            digest.update(piece)
            position += len(piece)
        return Checksums(self.size, f"{adler & 0xFFFFFFFF:08x}", digest.hexdigest())


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (a server's directory on this machine), hidden ones included."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if not path.is_dir())


def read_all(backend: StorageBackend, path: str) -> bytes:
    return b"".join(backend.get(path))


class StorageConformance:
    """What a user of any storage backend may rely on."""

    # False where the server loses names that a URL must escape (a space, non-ASCII)
    escaped_names_work = True

    @pytest.fixture
    def backend(self) -> StorageBackend:
        raise NotImplementedError("a StorageConformance subclass must provide a backend fixture")

    @pytest.fixture
    def storage_dir(self) -> Path | None:
        """The directory behind ``backend`` on this machine, where a test leaves what a killed
        writer would (its temporary file); None for a storage where writes leave no files."""
        raise NotImplementedError("a StorageConformance subclass must provide storage_dir")

    def test_is_a_storage_backend_with_a_url(self, backend: StorageBackend) -> None:
        assert isinstance(backend, StorageBackend)
        assert "://" in backend.url

    def test_round_trip(self, backend: StorageBackend) -> None:
        data = os.urandom(3 * MiB + 17)
        sums = backend.put("virgo/ab/cd/chunk_001.h5", io.BytesIO(data))
        assert sums == expected_checksums(data)
        assert read_all(backend, "virgo/ab/cd/chunk_001.h5") == data
        info = backend.stat("virgo/ab/cd/chunk_001.h5")
        assert (info.path, info.bytes) == ("virgo/ab/cd/chunk_001.h5", len(data))
        assert info.mtime > 0
        assert backend.checksum("virgo/ab/cd/chunk_001.h5") == sums.adler32
        assert backend.checksum("virgo/ab/cd/chunk_001.h5", "md5") == sums.md5
        assert list(backend.list()) == ["virgo/ab/cd/chunk_001.h5"]
        backend.delete("virgo/ab/cd/chunk_001.h5")
        assert list(backend.list()) == []
        with pytest.raises(StorageFileNotFound):
            backend.stat("virgo/ab/cd/chunk_001.h5")

    def test_put_without_md5(self, backend: StorageBackend) -> None:
        sums = backend.put("f", io.BytesIO(b"hello"), md5=False)
        assert sums == Checksums(5, f"{zlib.adler32(b'hello'):08x}", None)

    def test_source_with_read_only(self, backend: StorageBackend) -> None:
        class Trickle:  # no readinto, reads of at most 1000 bytes
            def __init__(self, data: bytes) -> None:
                self.stream = io.BytesIO(data)

            def read(self, size: int = -1) -> bytes:
                return self.stream.read(min(size, 1000))

        data = os.urandom(300_000)
        sums = backend.put("f", Trickle(data))  # type: ignore[arg-type]
        assert sums == expected_checksums(data)
        assert read_all(backend, "f") == data

    def test_empty_file(self, backend: StorageBackend) -> None:
        sums = backend.put("empty", io.BytesIO(b""))
        assert sums == Checksums(0, "00000001", hashlib.md5(b"").hexdigest())
        assert read_all(backend, "empty") == b""
        assert backend.stat("empty").bytes == 0
        assert backend.checksum("empty") == "00000001"
        assert list(backend.list()) == ["empty"]

    def test_nested_paths_and_listing_under_a_prefix(self, backend: StorageBackend) -> None:
        paths = ["top", "virgo/ab/cd/one", "virgo/ab/cd/two", "virgo/ab/ef/three", "lofar/x"]
        for path in paths:
            backend.put(path, io.BytesIO(path.encode()))
        assert sorted(backend.list()) == sorted(paths)
        assert sorted(backend.list("virgo/ab")) == paths[1:4]
        assert sorted(backend.list("virgo/ab/")) == paths[1:4]
        assert list(backend.list("virgo/ab/ef/three")) == ["virgo/ab/ef/three"]
        assert list(backend.list("nothing/here")) == []
        for path in paths:
            assert read_all(backend, path) == path.encode()

    def test_scan_gives_sizes_and_mtimes(self, backend: StorageBackend) -> None:
        assert isinstance(backend, ScansStorage)
        files = {"top": b"x" * 1000, "virgo/ab/cd/one": b"1", "virgo/ab/cd/two": b"22"}
        files["virgo/ab/ef/empty"] = b""
        for path, data in files.items():
            backend.put(path, io.BytesIO(data))
        scanned = list(backend.scan())
        assert all(isinstance(found, FileStat) for found in scanned)
        assert [(found.path, found.bytes) for found in scanned] == sorted(
            (path, len(data)) for path, data in files.items()
        )
        now = time.time()
        for found in scanned:
            assert now - 60 < found.mtime < now + 60, found
            assert backend.stat(found.path) == found

    def test_scan_order_is_that_of_the_path_strings(self, backend: StorageBackend) -> None:
        assert isinstance(backend, ScansStorage)
        paths = sorted(p for p in TRICKY_PATHS if self.escaped_names_work or p == quote(p))
        for path in paths:
            backend.put(path, io.BytesIO(path.encode()))
        scanned = list(backend.scan())
        assert [found.path for found in scanned] == paths
        assert [found.bytes for found in scanned] == [len(path.encode()) for path in paths]
        assert sorted(backend.list()) == paths
        assert [found.path for found in backend.scan("a")] == [p for p in paths if p[:2] == "a/"]

    def test_scan_under_a_prefix(self, backend: StorageBackend) -> None:
        assert isinstance(backend, ScansStorage)
        paths = ["top", "virgo/ab/cd/one", "virgo/ab/cd/two", "virgo/ab/ef/three", "virgo/abc/x"]
        for path in paths:
            backend.put(path, io.BytesIO(path.encode()))
        assert [found.path for found in backend.scan("virgo/ab")] == paths[1:4]
        assert [found.path for found in backend.scan("virgo/ab/")] == paths[1:4]
        assert [found.path for found in backend.scan("virgo/ab/cd/one")] == paths[1:2]
        assert list(backend.scan("nothing/here")) == []
        assert list(backend.scan("virgo/a")) == []  # a directory, not the start of a name
        assert list(backend.scan("top/below")) == []

    def test_scan_shows_the_temporary_files_of_killed_writers(
        self, backend: StorageBackend, storage_dir: Path | None
    ) -> None:
        """What ``list`` hides, ``scan`` shows: the auditor must see it as dark data."""
        assert isinstance(backend, ScansStorage)
        final = ["virgo/ab/f", "virgo/ab/g", "virgo/b"]
        for path in final:
            backend.put(path, io.BytesIO(b"final"))
        left = {"virgo/ab/.f.lacus-part-0123456789ab": b"left by a killed writer"}
        left["virgo/.b.lacus-part-42"] = b"and another"
        if storage_dir is None:  # S3: an unfinished multipart upload is no object, never listed
            left = {}
        for path, data in left.items():
            assert storage_dir is not None
            (storage_dir / path).write_bytes(data)
        scanned = [(found.path, found.bytes) for found in backend.scan()]
        everything = {path: 5 for path in final} | {path: len(data) for path, data in left.items()}
        assert scanned == sorted(everything.items())
        assert sorted(backend.list()) == final

    @pytest.mark.parametrize(
        "prefix", ["/etc", "..", "a/../..", "a/b\x00c", "a//b", "./a", ".f.lacus-part-01"]
    )
    def test_unsafe_scan_prefixes_are_rejected(self, backend: StorageBackend, prefix: str) -> None:
        assert isinstance(backend, ScansStorage)
        with pytest.raises(InvalidName):
            backend.scan(prefix)

    def test_put_refuses_to_overwrite_unless_asked(self, backend: StorageBackend) -> None:
        backend.put("f", io.BytesIO(b"first"))
        with pytest.raises(FileAlreadyOnStorage):
            backend.put("f", io.BytesIO(b"second"))
        assert read_all(backend, "f") == b"first"
        sums = backend.put("f", io.BytesIO(b"third"), overwrite=True)
        assert read_all(backend, "f") == b"third"
        assert sums == expected_checksums(b"third")
        assert list(backend.list()) == ["f"]

    def test_missing_files(self, backend: StorageBackend) -> None:
        backend.put("there/file", io.BytesIO(b"x"))
        for path in ["missing", "there/missing", "there/file/below"]:
            with pytest.raises(StorageFileNotFound):
                backend.stat(path)
            with pytest.raises(StorageFileNotFound):
                backend.get(path)
            with pytest.raises(StorageFileNotFound):
                backend.checksum(path)
            with pytest.raises(StorageFileNotFound):
                backend.delete(path)

    def test_parts_of_a_file(self, backend: StorageBackend) -> None:
        """What an fsspec file's random access reads: any range, nothing verified, the end of
        the file short, past it nothing."""
        assert isinstance(backend, ReadsRanges)
        data = os.urandom(5 * MiB + 123)
        backend.put("virgo/ab/cd/f.h5", io.BytesIO(data))
        for start, length in [(0, 10), (1, MiB), (4 * MiB, 2 * MiB), (len(data) - 1, 1)]:
            assert (
                backend.get_range("virgo/ab/cd/f.h5", start, length) == data[start : start + length]
            )
        assert backend.get_range("virgo/ab/cd/f.h5", 0, len(data)) == data
        assert backend.get_range("virgo/ab/cd/f.h5", len(data) - 5, 100) == data[-5:]
        assert backend.get_range("virgo/ab/cd/f.h5", len(data), 10) == b""
        assert backend.get_range("virgo/ab/cd/f.h5", 7, 0) == b""
        with pytest.raises(StorageFileNotFound):
            backend.get_range("virgo/ab/cd/missing.h5", 0, 10)
        with pytest.raises(InvalidName):
            backend.get_range("../outside", 0, 10)

    @pytest.mark.parametrize("path", BAD_PATHS)
    def test_unsafe_paths_are_rejected(self, backend: StorageBackend, path: str) -> None:
        with pytest.raises(InvalidName):
            backend.put(path, io.BytesIO(b"x"))
        with pytest.raises(InvalidName):
            backend.stat(path)
        with pytest.raises(InvalidName):
            backend.get(path)
        with pytest.raises(InvalidName):
            backend.delete(path)
        with pytest.raises(InvalidName):
            backend.checksum(path)
        assert list(backend.list()) == []

    @pytest.mark.parametrize("prefix", ["/etc", "..", "a/../.."])
    def test_unsafe_list_prefixes_are_rejected(self, backend: StorageBackend, prefix: str) -> None:
        with pytest.raises(InvalidName):
            backend.list(prefix)

    def test_unknown_checksum_algorithm(self, backend: StorageBackend) -> None:
        backend.put("f", io.BytesIO(b"x"))
        with pytest.raises(InvalidInput, match="sha1"):
            backend.checksum("f", "sha1")

    def test_get_in_small_chunks(self, backend: StorageBackend) -> None:
        data = os.urandom(10_000)
        backend.put("f", io.BytesIO(data))
        chunks = list(backend.get("f", chunk_size=999))
        assert b"".join(chunks) == data
        assert max(len(chunk) for chunk in chunks) <= 999

    def test_large_file_streams_with_bounded_memory(self, backend: StorageBackend) -> None:
        size = 64 * MiB
        source = PatternSource(size, block=os.urandom(MiB + 7))
        expected = source.expected()
        tracemalloc.start()
        try:
            sums = backend.put("big/file", source)
            adler, read = 1, 0
            for chunk in backend.get("big/file"):
                adler = zlib.adler32(chunk, adler)
                read += len(chunk)
            stored_adler32 = backend.checksum("big/file")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert sums == expected
        assert (read, f"{adler:08x}") == (size, expected.adler32)
        assert stored_adler32 == expected.adler32
        assert backend.stat("big/file").bytes == size
        assert peak < size / 4, f"peak Python allocation {peak / MiB:.1f} MiB for a 64 MiB file"

    @pytest.mark.parametrize(
        ("error", "raised"),
        [
            (OSError(5, "Input/output error"), LocalFileError),
            (KeyboardInterrupt(), KeyboardInterrupt),
        ],
    )
    def test_failing_source_leaves_nothing(
        self, backend: StorageBackend, error: BaseException, raised: type[BaseException]
    ) -> None:
        source = PatternSource(20 * MiB, block=os.urandom(MiB), fail_at=9 * MiB, error=error)
        with pytest.raises(raised):
            backend.put("virgo/ab/cd/broken", source)
        assert list(backend.list()) == []
        with pytest.raises(StorageFileNotFound):
            backend.stat("virgo/ab/cd/broken")

    def test_file_invisible_until_complete(self, backend: StorageBackend) -> None:
        seen: list[list[str]] = []
        source = PatternSource(
            9 * MiB, block=os.urandom(MiB), on_read=lambda: seen.append(list(backend.list()))
        )
        backend.put("virgo/file", source)
        assert len(seen) > 2
        assert all(listing == [] for listing in seen)
        assert list(backend.list()) == ["virgo/file"]

    @settings(
        max_examples=40,
        deadline=None,
        # one test, run by every backend's subclass: each a different executor, on purpose
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        data=st.binary(max_size=200_000),
        max_read=st.one_of(st.none(), st.integers(1, 70_000)),
        md5=st.booleans(),
    )
    def test_any_bytes_any_read_sizes_round_trip(
        self, backend: StorageBackend, data: bytes, max_read: int | None, md5: bool
    ) -> None:
        block = data or b"\0"
        source = PatternSource(len(data), block=block, max_read=max_read)
        sums = backend.put("prop/file", source, md5=md5)
        try:
            one_shot = expected_checksums(data)
            assert sums == Checksums(
                one_shot.bytes, one_shot.adler32, one_shot.md5 if md5 else None
            )
            assert read_all(backend, "prop/file") == data
            assert backend.checksum("prop/file") == one_shot.adler32
        finally:
            backend.delete("prop/file")


class StoppableServer(Protocol):
    """A storage server a test may stop and start again (on the same address)."""

    def stop(self) -> None: ...

    def start(self) -> None: ...


class NetworkStorageConformance(StorageConformance):
    """What a user of a backend on a storage server may rely on when the server says no or dies.

    Fixtures to provide, besides ``backend`` (a fresh, empty location on the server):
    ``server``, the running server: ``stop()`` returns once it no longer answers, ``start()`` once
    it answers again on the same address; ``denied_backend``, a location on the same server that
    may be read (listed) but where every write is refused.
    """

    @pytest.fixture
    def server(self) -> StoppableServer:
        raise NotImplementedError("a NetworkStorageConformance subclass must provide server")

    @pytest.fixture
    def denied_backend(self) -> StorageBackend:
        raise NotImplementedError(
            "a NetworkStorageConformance subclass must provide denied_backend"
        )

    @pytest.mark.parametrize("size", [5, 5 * MiB])
    def test_refused_write_raises_permission_denied(
        self, denied_backend: StorageBackend, size: int
    ) -> None:
        before = sorted(denied_backend.list())
        for path in ("refused", "virgo/ab/cd/refused"):
            source = PatternSource(size, block=os.urandom(min(size, MiB)))
            with pytest.raises(StoragePermissionDenied) as raised:
                denied_backend.put(path, source)
            assert "\n" not in str(raised.value)
            with pytest.raises(StorageFileNotFound):
                denied_backend.stat(path)
        assert sorted(denied_backend.list()) == before

    def test_server_stopped_during_put(
        self, backend: StorageBackend, server: StoppableServer
    ) -> None:
        backend.put("virgo/kept", io.BytesIO(b"kept"))
        stopped = []

        def stop_after_a_few_mib() -> None:
            if not stopped and source.position >= 3 * MiB:
                stopped.append(True)
                server.stop()

        source = PatternSource(64 * MiB, block=os.urandom(MiB), on_read=stop_after_a_few_mib)
        try:
            with pytest.raises(StorageError) as raised:
                backend.put("virgo/ab/cd/interrupted", source)
            assert stopped, "the put finished before the server could be stopped"
            assert "\n" not in str(raised.value)
        finally:
            server.start()
        with pytest.raises(StorageFileNotFound):
            backend.stat("virgo/ab/cd/interrupted")
        assert list(backend.list()) == ["virgo/kept"]
        backend.put("virgo/ab/cd/interrupted", io.BytesIO(b"again"))  # the backend recovers
        assert read_all(backend, "virgo/ab/cd/interrupted") == b"again"

    def test_server_stopped_during_get(
        self, backend: StorageBackend, server: StoppableServer
    ) -> None:
        source = PatternSource(64 * MiB, block=os.urandom(MiB))
        backend.put("big", source)
        chunks = backend.get("big", chunk_size=MiB)
        received = len(next(chunks))
        server.stop()
        try:
            with pytest.raises(StorageError) as raised:  # noqa: PT012 - the error comes mid-loop
                for chunk in chunks:
                    received += len(chunk)
            assert "\n" not in str(raised.value)
        finally:
            server.start()
        assert 0 < received < source.size
        assert backend.stat("big").bytes == source.size

    def test_server_down_before_an_operation(
        self, backend: StorageBackend, server: StoppableServer
    ) -> None:
        assert isinstance(backend, ScansStorage)
        backend.put("virgo/file", io.BytesIO(b"data"))
        server.stop()
        try:
            for operation in (
                lambda: backend.stat("virgo/file"),
                lambda: backend.put("virgo/new", io.BytesIO(b"new")),
                lambda: read_all(backend, "virgo/file"),
                lambda: backend.checksum("virgo/file"),
                lambda: list(backend.list()),
                lambda: list(backend.scan()),
                lambda: backend.delete("virgo/file"),
            ):
                with pytest.raises(StorageError) as raised:
                    operation()
                message = str(raised.value)
                assert backend.url in message
                assert "\n" not in message
        finally:
            server.start()
        assert list(backend.list()) == ["virgo/file"]
        assert read_all(backend, "virgo/file") == b"data"
