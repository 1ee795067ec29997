"""Evaluator processes sharing one PostgreSQL catalog: every rule evaluated exactly once, even
when a process is killed with SIGKILL in the middle of a batch."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lacus.core import replicas, rses, scopes
from lacus.core.clock import utcnow
from lacus.db import transaction, upgrade
from lacus.db.engine import insert_rows
from lacus.db.tables import contents, dids, evaluations, heartbeats, locks, rule_history, rules
from lacus.service.lake import Lake, seed_catalog
from lacus.service.settings import Settings, write_settings
from tests.conftest import ROOT_PASSWORD, _postgres_database


@pytest.fixture
def pg_lake(tmp_path: Path) -> Iterator[Lake]:
    for url in _postgres_database(f"lacus_procs_{os.getpid()}_{secrets.token_hex(4)}"):
        settings = Settings(lake_dir=tmp_path, database_url=url, claim_lease_seconds=2.0)
        write_settings(settings)
        lake = Lake(settings)
        upgrade(lake.engine)
        with lake.write() as conn:
            seed_catalog(conn, ROOT_PASSWORD, tmp_path)
        try:
            yield lake
        finally:
            lake.close()


def queue_rules(lake: Lake, count: int) -> None:
    """``count`` one-file datasets on ALPHA_DISK, each with a new rule (2 copies on DISK)
    waiting for the evaluator. Written in bulk: the evaluation is what is tested here."""
    now = utcnow()
    with lake.write() as conn:
        scopes.add_scope(conn, "many", account="root")
        alpha = rses.get_rse_id(conn, "ALPHA_DISK")
        replicas.add_replicas(
            conn,
            alpha,
            [
                {"scope": "many", "name": f"f{i}", "bytes": 10, "adler32": "0000000a"}
                for i in range(count)
            ],
            account="root",
            deterministic=True,
        )
        insert_rows(
            conn,
            dids,
            ("scope", "name", "did_type", "account", "is_open", "bytes", "length",
             "created_at", "updated_at"),
            [("many", f"ds{i}", "dataset", "root", True, 10, 1, now, now) for i in range(count)],
        )  # fmt: skip
        insert_rows(
            conn,
            contents,
            ("scope", "name", "child_scope", "child_name", "child_type", "created_at"),
            [("many", f"ds{i}", "many", f"f{i}", "file", now) for i in range(count)],
        )
        insert_rows(
            conn,
            rules,
            ("id", "account", "scope", "name", "did_type", "rse_expression", "copies",
             "grouping", "locked", "purge_replicas", "priority", "notification", "state",
             "ignore_availability", "ignore_account_limit", "created_at", "updated_at"),
            [
                (f"{i:032x}", "root", "many", f"ds{i}", "dataset", "qos=DISK", 2, "dataset",
                 False, False, 3, "no", "replicating", False, False, now, now)
                for i in range(count)
            ],
        )  # fmt: skip
        insert_rows(
            conn,
            evaluations,
            ("kind", "rule_id", "created_at"),
            [("rule", f"{i:032x}", now) for i in range(count)],
        )


def evaluator(lake: Lake, *extra: str) -> subprocess.Popen[str]:
    return daemon_process(lake, "evaluator", *extra)


def daemon_process(lake: Lake, name: str, *extra: str) -> subprocess.Popen[str]:
    """``lacus daemon NAME`` in a process of its own, on ``lake`` (its settings file)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "lacus"), "daemon", name, "--lake",
         str(lake.settings.lake_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LACUS_DATABASE_URL": lake.settings.database_url},
    )  # fmt: skip


def scalar(lake: Lake, query: object) -> int:
    with transaction(lake.engine, write=False) as conn:
        return int(conn.execute(query).scalar() or 0)  # type: ignore[call-overload]


def evaluations_per_rule(lake: Lake) -> dict[int, int]:
    """How many rules were evaluated how many times."""
    with transaction(lake.engine, write=False) as conn:
        per_rule = (
            select(rule_history.c.rule_id, func.count().label("n"))
            .where(rule_history.c.action == "evaluated")
            .group_by(rule_history.c.rule_id)
            .subquery()
        )
        rows = conn.execute(select(per_rule.c.n, func.count()).group_by(per_rule.c.n))
        return {int(n): int(c) for n, c in rows}


def test_three_evaluators_share_4000_rules_each_evaluated_once(pg_lake: Lake) -> None:
    total = 4000
    queue_rules(pg_lake, total)
    workers = [evaluator(pg_lake, "--once") for _ in range(3)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    done = [int(out.split("evaluator: ")[1].split()[0]) for out, _ in outputs]
    assert sum(done) == total
    assert sum(1 for n in done if n > 0) >= 2, f"the work was not shared: {done}"
    assert evaluations_per_rule(pg_lake) == {1: total}
    assert scalar(pg_lake, select(func.count()).select_from(evaluations)) == 0
    assert scalar(pg_lake, select(func.count()).select_from(locks)) == 2 * total
    assert (
        scalar(
            pg_lake, select(func.count()).select_from(rules).where(rules.c.state != "replicating")
        )
        == 0
    )


def test_a_killed_evaluator_loses_nothing_and_duplicates_nothing(pg_lake: Lake) -> None:
    total = 3000
    queue_rules(pg_lake, total)
    victim = evaluator(pg_lake)
    evaluated = (
        select(func.count()).select_from(rule_history).where(rule_history.c.action == "evaluated")
    )
    deadline = time.monotonic() + 120
    while scalar(pg_lake, evaluated) < 300:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    beating = select(func.count()).select_from(heartbeats).where(heartbeats.c.pid == victim.pid)
    assert scalar(pg_lake, beating) >= 1, "a running daemon records its heartbeat"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    before = scalar(pg_lake, evaluated)
    assert before < total, "killed too late to test anything"
    orphaned = (
        select(func.count())
        .select_from(evaluations)
        .where(evaluations.c.claimed_by.contains(f":{victim.pid}:"))
    )
    assert scalar(pg_lake, orphaned) > 0, "the victim held claims when it died"
    time.sleep(pg_lake.settings.claim_lease_seconds + 0.5)  # its leases run out
    heir = evaluator(pg_lake, "--once")
    _out, err = heir.communicate(timeout=600)
    assert heir.returncode == 0, err
    assert evaluations_per_rule(pg_lake) == {1: total}
    assert scalar(pg_lake, select(func.count()).select_from(evaluations)) == 0
    assert scalar(pg_lake, select(func.count()).select_from(locks)) == 2 * total
