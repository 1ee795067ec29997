"""Copies between two POSIX storages of one machine (``PosixBackend.copy_from``, the conveyor's
``local copy``): the kernel moves the bytes, the copy is read back and checked before it is named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lacus.checksums import Checksums
from lacus.errors import (
    ChecksumMismatch,
    FileAlreadyOnStorage,
    SourceCorrupted,
    SourceFileMissing,
    StorageFileNotFound,
    StorageFull,
)
from lacus.storage import PosixBackend, copy_verified
from tests.conftest import require_component

from .conformance import MiB

SIZES = [0, 1, 1000, 8 * MiB, 8 * MiB + 1, 40 * MiB + 3]  # the read-back thread from 16 MiB


def sums_of(data: bytes) -> Checksums:
    return Checksums(len(data), f"{zlib.adler32(data):08x}", hashlib.md5(data).hexdigest())


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


@pytest.fixture
def source(tmp_path: Path) -> PosixBackend:
    return PosixBackend(tmp_path / "source")


@pytest.fixture
def dest(tmp_path: Path) -> PosixBackend:
    return PosixBackend(tmp_path / "dest")


def put_source(root: Path, path: str, data: bytes) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("md5", [True, False])
def test_copy_from_any_size(
    source: PosixBackend, dest: PosixBackend, tmp_path: Path, size: int, md5: bool
) -> None:
    data = os.urandom(size)
    put_source(tmp_path / "source", "virgo/ab/cd/f", data)
    expected = sums_of(data) if md5 else dataclasses.replace(sums_of(data), md5=None)
    found = dest.copy_from("virgo/12/34/f", source, "virgo/ab/cd/f", expected=expected)
    assert found == expected
    assert (tmp_path / "dest/virgo/12/34/f").read_bytes() == data
    assert files_under(tmp_path / "dest") == ["virgo/12/34/f"]


@pytest.mark.parametrize("size", [1000, 40 * MiB + 3])
@pytest.mark.parametrize("wrong", ["bytes", "adler32", "md5"])
def test_a_copy_that_differs_from_the_catalog_never_appears(
    source: PosixBackend, dest: PosixBackend, tmp_path: Path, size: int, wrong: str
) -> None:
    data = os.urandom(size)
    put_source(tmp_path / "source", "f", data)
    good = sums_of(data)
    bad = {"bytes": size + 1, "adler32": f"{(zlib.adler32(data) ^ 1):08x}", "md5": "0" * 32}
    expected = dataclasses.replace(good, **{wrong: bad[wrong]})
    with pytest.raises(ChecksumMismatch, match=str(bad[wrong])):
        dest.copy_from("virgo/f", source, "f", expected=expected)
    assert files_under(tmp_path / "dest") == []
    assert not (tmp_path / "dest/virgo").exists()


def test_copy_from_refuses_an_existing_file_unless_overwrite(
    source: PosixBackend, dest: PosixBackend, tmp_path: Path
) -> None:
    put_source(tmp_path / "source", "f", b"new")
    put_source(tmp_path / "dest", "f", b"old")
    with pytest.raises(FileAlreadyOnStorage):
        dest.copy_from("f", source, "f", expected=sums_of(b"new"))
    assert (tmp_path / "dest/f").read_bytes() == b"old"
    dest.copy_from("f", source, "f", expected=sums_of(b"new"), overwrite=True)
    assert (tmp_path / "dest/f").read_bytes() == b"new"


def test_copy_from_a_missing_source(source: PosixBackend, dest: PosixBackend) -> None:
    with pytest.raises(StorageFileNotFound, match="source/missing does not exist"):
        dest.copy_from("f", source, "missing", expected=sums_of(b""))
    (Path(source.url[len("file://") :]) / "dir").mkdir(parents=True)
    with pytest.raises(StorageFileNotFound, match="not a file"):
        dest.copy_from("f", source, "dir", expected=sums_of(b""))


def test_copy_verified_between_posix_storages_is_a_local_copy(
    source: PosixBackend, dest: PosixBackend, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB)
    put_source(tmp_path / "source", "virgo/f", data)
    how = copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert how == "local copy"
    assert (tmp_path / "dest/virgo/g").read_bytes() == data


def test_copy_verified_blames_a_corrupted_source(
    source: PosixBackend, dest: PosixBackend, tmp_path: Path
) -> None:
    data = bytearray(os.urandom(MiB))
    expected = sums_of(bytes(data))
    data[12345] ^= 0x01  # the source's disk changed a byte after the catalog learnt its checksum
    put_source(tmp_path / "source", "virgo/f", bytes(data))
    with pytest.raises(SourceCorrupted, match=expected.adler32):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=expected)
    assert files_under(tmp_path / "dest") == []


def test_copy_verified_a_missing_source(source: PosixBackend, dest: PosixBackend) -> None:
    with pytest.raises(SourceFileMissing):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(b"x"))


def test_copy_verified_a_source_that_does_not_match_md5_only(
    source: PosixBackend, dest: PosixBackend, tmp_path: Path
) -> None:
    put_source(tmp_path / "source", "f", b"hello")
    expected = dataclasses.replace(sums_of(b"hello"), md5="0" * 32)
    with pytest.raises(SourceCorrupted, match="md5"):
        copy_verified(source, "f", dest, "g", expected=expected)
    assert files_under(tmp_path / "dest") == []


# -- across file systems: a real tmpfs mount (root only; skipped elsewhere, failing under CI) --


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mountpoint)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        require_component("a tmpfs mount", f"{' '.join(command)}: {result.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=True)


def test_copy_from_another_file_system(source: PosixBackend, tmp_path: Path, tmpfs: Path) -> None:
    data = os.urandom(MiB + 7)
    put_source(tmp_path / "source", "virgo/f", data)
    dest = PosixBackend(tmpfs / "rse")
    assert dest.copy_from("virgo/g", source, "virgo/f", expected=sums_of(data)) == sums_of(data)
    assert (tmpfs / "rse/virgo/g").read_bytes() == data


def test_copy_from_onto_a_full_file_system_leaves_nothing(
    source: PosixBackend, tmp_path: Path, tmpfs: Path
) -> None:
    data = os.urandom(3 * MiB)  # the tmpfs holds 2 MiB
    put_source(tmp_path / "source", "virgo/f", data)
    dest = PosixBackend(tmpfs / "rse")
    with pytest.raises(StorageFull):
        dest.copy_from("virgo/g", source, "virgo/f", expected=sums_of(data))
    assert files_under(tmpfs) == []
