"""What ``storage/verified.py`` promises beyond the storage suites, found by mutation testing
(scripts/mutation.sh): third-party copies checked on the destination, the stream copy's size,
md5 and clean-up, messages that say which file and whose bytes, a download's file mode, and the
``ChunkReader`` other writers rely on."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from lacus.checksums import Checksums
from lacus.errors import (
    ChecksumMismatch,
    LocalFileError,
    SourceCorrupted,
    SourceFileMissing,
    StorageError,
    StorageFileNotFound,
    UnsupportedOperation,
)
from lacus.storage import ChunkReader, PosixBackend, copy_verified, read_verified, write_verified
from tests.storage.test_posix_copy import tmpfs  # noqa: F401 - the fixture
from tests.storage.test_stream_copy import CHUNK, RemoteSource, read_ahead_threads, sums_of

MUTATED = "src/lacus/storage/verified.py"
"""scripts/mutation.sh runs this file with the module's other tests."""


def stored(root: Path, path: str, data: bytes) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)


class PullingStorage(RemoteSource):
    """A storage that pulls files from another one itself (third-party copy), as WebDAV and
    XRootD servers do, and computes adler32 only (as many XRootD servers). ``garble`` flips a
    byte of what it pulled; ``refuse`` is raised instead of pulling, or after (``late``);
    ``full`` refuses every other write."""

    def __init__(
        self,
        root: Path,
        *,
        garble: str = "",
        refuse: BaseException | None = None,
        late: bool = False,
        full: bool = False,
    ):
        super().__init__(root)
        self.root = root
        self.url = "pull+" + self.posix.url
        self.garble = garble
        self.refuse = refuse
        self.late = late
        self.full = full
        self.pulls: list[tuple[str, str, int]] = []

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        if self.full:
            raise StorageError(f"{self.url}/{path}: no space left")
        return super().put(path, source, md5=md5, overwrite=overwrite)

    def url_of(self, path: str) -> str:
        return f"{self.url}/{path}"

    def can_pull_from(self, url: str) -> bool:
        return url.startswith("pull+file://")

    def pull(self, path: str, source_url: str, *, size: int, overwrite: bool = False) -> None:
        self.pulls.append((path, source_url, size))
        if self.refuse is not None and not self.late:
            raise self.refuse
        with open(source_url.removeprefix("pull+file://"), "rb") as source:
            self.posix.put(path, source, md5=False, overwrite=overwrite)
        if self.refuse is not None:
            raise self.refuse
        if self.garble:  # one byte flipped, or the last one lost
            full = self.root / path
            data = bytearray(full.read_bytes())
            data[0] ^= 0x01
            full.write_bytes(bytes(data) if self.garble == "flip" else bytes(data[:-1]))

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        if algorithm != "adler32":
            raise UnsupportedOperation(f"{self.url}: no {algorithm} here")
        return self.posix.checksum(path, algorithm)


def pulling_pair(tmp_path: Path, data: bytes, **dest: Any) -> tuple[PullingStorage, PullingStorage]:
    stored(tmp_path / "source", "virgo/f", data)
    return PullingStorage(tmp_path / "source"), PullingStorage(tmp_path / "dest", **dest)


# -- third-party copies --------------------------------------------------------------------------


def test_a_third_party_copy_replaces_a_stray_file_and_is_checked_with_adler32(
    tmp_path: Path,
) -> None:
    data = os.urandom(3000)
    source, dest = pulling_pair(tmp_path, data)
    stored(tmp_path / "dest", "virgo/g", b"a stray file no replica owns")
    assert copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data)) == "tpc"
    assert (tmp_path / "dest/virgo/g").read_bytes() == data
    assert dest.pulls == [("virgo/g", source.url_of("virgo/f"), len(data))]


def test_a_third_party_copy_only_when_asked(tmp_path: Path) -> None:
    data = os.urandom(3000)
    source, dest = pulling_pair(tmp_path, data)
    how = copy_verified(
        source, "virgo/f", dest, "virgo/g", expected=sums_of(data), third_party=False
    )
    assert how == "stream"
    assert dest.pulls == []
    assert (tmp_path / "dest/virgo/g").read_bytes() == data


@pytest.mark.parametrize(("garble", "why"), [("flip", "adler32"), ("truncate", "3000 bytes")])
def test_a_garbled_third_party_copy_is_streamed_again_and_says_why(
    tmp_path: Path, garble: str, why: str
) -> None:
    data = os.urandom(3000)
    source, dest = pulling_pair(tmp_path, data, garble=garble)
    how = copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert how.startswith(f"stream (third-party copy failed: {dest.url}/virgo/g: expected {why}")
    assert (tmp_path / "dest/virgo/g").read_bytes() == data


def test_the_reason_a_third_party_copy_failed_is_cut_to_300_characters(tmp_path: Path) -> None:
    data = os.urandom(3000)
    source, dest = pulling_pair(tmp_path, data, refuse=StorageError("refused " + "x" * 1000))
    how = copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert how.startswith("stream (third-party copy failed: refused xxx")
    assert len(how) == 300
    assert (tmp_path / "dest/virgo/g").read_bytes() == data


@pytest.mark.parametrize("late", [False, True])
def test_a_third_party_copy_interrupted_leaves_nothing_and_raises(
    tmp_path: Path, late: bool
) -> None:
    data = os.urandom(3000)
    source, dest = pulling_pair(tmp_path, data, refuse=KeyboardInterrupt(), late=late)
    with pytest.raises(KeyboardInterrupt):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert not (tmp_path / "dest/virgo/g").exists()


@pytest.mark.parametrize("garble", ["", "flip"])
def test_a_failed_third_party_copy_leaves_nothing_when_streaming_fails_too(
    tmp_path: Path, garble: str
) -> None:
    data = os.urandom(3000)
    failed = None if garble else StorageError("connection reset after the copy")
    source, dest = pulling_pair(tmp_path, data, garble=garble, refuse=failed, late=True, full=True)
    with pytest.raises(StorageError, match="no space left"):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert not (tmp_path / "dest/virgo/g").exists()


# -- copies streamed through the worker ------------------------------------------------------------


class TellingDestination(RemoteSource):
    """A storage without read-back that remembers how many bytes each writer announced
    (``remaining_bytes``: what a WebDAV put sends as its length), and can read slowly."""

    def __init__(self, root: Path, *, slow: float = 0.0) -> None:
        super().__init__(root)
        self.slow = slow
        self.announced: list[int | None] = []

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        remaining = getattr(source, "remaining_bytes", None)
        self.announced.append(remaining() if remaining else None)
        if self.slow:
            source = SlowReader(source, self.slow)  # type: ignore[assignment]
        return self.posix.put(path, source, md5=md5, overwrite=overwrite)


class SlowReader(io.RawIOBase):
    def __init__(self, source: BinaryIO, pause: float) -> None:
        self.source = source
        self.pause = pause

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        time.sleep(self.pause)
        data = self.source.read(min(len(buffer), CHUNK))
        buffer[: len(data)] = data
        return len(data)


def remote_source(tmp_path: Path, data: bytes) -> RemoteSource:
    stored(tmp_path / "source", "virgo/f", data)
    return RemoteSource(tmp_path / "source")


def test_a_streamed_copy_announces_its_size_and_replaces_a_stray_file(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 5)
    source = remote_source(tmp_path, data)
    dest = TellingDestination(tmp_path / "dest")
    stored(tmp_path / "dest", "virgo/g", b"a stray file no replica owns")
    assert copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data)) == "stream"
    assert (tmp_path / "dest/virgo/g").read_bytes() == data
    assert dest.announced == [len(data)]


def test_a_slow_destination_loses_no_chunk_of_the_source(tmp_path: Path) -> None:
    # The read-ahead queue fills up and waits longer than its put timeout, more than once.
    data = os.urandom(12 * CHUNK)
    source = remote_source(tmp_path, data)
    dest = TellingDestination(tmp_path / "dest", slow=0.03)
    assert copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data)) == "stream"
    assert (tmp_path / "dest/virgo/g").read_bytes() == data


def test_a_source_matching_all_but_md5_is_blamed_and_leaves_nothing(tmp_path: Path) -> None:
    data = os.urandom(3000)
    source = remote_source(tmp_path, data)
    dest = TellingDestination(tmp_path / "dest")
    expected = dataclasses.replace(sums_of(data), md5="0" * 32)
    with pytest.raises(SourceCorrupted) as raised:
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=expected)
    assert str(raised.value) == (
        f"{source.url}/virgo/f: expected md5 {'0' * 32}, the source has {sums_of(data).md5}"
    )
    assert list((tmp_path / "dest").rglob("*")) == []


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (3000 - 1, "the source has more than the 2999 bytes expected"),
        (3000 + 1, "the source has 3000 bytes, expected 3001"),
    ],
)
def test_a_source_of_another_size_is_blamed_as_soon_as_it_shows(
    tmp_path: Path, size: int, message: str
) -> None:
    data = os.urandom(3000)
    source = remote_source(tmp_path, data)
    dest = TellingDestination(tmp_path / "dest")
    expected = dataclasses.replace(sums_of(data), bytes=size)
    with pytest.raises(SourceCorrupted) as raised:
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=expected)
    assert str(raised.value) == f"{source.url}/virgo/f: {message}"
    assert list((tmp_path / "dest").rglob("*")) == []


class MissingSource(RemoteSource):
    def get(self, path: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        raise StorageFileNotFound(f"{self.url}/{path} does not exist")


def test_a_missing_source_says_so(tmp_path: Path) -> None:
    source = MissingSource(tmp_path / "source")
    with pytest.raises(SourceFileMissing, match=r"^source file missing: remote\+file://"):
        copy_verified(
            source, "virgo/f", PosixBackend(tmp_path / "dest"), "g", expected=sums_of(b"x")
        )


class FailingDestination(TellingDestination):
    """Reads one chunk of what it is given, then fails (a lost connection)."""

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        source.read(CHUNK)
        raise StorageError("connection to the destination lost")


def test_a_destination_failing_early_stops_the_source_read_at_once(tmp_path: Path) -> None:
    data = os.urandom(40 * CHUNK)
    source = remote_source(tmp_path, data)
    dest = FailingDestination(tmp_path / "dest")
    with pytest.raises(StorageError, match="destination lost") as raised:
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    # While the error (and so the copy's frames) is still held, not only when collected.
    assert raised.value is not None
    assert source.closed.wait(5)
    deadline = time.monotonic() + 5
    while read_ahead_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read_ahead_threads() == []


# -- local copies --------------------------------------------------------------------------------


def test_a_local_copy_replaces_a_stray_file(tmp_path: Path) -> None:
    data = os.urandom(3000)
    stored(tmp_path / "source", "virgo/f", data)
    stored(tmp_path / "dest", "virgo/g", b"a stray file no replica owns")
    source, dest = PosixBackend(tmp_path / "source"), PosixBackend(tmp_path / "dest")
    assert copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data)) == "local copy"
    assert (tmp_path / "dest/virgo/g").read_bytes() == data


def test_a_missing_local_source_says_so(tmp_path: Path) -> None:
    source, dest = PosixBackend(tmp_path / "source"), PosixBackend(tmp_path / "dest")
    with pytest.raises(SourceFileMissing, match=r"^source file missing: file://"):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(b"x"))


class GarblingDestination(PosixBackend):
    """Its copies never match (a faulty disk); ``lose_source`` also removes the source."""

    lose_source = False

    def copy_from(
        self,
        path: str,
        source: PosixBackend,
        source_path: str,
        *,
        expected: Checksums,
        overwrite: bool = False,
    ) -> Checksums:
        if self.lose_source:
            source.delete(source_path)
        raise ChecksumMismatch(f"{self.url}/{path}: the copy read back differs")


def test_a_destination_garbling_a_local_copy_never_blames_a_good_source(tmp_path: Path) -> None:
    data = os.urandom(3000)
    stored(tmp_path / "source", "virgo/f", data)
    source, dest = PosixBackend(tmp_path / "source"), GarblingDestination(tmp_path / "dest")
    with pytest.raises(ChecksumMismatch) as raised:
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))
    assert type(raised.value) is ChecksumMismatch, "not SourceCorrupted: the source is fine"
    assert "the copy read back differs" in str(raised.value)


def test_a_local_source_vanishing_during_the_copy_is_missing(tmp_path: Path) -> None:
    data = os.urandom(3000)
    stored(tmp_path / "source", "virgo/f", data)
    source, dest = PosixBackend(tmp_path / "source"), GarblingDestination(tmp_path / "dest")
    dest.lose_source = True
    with pytest.raises(SourceFileMissing, match=r"^source file missing: file://"):
        copy_verified(source, "virgo/f", dest, "virgo/g", expected=sums_of(data))


# -- writes --------------------------------------------------------------------------------------


class CountingChecksums(PosixBackend):
    """A POSIX storage (it reads back while writing) counting the checksums asked afterwards."""

    asked = 0

    def checksum(self, path: str, algorithm: str = "adler32") -> str:
        self.asked += 1
        return super().checksum(path, algorithm)


def test_a_storage_reading_back_while_writing_is_not_read_again(tmp_path: Path) -> None:
    backend = CountingChecksums(tmp_path / "rse")
    write_verified(backend, "virgo/f", io.BytesIO(b"hello"))
    assert backend.asked == 0


@pytest.mark.parametrize("md5", [True, False])
@pytest.mark.parametrize("reads_back", [True, False])
def test_write_verified_overwrites_when_asked_and_sums_md5_when_asked(
    tmp_path: Path, reads_back: bool, md5: bool
) -> None:
    backend: Any = PosixBackend(tmp_path / "rse") if reads_back else RemoteSource(tmp_path / "rse")
    stored(tmp_path / "rse", "virgo/f", b"older")
    sums = write_verified(backend, "virgo/f", io.BytesIO(b"hello"), md5=md5, overwrite=True)
    assert sums == dataclasses.replace(
        sums_of(b"hello"), md5=sums_of(b"hello").md5 if md5 else None
    )
    assert (tmp_path / "rse/virgo/f").read_bytes() == b"hello"


def test_write_verified_names_the_file_and_what_was_written(tmp_path: Path) -> None:
    backend = PosixBackend(tmp_path / "rse")
    wrong = dataclasses.replace(sums_of(b"hello"), adler32="00000001")
    with pytest.raises(ChecksumMismatch) as raised:
        write_verified(backend, "virgo/f", io.BytesIO(b"hello"), expected=wrong)
    assert str(raised.value) == (
        f"{backend.url}/virgo/f: expected adler32 00000001, the data written had "
        f"{sums_of(b'hello').adler32}"
    )


class UndeletableDamage(RemoteSource):
    """Writes that arrive truncated, on a storage that then refuses to delete them."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.root = root

    def put(
        self, path: str, source: BinaryIO, *, md5: bool = True, overwrite: bool = False
    ) -> Checksums:
        sums = self.posix.put(path, source, md5=md5, overwrite=overwrite)
        os.truncate(self.root / path, sums.bytes - 1)
        return sums

    def delete(self, path: str) -> None:
        raise StorageError(f"{self.url}/{path}: permission denied")


def test_a_damaged_write_is_reported_even_when_it_cannot_be_deleted(tmp_path: Path) -> None:
    with pytest.raises(ChecksumMismatch, match="4 bytes, 5 bytes were written"):
        write_verified(UndeletableDamage(tmp_path / "rse"), "f", io.BytesIO(b"hello"))


# -- downloads -----------------------------------------------------------------------------------


def test_a_download_has_the_mode_of_an_ordinary_file(tmp_path: Path) -> None:
    backend = PosixBackend(tmp_path / "rse")
    sums = write_verified(backend, "virgo/f", io.BytesIO(b"hello"))
    umask = os.umask(0o022)
    os.umask(umask)
    read_verified(backend, "virgo/f", tmp_path / "out/f", expected=sums)
    assert (tmp_path / "out/f").stat().st_mode & 0o777 == 0o644 & ~umask


def test_a_corrupted_download_names_the_stored_file(tmp_path: Path) -> None:
    backend = PosixBackend(tmp_path / "rse")
    sums = write_verified(backend, "virgo/f", io.BytesIO(b"hello"))
    wrong = dataclasses.replace(sums, bytes=6)
    with pytest.raises(ChecksumMismatch) as raised:
        read_verified(backend, "virgo/f", tmp_path / "out/f", expected=wrong)
    assert str(raised.value) == f"{backend.url}/virgo/f: expected 6 bytes, the storage has 5 bytes"


def test_a_download_nowhere_to_go_says_why(tmp_path: Path) -> None:
    backend = PosixBackend(tmp_path / "rse")
    sums = write_verified(backend, "virgo/f", io.BytesIO(b"hello"))
    (tmp_path / "a-file").write_bytes(b"")
    under_a_file = tmp_path / "a-file/f"
    with pytest.raises(LocalFileError) as raised:
        read_verified(backend, "virgo/f", under_a_file, expected=sums)
    assert str(raised.value) == f"cannot write {under_a_file}: File exists"
    (tmp_path / "out/f").mkdir(parents=True)
    (tmp_path / "out/f/inside").write_bytes(b"")
    with pytest.raises(LocalFileError) as raised:
        read_verified(backend, "virgo/f", tmp_path / "out/f", expected=sums)
    assert str(raised.value) == f"cannot write {tmp_path / 'out/f'}: Is a directory"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f"]


def test_a_download_onto_a_full_disk_says_so(
    tmp_path: Path,
    tmpfs: Path,  # noqa: F811 - the fixture
) -> None:
    backend = PosixBackend(tmp_path / "rse")
    data = os.urandom(3 * 1024 * 1024)  # the tmpfs holds 2 MiB
    sums = write_verified(backend, "virgo/f", io.BytesIO(data))
    with pytest.raises(LocalFileError) as raised:
        read_verified(backend, "virgo/f", tmpfs / "f", expected=sums)
    assert str(raised.value) == f"cannot write {tmpfs / 'f'}: No space left on device"
    assert list(tmpfs.iterdir()) == []


# -- ChunkReader ---------------------------------------------------------------------------------


def test_a_chunk_reader_counts_down_what_is_left() -> None:
    reader = ChunkReader(iter([b"abc", b"defg"]), size=7)
    assert reader.remaining_bytes() == 7
    assert reader.read(2) == b"ab"
    assert reader.remaining_bytes() == 5
    assert ChunkReader(iter([b"abc"])).remaining_bytes() is None


def test_a_chunk_reader_is_a_readable_stream() -> None:
    with io.BufferedReader(ChunkReader(iter([b"abc", b"defg"]))) as buffered:
        assert buffered.read() == b"abcdefg"


def test_a_chunk_reader_blames_no_source_unless_told() -> None:
    def gone() -> Iterator[bytes]:
        yield b"abc"
        raise StorageFileNotFound("file:///x does not exist")

    with pytest.raises(StorageFileNotFound) as raised:
        ChunkReader(gone()).read()
    assert not isinstance(raised.value, SourceFileMissing)
    with pytest.raises(SourceCorrupted, match=r"^the source: the source has 3 bytes, expected 5$"):
        ChunkReader(iter([b"abc"]), size=5).read()


def test_a_chunk_reader_closes_its_chunks() -> None:
    closed = threading.Event()

    def chunks() -> Iterator[bytes]:
        try:
            yield b"abc"
            yield b"def"
        finally:
            closed.set()

    source = chunks()
    reader = ChunkReader(source)
    assert reader.read(1) == b"a"
    reader.close()
    assert closed.is_set()
