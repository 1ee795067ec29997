"""The audit's merge (``core.audit_compare``) against a plain one-item-at-a-time merge, and the
first catalog snapshot's order and paths (computed by the database at audit time) on both
backends."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from lacus.core import audits, scopes
from lacus.core.audit_compare import CatalogEntry, compare
from lacus.core.clock import utcnow
from lacus.core.replicas import add_replicas
from lacus.db.tables import replicas, rses
from lacus.errors import ListingOutOfOrder
from lacus.naming import deterministic_path
from lacus.service import Lake
from lacus.service.lake import ROOT
from lacus.storage import FileStat

DARK_BEFORE = 1_000.0


def plain_merge(catalog: list[CatalogEntry], storage: list[FileStat], limit: int) -> Any:
    """What the audit must find, one path at a time (the reference)."""
    files = {f.path: f for f in storage}
    known = {e.path for e in catalog}
    lost = []
    for entry in catalog:
        file = files.get(entry.path)
        if file is None:
            why = "missing on the storage"
        elif file.bytes != entry.bytes:
            why = f"{file.bytes} bytes on the storage, {entry.bytes} in the catalog"
        else:
            continue
        if entry.judged:
            lost.append((entry, why))
    dark = [f for f in storage if f.path not in known and f.mtime < DARK_BEFORE]
    return (len(catalog), len(storage), lost[:limit], dark[:limit], len(lost), len(dark))


def found(result: Any) -> tuple[Any, ...]:
    return (
        result.files,
        result.listed,
        result.lost,
        result.dark,
        result.lost_count,
        result.dark_count,
    )


def streams(rng: random.Random, size: int) -> tuple[list[CatalogEntry], list[FileStat]]:
    """A catalog and a listing that mostly agree, in byte order, with awkward neighbours."""
    stems = ["a", "a/b", "a-b", "a.b", "a/b/c", "é", "z\u00ff", "\U0001f600", "A", "a b"]
    paths = sorted({f"{rng.choice(stems)}/{rng.randrange(size * 3)}" for _ in range(size)})
    catalog, storage = [], []
    for path in paths:
        size_ = rng.randrange(1, 5)
        where = rng.random()
        if where < 0.8 or where >= 0.9:  # on both sides (sometimes with another size)
            judged = rng.random() < 0.9
            catalog.append(CatalogEntry(path, size_, judged))
            wrong = where >= 0.97
            storage.append(
                FileStat(path, size_ + wrong, float(rng.choice((10, DARK_BEFORE, 5_000))))
            )
        elif where < 0.85:  # only in the catalog
            catalog.append(CatalogEntry(path, size_, rng.random() < 0.8))
        else:  # only on the storage, old or young
            storage.append(FileStat(path, size_, float(rng.choice((10, DARK_BEFORE, 5_000)))))
    return catalog, storage


@pytest.mark.parametrize("window", [1, 2, 3, 7, 64, 10_000])
def test_the_merge_finds_what_a_plain_merge_finds(window: int) -> None:
    rng = random.Random(window)
    for round_ in range(30):
        catalog, storage = streams(rng, rng.randrange(0, 300))
        limit = rng.choice((0, 1, 5, 1_000))
        result = compare(
            iter(catalog), iter(storage), dark_before=DARK_BEFORE, limit=limit, window=window
        )
        assert found(result) == plain_merge(catalog, storage, limit), round_


def test_one_empty_side_is_all_lost_or_all_dark() -> None:
    catalog = [CatalogEntry(f"p{i:03d}", i, True) for i in range(25)]
    storage = [FileStat(f"q{i:03d}", i, 1.0) for i in range(25)]
    lost = compare(catalog, [], dark_before=DARK_BEFORE, limit=100, window=4)
    dark = compare([], storage, dark_before=DARK_BEFORE, limit=100, window=4)
    assert [entry for entry, _ in lost.lost] == catalog
    assert dark.dark == storage
    assert (lost.files, lost.listed, dark.files, dark.listed) == (25, 0, 0, 25)


@pytest.mark.parametrize("window", [1, 3, 100])
@pytest.mark.parametrize("side", ["catalog", "storage"])
@pytest.mark.parametrize("where", [0, 1, 2, 5])
def test_a_stream_out_of_order_or_repeated_stops_the_merge(
    window: int, side: str, where: int
) -> None:
    paths = [f"p{i}" for i in range(8)]
    swapped = [*paths[:where], paths[where + 1], paths[where], *paths[where + 2 :]]
    repeated = [*paths[: where + 1], paths[where], *paths[where + 1 :]]
    for broken in (swapped, repeated):
        good_catalog = [CatalogEntry(p, 1, True) for p in paths]
        good_storage = [FileStat(p, 1, 1.0) for p in paths]
        if side == "catalog":
            catalog, storage = [CatalogEntry(p, 1, True) for p in broken], good_storage
        else:
            catalog, storage = good_catalog, [FileStat(p, 1, 1.0) for p in broken]
        with pytest.raises(ListingOutOfOrder, match=f"the {side} .* is not sorted"):
            compare(catalog, storage, dark_before=DARK_BEFORE, limit=10, window=window)


def test_the_snapshot_streams_every_replica_by_its_path_on_the_storage(lake: Lake) -> None:
    """The snapshot's path is the one ``naming`` computes (the database's expression agrees
    with Python, user and group scopes and non-ASCII names included) or the stored one, and
    the snapshot's order is Python's ``str`` order; ``replica_at`` finds both kinds."""
    names = ["plain.h5", "u.dat", "Zeta", "a+b", "_x", "0", "A-b"]
    with lake.write() as conn:
        for scope in ("user.jdoe", "group.phys", "virgo", "userx"):
            scopes.add_scope(conn, scope, account=ROOT)
        rse_id = int(conn.execute(select(rses.c.id).where(rses.c.rse == "ALPHA_DISK")).scalar())
        specs = [
            {"scope": scope, "name": name, "bytes": len(name), "adler32": "00000001"}
            for scope in ("user.jdoe", "group.phys", "virgo", "userx")
            for name in names
        ]
        specs[0]["path"] = "élsewhere/own/path"  # sorts after every ASCII path
        specs[1]["path"] = "Élsewhere/own/path"
        add_replicas(conn, rse_id, specs, account=ROOT, deterministic=True)
    expected = sorted(
        (spec.get("path") or deterministic_path(spec["scope"], spec["name"]), spec["bytes"])
        for spec in specs
    )
    with lake.read() as conn:
        rows = list(audits.snapshot(conn, rse_id, judged_before=utcnow() + timedelta(days=1)))
        at = audits.replica_at(conn, rse_id, deterministic_path("group.phys", "u.dat"))
        own = audits.replica_at(conn, rse_id, "élsewhere/own/path")
        unknown = audits.replica_at(conn, rse_id, deterministic_path("user.jdoe", "nope"))
    assert [(row[0], row[1]) for row in rows] == expected
    assert all(row[2] for row in rows)
    assert (at, own, unknown) == (("group.phys", "u.dat"), ("user.jdoe", "plain.h5"), None)


def test_the_second_snapshot_finds_the_lost_candidates_dids_by_path(lake: Lake) -> None:
    with lake.write() as conn:
        scopes.add_scope(conn, "user.jdoe", account=ROOT)
        rse_id = int(conn.execute(select(rses.c.id).where(rses.c.rse == "ALPHA_DISK")).scalar())
        specs = [
            {"scope": "user.jdoe", "name": f"f{i}", "bytes": 10 + i, "adler32": "00000001"}
            for i in range(4)
        ]
        specs[3]["path"] = "own/place/f3"  # a stored path: found by it, not by its DID
        add_replicas(conn, rse_id, specs, account=ROOT, deterministic=True)
    before = utcnow() + timedelta(seconds=1)
    with lake.write() as conn:  # f1 changed since: no longer lost
        conn.execute(update(replicas).where(replicas.c.name == "f1").values(updated_at=before))
    paths = [deterministic_path("user.jdoe", f"f{i}") for i in range(3)] + ["own/place/f3"]
    elsewhere = deterministic_path("user.jdoe", "f3")  # f3 is not stored there
    found = [(CatalogEntry(p, 1, True), f"why {p}") for p in [*paths, elsewhere, "not/a/file"]]
    with lake.read() as conn:
        lost = audits.confirm_lost(conn, rse_id, found, before=before)
    assert lost == [
        (audits.LostReplica("user.jdoe", "f0", paths[0], 10), f"why {paths[0]}"),
        (audits.LostReplica("user.jdoe", "f2", paths[2], 12), f"why {paths[2]}"),
        (audits.LostReplica("user.jdoe", "f3", paths[3], 13), f"why {paths[3]}"),
    ]
