"""Chunks and where they come from: an iterable, a directory being filled, a framed byte stream.

A :class:`Chunk` is one file to ingest: its name, its bytes (in memory, or a local file), the
time it was complete (``created``, unix seconds: what latencies are measured from) and the time
its data belongs to (``time``, which decides its hour dataset; ``created`` when not given).

Framing on a byte stream (``lacus stream ingest --stdin``), one record per chunk::

    <name> <size> [<created>]\\n
    <size bytes>

The header is one ASCII line: the chunk's DID name, its size in bytes, and optionally the unix
time (seconds, a decimal number) when it was complete; without it, the time the record was read.
The stream ends at a record boundary; an end in the middle of a record is an error, and that
partial chunk is not ingested. From a shell::

    for f in *.h5; do printf '%s %d\\n' "$f" "$(stat -c %s "$f")"; cat "$f"; done |
        lacus stream ingest --stdin ...
"""

from __future__ import annotations

import fnmatch
import io
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lacus.errors import InvalidInput, LocalFileError
from lacus.naming import validate_name
from lacus.types import MetaValue

MAX_HEADER = 1024
"""Bytes a framing header line may take, its newline included."""

TEMPORARY_SUFFIXES = (".part", ".tmp", ".partial")
"""A file being written in a watched directory carries one of these suffixes (or starts with a
dot) and is renamed when complete: it is never taken before."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One file to ingest: ``data`` in memory, or ``path`` a local file."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    created: float = field(default_factory=time.time)
    time: float | None = None
    meta: Mapping[str, MetaValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if (self.data is None) == (self.path is None):
            raise InvalidInput(f"chunk {self.name}: give its bytes or a path, not both or neither")

    @property
    def data_time(self) -> float:
        """The time the chunk's data belongs to (its hour dataset)."""
        return self.created if self.time is None else self.time

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        try:
            return open(self.path, "rb", buffering=0)
        except OSError as exc:
            raise LocalFileError(f"cannot read {self.path}: {exc.strerror}") from None

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        try:
            return self.path.stat().st_size
        except OSError as exc:
            raise LocalFileError(f"cannot read {self.path}: {exc.strerror}") from None


def paced(chunks: Iterable[Chunk], rate: float | None) -> Iterator[Chunk]:
    """``chunks`` taken at ``rate`` per second (None or 0: as fast as they come). A chunk is
    taken from ``chunks`` only when it is due, so a generator creates it on time; a late one
    is taken at once (the average rate holds)."""
    iterator = iter(chunks)
    if not rate:
        yield from iterator
        return
    if rate < 0:
        raise InvalidInput(f"a rate is chunks per second, more than 0, not {rate}")
    start = time.monotonic()
    index = 0
    while True:
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        chunk = next(iterator, None)
        if chunk is None:
            return
        yield chunk
        index += 1


def directory_chunks(
    directory: Path,
    *,
    pattern: str = "*",
    interval: float = 0.02,
    settle: float = 0.0,
    idle_timeout: float | None = None,
    stop: threading.Event | None = None,
    skip: Iterable[str] = (),
) -> Iterator[Chunk]:
    """The complete files that appear in ``directory`` (not below it), oldest first, each once.

    A file is complete when it has its final name: writers write under a temporary name (a
    leading dot, or a suffix of ``TEMPORARY_SUFFIXES``) and rename it. For writers that cannot,
    ``settle`` takes a file only once it has not been modified for that many seconds. A chunk's
    ``created`` is the file's modification time. The directory is scanned every ``interval``
    seconds; the iteration ends after ``idle_timeout`` seconds without a new file, or when
    ``stop`` is set. ``skip``: names already handled.
    """
    if not directory.is_dir():
        raise LocalFileError(f"cannot watch {directory}: not a directory")
    seen = set(skip)
    last_new = time.monotonic()
    while stop is None or not stop.is_set():
        found: list[tuple[float, str, Path]] = []
        now = time.time()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            raise LocalFileError(f"cannot read directory {directory}: {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            if name in seen or _temporary(name) or not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                if not entry.is_file():
                    continue
                mtime = entry.stat().st_mtime
            except OSError:
                continue  # renamed or removed since the scan
            if now - mtime < settle:
                continue
            found.append((mtime, name, Path(entry.path)))
        found.sort()
        for mtime, name, path in found:
            seen.add(name)
            yield Chunk(name=name, path=path, created=mtime)
        if found:
            last_new = time.monotonic()
        elif idle_timeout is not None and time.monotonic() - last_new >= idle_timeout:
            return
        if stop is not None:
            stop.wait(interval)
        else:
            time.sleep(interval)


def _temporary(name: str) -> bool:
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


def framed_chunks(stream: BinaryIO) -> Iterator[Chunk]:
    """The chunks of a framed byte stream (module docstring: ``<name> <size> [<created>]\\n``
    then the bytes)."""
    number = 0
    while True:
        header = _read_header(stream)
        if header is None:
            return
        number += 1
        name, size, created = _parse_header(header, number)
        data = _read_exactly(stream, size)
        if len(data) != size:
            raise InvalidInput(
                f"record {number} ({name}): the stream ended after {len(data)} of {size} bytes"
            )
        yield Chunk(name=name, data=data, created=created if created is not None else time.time())


def _read_header(stream: BinaryIO) -> bytes | None:
    line = stream.readline(MAX_HEADER)
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) >= MAX_HEADER:
            raise InvalidInput(f"a record header is longer than {MAX_HEADER} bytes: not framed?")
        raise InvalidInput("the stream ended inside a record header")
    return line[:-1]


def _parse_header(header: bytes, number: int) -> tuple[str, int, float | None]:
    try:
        fields = header.decode("ascii").split()
    except UnicodeDecodeError:
        fields = []
    if len(fields) not in (2, 3) or not fields[1].isdigit():
        shown = header[:60].decode("ascii", "replace")
        raise InvalidInput(
            f"record {number}: invalid header {shown!r}: expected '<name> <size> [<created>]'"
        )
    created = None
    if len(fields) == 3:
        try:
            created = float(fields[2])
        except ValueError:
            raise InvalidInput(
                f"record {number}: invalid creation time {fields[2]!r}: unix seconds expected"
            ) from None
    return validate_name(fields[0]), int(fields[1]), created


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def frame(chunk: Chunk) -> bytes:
    """One record of the framing, for writers in Python (and the tests)."""
    with chunk.open() as source:
        data = source.read()
    return f"{chunk.name} {len(data)} {chunk.created:.6f}\n".encode() + data
