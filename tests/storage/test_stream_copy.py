"""Copies that stream through the worker (``copy_verified`` between storages that cannot copy
between themselves): the source is read ahead by a helper thread, errors reach the caller in
order, and nothing is left behind or left running when either side fails."""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from lacus.checksums import Checksums
from lacus.errors import SourceFileMissing, StorageError, StorageFileNotFound, StorageFull
from lacus.storage import FileStat, PosixBackend, copy_verified

from .conformance import MiB
from .test_posix_copy import tmpfs  # noqa: F401 - the fixture

CHUNK = 256 * 1024


class RemoteSource:
    """A real POSIX storage seen as a remote one (no local copy, no third-party copy), whose
    reads can break after ``fail_after`` chunks with ``error``; remembers whether its reads were
    closed."""

    def __init__(
        self, root: Path, *, fail_after: int | None = None, error: Exception | None = None
    ) -> None:
        self.posix = PosixBackend(root)
        self.url = "remote+" + self.posix.url
        self.fail_after = fail_after
        self.error = error
        self.closed = threading.Event()

    def get(self, path: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        chunks = self.posix.get(path, chunk_size=CHUNK)
        return self._chunks(chunks)

    def _chunks(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        try:
            for index, chunk in enumerate(chunks):
                if self.fail_after is not None and index == self.fail_after:
                    assert self.error is not None
                    raise self.error
                yield chunk
        finally:
            self.closed.set()

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        return self.posix.put(path, source, md5=md5, overwrite=overwrite)

    def stat(self, path: str) -> FileStat:
        return self.posix.stat(path)

    def delete(self, path: str) -> None:
        self.posix.delete(path)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.posix.list(prefix)

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        return self.posix.checksum(path, algorithm)


def sums_of(data: bytes) -> Checksums:
    return Checksums(len(data), f"{zlib.adler32(data):08x}", hashlib.md5(data).hexdigest())


def read_ahead_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lacus-read-ahead")]


def source_with(tmp_path: Path, data: bytes, **failure: object) -> RemoteSource:
    (tmp_path / "source/virgo").mkdir(parents=True)
    (tmp_path / "source/virgo/f").write_bytes(data)
    return RemoteSource(tmp_path / "source", **failure)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1000, CHUNK, 10 * CHUNK + 1])
def test_a_streamed_copy_arrives_whole(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    source = source_with(tmp_path, data)
    dest = PosixBackend(tmp_path / "dest")
    how = copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert how == "stream"
    assert (tmp_path / "dest/virgo/g").read_bytes() == data
    assert source.closed.is_set()
    assert read_ahead_threads() == []


def test_a_source_breaking_mid_copy_leaves_nothing(tmp_path: Path) -> None:
    data = os.urandom(20 * CHUNK)
    source = source_with(tmp_path, data, fail_after=7, error=StorageError("connection lost"))
    dest = PosixBackend(tmp_path / "dest")
    with pytest.raises(StorageError, match="connection lost"):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert list((tmp_path / "dest").rglob("*")) == []
    assert source.closed.is_set()
    assert read_ahead_threads() == []


def test_a_source_file_vanishing_mid_copy_is_the_source_s_fault(tmp_path: Path) -> None:
    data = os.urandom(20 * CHUNK)
    gone = StorageFileNotFound("remote+file:///source/virgo/f does not exist")
    source = source_with(tmp_path, data, fail_after=3, error=gone)
    dest = PosixBackend(tmp_path / "dest")
    with pytest.raises(SourceFileMissing):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert list((tmp_path / "dest").rglob("*")) == []
    assert read_ahead_threads() == []


def test_a_full_destination_stops_reading_the_source(
    tmp_path: Path,
    tmpfs: Path,  # noqa: F811 - the fixture
) -> None:
    data = os.urandom(3 * MiB)  # the tmpfs holds 2 MiB
    source = source_with(tmp_path, data)
    dest = PosixBackend(tmpfs / "rse")
    with pytest.raises(StorageFull):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert [p for p in tmpfs.rglob("*") if p.is_file()] == []
    assert source.closed.is_set()
    assert read_ahead_threads() == []
