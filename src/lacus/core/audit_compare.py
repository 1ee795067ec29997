"""The audit's comparison of an RSE's catalog with its storage: a merge of two sorted streams.

Pure logic, no I/O. The catalog's replicas of the RSE (every state) and the files on its
storage arrive both sorted by path (Unicode code point order: PostgreSQL's ``COLLATE "C"``,
SQLite's binary collation and every storage listing's ``scan``), so one pass compares them with
memory bounded by the candidates kept — and those are bounded too: past ``limit`` of a kind
they are only counted, because the audit will not act on them anyway.

A *lost* candidate is a replica available in the catalog, older than the grace period, that is
absent from the storage or there with another size. A *dark* candidate is a file on the storage
that no catalog replica of the RSE names, last modified before the grace period. Both are only
candidates: the caller checks them against a second catalog snapshot taken after the listing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from lacus.errors import ListingOutOfOrder
from lacus.storage import FileStat


class CatalogEntry(NamedTuple):
    """One replica of the audited RSE as the first catalog snapshot saw it."""

    path: str
    scope: str
    name: str
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
    catalog: Iterable[CatalogEntry],
    storage: Iterable[FileStat],
    *,
    dark_before: float,
    limit: int,
) -> Comparison:
    """Merge the catalog's and the storage's sorted streams; see the module's docstring.

    ``dark_before``: files modified at or after this POSIX time are too young to be dark.
    ``limit``: keep at most this many candidates of each kind (count the others).
    """
    result = Comparison()
    stored = _ordered(iter(storage), "storage listing")
    known = _ordered(iter(catalog), "catalog snapshot")
    file = next(stored, None)
    entry = next(known, None)
    while file is not None or entry is not None:
        if entry is None or (file is not None and file.path < entry.path):
            assert file is not None
            result.listed += 1
            if file.mtime < dark_before:
                result.dark_count += 1
                if len(result.dark) < limit:
                    result.dark.append(file)
            file = next(stored, None)
            continue
        result.files += 1
        if file is None or entry.path < file.path:
            _lost(result, entry, "missing on the storage", limit)
        else:
            result.listed += 1
            if file.bytes != entry.bytes:
                why = f"{file.bytes} bytes on the storage, {entry.bytes} in the catalog"
                _lost(result, entry, why, limit)
            file = next(stored, None)
        entry = next(known, None)
    return result


def _lost(result: Comparison, entry: CatalogEntry, why: str, limit: int) -> None:
    if not entry.judged:
        return
    result.lost_count += 1
    if len(result.lost) < limit:
        result.lost.append((entry, why))


_Item = TypeVar("_Item", FileStat, CatalogEntry)


def _ordered(items: Iterator[_Item], what: str) -> Iterator[_Item]:
    """The items, checking each path is greater than the one before."""
    previous: str | None = None
    for item in items:
        if previous is not None and item.path <= previous:
            raise ListingOutOfOrder(
                f"the {what} is not sorted: {item.path!r} came after {previous!r}"
            )
        previous = item.path
        yield item


def too_many(count: int, files: int, listed: int, fraction: float) -> bool:
    """Whether ``count`` differences exceed ``fraction`` of the RSE's files (the larger of
    what the catalog and the storage hold)."""
    return count > fraction * max(files, listed)
