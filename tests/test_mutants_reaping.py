"""What ``core/reaping.py`` promises beyond tests/test_reaper.py, found by mutation testing
(scripts/mutation.sh): free-space targets read as documented and met exactly, paging through
equally old replicas, the pass's limit, a failed deletion elsewhere kept, the RSE's counters
and events, and reads recorded only for the replicas read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from lacus.core import reaping, rses
from lacus.core import replicas as core_replicas
from lacus.core.clock import utcnow
from lacus.core.locks import EPOCH
from lacus.db.tables import replicas, requests
from lacus.service import replicas as service_replicas
from lacus.service.lake import Lake
from lacus.types import ProtocolInfo
from tests.rule_helpers import (
    add_rule,
    event_types,
    make_dataset,
    put_files,
    request_rows,
    settle,
)
from tests.test_reaper import configure, names_on, set_replica, used_bytes

MUTATED = "src/lacus/core/reaping.py"
"""scripts/mutation.sh runs this file with the module's other tests."""


def full_alpha(lake: Lake, names: list[str], **attributes: str) -> None:
    """``names`` (100 bytes each) on ALPHA_DISK, tombstoned an hour ago; ALPHA_DISK holds
    1000 bytes in all and gets ``attributes``."""
    make_dataset(lake, "data", "ds", names)
    for name in names:
        set_replica(lake, "ALPHA_DISK", name, tombstone=utcnow() - timedelta(hours=1))
    configure(lake, "ALPHA_DISK", total_bytes=1000, **attributes)


@pytest.mark.parametrize(
    "attributes",
    [
        {"min_free_bytes": "0"},
        {"min_free_bytes": "lots", "min_free_ratio": "half"},
        {"min_free_ratio": "1.5"},
        {"min_free_ratio": "0"},
    ],
    ids=["zero", "unparsable", "ratio-above-one", "ratio-zero"],
)
def test_targets_that_ask_for_nothing_delete_nothing(
    lake: Lake, attributes: dict[str, str]
) -> None:
    names = [f"f{i}" for i in range(10)]  # the RSE is full: 1000 of 1000 bytes used
    full_alpha(lake, names, **attributes)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set(names)


@pytest.mark.parametrize(("target", "deleted"), [("300", 2), ("301", 3)])
def test_a_free_space_target_is_met_exactly(lake: Lake, target: str, deleted: int) -> None:
    names = [f"f{i}" for i in range(9)]  # 900 of 1000 bytes used: 100 free
    full_alpha(lake, names, min_free_bytes=target)
    settle(lake, "reaper")
    assert len(names_on(lake, "ALPHA_DISK")) == 9 - deleted
    assert used_bytes(lake, "ALPHA_DISK") == 900 - 100 * deleted


def test_space_short_on_one_rse_deletes_nothing_elsewhere(lake: Lake) -> None:
    names = [f"f{i}" for i in range(9)]
    full_alpha(lake, names, min_free_bytes="300")
    put_files(lake, "BETA_DISK", "data", ["elsewhere"])
    long_ago = utcnow() - timedelta(days=30)  # older than anything on ALPHA_DISK
    set_replica(lake, "BETA_DISK", "elsewhere", tombstone=long_ago, accessed_at=long_ago)
    settle(lake, "reaper")
    assert names_on(lake, "BETA_DISK") == {"elsewhere"}, "BETA_DISK has no target to meet"


def test_a_pass_picks_no_more_than_its_limit(lake: Lake) -> None:
    names = [f"f{i}" for i in range(9)]
    full_alpha(lake, names, min_free_ratio="1")
    with lake.write() as conn:
        chosen = reaping.pick(conn, limit=2)
        assert len(chosen) == 2
        reaping.restore(conn, chosen)


def needed_elsewhere(lake: Lake, scope: str, names: list[str]) -> None:
    """Files whose copies on ALPHA_DISK are the only sources of transfers to BETA_DISK."""
    make_dataset(lake, scope, "needed", names)
    add_rule(lake, scope, "needed", "BETA_DISK")
    settle(lake, "evaluator")


def picked(lake: Lake, limit: int) -> list[tuple[str, str]]:
    with lake.write() as conn:
        chosen = reaping.pick(conn, limit=limit)
        reaping.restore(conn, chosen)
    return sorted((row.scope, row.name) for row in chosen)


def same_access(lake: Lake, scope: str, names: list[str], when: Any) -> None:
    with lake.write() as conn:
        alpha = rses.get_rse_id(conn, "ALPHA_DISK")
        conn.execute(
            replicas.update()
            .where(
                replicas.c.rse_id == alpha,
                replicas.c.scope == scope,
                replicas.c.name.in_(names),
            )
            .values(accessed_at=when, tombstone=when)
        )


def test_equally_old_replicas_are_paged_through_without_skipping_any(lake: Lake) -> None:
    # 60 replicas the reaper must keep fill more than its first page (50); the two it may
    # delete were read at the very same moment, one on each side of the page's end.
    when = utcnow() - timedelta(days=30)
    needed = [f"n{i:02d}" for i in range(60)]
    needed_elsewhere(lake, "data", needed)
    make_dataset(lake, "data", "spare", ["a0", "s0"])
    same_access(lake, "data", [*needed, "a0", "s0"], when)
    configure(lake, "ALPHA_DISK", total_bytes=6200, min_free_bytes="1000")
    assert picked(lake, limit=5) == [("data", "a0"), ("data", "s0")]


def test_equally_old_replicas_in_two_scopes_are_paged_in_one_order(lake: Lake) -> None:
    when = utcnow() - timedelta(days=30)
    for scope in ("a", "b"):
        needed_elsewhere(lake, scope, [f"n{i:02d}" for i in range(30)])
        same_access(lake, scope, [f"n{i:02d}" for i in range(30)], when)
    make_dataset(lake, "a", "spare", ["s0"])
    same_access(lake, "a", ["s0"], when)
    configure(lake, "ALPHA_DISK", total_bytes=6200, min_free_bytes="1000")
    assert picked(lake, limit=5) == [("a", "s0")]


def test_a_deletion_refused_on_one_rse_keeps_its_replica_there(lake: Lake) -> None:
    with lake.write() as conn:
        dead = rses.add_rse(conn, "DEAD_DISK")  # nothing listens there: every delete fails
        rses.add_protocol(
            conn,
            dead,
            ProtocolInfo(scheme="dav", hostname="127.0.0.1", port=1, prefix="/x", impl="dav"),
        )
        alpha = rses.get_rse_id(conn, "ALPHA_DISK")
    make_dataset(lake, "data", "ds", ["pair"])
    with lake.read() as conn:
        (row,) = conn.execute(select(replicas).where(replicas.c.rse_id == alpha))
    spec = {"scope": "data", "name": "pair", "bytes": row.bytes, "adler32": row.adler32}
    with lake.write() as conn:
        core_replicas.add_replicas(conn, dead, [spec], account="root", deterministic=True)  # type: ignore[list-item]
    for rse in ("ALPHA_DISK", "DEAD_DISK"):
        set_replica(lake, rse, "pair", tombstone=EPOCH)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set()
    with lake.read() as conn:
        (kept,) = conn.execute(select(replicas).where(replicas.c.rse_id == dead))
    assert (kept.name, kept.state) == ("pair", "available")


def test_deleting_counts_down_the_rse_and_tells_the_bytes(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["f0", "f1"])
    with lake.read() as conn:
        before = rses.get_rse(conn, "ALPHA_DISK")
    set_replica(lake, "ALPHA_DISK", "f0", tombstone=EPOCH)
    settle(lake, "reaper")
    with lake.read() as conn:
        after = rses.get_rse(conn, "ALPHA_DISK")
    assert (after["files"], after["used_bytes"]) == (
        before["files"] - 1,
        before["used_bytes"] - 100,
    )
    (event,) = event_types(lake, "replica.deleted")
    assert (event["name"], event["rse"], event["bytes"]) == ("f0", "ALPHA_DISK", 100)


def test_a_read_is_recorded_for_the_replica_read_only(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["f0", "f1"])
    assert service_replicas.record_reads(lake, [("data", "f0", "ALPHA_DISK")]) == 1
    assert service_replicas.record_reads(lake, [("data", "f0", "ALPHA_DISK")]) == 0
    with lake.read() as conn:
        accessed = dict(conn.execute(select(replicas.c.name, replicas.c.accessed_at)).all())
    assert accessed["f0"] is not None
    assert accessed["f1"] is None, "not read: still the least recently used"


def test_only_a_lock_on_this_very_replica_keeps_it(lake: Lake) -> None:
    # A rule on ALPHA_DISK locks a:x there; a rule on BETA_DISK is satisfied by b:y's copy
    # there; other replicas on ALPHA_DISK (another scope, another name, another copy) may go.
    make_dataset(lake, "a", "locked", ["x"])
    make_dataset(lake, "b", "elsewhere", ["y"])
    put_files(lake, "BETA_DISK", "b", ["y"])
    make_dataset(lake, "a", "other", ["z"])
    make_dataset(lake, "b", "same-name", ["x"])
    add_rule(lake, "a", "locked", "ALPHA_DISK")
    add_rule(lake, "b", "elsewhere", "BETA_DISK")
    settle(lake, "evaluator")
    put_files(lake, "GAMMA_TAPE", "a", ["x"])  # a second copy: the locked one still stays
    for name in ("x", "y", "z"):
        set_replica(lake, "ALPHA_DISK", name, tombstone=EPOCH)  # a:x and b:x alike
    settle(lake, "reaper")
    with lake.read() as conn:
        alpha = rses.get_rse_id(conn, "ALPHA_DISK")
        left = set(
            conn.execute(
                select(replicas.c.scope, replicas.c.name).where(replicas.c.rse_id == alpha)
            ).all()
        )
    assert left == {("a", "x")}


def transfer_reading(lake: Lake, rse: str, name: str) -> None:
    """The conveyor copies ``name`` from ``rse`` right now."""
    with lake.write() as conn:
        conn.execute(
            requests.update()
            .where(requests.c.name == name)
            .values(
                state="submitted",
                source_rse_id=rses.get_rse_id(conn, rse),
                claimed_by="conveyor@test",
                lease_until=utcnow() + timedelta(minutes=5),
            )
        )


def test_a_transfer_keeps_only_the_file_it_reads_and_only_while_it_runs(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["read", "other"])
    put_files(lake, "GAMMA_TAPE", "data", ["read", "other"])  # copies kept elsewhere
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    transfer_reading(lake, "ALPHA_DISK", "read")
    with lake.write() as conn:  # "other" failed for good: its source is free again
        conn.execute(
            requests.update()
            .where(requests.c.name == "other")
            .values(state="failed", source_rse_id=rses.get_rse_id(conn, "ALPHA_DISK"))
        )
    for name in ("read", "other"):
        set_replica(lake, "ALPHA_DISK", name, tombstone=EPOCH)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"read"}


def test_a_queued_transfers_only_readable_source_is_kept(lake: Lake) -> None:
    # GAMMA_TAPE holds a copy nobody can read: ALPHA_DISK's is the transfer's only source.
    make_dataset(lake, "data", "ds", ["f"])
    put_files(lake, "GAMMA_TAPE", "data", ["f"])
    with lake.write() as conn:
        rses.update_rse(conn, rses.get_rse_id(conn, "GAMMA_TAPE"), availability_read=False)
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    assert [request.state for request in request_rows(lake)] == ["queued"]
    set_replica(lake, "ALPHA_DISK", "f", tombstone=EPOCH)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"f"}


def test_purged_replicas_go_first_and_a_pass_keeps_to_its_limit(lake: Lake) -> None:
    names = [f"f{i}" for i in range(6)]
    make_dataset(lake, "data", "ds", names)
    configure(lake, "ALPHA_DISK", greedy_deletion="true")
    an_hour_ago = utcnow() - timedelta(hours=1)
    set_replica(lake, "ALPHA_DISK", "f0", tombstone=an_hour_ago)  # due: the RSE is greedy
    for name in ("f1", "f2", "f3"):
        set_replica(lake, "ALPHA_DISK", name, tombstone=EPOCH)  # purged by their rules
    assert picked(lake, limit=1) in ([("data", "f1")], [("data", "f2")], [("data", "f3")])
    assert len(picked(lake, limit=2)) == 2
    # Not greedy any more, but short of space: f0, f4 and f5 may go for space, after the
    # purged ones and within the pass's limit.
    configure(lake, "ALPHA_DISK", greedy_deletion="false", total_bytes=600, min_free_bytes="600")
    for name in ("f4", "f5"):
        set_replica(lake, "ALPHA_DISK", name, tombstone=an_hour_ago)
    assert picked(lake, limit=3) == [("data", "f1"), ("data", "f2"), ("data", "f3")]
    assert len(picked(lake, limit=5)) == 5


def test_a_kept_last_copy_does_not_hold_up_the_deletions_after_it(lake: Lake) -> None:
    make_dataset(lake, "data", "wanted", ["kept"])
    make_dataset(lake, "data", "unwanted", ["gone"])
    with lake.read() as conn:
        gamma = rses.get_rse_id(conn, "GAMMA_TAPE")
    add_rule(lake, "data", "wanted", "GAMMA_TAPE")
    settle(lake, "evaluator")
    with lake.write() as conn:  # the rule's transfer failed for good: nothing reads "kept"
        conn.execute(
            requests.update().where(requests.c.dest_rse_id == gamma).values(state="failed")
        )
    set_replica(lake, "ALPHA_DISK", "kept", tombstone=EPOCH)  # first in the reaper's order
    set_replica(lake, "ALPHA_DISK", "gone", tombstone=EPOCH + timedelta(hours=1))
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"kept"}


def test_of_two_tombstoned_sources_of_a_queued_transfer_one_stays(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["f"])
    put_files(lake, "GAMMA_TAPE", "data", ["f"])
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    for rse in ("ALPHA_DISK", "GAMMA_TAPE"):
        set_replica(lake, rse, "f", tombstone=EPOCH)
    settle(lake, "reaper")
    assert len(names_on(lake, "ALPHA_DISK")) + len(names_on(lake, "GAMMA_TAPE")) == 1


def test_only_greedy_deletion_true_makes_past_tombstones_due(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["past", "future"])
    set_replica(lake, "ALPHA_DISK", "past", tombstone=utcnow() - timedelta(hours=1))
    set_replica(lake, "ALPHA_DISK", "future", tombstone=utcnow() + timedelta(days=1))
    configure(lake, "ALPHA_DISK", archive="true", greedy_deletion="false")
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"past", "future"}
    configure(lake, "ALPHA_DISK", greedy_deletion="TRUE")
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"future"}, "its tombstone has not come yet"
