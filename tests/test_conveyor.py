"""The conveyor on both catalogs: rules complete on POSIX RSEs, bad sources never become
replicas, failures back off and end stuck, a request without a source blocks nothing."""

from __future__ import annotations

import zlib

import pytest
from sqlalchemy import select

from lacus.core import rses
from lacus.core import rules as rules_core
from lacus.daemons import DAEMONS
from lacus.daemons.base import run_once
from lacus.db.tables import replicas, requests, transfers
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from tests.rule_helpers import (
    add_rule,
    count,
    make_dataset,
    request_rows,
    rse_prefix,
    rule,
    settle,
)


def replicas_on(lake: Lake, rse: str) -> dict[str, tuple[str, str | None, int]]:
    with lake.read() as conn:
        rse_id = rses.get_rse_id(conn, rse)
        rows = conn.execute(select(replicas).where(replicas.c.rse_id == rse_id))
        return {row.name: (row.state, row.adler32, row.bytes) for row in rows}


@pytest.fixture
def quick_retries(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 3)
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    return lake


def test_a_disk_rule_with_two_copies_completes(lake: Lake) -> None:
    names = [f"f{i}" for i in range(5)]
    data = make_dataset(lake, "data", "ds", names, size=3000)
    rule_id = add_rule(lake, "data", "ds", "qos=DISK", copies=2)
    settle(lake)
    info = rule(lake, rule_id)
    assert (info["state"], info["locks_ok_cnt"], info["locks_replicating_cnt"]) == ("ok", 10, 0)
    beta = rse_prefix(lake, "BETA_DISK")
    for name in names:
        assert (beta / deterministic_path("data", name)).read_bytes() == data[name]
    assert replicas_on(lake, "BETA_DISK") == {
        name: ("available", f"{zlib.adler32(data[name]):08x}", 3000) for name in names
    }
    assert request_rows(lake) == []
    with lake.read() as conn:
        assert rses.get_rse(conn, "BETA_DISK")["files"] == 5


def corrupt_rule(lake: Lake, damage: str) -> str:
    data = make_dataset(lake, "data", "ds", ["bad", "good"])
    source = rse_prefix(lake, "ALPHA_DISK") / deterministic_path("data", "bad")
    if damage == "corrupt":
        source.write_bytes(bytes(len(data["bad"])))  # same size, other bytes
    else:
        source.unlink()
    return add_rule(lake, "data", "ds", "BETA_DISK")


@pytest.mark.parametrize(("damage", "message"), [("corrupt", "adler32"), ("missing", "missing")])
def test_a_bad_source_is_retried_then_stuck_and_never_registered(
    quick_retries: Lake, damage: str, message: str
) -> None:
    lake = quick_retries
    rule_id = corrupt_rule(lake, damage)
    settle(lake, "evaluator", "conveyor")  # the repairer would requeue the stuck lock
    info = rule(lake, rule_id)
    assert (info["state"], info["locks_ok_cnt"], info["locks_stuck_cnt"]) == ("stuck", 1, 1)
    assert set(replicas_on(lake, "BETA_DISK")) == {"good"}
    beta = rse_prefix(lake, "BETA_DISK")
    assert not (beta / deterministic_path("data", "bad")).exists()
    assert [p.name for p in (beta / deterministic_path("data", "bad")).parent.glob("*")] == []
    (request,) = request_rows(lake)
    assert (request.name, request.state, request.attempts) == ("bad", "failed", 3)
    with lake.read() as conn:
        (failing,) = [lock for lock in rules_core.lock_details(conn, rule_id) if lock["last_error"]]
        first = conn.execute(
            select(transfers.c.error).where(transfers.c.state == "failed").order_by(transfers.c.id)
        ).scalar()
    assert failing["state"] == "stuck"
    # The first attempt found the damage and reported the only source (bad when missing,
    # suspicious when its bytes differ: the necromancer reads it back); then none was left.
    assert message in str(first)
    assert "no source" in failing["last_error"]
    reported = "bad" if damage == "missing" else "suspicious"
    assert replicas_on(lake, "ALPHA_DISK")["bad"][0] == reported
    # The repairer takes over: the transfer is requeued (after its pause), the lock waits again.
    settle(lake, "repairer")
    assert rule(lake, rule_id)["locks_replicating_cnt"] == 1
    assert request_rows(lake)[0].state == "queued"


def test_a_failure_backs_off_and_blocks_nothing(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["a"])
    make_dataset(lake, "data", "other", ["b"])
    # Only a tape replica may be read, and there is none: no source at all, highest priority.
    hopeless = add_rule(
        lake, "data", "ds", "BETA_DISK", source_replica_expression="GAMMA_TAPE", priority=5
    )
    fine = add_rule(lake, "data", "other", "BETA_DISK", priority=1)
    settle(lake)
    assert rule(lake, fine)["state"] == "ok"
    info = rule(lake, hopeless)
    assert (info["state"], info["locks_replicating_cnt"]) == ("replicating", 1)
    (request,) = request_rows(lake)
    assert (request.state, request.attempts, request.claimed_by) == ("queued", 1, None)
    assert "no source" in request.last_error
    assert request.next_attempt_at > request.updated_at  # waits: the daemons came to rest
    assert set(replicas_on(lake, "BETA_DISK")) == {"b"}


@pytest.mark.parametrize("cut_off", ["expression", "unreadable"])
def test_the_destination_is_never_a_source(quick_retries: Lake, cut_off: str) -> None:
    lake = quick_retries
    make_dataset(lake, "data", "ds", ["a"])
    # Sources only on the destination itself, or the only replica not readable.
    expression = "BETA_DISK" if cut_off == "expression" else None
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK", source_replica_expression=expression)
    settle(lake, "evaluator")
    if cut_off == "unreadable":
        with lake.write() as conn:
            rses.update_rse(conn, rses.get_rse_id(conn, "ALPHA_DISK"), availability_read=False)
    assert run_once(lake, DAEMONS["conveyor"]) == 3  # three attempts, then nothing is due
    assert rule(lake, rule_id)["state"] == "stuck"
    (request,) = request_rows(lake)
    assert "no source" in request.last_error
    assert count(lake, requests, requests.c.state == "failed") == 1
    assert replicas_on(lake, "BETA_DISK") == {}
