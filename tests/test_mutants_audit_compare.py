"""What ``core/audit_compare.py`` promises beyond test_audit_compare.py, found by mutation
testing (scripts/mutation.sh): a 1-byte file with another size in the catalog is lost; windows
holding few catalog rows among many files, or three rows, are merged right; a stream so out of
order that a window cuts nothing off is still reported as out of order, naming the stream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lacus.core.audit_compare import CatalogEntry, compare
from lacus.errors import ListingOutOfOrder
from lacus.storage import FileStat

MUTATED = "src/lacus/core/audit_compare.py"
"""scripts/mutation.sh runs this file with the module's other tests."""

OLD = 1.0
DARK_BEFORE = 1_000.0


def test_a_one_byte_file_with_another_size_in_the_catalog_is_lost() -> None:
    result = compare(
        [CatalogEntry("a", 5, True), CatalogEntry("b", 1, True)],
        [FileStat("a", 1, OLD), FileStat("b", 1, OLD)],
        dark_before=DARK_BEFORE,
        limit=10,
    )
    assert result.lost == [(CatalogEntry("a", 5, True), "1 bytes on the storage, 5 in the catalog")]
    assert (result.lost_count, result.dark_count) == (1, 0)


@pytest.mark.parametrize(
    ("known", "lost"),
    [
        (["p00"], ["p00"]),  # one row before twenty files
        (["p10"], []),  # one row among them
        (["p03", "p10", "p99"], ["p99"]),  # three rows, one after them all
        (["p03", "p10", "p15"], []),  # three rows, all among them
    ],
)
def test_few_catalog_rows_among_many_files(known: list[str], lost: list[str]) -> None:
    files = [FileStat(f"p{i:02d}", 7, OLD) for i in range(1, 21)]
    result = compare(
        [CatalogEntry(path, 7, True) for path in known],
        files,
        dark_before=DARK_BEFORE,
        limit=100,
    )
    assert [entry.path for entry, _ in result.lost] == lost
    assert [file.path for file in result.dark] == [f.path for f in files if f.path not in known]
    assert (result.files, result.listed) == (len(known), 20)


@pytest.mark.parametrize("side", ["catalog snapshot", "storage listing"])
def test_a_window_that_cuts_nothing_off_still_names_the_stream_out_of_order(side: str) -> None:
    """Window of three: [c, d, a] against [b, e, f] — both windows end after ``a``, so nothing
    is taken; the broken stream is the one the error names."""
    broken, good = ["c", "d", "a"], ["b", "e", "f"]
    catalog, storage = (broken, good) if side == "catalog snapshot" else (good, broken)
    with pytest.raises(ListingOutOfOrder, match=f"^the {side} is not sorted: 'a' came after 'd'$"):
        compare(
            [CatalogEntry(path, 1, True) for path in catalog],
            [FileStat(path, 1, OLD) for path in storage],
            dark_before=DARK_BEFORE,
            limit=10,
            window=3,
        )


@pytest.mark.parametrize("window", [1, 2, 3, 100])
@pytest.mark.parametrize("side", ["catalog snapshot", "storage listing"])
@pytest.mark.parametrize("where", [0, 1, 2, 5])
def test_the_error_names_the_two_paths_out_of_order(window: int, side: str, where: int) -> None:
    paths = [f"p{i}" for i in range(8)]
    swapped = [*paths[:where], paths[where + 1], paths[where], *paths[where + 2 :]]
    repeated = [*paths[: where + 1], paths[where], *paths[where + 1 :]]
    for broken, previous in ((swapped, paths[where + 1]), (repeated, paths[where])):
        catalog, storage = (broken, paths) if side == "catalog snapshot" else (paths, broken)
        expected = f"^the {side} is not sorted: '{paths[where]}' came after '{previous}'$"
        with pytest.raises(ListingOutOfOrder, match=expected):
            compare(
                [CatalogEntry(path, 1, True) for path in catalog],
                [FileStat(path, 1, OLD) for path in storage],
                dark_before=DARK_BEFORE,
                limit=10,
                window=window,
            )


def test_the_streams_are_read_side_by_side_a_window_at_a_time() -> None:
    """Memory stays bounded: neither stream is read more than a window ahead of the other
    (here both hold the same 1,000 paths)."""
    pulled = {"catalog": 0, "storage": 0}
    ahead: list[int] = []

    def pull(side: str) -> None:
        pulled[side] += 1
        ahead.append(abs(pulled["catalog"] - pulled["storage"]))

    def catalog() -> Iterator[CatalogEntry]:
        for index in range(1_000):
            pull("catalog")
            yield CatalogEntry(f"p{index:04d}", 3, True)

    def storage() -> Iterator[FileStat]:
        for index in range(1_000):
            pull("storage")
            yield FileStat(f"p{index:04d}", 3, OLD)

    result = compare(catalog(), storage(), dark_before=DARK_BEFORE, limit=10, window=8)
    assert (result.files, result.listed, result.lost_count, result.dark_count) == (1000, 1000, 0, 0)
    assert max(ahead) <= 8
