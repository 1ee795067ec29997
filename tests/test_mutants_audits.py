"""What ``core/audits.py`` promises beyond test_integrity*.py, found by mutation testing
(scripts/mutation.sh): the second catalog look of an audit. A dark candidate the catalog came to
know on this RSE during the listing is not dark (known on another RSE only, it is); a multi-hop
scratch copy is dark only once its request is gone; the quarantine keeps one row per file and
RSE, remembers when each was last seen, and says which files are unfinished writes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lacus.core import audits, integrity, rses
from lacus.core import replicas as core_replicas
from lacus.core.audit_compare import CatalogEntry
from lacus.core.clock import utcnow
from lacus.core.integrity import Declaration
from lacus.db.tables import quarantine, requests
from lacus.db.tables import replicas as replicas_table
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.storage import FileStat
from lacus.types import FileSpec, ReplicaState
from tests.rule_helpers import add_rule, make_dataset, put_files, settle

MUTATED = "src/lacus/core/audits.py"
"""scripts/mutation.sh runs this file with the module's other tests."""

SCOPE = "virgo"
OLD = 1_000.0


def ids(lake: Lake) -> tuple[int, int]:
    with lake.read() as conn:
        return rses.get_rse_id(conn, "ALPHA_DISK"), rses.get_rse_id(conn, "BETA_DISK")


def live_request(lake: Lake) -> int:
    """The id of a transfer request still queued (``virgo:moving`` to BETA_DISK)."""
    make_dataset(lake, SCOPE, "ds-moving", ["moving"], rse="ALPHA_DISK")
    add_rule(lake, SCOPE, "ds-moving", "BETA_DISK")
    settle(lake, "evaluator")  # places the rule: a request, not yet copied
    with lake.read() as conn:
        return int(conn.execute(select(requests.c.id)).scalar_one())


def test_a_dark_candidate_known_by_now_on_this_rse_is_not_dark(lake: Lake) -> None:
    make_dataset(lake, SCOPE, "ds", ["here", "there"], rse="ALPHA_DISK")
    put_files(lake, "BETA_DISK", SCOPE, ["there"])
    request = live_request(lake)
    alpha, beta = ids(lake)
    here, there = deterministic_path(SCOPE, "here"), deterministic_path(SCOPE, "there")
    placed = "custom/placed.dat"  # a replica registered at a path of its own
    with lake.write() as conn:
        spec: FileSpec = {"scope": SCOPE, "name": "placed", "bytes": 1, "adler32": "00020002"}
        core_replicas.add_replicas(
            conn, alpha, [{**spec, "path": placed}], account="root", deterministic=True
        )
    elsewhere = (
        f"{SCOPE}/00/00/here" if not here.startswith(f"{SCOPE}/00/00/") else f"{SCOPE}/ff/ff/here"
    )
    candidates = [
        here,  # registered on ALPHA_DISK only
        placed,  # the same
        there,  # on both
        elsewhere,  # virgo:here's name, in the hash layout of no DID
        f"{audits.HOP_DIR}/{request}/x",  # scratch copy of a live request
        f"{audits.HOP_DIR}/{request + 1000}/x",  # of a request that is gone
        f"{audits.HOP_DIR}/{request}",  # not a scratch copy: the directory level is missing
        f"{audits.HOP_DIR}/r{request}/x",  # not a request id
        f"data/{request}/x",  # not under the scratch directory
    ]
    found = [FileStat(path, 1, OLD) for path in candidates]
    with lake.read() as conn:
        on_beta = [f.path for f in audits.confirm_dark(conn, beta, found)]
        on_alpha = [f.path for f in audits.confirm_dark(conn, alpha, found)]
        assert audits.replica_at(conn, beta, here) is None
        assert audits.replica_at(conn, beta, there) == (SCOPE, "there")
        assert audits.replica_at(conn, alpha, here) == (SCOPE, "here")
    gone = [candidates[index] for index in (5, 6, 7, 8)]
    assert on_beta == [here, placed, elsewhere, *gone]
    assert on_alpha == [elsewhere, *gone]


def test_a_quarantined_file_registered_since_is_no_longer_unknown(lake: Lake) -> None:
    make_dataset(lake, SCOPE, "ds", ["late"], rse="ALPHA_DISK")
    alpha, beta = ids(lake)
    late, stray = deterministic_path(SCOPE, "late"), "stray/file"
    with lake.write() as conn:
        audits.quarantine_files(conn, alpha, [FileStat(stray, 1, OLD)], reason="dark")
        audits.quarantine_files(conn, beta, [FileStat(late, 1, OLD)], reason="dark")
        entries = audits.list_quarantine(conn, limit=10)
        # Asked about ALPHA_DISK, where virgo:late is registered now: only the stray file.
        unknown = audits.still_unknown(conn, alpha, entries)
        assert [(e.rse, e.path) for e in unknown] == [("ALPHA_DISK", stray)]
        beta_entries = audits.list_quarantine(conn, beta, limit=10)
        assert audits.still_unknown(conn, beta, beta_entries) == beta_entries


def test_the_quarantine_keeps_one_row_per_file_and_when_it_was_last_seen(lake: Lake) -> None:
    alpha, beta = ids(lake)
    first = [FileStat("d/a", 1, OLD), FileStat("d/b", 2, OLD)]
    with lake.write() as conn:
        assert audits.quarantine_files(conn, alpha, first, reason="dark") == 2
        assert audits.quarantine_files(conn, beta, first[:1], reason="dark") == 1  # other RSE
    second_audit = utcnow() + timedelta(seconds=1)
    with lake.write() as conn:
        again = [FileStat("d/a", 1, OLD), FileStat("d/c", 3, OLD)]
        # Later, an audit that still finds a and now c, but not b.
        conn.execute(quarantine.update().values(seen_at=utcnow() - timedelta(hours=1)))
        assert audits.quarantine_files(conn, alpha, again, reason="dark") == 1
        since = second_audit - timedelta(minutes=30)
        assert audits.forget_unseen(conn, alpha, since=since) == 1
        assert audits.forget_unseen(conn, beta, since=since) == 1  # not seen again there
        rows = conn.execute(select(quarantine.c.rse_id, quarantine.c.path)).all()
    assert sorted((rse_id, path) for rse_id, path in rows) == [(alpha, "d/a"), (alpha, "d/c")]


def test_a_thousand_and_one_dark_files_are_all_quarantined(lake: Lake) -> None:
    alpha, _ = ids(lake)
    files = [FileStat(f"d/{index:04d}", 1, OLD) for index in range(1_001)]
    with lake.write() as conn:
        assert audits.quarantine_files(conn, alpha, files, reason="dark") == 1_001
        stored = conn.execute(select(func.count()).select_from(quarantine)).scalar()
    assert stored == 1_001


def test_sizes_and_times_are_kept_only_when_known(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's mtime is kept in UTC whatever the server's time zone; a file declared dark by
    an admin (``sized=False``) has neither size nor mtime (the dark reaper needs a size)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        alpha, _ = ids(lake)
        moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        listed = [FileStat("d/listed", 7, moment.timestamp())]
        declared = [FileStat("d/declared", 7, moment.timestamp())]
        with lake.write() as conn:
            audits.quarantine_files(conn, alpha, listed, reason="dark")
            audits.quarantine_files(conn, alpha, declared, reason="by hand", sized=False)
            rows = {
                row.path: (row.bytes, row.mtime)
                for row in conn.execute(
                    select(quarantine.c.path, quarantine.c.bytes, quarantine.c.mtime)
                )
            }
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert rows == {"d/listed": (7, moment.replace(tzinfo=None)), "d/declared": (None, None)}


def test_a_lost_candidate_is_confirmed_only_if_still_available_and_unchanged(lake: Lake) -> None:
    """Candidates at a hash-layout path and at a path of their own: lost when still available
    and not changed since the first snapshot; not when declared suspicious meanwhile, or
    changed after it."""
    make_dataset(lake, SCOPE, "ds", ["a", "b", "c"], rse="ALPHA_DISK")
    alpha, _ = ids(lake)
    with lake.write() as conn:
        for name in ("p", "q"):
            spec: FileSpec = {"scope": SCOPE, "name": name, "bytes": 1, "adler32": "00020002"}
            core_replicas.add_replicas(
                conn, alpha, [{**spec, "path": f"own/{name}"}], account="root", deterministic=True
            )
    before = utcnow() + timedelta(seconds=1)
    with lake.write() as conn:
        for name in ("b", "q"):
            key = [Declaration(SCOPE, name, alpha, "meanwhile")]
            integrity.declare(conn, key, ReplicaState.SUSPICIOUS, account="root")
        conn.execute(
            replicas_table.update()
            .where(replicas_table.c.name == "c")
            .values(updated_at=before + timedelta(seconds=1))
        )
    paths = [deterministic_path(SCOPE, n) for n in ("a", "b", "c")] + ["own/p", "own/q"]
    found = [(CatalogEntry(path, 1, True), "missing on the storage") for path in paths]
    with lake.read() as conn:
        lost = audits.confirm_lost(conn, alpha, found, before=before)
    assert [(replica.name, why) for replica, why in lost] == [
        ("a", "missing on the storage"),
        ("p", "missing on the storage"),
    ]


def test_an_unfinished_write_is_quarantined_as_such(lake: Lake) -> None:
    alpha, _ = ids(lake)
    part = "virgo/ab/cd/.f.lacus-part-0a1b2c"
    files = [FileStat(part, 5, OLD), FileStat("virgo/ab/cd/f", 5, OLD)]
    with lake.write() as conn:
        audits.quarantine_files(conn, alpha, files, reason="dark")
        reasons = dict(conn.execute(select(quarantine.c.path, quarantine.c.reason)).all())
    assert reasons == {part: "temporary file of an unfinished write", "virgo/ab/cd/f": "dark"}
