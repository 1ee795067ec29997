"""Verified copies catch what went wrong on the way to and from a real POSIX storage."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacus.checksums import Checksums, checksum_file
from lacus.errors import ChecksumMismatch, FileAlreadyOnStorage, StorageFileNotFound
from lacus.storage import (
    FileStat,
    PosixBackend,
    VerifyingBackend,
    read_verified,
    write_verified,
)

from .conformance import MiB, PatternSource, expected_checksums

HELLO = Checksums(5, "062c0215", "5d41402abc4b2a76b9719d911017c592")  # published values


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0x01]))


class DamagingStorage:
    """A storage without read-back while writing, whose writes go wrong after a real POSIX write.

    ``damage`` is "flip" (one byte changes, as on a faulty disk) or "truncate" (the last byte is
    lost). ``write_verified`` must notice through ``stat`` and ``checksum``.
    """

    def __init__(self, root: Path, damage: str) -> None:
        self.posix = PosixBackend(root)
        self.root = root
        self.damage = damage
        self.url = self.posix.url

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        sums = self.posix.put(path, source, md5=md5, overwrite=overwrite)
        if self.damage == "flip":
            flip_byte(self.root / path, sums.bytes // 2)
        else:
            os.truncate(self.root / path, sums.bytes - 1)
        return sums

    def stat(self, path: str) -> FileStat:
        return self.posix.stat(path)

    def get(self, path: str, *, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        return self.posix.get(path, chunk_size=chunk_size)

    def delete(self, path: str) -> None:
        self.posix.delete(path)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.posix.list(prefix)

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        return self.posix.checksum(path, algorithm)


class FlippingWrites(PosixBackend):
    """A POSIX backend whose writes change the byte at ``offset`` of the file, as a faulty disk."""

    def __init__(self, root: Path, offset: int) -> None:
        super().__init__(root)
        self.offset = offset
        self.position = 0

    def _write(self, fd: int, data: memoryview | bytes) -> None:
        chunk = bytearray(data)
        if self.position <= self.offset < self.position + len(chunk):
            chunk[self.offset - self.position] ^= 0x01
        self.position += len(chunk)
        super()._write(fd, chunk)


@pytest.fixture
def backend(tmp_path: Path) -> PosixBackend:
    return PosixBackend(tmp_path / "rse")


def test_hello_has_the_published_checksums(backend: PosixBackend) -> None:
    assert expected_checksums(b"hello") == HELLO
    assert write_verified(backend, "virgo/hello", io.BytesIO(b"hello")) == HELLO


def test_write_verified_matches_the_source_file(backend: PosixBackend, tmp_path: Path) -> None:
    source = tmp_path / "source.h5"
    data = os.urandom(5 * MiB + 3)
    source.write_bytes(data)
    with source.open("rb") as stream:
        sums = write_verified(backend, "virgo/ab/cd/source.h5", stream)
    assert sums == checksum_file(source)
    assert sums == Checksums(len(data), f"{zlib.adler32(data):08x}", hashlib.md5(data).hexdigest())
    assert (tmp_path / "rse/virgo/ab/cd/source.h5").read_bytes() == data


def test_write_verified_without_md5(backend: PosixBackend) -> None:
    sums = write_verified(backend, "f", io.BytesIO(b"hello"), md5=False)
    assert sums == dataclasses.replace(HELLO, md5=None)


def test_write_verified_accepts_matching_expected(backend: PosixBackend) -> None:
    assert write_verified(backend, "f", io.BytesIO(b"hello"), expected=HELLO) == HELLO
    assert list(backend.list()) == ["f"]


@pytest.mark.parametrize(
    ("wrong", "shown"),
    [
        (dataclasses.replace(HELLO, bytes=6), "6 bytes"),
        (dataclasses.replace(HELLO, adler32="062c0216"), "062c0216"),
        (dataclasses.replace(HELLO, md5="0" * 32), "0" * 32),
    ],
)
def test_write_verified_deletes_data_not_matching_expected(
    backend: PosixBackend, wrong: Checksums, shown: str
) -> None:
    with pytest.raises(ChecksumMismatch, match=shown):
        write_verified(backend, "virgo/f", io.BytesIO(b"hello"), expected=wrong)
    assert list(backend.list()) == []


def test_write_verified_ignores_expected_md5_when_not_computing_md5(backend: PosixBackend) -> None:
    wrong_md5 = dataclasses.replace(HELLO, md5="0" * 32)
    sums = write_verified(backend, "f", io.BytesIO(b"hello"), md5=False, expected=wrong_md5)
    assert sums.adler32 == HELLO.adler32


def test_damage_on_a_storage_without_read_back_is_detected(tmp_path: Path) -> None:
    backend = DamagingStorage(tmp_path / "rse", "flip")
    assert not isinstance(backend, VerifyingBackend)
    data = os.urandom(MiB)
    with pytest.raises(ChecksumMismatch) as raised:
        write_verified(backend, "virgo/ab/cd/f", io.BytesIO(data))
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x01
    assert f"{zlib.adler32(data):08x}" in str(raised.value)
    assert f"{zlib.adler32(damaged):08x}" in str(raised.value)
    assert list((tmp_path / "rse").rglob("*")) == []


def test_truncation_on_a_storage_without_read_back_is_detected(tmp_path: Path) -> None:
    backend = DamagingStorage(tmp_path / "rse", "truncate")
    with pytest.raises(ChecksumMismatch, match="4 bytes, 5 bytes"):
        write_verified(backend, "f", io.BytesIO(b"hello"))
    assert list(backend.list()) == []


@pytest.mark.parametrize(
    ("size", "offset"),
    [(1000, 999), (3 * MiB, 0), (40 * MiB, 25 * MiB + 3), (40 * MiB, 40 * MiB - 1)],
)
def test_damage_while_writing_is_detected_before_the_file_appears(
    tmp_path: Path, size: int, offset: int
) -> None:
    backend = FlippingWrites(tmp_path / "rse", offset)
    assert isinstance(backend, VerifyingBackend)
    source = PatternSource(size, block=os.urandom(MiB + 1))
    with pytest.raises(ChecksumMismatch, match=source.expected().adler32):
        write_verified(backend, "virgo/ab/cd/f", source)
    assert list((tmp_path / "rse").rglob("*")) == []


def test_write_verified_never_deletes_a_file_it_did_not_write(backend: PosixBackend) -> None:
    write_verified(backend, "f", io.BytesIO(b"first"))
    with pytest.raises(FileAlreadyOnStorage):
        write_verified(backend, "f", io.BytesIO(b"second"))
    assert b"".join(backend.get("f")) == b"first"


def test_read_verified_round_trip(backend: PosixBackend, tmp_path: Path) -> None:
    data = os.urandom(6 * MiB + 1)
    stored = write_verified(backend, "virgo/ab/cd/f.h5", io.BytesIO(data))
    dest = tmp_path / "downloads/virgo/f.h5"
    assert read_verified(backend, "virgo/ab/cd/f.h5", dest, expected=stored) == stored
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["f.h5"]


def test_read_verified_checks_adler32_only_when_md5_unknown(
    backend: PosixBackend, tmp_path: Path
) -> None:
    write_verified(backend, "f", io.BytesIO(b"hello"))
    sums = read_verified(
        backend, "f", tmp_path / "f", expected=dataclasses.replace(HELLO, md5=None)
    )
    assert sums == dataclasses.replace(HELLO, md5=None)


@pytest.mark.parametrize("pre_existing", [False, True])
def test_read_verified_rejects_a_corrupted_stored_file(
    backend: PosixBackend, tmp_path: Path, pre_existing: bool
) -> None:
    data = os.urandom(2 * MiB)
    stored = write_verified(backend, "virgo/f", io.BytesIO(data))
    flip_byte(tmp_path / "rse/virgo/f", 12345)
    dest = tmp_path / "downloads/f"
    if pre_existing:
        dest.parent.mkdir()
        dest.write_bytes(b"older copy")
    with pytest.raises(ChecksumMismatch, match=stored.adler32):
        read_verified(backend, "virgo/f", dest, expected=stored)
    assert os.listdir(dest.parent) == (["f"] if pre_existing else [])
    if pre_existing:
        assert dest.read_bytes() == b"older copy"


def test_read_verified_rejects_a_wrong_md5(backend: PosixBackend, tmp_path: Path) -> None:
    write_verified(backend, "f", io.BytesIO(b"hello"))
    with pytest.raises(ChecksumMismatch, match="md5"):
        read_verified(
            backend, "f", tmp_path / "f", expected=dataclasses.replace(HELLO, md5="0" * 32)
        )
    assert not (tmp_path / "f").exists()


def test_read_verified_of_a_missing_file(backend: PosixBackend, tmp_path: Path) -> None:
    with pytest.raises(StorageFileNotFound):
        read_verified(backend, "missing", tmp_path / "out/f", expected=HELLO)
    assert list((tmp_path / "out").iterdir()) == []


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 1024 * 1024),
    max_read=st.one_of(st.none(), st.integers(1, 200_000)),
    md5=st.booleans(),
    seed=st.binary(min_size=1, max_size=70_000),
)
def test_read_back_while_writing_any_size(
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    max_read: int | None,
    md5: bool,
    seed: bytes,
) -> None:
    root = tmp_path_factory.mktemp("rse")
    backend = PosixBackend(root, fsync=False, chunk_size=64 * 1024)  # read-back thread from 128 KiB
    source = PatternSource(size, block=seed, max_read=max_read)
    expected = source.expected()
    sums = write_verified(backend, "virgo/f", source, md5=md5)
    assert sums == dataclasses.replace(expected, md5=expected.md5 if md5 else None)
    assert backend.checksum("virgo/f") == expected.adler32
