"""The reaper never deletes the last copy of a file a rule wants, and never deletes a copy a rule
is counting on at that moment: the last-copy check (``core/reaping.py``) and the deletion guard
(``core/guard.py``), each shown to matter on its own.

The last-copy check: a rule whose transfer failed for good (stuck) has no lock on the only copy
and no transfer reads from it; only that check keeps the copy. The deletion guard: an evaluator
and a reaper working at the same moment on PostgreSQL, first in both fixed orders (one of them
holds its transaction open while the other runs), then freely, many times over.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, select, text, update

from lacus.core import evaluation, reaping
from lacus.core.clock import utcnow
from lacus.core.locks import EPOCH
from lacus.daemons import DAEMONS
from lacus.daemons.base import run_once
from lacus.db.tables import locks, replicas, requests, rses
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from tests.rule_helpers import (
    add_rule,
    event_types,
    make_dataset,
    put_files,
    request_rows,
    rse_prefix,
    rule,
    settle,
)
from tests.test_reaper import configure, names_on, set_replica

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""Two transactions at once: SQLite runs one writer at a time (the guard is a no-op there)."""


@pytest.fixture
def quick_retries(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 2)
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    return lake


@pytest.fixture
def postgres_lake(lake: Lake) -> Lake:
    return lake


def block_destination(lake: Lake, rse: str, scope: str, name: str) -> Path:
    """A plain file where the file's directory must go: every copy to ``rse`` fails."""
    blocker = (rse_prefix(lake, rse) / deterministic_path(scope, name)).parent
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    return blocker


def stuck_rule(lake: Lake, scope: str, name: str, files: list[str]) -> str:
    """A rule of ``scope:name`` to BETA_DISK whose transfers failed for good: no lock holds the
    copies elsewhere, no transfer reads from them any more."""
    for file in files:
        block_destination(lake, "BETA_DISK", scope, file)
    rule_id = add_rule(lake, scope, name, "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule(lake, rule_id)["state"] == "stuck"
    assert {request.state for request in request_rows(lake)} == {"failed"}
    return rule_id


def tombstone(lake: Lake, rse: str, name: str, reason: str) -> None:
    """Make the replica due: an epoch tombstone, or one in the past on a greedy RSE or on an
    RSE short of free space."""
    if reason == "epoch":
        set_replica(lake, rse, name, tombstone=EPOCH)
        return
    set_replica(lake, rse, name, tombstone=utcnow() - timedelta(hours=1))
    if reason == "greedy":
        configure(lake, rse, greedy_deletion="true")
    else:
        configure(lake, rse, total_bytes=100, min_free_ratio="1")


def available_with_bytes(lake: Lake, scope: str, name: str) -> set[str]:
    """The RSEs holding an available replica of the file with its bytes on their storage."""
    query = (
        select(rses.c.rse)
        .join(replicas, replicas.c.rse_id == rses.c.id)
        .where(replicas.c.scope == scope, replicas.c.name == name, replicas.c.state == "available")
    )
    with lake.read() as conn:
        held = list(conn.execute(query).scalars())
    path = deterministic_path(scope, name)
    return {rse for rse in held if (rse_prefix(lake, rse) / path).exists()}


@pytest.mark.parametrize("reason", ["epoch", "greedy", "space"])
def test_a_stuck_rule_keeps_the_only_copy_however_it_is_tombstoned(
    quick_retries: Lake, reason: str
) -> None:
    lake = quick_retries
    data = make_dataset(lake, "data", "ds", ["only"])
    rule_id = stuck_rule(lake, "data", "ds", ["only"])
    tombstone(lake, "ALPHA_DISK", "only", reason)
    settle(lake, "reaper")
    assert available_with_bytes(lake, "data", "only") == {"ALPHA_DISK"}
    assert event_types(lake, "replica.deleted") == []

    # The destination is mended: the kept copy is the source the rule completes from; once it
    # is done, the tombstoned copy on ALPHA_DISK is not needed any more and goes.
    (rse_prefix(lake, "BETA_DISK") / deterministic_path("data", "only")).parent.unlink()
    settle(lake, "repairer")
    with lake.write() as conn:
        conn.execute(update(requests).values(next_attempt_at=None))
    settle(lake, "conveyor")
    assert rule(lake, rule_id)["state"] == "ok"
    settle(lake, "reaper")
    assert available_with_bytes(lake, "data", "only") == {"BETA_DISK"}
    beta = rse_prefix(lake, "BETA_DISK") / deterministic_path("data", "only")
    assert beta.read_bytes() == data["only"]


@pytest.mark.parametrize("reason", ["epoch", "space"])
def test_of_two_tombstoned_copies_of_a_wanted_file_exactly_one_stays(
    quick_retries: Lake, reason: str
) -> None:
    lake = quick_retries
    make_dataset(lake, "data", "ds", ["pair", "spare"])
    put_files(lake, "GAMMA_TAPE", "data", ["pair"])
    stuck_rule(lake, "data", "ds", ["pair", "spare"])
    for rse in ("ALPHA_DISK", "GAMMA_TAPE"):
        tombstone(lake, rse, "pair", reason)
    settle(lake, "reaper")
    kept = available_with_bytes(lake, "data", "pair")
    assert len(kept) == 1, kept
    assert names_on(lake, "ALPHA_DISK") | names_on(lake, "GAMMA_TAPE") == {"pair", "spare"}
    (deleted,) = event_types(lake, "replica.deleted")
    assert deleted["name"] == "pair"
    assert deleted["rse"] not in kept


def tombstoned_file(lake: Lake, dataset: str, name: str) -> None:
    """``data:dataset`` holding one file, its only copy on ALPHA_DISK tombstoned (epoch)."""
    make_dataset(lake, "data", dataset, [name])
    set_replica(lake, "ALPHA_DISK", name, tombstone=EPOCH)


def counted_but_gone(lake: Lake) -> list[tuple[str, str]]:
    """(file, RSE) of every ok lock — a rule counting a copy as made — whose replica is not
    available there with its bytes on the storage."""
    with lake.read() as conn:
        rows = list(
            conn.execute(
                select(locks.c.scope, locks.c.name, rses.c.rse, replicas.c.state)
                .join(rses, rses.c.id == locks.c.rse_id)
                .outerjoin(
                    replicas,
                    and_(
                        replicas.c.scope == locks.c.scope,
                        replicas.c.name == locks.c.name,
                        replicas.c.rse_id == locks.c.rse_id,
                    ),
                )
                .where(locks.c.state == "ok")
            )
        )
    return [
        (row.name, row.rse)
        for row in rows
        if row.state != "available"
        or not (rse_prefix(lake, row.rse) / deterministic_path(row.scope, row.name)).exists()
    ]


def wait_blocked_or_done(lake: Lake, thread: threading.Thread, timeout: float = 20.0) -> None:
    """Until ``thread`` has ended or one of the lake's transactions waits for a lock held by
    another (the guard's advisory lock, or a row another transaction changed)."""
    deadline = time.monotonic() + timeout
    with lake.engine.connect() as conn:
        while thread.is_alive():
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
            conn.rollback()
            if waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the other transaction neither ended nor waited")
            time.sleep(0.01)


def run_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    return threading.Thread(target=run), errors


@POSTGRES_ONLY
def test_a_rule_evaluated_while_the_reaper_decides_never_counts_the_copy_it_deletes(
    postgres_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reaper has picked the only copy (uncommitted) when the evaluator places a rule on
    that very RSE: the evaluator waits for the decision and sees a copy on its way out."""
    lake = postgres_lake
    tombstoned_file(lake, "ds", "only")
    rule_id = add_rule(lake, "data", "ds", "ALPHA_DISK")  # queued for the evaluator
    evaluator, errors = run_in_thread(lambda: run_once(lake, DAEMONS["evaluator"]))
    real_pick = reaping.pick

    def pick_then_evaluate(conn: Any, **options: Any) -> list[Any]:
        chosen = real_pick(conn, **options)
        if evaluator.ident is None and chosen:
            evaluator.start()
            wait_blocked_or_done(lake, evaluator)
        return chosen

    monkeypatch.setattr(reaping, "pick", pick_then_evaluate)
    assert run_once(lake, DAEMONS["reaper"]) == 1
    evaluator.join(timeout=30)
    assert not evaluator.is_alive()
    assert errors == []
    assert available_with_bytes(lake, "data", "only") == set()  # decided before the rule came
    assert counted_but_gone(lake) == []
    assert rule(lake, rule_id)["state"] != "ok"


@POSTGRES_ONLY
def test_the_reaper_deciding_while_a_rule_is_placed_keeps_the_transfers_source(
    postgres_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluator has placed a rule to BETA_DISK (uncommitted: a lock and a transfer waiting
    for the only copy on ALPHA_DISK) when the reaper decides: it waits and keeps that copy."""
    lake = postgres_lake
    tombstoned_file(lake, "ds", "only")
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    reaper, errors = run_in_thread(lambda: run_once(lake, DAEMONS["reaper"]))
    real_evaluate = evaluation.evaluate_rule

    def evaluate_then_reap(conn: Any, rule_id: str, **options: Any) -> Any:
        outcome = real_evaluate(conn, rule_id, **options)
        if reaper.ident is None:
            reaper.start()
            wait_blocked_or_done(lake, reaper)
        return outcome

    monkeypatch.setattr(evaluation, "evaluate_rule", evaluate_then_reap)
    assert run_once(lake, DAEMONS["evaluator"]) == 1
    reaper.join(timeout=30)
    assert not reaper.is_alive()
    assert errors == []
    assert available_with_bytes(lake, "data", "only") == {"ALPHA_DISK"}
    monkeypatch.undo()
    settle(lake, "conveyor")
    assert rule(lake, rule_id)["state"] == "ok"


RACE_ROUNDS = 100


def together(start: threading.Barrier, delay: float, lake: Lake, daemon: str) -> Callable[[], int]:
    """A daemon's passes, begun when both threads are at ``start``, ``delay`` seconds late."""

    def run() -> int:
        start.wait(timeout=30)
        time.sleep(delay)
        return run_once(lake, DAEMONS[daemon])

    return run


@POSTGRES_ONLY
def test_evaluator_and_reaper_racing_never_lose_a_copy_a_rule_counts(postgres_lake: Lake) -> None:
    """Round after round, one file whose only copy is tombstoned gets a rule on the RSE holding
    it; the evaluator and a reaper pass start together (two threads, two connections), either a
    little late (the reaper's lead follows the outcomes, so that both orders keep happening
    however fast the machine). Whoever wins, a rule never ends ``ok`` on a copy that is gone:
    either the rule came first and the copy stays (untombstoned), or the reaper did and the rule
    waits for a transfer."""
    lake = postgres_lake
    rng = random.Random(20261207)
    outcomes = {"kept": 0, "deleted": 0}
    lead = 0.0  # how much later the reaper starts: moved towards where either may win
    for round_ in range(RACE_ROUNDS):
        name = f"f{round_:03d}"
        tombstoned_file(lake, f"ds{round_:03d}", name)
        rule_id = add_rule(lake, "data", f"ds{round_:03d}", "ALPHA_DISK")
        start = threading.Barrier(2)
        late = (max(-lead, 0.0), max(lead, 0.0))
        workers = [
            run_in_thread(together(start, late[0] + rng.uniform(0, 0.005), lake, "evaluator")),
            run_in_thread(together(start, late[1] + rng.uniform(0, 0.005), lake, "reaper")),
        ]
        for thread, _ in workers:
            thread.start()
        for thread, errors in workers:
            thread.join(timeout=60)
            assert not thread.is_alive()
            assert errors == []
        settle(lake, "evaluator", "reaper")
        assert counted_but_gone(lake) == [], f"round {round_}"
        state = rule(lake, rule_id)["state"]
        if available_with_bytes(lake, "data", name):
            assert state == "ok", f"round {round_}"
            outcomes["kept"] += 1
            lead -= 0.002
        else:
            assert state == "replicating", f"round {round_}"
            outcomes["deleted"] += 1
            lead += 0.002
    # Both orders happened: the race was real.
    assert min(outcomes.values()) >= RACE_ROUNDS // 20, outcomes
