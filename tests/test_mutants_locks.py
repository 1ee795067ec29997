"""What ``core/locks.py`` promises beyond the rule engine tests, found by mutation testing
(scripts/mutation.sh): releasing a rule's locks tombstones only the replicas no other rule holds,
and touches neither other rules' locks nor the transfers still needed."""

from __future__ import annotations

from sqlalchemy import select

from lacus.core import dids, rses
from lacus.core.locks import EPOCH
from lacus.db.tables import replicas, requests
from lacus.service import rules as service_rules
from lacus.service.lake import Lake
from tests.rule_helpers import (
    ROOT,
    add_rule,
    copy_and_finish,
    lock_rows,
    make_dataset,
    request_rows,
    rse_names,
    settle,
)

MUTATED = "src/lacus/core/locks.py"
"""scripts/mutation.sh runs this file with the module's other tests."""


def tombstones(lake: Lake, rse: str) -> dict[tuple[str, str], object]:
    with lake.read() as conn:
        rse_id = rses.get_rse_id(conn, rse)
        rows = conn.execute(
            select(replicas.c.scope, replicas.c.name, replicas.c.tombstone).where(
                replicas.c.rse_id == rse_id
            )
        )
        return {(row.scope, row.name): row.tombstone for row in rows}


def test_deleting_a_rule_tombstones_only_what_no_other_rule_holds(lake: Lake) -> None:
    make_dataset(lake, "a", "mine", ["x", "w"])
    make_dataset(lake, "a", "theirs", ["y"])
    make_dataset(lake, "b", "other-scope", ["w"])
    make_dataset(lake, "a", "unruled", ["free"])
    with lake.write() as conn:
        dids.attach(conn, "a", "theirs", [("a", "x")])
    mine = add_rule(lake, "a", "mine", "ALPHA_DISK")
    theirs = add_rule(lake, "a", "theirs", "ALPHA_DISK")  # holds a:x too
    add_rule(lake, "b", "other-scope", "ALPHA_DISK")  # holds b:w: same name, another scope
    settle(lake, "evaluator")
    service_rules.delete_rule(lake, ROOT, mine)
    left = tombstones(lake, "ALPHA_DISK")
    assert left.pop(("a", "w")) is not None, "no other rule holds a:w"
    assert left == {key: None for key in left}, "a:x is a:theirs', the rest never were mine"
    service_rules.delete_rule(lake, ROOT, theirs, purge_replicas=True)
    left = tombstones(lake, "ALPHA_DISK")
    assert (left[("a", "x")], left[("a", "y")]) == (EPOCH, EPOCH)
    assert (left[("b", "w")], left[("a", "free")]) == (None, None)


def test_detaching_a_file_releases_only_this_rules_lock_and_keeps_needed_transfers(
    lake: Lake,
) -> None:
    make_dataset(lake, "data", "ds", ["f0", "f1"])
    make_dataset(lake, "data", "also", [])
    with lake.write() as conn:
        dids.attach(conn, "data", "also", [("data", "f0")])
    detached = add_rule(lake, "data", "ds", "BETA_DISK")
    other = add_rule(lake, "data", "also", "BETA_DISK")
    settle(lake, "evaluator")
    with lake.write() as conn:
        dids.detach(conn, "data", "ds", [("data", "f0")])
    settle(lake, "evaluator")
    assert {row.name for row in lock_rows(lake, detached)} == {"f1"}
    assert {row.name for row in lock_rows(lake, other)} == {"f0"}
    assert sorted(request.name for request in request_rows(lake)) == ["f0", "f1"]
    with lake.read() as conn:
        assert conn.execute(select(requests.c.state)).scalars().all() == ["queued", "queued"]


def test_deleting_a_rule_drops_only_its_own_transfers(lake: Lake) -> None:
    make_dataset(lake, "data", "mine", ["f"])
    make_dataset(lake, "data", "to-tape", [])
    make_dataset(lake, "data", "another-file", ["g"])
    make_dataset(lake, "b", "same-name", ["f"])
    with lake.write() as conn:
        dids.attach(conn, "data", "to-tape", [("data", "f")])
    mine = add_rule(lake, "data", "mine", "BETA_DISK")
    add_rule(lake, "data", "to-tape", "GAMMA_TAPE")  # the same file, another RSE
    add_rule(lake, "data", "another-file", "BETA_DISK")
    add_rule(lake, "b", "same-name", "BETA_DISK")
    settle(lake, "evaluator")
    assert len(request_rows(lake)) == 4
    service_rules.delete_rule(lake, ROOT, mine)
    names = rse_names(lake)
    left = {(r.scope, r.name, names[r.dest_rse_id]) for r in request_rows(lake)}
    assert left == {
        ("data", "f", "GAMMA_TAPE"),
        ("data", "g", "BETA_DISK"),
        ("b", "f", "BETA_DISK"),
    }


def test_a_file_arriving_satisfies_only_the_locks_waiting_for_it_there(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["f", "g"])
    make_dataset(lake, "b", "ds", ["f"])
    both = add_rule(lake, "data", "ds", "BETA_DISK|GAMMA_TAPE", copies=2)
    other = add_rule(lake, "b", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    names = rse_names(lake)
    (arriving,) = [
        r
        for r in request_rows(lake)
        if (r.scope, r.name, names[r.dest_rse_id]) == ("data", "f", "BETA_DISK")
    ]
    copy_and_finish(lake, arriving)
    states = {(row.name, names[row.rse_id]): row.state for row in lock_rows(lake, both)}
    assert states == {
        ("f", "BETA_DISK"): "ok",
        ("f", "GAMMA_TAPE"): "replicating",
        ("g", "BETA_DISK"): "replicating",
        ("g", "GAMMA_TAPE"): "replicating",
    }
    assert [row.state for row in lock_rows(lake, other)] == ["replicating"]
