"""The POSIX backend: the conformance suite, plus what only a real file system can show.

The full and read-only storages are real tmpfs mounts (the tests run as root in CI). Where mounting
is not permitted they are skipped, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lacus.errors import (
    InvalidInput,
    InvalidName,
    ProtocolNotFound,
    StorageFileNotFound,
    StorageFull,
    StoragePermissionDenied,
)
from lacus.storage import PosixBackend, StorageBackend, open_backend
from lacus.storage.posix import adler32_combine
from tests.conftest import require_component

from .conformance import MiB, PatternSource, StorageConformance


def files_under(root: Path) -> list[str]:
    """Every file below ``root``, hidden ones included."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if not path.is_dir())


def modes_under(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` (as ".") and of everything below it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


class TestPosix(StorageConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> StorageBackend:
        return PosixBackend(tmp_path / "rse")

    @pytest.fixture
    def storage_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "rse"

    def test_failed_put_leaves_no_file_and_no_directory_it_made(self, tmp_path: Path) -> None:
        backend = PosixBackend(tmp_path / "rse")
        backend.put("virgo/kept", io.BytesIO(b"kept"))
        source = PatternSource(
            20 * MiB, block=os.urandom(MiB), fail_at=5 * MiB, error=KeyboardInterrupt()
        )
        with pytest.raises(KeyboardInterrupt):
            backend.put("virgo/ab/cd/file", source)
        assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
            "rse",
            "rse/virgo",
            "rse/virgo/kept",
        ]

    def test_files_land_under_the_prefix(self, tmp_path: Path) -> None:
        backend = PosixBackend(tmp_path / "rse", fsync=False)
        backend.put("virgo/ab/cd/file", io.BytesIO(b"data"))
        assert (tmp_path / "rse/virgo/ab/cd/file").read_bytes() == b"data"
        assert backend.url == (tmp_path / "rse").as_uri()

    def test_delete_removes_empty_directories_up_to_the_prefix(self, tmp_path: Path) -> None:
        backend = PosixBackend(tmp_path / "rse")
        backend.put("virgo/ab/cd/one", io.BytesIO(b"1"))
        backend.put("virgo/ab/ef/two", io.BytesIO(b"2"))
        backend.delete("virgo/ab/cd/one")
        assert not (tmp_path / "rse/virgo/ab/cd").exists()
        assert (tmp_path / "rse/virgo/ab/ef/two").exists()
        backend.delete("virgo/ab/ef/two")
        assert list((tmp_path / "rse").iterdir()) == []

    def test_symlink_out_of_the_prefix_is_rejected(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret").write_bytes(b"secret")
        (tmp_path / "rse").mkdir()
        (tmp_path / "rse/escape").symlink_to(outside)
        backend = PosixBackend(tmp_path / "rse")
        with pytest.raises(InvalidName, match="outside"):
            backend.get("escape/secret")
        with pytest.raises(InvalidName):
            backend.put("escape/new", io.BytesIO(b"x"))
        with pytest.raises(InvalidName):
            backend.delete("escape/secret")
        assert files_under(outside) == ["secret"]

    def test_a_directory_is_not_a_file(self, tmp_path: Path) -> None:
        backend = PosixBackend(tmp_path / "rse")
        backend.put("dir/file", io.BytesIO(b"x"))
        with pytest.raises(StorageFileNotFound):
            backend.stat("dir")
        with pytest.raises(StorageFileNotFound):
            backend.delete("dir")

    def test_open_backend_by_scheme(self, tmp_path: Path) -> None:
        for scheme in ("file", "posix"):
            backend = open_backend(scheme, prefix=str(tmp_path), fsync=False)
            assert isinstance(backend, PosixBackend)
            assert backend.url == tmp_path.as_uri()

    def test_open_backend_errors_say_what_to_do(self, tmp_path: Path) -> None:
        with pytest.raises(ProtocolNotFound, match=r"scheme 'xyz'; known: .*file.*posix"):
            open_backend("xyz", prefix=str(tmp_path))
        with pytest.raises(InvalidInput, match="colour"):
            open_backend("file", prefix=str(tmp_path), colour="blue")

    @pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
    def test_files_are_not_world_readable_whatever_the_umask(
        self, tmp_path: Path, umask: int
    ) -> None:
        source = PosixBackend(tmp_path / "source", fsync=False)
        sums = source.put("virgo/f", io.BytesIO(b"data"))
        backend = PosixBackend(tmp_path / "rse")
        previous = os.umask(umask)
        try:
            backend.put("virgo/ab/cd/put", io.BytesIO(b"data"))
            backend.put_verified("virgo/ab/ef/verified", io.BytesIO(b"data"))
            backend.copy_from("virgo/gh/ij/copied", source, "virgo/f", expected=sums)
            backend.put("virgo/ab/cd/put", io.BytesIO(b"again"), overwrite=True)
        finally:
            os.umask(previous)
        assert modes_under(tmp_path / "rse") == {
            ".": 0o750,
            "virgo": 0o750,
            "virgo/ab": 0o750,
            "virgo/ab/cd": 0o750,
            "virgo/ab/cd/put": 0o640,
            "virgo/ab/ef": 0o750,
            "virgo/ab/ef/verified": 0o640,
            "virgo/gh": 0o750,
            "virgo/gh/ij": 0o750,
            "virgo/gh/ij/copied": 0o640,
        }

    def test_the_modes_are_options_of_the_protocol(self, tmp_path: Path) -> None:
        for file_mode, dir_mode, expected in [
            ("0600", "0700", (0o600, 0o700)),
            ("0o644", "755", (0o644, 0o755)),
            (0o660, 0o770, (0o660, 0o770)),
        ]:
            root = tmp_path / f"rse{file_mode}"
            backend = open_backend(
                "file", prefix=str(root), fsync=False, file_mode=file_mode, dir_mode=dir_mode
            )
            backend.put("virgo/ab/file", io.BytesIO(b"x"))
            assert modes_under(root) == {
                ".": expected[1],
                "virgo": expected[1],
                "virgo/ab": expected[1],
                "virgo/ab/file": expected[0],
            }

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("file_mode", "0999"),
            ("file_mode", "rw-r-----"),
            ("file_mode", "01640"),
            ("file_mode", 0o1640),
            ("file_mode", "0440"),  # the storage could not write its own file
            ("file_mode", True),
            ("file_mode", ""),
            ("dir_mode", "0640"),  # nor enter its own directory
            ("dir_mode", -1),
        ],
    )
    def test_bad_modes_are_refused(self, tmp_path: Path, option: str, value: object) -> None:
        with pytest.raises(InvalidInput, match=f"option {option} must be octal permission bits"):
            open_backend("file", prefix=str(tmp_path), **{option: value})

    @given(a=st.binary(max_size=5000), b=st.binary(max_size=70000))
    def test_adler32_combine_equals_zlib(self, a: bytes, b: bytes) -> None:
        combined = adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
        assert combined == zlib.adler32(a + b)


def _mount(mountpoint: Path, options: str) -> None:
    mountpoint.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        require_component("a tmpfs mount", f"{' '.join(command)}: {result.stderr.strip()}")


def _umount(mountpoint: Path) -> None:
    subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system."""
    mountpoint = tmp_path / "tiny"
    _mount(mountpoint, "size=1m,mode=0755")
    yield mountpoint
    _umount(mountpoint)


@pytest.fixture
def read_only_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real file system holding ``rse/virgo/file``, remounted read-only."""
    mountpoint = tmp_path / "ro"
    _mount(mountpoint, "size=4m,mode=0755")
    (mountpoint / "rse/virgo").mkdir(parents=True)
    (mountpoint / "rse/virgo/file").write_bytes(b"kept")
    subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)
    yield mountpoint
    _umount(mountpoint)


def test_full_storage_raises_storage_full_and_leaves_nothing(tiny_tmpfs: Path) -> None:
    backend = PosixBackend(tiny_tmpfs / "rse")
    source = PatternSource(3 * MiB, block=os.urandom(MiB))
    with pytest.raises(StorageFull, match="is full") as raised:
        backend.put("virgo/ab/cd/big", source)
    assert backend.url in str(raised.value)
    assert files_under(tiny_tmpfs) == []
    assert backend.put("virgo/small", io.BytesIO(b"fits")).bytes == 4


def test_read_only_storage_raises_permission_denied(read_only_tmpfs: Path) -> None:
    backend = PosixBackend(read_only_tmpfs / "rse")
    with pytest.raises(StoragePermissionDenied, match="virgo/new"):
        backend.put("virgo/new", io.BytesIO(b"x"))
    with pytest.raises(StoragePermissionDenied):
        backend.put("other/new", io.BytesIO(b"x"))
    with pytest.raises(StoragePermissionDenied):
        backend.delete("virgo/file")
    assert b"".join(backend.get("virgo/file")) == b"kept"
    assert files_under(read_only_tmpfs / "rse") == ["virgo/file"]
