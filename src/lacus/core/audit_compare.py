"""The audit's comparison of an RSE's catalog with its storage: a merge of two sorted streams.

Pure logic, no I/O. The catalog's replicas of the RSE (every state) and the files on its
storage arrive both sorted by path (byte order, which is Python's ``str`` order: PostgreSQL's
``COLLATE "C"``, SQLite's binary collation and every storage listing's ``scan``), so one pass
compares them with memory bounded by a window of each stream and by the candidates kept — and
those are bounded too: past ``limit`` of a kind they are only counted, because the audit will
not act on them anyway.

A *lost* candidate is a replica available in the catalog, older than the grace period, that is
absent from the storage or there with another size. A *dark* candidate is a file on the storage
that no catalog replica of the RSE names, last modified before the grace period. Both are only
candidates: the caller checks them against a second catalog snapshot taken after the listing.

How, for speed (millions of paths per audit, one thread): both streams are read in windows of
up to ``window`` items, cut at the same path (the smaller of the two windows' last paths), so
a path present in both is in the same window of each. A window where both streams hold the
same paths with the same sizes (nearly all of them) is settled by comparing two lists; any
other is split in halves until the halves are equal or small (``SMALL``: merged one path at a
time). The per-path loops run in the interpreter's C code (list comparisons, comprehensions),
and the windows are small enough to stay in the CPU's cache.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from operator import lt
from typing import Any, NamedTuple

from lacus.errors import ListingOutOfOrder
from lacus.storage import FileStat

WINDOW = 512
"""Items of each stream held at once: small enough for the items to stay in the CPU's cache
(measured: 10,000 took twice the CPU time of 512 per path)."""

CatalogRow = tuple[str, int, bool]
"""(path, bytes, judged), as the first catalog snapshot streams its rows."""


class CatalogEntry(NamedTuple):
    """One replica of the audited RSE as the first catalog snapshot saw it (by its path: the
    second snapshot finds its DID, ``audits.confirm_lost``)."""

    path: str
    bytes: int
    judged: bool
    """available and older than the grace period: it may be called lost"""


@dataclass(slots=True)
class Comparison:
    """What one comparison found."""

    files: int = 0
    listed: int = 0
    lost: list[tuple[CatalogEntry, str]] = field(default_factory=list)
    dark: list[FileStat] = field(default_factory=list)
    lost_count: int = 0
    dark_count: int = 0
    """candidates found, kept or not"""


def compare(
    catalog: Iterable[CatalogRow],
    storage: Iterable[FileStat],
    *,
    dark_before: float,
    limit: int,
    window: int = WINDOW,
) -> Comparison:
    """Merge the catalog's and the storage's sorted streams; see the module's docstring.

    ``catalog``: (path, bytes, judged) tuples such as ``CatalogEntry``.
    ``dark_before``: files modified at or after this POSIX time are too young to be dark.
    ``limit``: keep at most this many candidates of each kind (count the others).
    Raises ListingOutOfOrder when a stream is not strictly increasing.
    """
    merge = _Merge(Comparison(), dark_before, limit)
    known = _Window(catalog, "catalog snapshot", _row_paths, window)
    stored = _Window(storage, "storage listing", _file_paths, window)
    while True:
        known.fill()
        stored.fill()
        if known.empty() and stored.empty():
            return merge.result
        ends = [part.paths[-1] for part in (known, stored) if not part.done]
        upto = min(ends) if ends else None
        rows, row_paths = known.take(upto)
        files, file_paths = stored.take(upto)
        if not rows and not files:  # a window cut nothing off: some stream is out of order
            stored.check(stored.paths)
            known.check(known.paths)
            raise AssertionError("a window cut nothing off, yet both streams are in order")
        stored.check(file_paths)
        if row_paths and row_paths == file_paths:  # nearly every window: one check for both
            known.check_next(row_paths)
        else:
            known.check(row_paths)
        merge.result.files += len(rows)
        merge.result.listed += len(files)
        merge.window(rows, row_paths, files, file_paths)


def _row_paths(rows: list[CatalogRow]) -> list[str]:
    return [row[0] for row in rows]


def _file_paths(files: list[FileStat]) -> list[str]:
    return [file.path for file in files]


SMALL = 16
"""Windows this small are merged one path at a time."""


class _Merge:
    """The comparison of one window of each stream (both in order: checked)."""

    def __init__(self, result: Comparison, dark_before: float, limit: int) -> None:
        self.result = result
        self.dark_before = dark_before
        self.limit = limit

    def window(
        self, rows: list[CatalogRow], row_paths: list[str], files: list[FileStat], paths: list[str]
    ) -> None:
        """Same paths: compare the sizes. Else split both windows at the catalog's middle path
        and compare the halves: the halves without a difference are settled by comparing two
        lists again, so a difference costs a few list comparisons, not a pass in Python."""
        if row_paths == paths:
            if [row[1] for row in rows] != [file.bytes for file in files]:
                for row, file in zip(rows, files, strict=True):
                    if row[1] != file.bytes:
                        self.lost(row, _another_size(row, file))
        elif len(rows) < 3 or len(rows) + len(files) <= SMALL:
            self.one_by_one(rows, files)
        else:
            middle = len(rows) // 2 + 1  # rows[:middle] and rows[middle:], neither empty
            cut = bisect_right(paths, row_paths[middle - 1])
            self.window(rows[:middle], row_paths[:middle], files[:cut], paths[:cut])
            self.window(rows[middle:], row_paths[middle:], files[cut:], paths[cut:])

    def one_by_one(self, rows: list[CatalogRow], files: list[FileStat]) -> None:
        catalog, storage = iter(rows), iter(files)
        row, file = next(catalog, None), next(storage, None)
        while row is not None or file is not None:
            if row is None or (file is not None and file.path < row[0]):
                assert file is not None
                self.dark(file)
                file = next(storage, None)
                continue
            if file is None or row[0] < file.path:
                self.lost(row, "missing on the storage")
            else:
                if row[1] != file.bytes:
                    self.lost(row, _another_size(row, file))
                file = next(storage, None)
            row = next(catalog, None)

    def lost(self, row: CatalogRow, why: str) -> None:
        if not row[2]:
            return
        self.result.lost_count += 1
        if len(self.result.lost) < self.limit:
            self.result.lost.append((CatalogEntry(row[0], int(row[1]), True), why))

    def dark(self, file: FileStat) -> None:
        if file.mtime < self.dark_before:
            self.result.dark_count += 1
            if len(self.result.dark) < self.limit:
                self.result.dark.append(file)


def _another_size(row: CatalogRow, file: FileStat) -> str:
    return f"{file.bytes} bytes on the storage, {row[1]} in the catalog"


class _Window:
    """The next items of one sorted stream and their paths. The caller checks the paths it
    takes (``check``): windows are cut assuming the order, and taking nothing at all shows it
    does not hold."""

    def __init__(
        self,
        items: Iterable[Any],
        what: str,
        paths_of: Callable[[list[Any]], list[str]],
        size: int,
    ) -> None:
        self.items: Iterator[Any] = iter(items)
        self.what = what
        self.paths_of = paths_of
        self.size = max(size, 1)
        self.buffer: list[Any] = []
        self.paths: list[str] = []
        self.done = False
        """the stream has nothing beyond ``buffer``"""
        self.last: str | None = None
        """the last path checked"""

    def fill(self) -> None:
        wanted = self.size - len(self.buffer)
        if self.done or wanted <= 0:
            return
        more = list(islice(self.items, wanted))
        self.done = len(more) < wanted
        self.buffer += more
        self.paths += self.paths_of(more)

    def empty(self) -> bool:
        return self.done and not self.buffer

    def take(self, upto: str | None) -> tuple[list[Any], list[str]]:
        """The items up to path ``upto`` included (every item when None)."""
        count = len(self.paths) if upto is None else bisect_right(self.paths, upto)
        items, paths = self.buffer[:count], self.paths[:count]
        del self.buffer[:count], self.paths[:count]
        return items, paths

    def check(self, paths: list[str]) -> None:
        """``paths``, the next ones of the stream, come after the last checked, increasing."""
        if not paths:
            return
        self.check_next(paths)
        if not all(map(lt, paths, islice(paths, 1, None))):
            for previous, path in zip(paths, islice(paths, 1, None), strict=False):
                if not previous < path:
                    self._out_of_order(path, previous)

    def check_next(self, paths: list[str]) -> None:
        """``paths``, increasing (checked already), come after the last checked."""
        if self.last is not None and not self.last < paths[0]:
            self._out_of_order(paths[0], self.last)
        self.last = paths[-1]

    def _out_of_order(self, path: str, previous: str) -> None:
        raise ListingOutOfOrder(f"the {self.what} is not sorted: {path!r} came after {previous!r}")


def too_many(count: int, files: int, listed: int, fraction: float) -> bool:
    """Whether ``count`` differences exceed ``fraction`` of the RSE's files (the larger of
    what the catalog and the storage hold)."""
    return count > fraction * max(files, listed)
