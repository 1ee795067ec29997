"""What ``core/integrity.py`` promises beyond test_integrity*.py, found by mutation testing
(scripts/mutation.sh): a file is declared lost alone (not its neighbours in the scope, not the
same name in another scope, not an upload of it still in progress), with a reason and a rule
error that fit their columns and a history naming who declared it; a good copy counts only
where it can be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from lacus.core import integrity, replicas, rses
from lacus.core.integrity import Declaration
from lacus.db.tables import replicas as replicas_table
from lacus.db.tables import requests
from lacus.naming import deterministic_path
from lacus.service import integrity as service_integrity
from lacus.service.lake import Lake, Principal
from lacus.types import ReplicaState
from tests.rule_helpers import (
    add_rule,
    lock_rows,
    make_dataset,
    put_files,
    rse_prefix,
    rule,
    settle,
)
from tests.test_integrity import SCOPE, flip, run, two_copies

MUTATED = "src/lacus/core/integrity.py"
"""scripts/mutation.sh runs this file with the module's other tests."""

ROOT = Principal("root", admin=True)


def path(lake: Lake, rse: str, scope: str, name: str) -> Path:
    return rse_prefix(lake, rse) / deterministic_path(scope, name)


def replica(lake: Lake, scope: str, name: str, rse: str) -> dict[str, object]:
    with lake.read() as conn:
        row = conn.execute(
            select(replicas_table).where(
                replicas_table.c.scope == scope,
                replicas_table.c.name == name,
                replicas_table.c.rse_id == rses.get_rse_id(conn, rse),
            )
        ).one()
    return dict(row._mapping)


def one_damaged_copy(lake: Lake, name: str, *, reason: str | None = None) -> str:
    """``virgo:<name>`` with one copy on ALPHA_DISK, kept by a rule, its bytes flipped (for the
    scrubber to find), or declared bad with ``reason``; returns the rule's id."""
    make_dataset(lake, SCOPE, f"ds-{name}", [name], rse="ALPHA_DISK", size=500)
    rule_id = add_rule(lake, SCOPE, f"ds-{name}", "ALPHA_DISK")
    settle(lake)
    if reason is None:
        flip(path(lake, "ALPHA_DISK", SCOPE, name))
    else:
        with lake.write() as conn:
            alpha = rses.get_rse_id(conn, "ALPHA_DISK")
            declared = [Declaration(SCOPE, name, alpha, reason)]
            integrity.declare(conn, declared, ReplicaState.BAD, account="root")
    return rule_id


def test_a_lost_file_takes_no_other_replica_with_it(lake: Lake) -> None:
    """virgo:only has one copy, damaged: lost. In the same pass virgo:fixable (same scope) and
    ligo:only (same name) each have a damaged copy and a good one: repaired, never lost. An
    upload of virgo:only still copying to BETA_DISK is left as it is."""
    two_copies(lake, ["fixable"])
    make_dataset(lake, "ligo", "lds", ["only"], rse="ALPHA_DISK", size=2000)
    add_rule(lake, "ligo", "lds", "ALPHA_DISK|BETA_DISK", copies=2)
    single = one_damaged_copy(lake, "only")
    first = replica(lake, SCOPE, "only", "ALPHA_DISK")
    with lake.write() as conn:
        upload = {"scope": SCOPE, "name": "only", "bytes": first["bytes"]}
        upload |= {"adler32": first["adler32"]}
        replicas.add_replicas(
            conn,
            rses.get_rse_id(conn, "BETA_DISK"),
            [upload],  # type: ignore[list-item]
            account="root",
            deterministic=True,
            state=ReplicaState.COPYING,
        )
    flip(path(lake, "BETA_DISK", SCOPE, "fixable"))
    flip(path(lake, "BETA_DISK", "ligo", "only"))
    run(lake, "scrubber")
    run(lake, "necromancer")

    assert replica(lake, SCOPE, "only", "ALPHA_DISK")["state"] == "lost"
    assert replica(lake, SCOPE, "only", "BETA_DISK")["state"] == "copying"
    assert replica(lake, SCOPE, "fixable", "BETA_DISK")["state"] == "bad"  # a copy on its way
    assert replica(lake, "ligo", "only", "BETA_DISK")["state"] == "bad"
    run(lake, "necromancer", "conveyor", "repairer")
    assert replica(lake, SCOPE, "fixable", "BETA_DISK")["state"] == "available"
    assert replica(lake, "ligo", "only", "BETA_DISK")["state"] == "available"
    assert rule(lake, single)["state"] == "stuck"
    lost = [e for e in service_integrity.history(lake, ROOT, SCOPE, "only") if e["state"] == "lost"]
    assert [(e["rse"], e["account"]) for e in lost] == [("ALPHA_DISK", "root")]
    history = service_integrity.history(lake, ROOT, SCOPE, "fixable")
    (repaired,) = [
        (e["rse"], e["reason"], e["account"]) for e in history if e["state"] == "repaired"
    ]
    assert repaired == ("BETA_DISK", "copied again from a good copy", "root")


def test_a_long_reason_is_cut_to_its_column(lake: Lake) -> None:
    """The reason (255 characters) and the rule's error (255) are cut to fit: PostgreSQL
    refuses a longer value, and the necromancer's pass with it."""
    rule_id = one_damaged_copy(lake, "long", reason="r" * 300)
    assert replica(lake, SCOPE, "long", "ALPHA_DISK")["state_reason"] == "r" * 255
    run(lake, "necromancer")
    lost = replica(lake, SCOPE, "long", "ALPHA_DISK")
    assert lost["state"] == "lost"
    assert lost["state_reason"] == ("no good copy left (" + "r" * 300)[:255]
    error = rule(lake, rule_id)["error"]
    assert error == f"FileLost: {SCOPE}:long has {lost['state_reason']}"[:255]
    one_damaged_copy(lake, "quiet", reason="")  # declared without saying why
    run(lake, "necromancer")
    assert replica(lake, SCOPE, "quiet", "ALPHA_DISK")["state_reason"] == "no good copy left (bad)"


def test_a_suspicion_cleared_by_reading_back_is_in_the_history(lake: Lake) -> None:
    two_copies(lake, ["s"])
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        declared = [Declaration(SCOPE, "s", beta, "download mismatch")]
        integrity.declare(conn, declared, ReplicaState.SUSPICIOUS, account="alice")
    run(lake, "necromancer")
    history = service_integrity.history(lake, ROOT, SCOPE, "s")
    assert [(e["rse"], e["state"], e["reason"], e["account"]) for e in history] == [
        ("BETA_DISK", "suspicious", "download mismatch", "alice"),
        ("BETA_DISK", "available", "read back: the bytes are right", "root"),
    ]


def test_a_good_copy_counts_only_where_it_can_be_read(lake: Lake) -> None:
    """The file's other copy is on an RSE closed for reading: nothing can copy from it, so the
    damaged replica's file is lost (the rule stuck, saying why) rather than waiting for a
    transfer that has no source."""
    _, rule_id = two_copies(lake, ["x"])
    with lake.write() as conn:
        rses.update_rse(conn, rses.get_rse_id(conn, "BETA_DISK"), availability_read=False)
    flip(path(lake, "ALPHA_DISK", SCOPE, "x"))
    run(lake, "scrubber")
    run(lake, "necromancer")
    assert replica(lake, SCOPE, "x", "ALPHA_DISK")["state"] == "lost"
    assert "FileLost" in (rule(lake, rule_id)["error"] or "")


def declare_bad(lake: Lake, rse: str, *names: str) -> None:
    """Each of ``names`` declared bad on ``rse``, one transaction each (in this order)."""
    for name in names:
        with lake.write() as conn:
            declared = [Declaration(SCOPE, name, rses.get_rse_id(conn, rse), "test")]
            assert integrity.declare(conn, declared, ReplicaState.BAD, account="root")


def repair(lake: Lake, *, limit: int = 500) -> integrity.Repairs:
    with lake.write() as conn:
        return integrity.repair_bad(conn, limit=limit)


def test_repairs_take_the_oldest_declarations_first_within_the_limit(lake: Lake) -> None:
    two_copies(lake, ["a", "b", "c"])
    declare_bad(lake, "BETA_DISK", "c", "b", "a")
    assert repair(lake, limit=2).queued == 2
    with lake.read() as conn:
        queued = set(conn.scalars(select(requests.c.name)))
    assert queued == {"c", "b"}
    assert repair(lake).queued == 1  # then the last one, once


def test_a_bad_replica_dropped_or_left_to_the_repairer_is_decided_once(lake: Lake) -> None:
    """A bad copy no rule keeps is tombstoned (another good copy exists), one on an RSE that
    cannot be written has its locks stuck for the repairer: the next pass does nothing again."""
    _, rule_id = two_copies(lake, ["kept1", "kept2"])
    make_dataset(lake, SCOPE, "loose", ["spare1", "spare2"], rse="ALPHA_DISK")
    put_files(lake, "BETA_DISK", SCOPE, ["spare1", "spare2"])  # second copies no rule keeps
    with lake.write() as conn:
        rses.update_rse(conn, rses.get_rse_id(conn, "BETA_DISK"), availability_write=False)
    declare_bad(lake, "BETA_DISK", "spare1", "spare2", "kept1", "kept2")
    first = repair(lake)
    assert (first.dropped, first.moved, first.queued, first.lost) == (2, 2, 0, 0)
    with lake.read() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
    beta_locks = {
        (lock.name, lock.state) for lock in lock_rows(lake, rule_id) if lock.rse_id == beta
    }
    assert beta_locks == {("kept1", "stuck"), ("kept2", "stuck")}
    assert repair(lake).total == 0
    for name in ("spare1", "spare2"):
        assert replica(lake, SCOPE, name, "BETA_DISK")["tombstone"] is not None


def test_a_copy_queued_for_the_same_name_in_another_scope_holds_nothing_up(lake: Lake) -> None:
    two_copies(lake, ["z"])
    make_dataset(lake, "ligo", "lds", ["z"], rse="ALPHA_DISK", size=2000)
    add_rule(lake, "ligo", "lds", "ALPHA_DISK|BETA_DISK", copies=2)
    settle(lake)
    declare_bad(lake, "BETA_DISK", "z")
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        declared = [Declaration("ligo", "z", beta, "test")]
        integrity.declare(conn, declared, ReplicaState.BAD, account="root")
    assert repair(lake, limit=1).queued == 1  # virgo:z, declared first
    assert repair(lake).queued == 1  # ligo:z
    with lake.read() as conn:
        queued = {
            (r.scope, r.name) for r in conn.execute(select(requests.c.scope, requests.c.name))
        }
    assert queued == {(SCOPE, "z"), ("ligo", "z")}


def test_a_copy_in_doubt_on_an_unreadable_rse_keeps_the_file_from_being_lost(lake: Lake) -> None:
    """Its other copy is unavailable (it may come back) on an RSE closed for reading: the bad
    replica waits, neither lost nor repaired."""
    _, rule_id = two_copies(lake, ["w"])
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        declared = [Declaration(SCOPE, "w", beta, "disk server down")]
        integrity.declare(conn, declared, ReplicaState.UNAVAILABLE, account="root")
        rses.update_rse(conn, beta, availability_read=False)
    declare_bad(lake, "ALPHA_DISK", "w")
    assert repair(lake).total == 0
    assert replica(lake, SCOPE, "w", "ALPHA_DISK")["state"] == "bad"
    assert "FileLost" not in (rule(lake, rule_id)["error"] or "")


def test_only_suspicious_bad_and_unavailable_may_be_declared(lake: Lake) -> None:
    two_copies(lake, ["v"])
    with lake.write() as conn:
        declared = [Declaration(SCOPE, "v", rses.get_rse_id(conn, "ALPHA_DISK"), "x")]
    for state in (ReplicaState.AVAILABLE, ReplicaState.LOST):
        with lake.write() as conn:
            match = f"^cannot declare a replica {state}$"
            with pytest.raises(ValueError, match=match):
                integrity.declare(conn, declared, state, account="root")
    assert replica(lake, SCOPE, "v", "ALPHA_DISK")["state"] == "available"


def test_enough_reports_make_it_bad_in_the_name_of_the_last_reporter(lake: Lake) -> None:
    two_copies(lake, ["r"])
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
    for account in ("alice", "bob", "carol"):
        with lake.write() as conn:
            declared = [Declaration(SCOPE, "r", beta, f"mismatch seen by {account}")]
            integrity.declare(conn, declared, ReplicaState.SUSPICIOUS, account=account)
    history = service_integrity.history(lake, ROOT, SCOPE, "r")
    assert [(e["state"], e["account"]) for e in history] == [
        ("suspicious", "alice"),
        ("suspicious", "bob"),
        ("suspicious", "carol"),
        ("bad", "carol"),
    ]
    assert replica(lake, SCOPE, "r", "BETA_DISK")["state_account"] == "carol"


def test_with_a_limit_of_two_the_second_report_makes_it_bad(lake: Lake) -> None:
    two_copies(lake, ["t"])
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
    states = []
    for report in range(2):
        with lake.write() as conn:
            declared = [Declaration(SCOPE, "t", beta, f"report {report}")]
            integrity.declare(
                conn, declared, ReplicaState.SUSPICIOUS, account="root", suspicious_limit=2
            )
        states.append(replica(lake, SCOPE, "t", "BETA_DISK")["state"])
    assert states == ["suspicious", "bad"]


def set_writable(lake: Lake, rse: str, writable: bool) -> None:
    with lake.write() as conn:
        rses.update_rse(conn, rses.get_rse_id(conn, rse), availability_write=writable)


def test_a_stuck_lock_holds_up_only_its_own_replica(lake: Lake) -> None:
    """ligo:k's lock on BETA_DISK is stuck (BETA_DISK could not be written when its copy went
    bad): virgo:k, the same name in another scope, is still copied again there. virgo:y's lock
    on ALPHA_DISK is stuck: when its copy on BETA_DISK goes bad too, the file is lost (both
    copies), not left waiting."""
    two_copies(lake, ["k", "y"])
    make_dataset(lake, "ligo", "lds", ["k"], rse="ALPHA_DISK", size=2000)
    add_rule(lake, "ligo", "lds", "ALPHA_DISK|BETA_DISK", copies=2)
    settle(lake)
    set_writable(lake, "BETA_DISK", False)
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        integrity.declare(
            conn, [Declaration("ligo", "k", beta, "t")], ReplicaState.BAD, account="root"
        )
    assert repair(lake).moved == 1
    set_writable(lake, "BETA_DISK", True)
    set_writable(lake, "ALPHA_DISK", False)
    declare_bad(lake, "ALPHA_DISK", "y")
    assert repair(lake).moved == 1
    declare_bad(lake, "BETA_DISK", "k", "y")
    done = repair(lake)
    assert (done.queued, done.lost) == (1, 2)
    assert replica(lake, SCOPE, "y", "ALPHA_DISK")["state"] == "lost"
    assert replica(lake, SCOPE, "y", "BETA_DISK")["state"] == "lost"
