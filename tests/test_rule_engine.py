"""The rule engine end to end on both catalogs: placement, locks and requests, content changes,
quotas, expiry, lifecycle, subscriptions, repair and deletion."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from lacus.core import dids, expiry, rses, transfers
from lacus.core.clock import utcnow
from lacus.db.tables import locks, replicas, requests, rules
from lacus.errors import (
    AccessDenied,
    InsufficientAccountLimit,
    InsufficientTargetRSEs,
    RuleReplaceFailed,
    UnsupportedOperation,
)
from lacus.naming import deterministic_path
from lacus.service import lifecycle, quotas, subscriptions
from lacus.service import rules as service_rules
from lacus.service.lake import Lake, Principal
from lacus.types import RuleGrouping
from tests.rule_helpers import (
    ROOT,
    add_rule,
    copy_and_finish,
    count,
    event_types,
    lock_rows,
    make_dataset,
    put_files,
    request_rows,
    rse_names,
    rse_prefix,
    rule,
    settle,
)


def add_rse(lake: Lake, name: str, tmp: Path, **attributes: str) -> int:
    from lacus.types import ProtocolInfo

    prefix = tmp / name
    prefix.mkdir(parents=True, exist_ok=True)
    with lake.write() as conn:
        rse_id = rses.add_rse(conn, name, attributes=attributes)
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(prefix), impl="posix"),
        )
    return rse_id


def files(n: int, stem: str = "f") -> list[str]:
    return [f"{stem}{i:04d}" for i in range(n)]


def test_rule_locks_existing_replicas_and_requests_the_missing_ones(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(20))
    rule_id = add_rule(lake, "data", "ds", "qos=DISK", copies=2)
    assert rule(lake, rule_id)["state"] == "replicating"
    settle(lake, "evaluator")
    names = rse_names(lake)
    by_rse = Counter((names[row.rse_id], row.state) for row in lock_rows(lake, rule_id))
    assert by_rse == {("ALPHA_DISK", "ok"): 20, ("BETA_DISK", "replicating"): 20}
    waiting = request_rows(lake)
    assert len(waiting) == 20
    assert {names[r.dest_rse_id] for r in waiting} == {"BETA_DISK"}
    info = rule(lake, rule_id)
    assert (info["locks_ok_cnt"], info["locks_replicating_cnt"], info["state"]) == (
        20,
        20,
        "replicating",
    )
    for request in waiting:
        copy_and_finish(lake, request)
    info = rule(lake, rule_id)
    assert (info["locks_ok_cnt"], info["locks_replicating_cnt"], info["state"]) == (40, 0, "ok")
    assert request_rows(lake) == []
    assert [e["rule_id"] for e in event_types(lake, "rule.ok")] == [rule_id]


def test_placement_prefers_rses_holding_the_data(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(10), rse="BETA_DISK")
    rule_id = add_rule(lake, "data", "ds", "qos=DISK", copies=1)
    settle(lake, "evaluator")
    names = rse_names(lake)
    assert {names[row.rse_id] for row in lock_rows(lake, rule_id)} == {"BETA_DISK"}
    assert rule(lake, rule_id)["state"] == "ok"
    assert request_rows(lake) == []


def test_never_two_copies_on_one_rse_and_too_many_copies_is_refused(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(5))
    with pytest.raises(InsufficientTargetRSEs, match="3 copies"):
        add_rule(lake, "data", "ds", "qos=DISK", copies=3)
    rule_id = add_rule(lake, "data", "ds", "*", copies=3)
    settle(lake, "evaluator")
    per_file = Counter((row.scope, row.name) for row in lock_rows(lake, rule_id))
    assert set(per_file.values()) == {3}
    assert len({(r.scope, r.name, r.rse_id) for r in lock_rows(lake, rule_id)}) == 15


@pytest.mark.parametrize("grouping", ["dataset", "all", "none"])
def test_grouping_keeps_datasets_together_or_spreads_files(
    lake: Lake, tmp_path: Path, grouping: str
) -> None:
    for index in range(4):
        add_rse(lake, f"SITE{index}_DISK", tmp_path, tier="2")
    make_dataset(lake, "data", "ds1", files(30, "a"))
    make_dataset(lake, "data", "ds2", files(30, "b"))
    with lake.write() as conn:
        dids.add_collection(conn, "data", "box", dids.DIDType.CONTAINER, account="root")
        dids.attach(conn, "data", "box", [("data", "ds1"), ("data", "ds2")])
    rule_id = add_rule(lake, "data", "box", "tier=2", grouping=RuleGrouping(grouping))
    settle(lake, "evaluator")
    rows = lock_rows(lake, rule_id)
    assert len(rows) == 60
    per_dataset = {
        stem: {row.rse_id for row in rows if row.name.startswith(stem)} for stem in ("a", "b")
    }
    if grouping == "all":
        assert len(per_dataset["a"] | per_dataset["b"]) == 1
    elif grouping == "dataset":
        assert len(per_dataset["a"]) == 1
        assert len(per_dataset["b"]) == 1
    else:  # 60 files over 4 RSEs at random: all on one RSE has odds 4 * 4**-60
        assert len(per_dataset["a"] | per_dataset["b"]) > 1


def test_weight_and_free_space_steer_placement(lake: Lake, tmp_path: Path) -> None:
    add_rse(lake, "HEAVY_DISK", tmp_path, pool="w", share="10")
    add_rse(lake, "NONE_DISK", tmp_path, pool="w", share="0")
    full = add_rse(lake, "FULL_DISK", tmp_path, pool="w", share="10")
    with lake.write() as conn:
        rses.update_rse(conn, full, total_bytes=50)  # too small for a 100-byte file
    make_dataset(lake, "data", "ds", files(40))
    rule_id = add_rule(lake, "data", "ds", "pool=w", weight="share", grouping=RuleGrouping.NONE)
    settle(lake, "evaluator")
    names = rse_names(lake)
    assert {names[row.rse_id] for row in lock_rows(lake, rule_id)} == {"HEAVY_DISK"}


def test_files_attached_later_get_locks_and_detached_ones_lose_them(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(3))
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    assert len(lock_rows(lake, rule_id)) == 3
    put_files(lake, "ALPHA_DISK", "data", ["late1", "late2"])
    with lake.write() as conn:
        dids.attach(conn, "data", "ds", [("data", "late1"), ("data", "late2")])
    settle(lake, "evaluator")
    assert {row.name for row in lock_rows(lake, rule_id)} == {
        "f0000",
        "f0001",
        "f0002",
        "late1",
        "late2",
    }
    assert count(lake, requests) == 5
    with lake.write() as conn:
        dids.detach(conn, "data", "ds", [("data", "f0000")])
    settle(lake, "evaluator")
    assert "f0000" not in {row.name for row in lock_rows(lake, rule_id)}
    assert count(lake, requests, requests.c.name == "f0000") == 0
    assert rule(lake, rule_id)["locks_replicating_cnt"] == 4


def test_container_rules_follow_datasets_attached_to_the_container(lake: Lake) -> None:
    make_dataset(lake, "data", "ds1", files(2, "a"))
    with lake.write() as conn:
        dids.add_collection(conn, "data", "box", dids.DIDType.CONTAINER, account="root")
        dids.attach(conn, "data", "box", [("data", "ds1")])
    rule_id = add_rule(lake, "data", "box", "ALPHA_DISK")
    settle(lake, "evaluator")
    make_dataset(lake, "data", "ds2", files(3, "b"))
    with lake.write() as conn:
        dids.attach(conn, "data", "box", [("data", "ds2")])
    settle(lake, "evaluator")
    info = rule(lake, rule_id)
    assert (info["locks_ok_cnt"], info["state"]) == (5, "ok")


def test_quota_is_checked_before_a_rule_is_accepted(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(10))  # 1000 bytes
    quotas.set_limit(lake, ROOT, "root", "BETA_DISK", 999)
    with pytest.raises(InsufficientAccountLimit):
        add_rule(lake, "data", "ds", "BETA_DISK")
    quotas.set_limit(lake, ROOT, "root", "BETA_DISK", 1000)
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    assert rule(lake, rule_id)["locks_replicating_cnt"] == 10
    usage = quotas.usage(lake, ROOT, "root")
    (beta,) = [entry for entry in usage["rses"] if entry["rse"] == "BETA_DISK"]
    assert (beta["bytes"], beta["bytes_remaining"]) == (1000, 0)
    # An RSE no limit covers takes none of a limited account's copies.
    with pytest.raises(InsufficientAccountLimit):
        add_rule(lake, "data", "ds", "ALPHA_DISK")
    add_rule(lake, "data", "ds", "ALPHA_DISK", ignore_account_limit=True)


def test_deleting_a_rule_tombstones_replicas_and_purge_deletes_them(lake: Lake) -> None:
    data = make_dataset(lake, "data", "ds", files(4))
    keep = add_rule(lake, "data", "ds", "ALPHA_DISK")
    settle(lake, "evaluator")
    with lake.read() as conn:
        assert not conn.execute(replicas.select().where(replicas.c.tombstone.is_not(None))).first()
    service_rules.delete_rule(lake, ROOT, keep)
    with lake.read() as conn:
        stones = list(conn.execute(replicas.select().where(replicas.c.tombstone.is_not(None))))
    assert len(stones) == 4
    assert all(row.tombstone.year > 2000 for row in stones)
    settle(lake, "reaper")  # a tombstone of now waits for space pressure (ALPHA is not greedy)
    assert count(lake, replicas) == 4
    purge = add_rule(lake, "data", "ds", "ALPHA_DISK", purge_replicas=True)
    settle(lake, "evaluator")
    with lake.read() as conn:  # locked again: the tombstones are lifted
        assert not conn.execute(replicas.select().where(replicas.c.tombstone.is_not(None))).first()
    service_rules.delete_rule(lake, ROOT, purge)
    settle(lake, "reaper")
    assert count(lake, replicas) == 0
    prefix = rse_prefix(lake, "ALPHA_DISK")
    assert not any((prefix / deterministic_path("data", name)).exists() for name in data)
    assert len(event_types(lake, "replica.deleted")) == 4


def test_the_last_replica_of_a_file_a_rule_wants_is_never_deleted(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(3))
    doomed = add_rule(lake, "data", "ds", "ALPHA_DISK", purge_replicas=True)
    wanted = add_rule(lake, "data", "ds", "BETA_DISK")  # nothing on BETA yet: replicating
    settle(lake, "evaluator")
    service_rules.delete_rule(lake, ROOT, doomed)
    settle(lake, "reaper")
    assert count(lake, replicas) == 3, "the only copies, sources of BETA's transfers, survive"
    for request in request_rows(lake):
        copy_and_finish(lake, request)
    assert rule(lake, wanted)["state"] == "ok"
    settle(lake, "reaper")
    names = rse_names(lake)
    with lake.read() as conn:
        left = {names[row.rse_id] for row in conn.execute(replicas.select())}
    assert left == {"BETA_DISK"}


def test_locked_rules_cannot_be_deleted_and_do_not_expire(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(1))
    rule_id = add_rule(lake, "data", "ds", "ALPHA_DISK", locked=True, lifetime=1)
    with lake.write() as conn:
        conn.execute(
            update(rules).where(rules.c.id == rule_id).values(expires_at=utcnow() - timedelta(1))
        )
    with pytest.raises(UnsupportedOperation, match="locked"):
        service_rules.delete_rule(lake, ROOT, rule_id)
    settle(lake)
    assert rule(lake, rule_id)["locked"] is True
    service_rules.update_rule(lake, ROOT, rule_id, {"locked": False})
    settle(lake, "rule-expirer")
    assert count(lake, rules) == 0
    assert [e["rule_id"] for e in event_types(lake, "rule.expired")] == [rule_id]
    actions = [h["action"] for h in service_rules.rule_history(lake, ROOT, rule_id)]
    assert actions[0] == "created"
    assert actions[-1] == "expired"
    assert "updated" in actions


def test_update_copies_priority_and_suspend(lake: Lake, tmp_path: Path) -> None:
    make_dataset(lake, "data", "ds", files(5))
    rule_id = add_rule(lake, "data", "ds", "*", copies=1)
    settle(lake, "evaluator")
    service_rules.update_rule(lake, ROOT, rule_id, {"copies": 3, "priority": 5})
    settle(lake, "evaluator")
    info = rule(lake, rule_id)
    assert (info["copies"], info["locks_ok_cnt"] + info["locks_replicating_cnt"]) == (3, 15)
    assert {r.priority for r in request_rows(lake)} == {5}
    service_rules.update_rule(lake, ROOT, rule_id, {"copies": 1})
    info = rule(lake, rule_id)
    assert (info["locks_ok_cnt"], info["locks_replicating_cnt"]) == (5, 0)
    assert request_rows(lake) == []
    service_rules.update_rule(lake, ROOT, rule_id, {"state": "SUSPENDED"})
    assert rule(lake, rule_id)["state"] == "suspended"
    service_rules.update_rule(lake, ROOT, rule_id, {"state": "REPLICATING"})
    settle(lake, "evaluator")
    assert rule(lake, rule_id)["state"] == "ok"


def test_lifecycle_moves_data_from_disk_to_tape_when_the_first_step_expires(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(3))
    lifecycle.add_policy(
        lake,
        ROOT,
        "disk-then-tape",
        [{"copies": 2, "qos": "DISK", "lifetime": 3600}, {"copies": 1, "qos": "TAPE"}],
    )
    first = service_rules.apply_policy(lake, ROOT, "data", "ds", "disk-then-tape")
    settle(lake, "evaluator")
    for request in request_rows(lake):
        copy_and_finish(lake, request)
    assert rule(lake, first)["state"] == "ok"
    with lake.write() as conn:  # time passes
        conn.execute(
            update(rules).where(rules.c.id == first).values(expires_at=utcnow() - timedelta(1))
        )
    settle(lake, "rule-expirer", "evaluator")
    child = rule(lake, first)["child_rule_id"]
    assert child
    assert rule(lake, str(child))["rse_expression"] == "qos=TAPE"
    assert rule(lake, first)["state"] == "ok", "the DISK copies stay until TAPE has the data"
    settle(lake, "rule-expirer")
    assert count(lake, rules, rules.c.id == first) == 1
    for request in request_rows(lake):
        copy_and_finish(lake, request)
    settle(lake, "rule-expirer")
    assert count(lake, rules, rules.c.id == first) == 0
    assert rule(lake, str(child))["state"] == "ok"
    phases = [e["phase"] for e in event_types(lake, "qos.transition")]
    assert phases == ["started", "done"]


def test_a_moved_rule_is_replaced_once_its_successor_is_ok(lake: Lake) -> None:
    names = files(3)
    make_dataset(lake, "data", "ds", names)
    first = add_rule(lake, "data", "ds", "BETA_DISK", activity="Staging", comment="keep")
    settle(lake)
    assert rule(lake, first)["state"] == "ok"

    child = service_rules.move_rule(lake, ROOT, first, "GAMMA_TAPE", {"priority": 4})
    assert rule(lake, first)["child_rule_id"] == child
    moved = rule(lake, child)
    assert (moved["rse_expression"], moved["account"], moved["priority"]) == (
        "GAMMA_TAPE",
        "root",
        4,
    )
    assert (moved["activity"], moved["comments"]) == ("Staging", "keep")
    settle(lake, "rule-expirer")  # the successor has nothing yet: the rule stays
    assert rule(lake, first)["state"] == "ok"

    settle(lake)
    assert count(lake, rules, rules.c.id == first) == 0
    assert rule(lake, child)["state"] == "ok"
    names_by_rse = Counter(rse_names(lake)[row.rse_id] for row in lock_rows(lake, child))
    assert names_by_rse == {"GAMMA_TAPE": 3}
    with lake.read() as conn:
        left = list(conn.execute(replicas.select().where(replicas.c.rse_id == rse_id_of(lake))))
    assert len(left) == 3
    assert all(row.tombstone is not None for row in left)  # BETA's copies: free to go
    actions = [e["action"] for e in service_rules.rule_history(lake, ROOT, first)]
    assert actions[0] == "created"
    assert actions[-2:] == ["moved", "replaced"]
    assert [e["rule_id"] for e in event_types(lake, "rule.deleted")] == [first]
    assert event_types(lake, "qos.transition") == []


def rse_id_of(lake: Lake, name: str = "BETA_DISK") -> int:
    with lake.read() as conn:
        return rses.get_rse_id(conn, name)


def test_a_move_is_refused_when_it_cannot_be_done_and_cancelled_by_deleting_the_successor(
    lake: Lake,
) -> None:
    make_dataset(lake, "data", "ds", files(2))
    first = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake)
    with pytest.raises(UnsupportedOperation, match="cannot override weight"):
        service_rules.move_rule(lake, ROOT, first, "GAMMA_TAPE", {"weight": "x"})
    with pytest.raises(AccessDenied, match="only its owner or an admin may move it"):
        service_rules.move_rule(lake, Principal("jdoe"), first, "GAMMA_TAPE")
    service_rules.update_rule(lake, ROOT, first, {"locked": True})
    with pytest.raises(UnsupportedOperation, match="is locked"):
        service_rules.move_rule(lake, ROOT, first, "GAMMA_TAPE")
    service_rules.update_rule(lake, ROOT, first, {"locked": False})

    child = service_rules.move_rule(lake, ROOT, first, "GAMMA_TAPE")
    with pytest.raises(UnsupportedOperation, match=f"being replaced by rule {child}"):
        service_rules.move_rule(lake, ROOT, first, "ALPHA_DISK")
    service_rules.delete_rule(lake, ROOT, child)  # cancelled before it was OK
    settle(lake)
    assert rule(lake, first)["state"] == "ok"
    assert rule(lake, first)["child_rule_id"] is None
    assert Counter(rse_names(lake)[row.rse_id] for row in lock_rows(lake, first)) == {
        "BETA_DISK": 2
    }


def test_a_rule_asking_approval_places_nothing_until_an_admin_approves_it(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", files(2))
    waiting = add_rule(lake, "data", "ds", "BETA_DISK", ask_approval=True)
    put_files(lake, "ALPHA_DISK", "data", ["late"])
    with lake.write() as conn:  # a content change queues the dataset's rules
        dids.attach(conn, "data", "ds", [("data", "late")])
    settle(lake)
    assert rule(lake, waiting)["state"] == "waiting_approval"
    assert lock_rows(lake, waiting) == []
    assert request_rows(lake) == []
    with pytest.raises(AccessDenied, match="admins only"):
        service_rules.update_rule(lake, Principal("root", admin=False), waiting, {"approve": True})
    with pytest.raises(UnsupportedOperation, match="waits for approval"):
        service_rules.update_rule(lake, ROOT, waiting, {"state": "replicating"})

    service_rules.update_rule(lake, ROOT, waiting, {"approve": True})
    assert rule(lake, waiting)["state"] == "replicating"  # not OK before anything is placed
    settle(lake)
    assert rule(lake, waiting)["state"] == "ok"
    assert len(lock_rows(lake, waiting)) == 3
    with pytest.raises(UnsupportedOperation, match="not waiting for approval"):
        service_rules.update_rule(lake, ROOT, waiting, {"approve": True})
    ok = [e for e in event_types(lake, "rule.ok") if e["rule_id"] == waiting]
    assert len(ok) == 1

    denied = add_rule(lake, "data", "ds", "GAMMA_TAPE", ask_approval=True)
    service_rules.update_rule(lake, ROOT, denied, {"approve": False, "comment": "no tape"})
    assert count(lake, rules, rules.c.id == denied) == 0
    last = service_rules.rule_history(lake, ROOT, denied)[-1]
    assert (last["action"], last["detail"]) == ("denied", "purge=False; reason: no tape")
    assert [e["rule_id"] for e in event_types(lake, "rule.deleted")] == [denied]


def test_a_rule_is_reduced_at_once_on_the_copies_that_are_there_or_not_at_all(
    lake: Lake,
) -> None:
    make_dataset(lake, "data", "ds", files(2))  # on ALPHA_DISK
    both = "ALPHA_DISK|BETA_DISK|GAMMA_TAPE"
    first = add_rule(lake, "data", "ds", both, copies=2, comment="keep two")
    settle(lake)
    placed = {rse_names(lake)[row.rse_id] for row in lock_rows(lake, first)}
    assert len(placed) == 2
    assert "ALPHA_DISK" in placed  # where the data was
    (other,) = placed - {"ALPHA_DISK"}
    (third,) = {"BETA_DISK", "GAMMA_TAPE"} - placed

    with pytest.raises(RuleReplaceFailed, match="without new transfers"):  # left: {third}
        service_rules.reduce_rule(lake, ROOT, first, 1, f"ALPHA_DISK|{other}")
    assert third not in {rse_names(lake)[row.rse_id] for row in lock_rows(lake, first)}
    assert rule(lake, first)["state"] == "ok"  # nothing changed
    assert len(lock_rows(lake, first)) == 4
    with pytest.raises(RuleReplaceFailed, match="reduce it to 1 to 1"):
        service_rules.reduce_rule(lake, ROOT, first, 2)

    kept = service_rules.reduce_rule(lake, ROOT, first, 1, "ALPHA_DISK")
    assert count(lake, rules, rules.c.id == first) == 0
    reduced = rule(lake, kept)
    assert (reduced["state"], reduced["copies"], reduced["comments"]) == ("ok", 1, "keep two")
    assert reduced["rse_expression"] == f"({both})\\(ALPHA_DISK)"
    assert {rse_names(lake)[row.rse_id] for row in lock_rows(lake, kept)} == {other}
    with lake.read() as conn:  # ALPHA's copies are no rule's any more: free to go
        stones = conn.execute(
            replicas.select().where(
                replicas.c.rse_id == rse_id_of(lake, "ALPHA_DISK"),
                replicas.c.tombstone.is_not(None),
            )
        ).all()
    assert len(stones) == 2
    assert request_rows(lake) == []


def test_subscription_adds_rules_to_matching_new_datasets(lake: Lake) -> None:
    subscriptions.add_subscription(
        lake,
        ROOT,
        "root",
        "raw-to-beta",
        filter={"scope": ["tele.*"], "pattern": "^raw_", "did_type": ["DATASET"]},
        replication_rules=[{"copies": 1, "rse_expression": "BETA_DISK", "lifetime": 86400}],
    )
    make_dataset(lake, "telescope", "raw_0001", files(2, "r"))
    make_dataset(lake, "telescope", "calib_0001", files(1, "c"))
    make_dataset(lake, "other", "raw_0001", files(1, "o"))
    settle(lake, "transmogrifier", "evaluator")
    made = service_rules.list_rules(lake, ROOT)
    assert [(r["scope"], r["name"]) for r in made] == [("telescope", "raw_0001")]
    assert made[0]["subscription_id"]
    assert made[0]["locks_replicating_cnt"] == 2
    assert made[0]["expires_at"] is not None


def test_repairer_retries_stuck_locks_and_moves_them_off_unavailable_rses(
    lake: Lake, tmp_path: Path
) -> None:
    add_rse(lake, "SPARE_DISK", tmp_path, pool="p")
    add_rse(lake, "FLAKY_DISK", tmp_path, pool="p")
    make_dataset(lake, "data", "ds", files(2))
    rule_id = add_rule(lake, "data", "ds", "FLAKY_DISK|SPARE_DISK", copies=2)
    settle(lake, "evaluator")
    names = rse_names(lake)
    flaky = [r for r in request_rows(lake) if names[r.dest_rse_id] == "FLAKY_DISK"]
    with lake.write() as conn:
        for request in flaky:
            transfers.transfer_failed(conn, request.id, "connection refused", retry_in=None)
    info = rule(lake, rule_id)
    assert (info["state"], info["locks_stuck_cnt"]) == ("stuck", 2)
    assert [e["rule_id"] for e in event_types(lake, "rule.stuck")] == [rule_id]
    settle(lake, "repairer")
    info = rule(lake, rule_id)
    assert (info["state"], info["locks_stuck_cnt"], info["locks_replicating_cnt"]) == (
        "replicating",
        0,
        4,
    )
    # FLAKY goes down for writing: stuck locks there move to another RSE of the expression.
    add_rse(lake, "THIRD_DISK", tmp_path, pool="p")
    with lake.write() as conn:
        flaky_id = rses.get_rse_id(conn, "FLAKY_DISK")
        rses.update_rse(conn, flaky_id, availability_write=False)
        conn.execute(
            update(rules)
            .where(rules.c.id == rule_id)
            .values(rse_expression="FLAKY_DISK|SPARE_DISK|THIRD_DISK")
        )
        for request in request_rows(lake):
            if request.dest_rse_id == flaky_id:
                transfers.transfer_failed(conn, request.id, "no space", retry_in=None)
    settle(lake, "repairer")
    names = rse_names(lake)
    placed = Counter(names[row.rse_id] for row in lock_rows(lake, rule_id))
    assert placed == {"SPARE_DISK": 2, "THIRD_DISK": 2}
    assert rule(lake, rule_id)["locks_stuck_cnt"] == 0


def test_did_expirer_removes_expired_datasets_and_their_rules(lake: Lake) -> None:
    make_dataset(lake, "data", "old", files(2))
    make_dataset(lake, "data", "young", files(1, "y"))
    add_rule(lake, "data", "old", "ALPHA_DISK")
    settle(lake, "evaluator")
    with lake.write() as conn:
        expiry.set_lifetime(conn, "data", "old", 1)
        conn.execute(
            update(dids.dids)
            .where(dids.dids.c.name == "old")
            .values(expired_at=utcnow() - timedelta(seconds=5))
        )
    settle(lake, "did-expirer")
    with lake.read() as conn:
        assert dids.find_did(conn, "data", "old") is None
        assert dids.find_did(conn, "data", "young") is not None
    assert count(lake, rules) == 0
    assert count(lake, locks) == 0
    assert [e["name"] for e in event_types(lake, "did.expired")] == ["old"]
