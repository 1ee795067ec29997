"""Transfer history and the transfer success matrix on both catalogs: every attempt of the real
conveyor is recorded (source, destination, bytes, duration, error), the matrix aggregates them
per link, and the REST API and ``lacus transfers list|matrix`` show the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from lacus.client import Client
from lacus.core import transfers
from lacus.daemons import DAEMONS
from lacus.daemons.base import run_once
from lacus.db.tables import requests
from lacus.db.tables import transfers as transfers_table
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from tests.conftest import wait_until
from tests.rule_helpers import add_rule, make_dataset, rse_prefix, settle
from tests.test_cli import assert_one_error_line, ok, ok_json

pytestmark = pytest.mark.usefixtures("cli_reuses_token")


@pytest.fixture
def quick_retries(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 3)
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    return lake


def history(lake: Lake, **filters: Any) -> list[dict[str, Any]]:
    with lake.read() as conn:
        return transfers.list_transfers(conn, **filters)


def matrix(lake: Lake) -> list[dict[str, Any]]:
    with lake.read() as conn:
        return transfers.transfer_matrix(conn)


def block_destination(lake: Lake, scope: str, name: str, rse: str = "BETA_DISK") -> None:
    """The destination storage cannot take this file: a plain file sits where its directory
    must go. (A damaged source would be declared bad after one attempt; this fails each time.)"""
    directory = (rse_prefix(lake, rse) / deterministic_path(scope, name)).parent
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.write_bytes(b"in the way")


def test_a_completed_rule_leaves_one_done_attempt_per_file(lake: Lake) -> None:
    names = [f"f{i}" for i in range(4)]
    make_dataset(lake, "data", "ds", names, size=3000)
    add_rule(lake, "data", "ds", "qos=DISK", copies=2)
    settle(lake)
    rows = history(lake)
    assert sorted(row["name"] for row in rows) == names
    for row in rows:
        assert (row["scope"], row["source"], row["destination"]) == (
            "data",
            "ALPHA_DISK",
            "BETA_DISK",
        )
        assert (row["state"], row["bytes"], row["error"]) == ("done", 3000, None)
        assert row["duration"] >= 0
        assert row["started_at"] <= row["finished_at"]
    finished = [row["finished_at"] for row in rows]
    assert finished == sorted(finished, reverse=True)  # newest first
    assert [row["name"] for row in history(lake, scope="data", name="f2")] == ["f2"]
    assert len(history(lake, limit=2)) == 2
    assert history(lake, state="failed") == []
    (cell,) = matrix(lake)
    assert cell["mean_seconds"] is not None
    assert cell["mean_seconds"] >= 0
    assert {k: v for k, v in cell.items() if k != "mean_seconds"} == {
        "source": "ALPHA_DISK",
        "destination": "BETA_DISK",
        "done": 4,
        "failed": 0,
        "success_pct": 100.0,
        "bytes": 12000,
    }


def test_a_failing_link_leaves_failed_attempts_with_their_error(quick_retries: Lake) -> None:
    lake = quick_retries
    make_dataset(lake, "data", "ds", ["bad", "good"])
    block_destination(lake, "data", "bad")
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")  # the repairer would requeue the stuck lock
    failed = history(lake, state="failed")
    assert len(failed) == 3  # transfer_max_attempts
    for row in failed:
        assert (row["name"], row["source"], row["destination"]) == (
            "bad",
            "ALPHA_DISK",
            "BETA_DISK",
        )
        assert "Not a directory" in row["error"]
    assert [row["name"] for row in history(lake, state="done")] == ["good"]
    (cell,) = matrix(lake)
    assert (cell["done"], cell["failed"], cell["success_pct"], cell["bytes"]) == (1, 3, 25.0, 100)


def test_an_attempt_without_a_source_has_no_source_rse(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["a"])
    add_rule(lake, "data", "ds", "BETA_DISK", source_replica_expression="GAMMA_TAPE")
    settle(lake, "evaluator")
    assert run_once(lake, DAEMONS["conveyor"]) == 1
    (row,) = history(lake)
    assert (row["source"], row["destination"], row["state"]) == (None, "BETA_DISK", "failed")
    assert "no source" in row["error"]
    (cell,) = matrix(lake)
    assert (cell["source"], cell["done"], cell["failed"], cell["success_pct"]) == (
        None,
        0,
        1,
        0.0,
    )


def test_history_past_its_retention_goes_unless_its_request_is_still_queued(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lacus.daemons.retention.BATCH", 2)
    names = [f"f{i}" for i in range(4)]
    make_dataset(lake, "data", "ds", names)
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake)
    make_dataset(lake, "data", "queued", ["q"])
    add_rule(lake, "data", "queued", "BETA_DISK")
    settle(lake, "evaluator")  # its request waits for the conveyor
    days = lake.settings.transfer_history_days
    assert days is not None
    old = datetime.now(UTC) - timedelta(days=days + 1)
    with lake.write() as conn:
        (request_id,) = conn.execute(select(requests.c.id)).scalars()
        conn.execute(update(requests).values(created_at=old - timedelta(days=1)))
        conn.execute(  # an old failed attempt of the request still queued (for a year)
            insert(transfers_table).values(
                request_id=request_id, scope="data", name="q", dest_rse_id=2, bytes=100,
                state="failed", error="an old failure", started_at=old, finished_at=old,
                duration=1.0,
            )
        )  # fmt: skip
        conn.execute(
            update(transfers_table)
            .where(transfers_table.c.name.in_(["f0", "f1", "f2"]))
            .values(started_at=old, finished_at=old)
        )

    passes = []
    while done := DAEMONS["history-pruner"].run(lake, "test"):
        passes.append(done)
    assert passes == [2, 1]
    assert sorted(row["name"] for row in history(lake)) == ["f3", "q"]

    monkeypatch.setattr(lake.settings, "transfer_history_days", None)  # kept for ever
    with lake.write() as conn:
        conn.execute(update(transfers_table).values(started_at=old, finished_at=old))
        conn.execute(delete(requests))
    assert run_once(lake, DAEMONS["history-pruner"]) == 0
    assert len(history(lake)) == 2


def test_a_request_does_not_inherit_the_failures_of_an_earlier_one_with_its_id(
    lake: Lake,
) -> None:
    """SQLite hands out a deleted request's id again: the new request's sources are ranked by
    its own failed attempts only."""
    make_dataset(lake, "data", "ds", ["a"])
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    with lake.write() as conn:
        request = conn.execute(select(requests)).one()
        attempt = {
            "request_id": request.id, "dest_rse_id": request.dest_rse_id, "source_rse_id": 1,
            "bytes": 100, "state": "failed", "error": "refused", "duration": 1.0,
        }  # fmt: skip
        earlier = request.created_at - timedelta(seconds=5)
        conn.execute(
            insert(transfers_table),
            [  # an earlier request's attempts with the same id: another file, then the same
                {**attempt, "scope": "data", "name": "other", "started_at": earlier,
                 "finished_at": earlier},
                {**attempt, "scope": "data", "name": "a", "started_at": earlier,
                 "finished_at": earlier},
            ],
        )  # fmt: skip
        assert transfers.failed_sources(conn, [request.id]) == {}
        later = request.created_at + timedelta(seconds=1)
        conn.execute(
            insert(transfers_table).values(
                **attempt, scope="data", name="a", started_at=later, finished_at=later
            )
        )
        assert transfers.failed_sources(conn, [request.id]) == {request.id: {1}}


# -- REST and CLI, against the server and its embedded daemons ----------------------------------
@pytest.fixture
def dataset(client: Client, tmp_path: Path) -> str:
    """lab:ds: three files of 500 bytes on ALPHA_DISK."""
    client.add_scope("lab")
    paths = []
    for i in range(3):
        (path := tmp_path / f"f{i}.dat").write_bytes(bytes([i]) * 500)
        paths.append(path)
    client.upload(paths, rse="ALPHA_DISK", scope="lab", dataset="ds")
    return "lab:ds"


def test_rest_and_cli_show_the_history_and_matrix_of_a_completed_rule(
    cli: Any, client: Client, lake: Lake, dataset: str
) -> None:
    (rule_id,) = client.add_rule(dataset, "BETA_DISK")
    client.wait_for_rule(rule_id, "ok", timeout=20)
    listed = client.list_transfers()
    assert sorted(row["name"] for row in listed) == ["f0.dat", "f1.dat", "f2.dat"]
    assert {(row["source"], row["destination"], row["state"], row["bytes"]) for row in listed} == {
        ("ALPHA_DISK", "BETA_DISK", "done", 500)
    }
    assert [row["name"] for row in client.list_transfers(did="lab:f1.dat")] == ["f1.dat"]
    found = client.transfer_matrix()
    assert found["rses"] == ["ALPHA_DISK", "BETA_DISK"]
    (cell,) = found["cells"]
    assert (cell["source"], cell["destination"], cell["done"], cell["failed"]) == (
        "ALPHA_DISK",
        "BETA_DISK",
        3,
        0,
    )
    assert (cell["success_pct"], cell["bytes"]) == (100.0, 1500)

    table = ok(cli("transfers", "matrix")).stdout
    assert "ALPHA_DISK" in table
    assert "BETA_DISK" in table
    assert "100% (3/3)" in table
    assert ok_json(cli("transfers", "matrix", "--json")) == client.transfer_matrix()
    rows = ok_json(cli("transfers", "list", "--did", "lab:f0.dat", "--json"))
    assert [(r["name"], r["state"], r["bytes"]) for r in rows] == [("f0.dat", "done", 500)]
    text = ok(cli("transfers", "list", "--state", "done")).stdout
    assert text.count("lab:f") == 3
    assert ok_json(cli("transfers", "list", "--state", "failed", "--json")) == []
    # A time window: two of the attempts finished a day ago.
    with lake.write() as conn:
        conn.execute(
            update(transfers_table)
            .where(transfers_table.c.name.in_(["f0.dat", "f1.dat"]))
            .values(finished_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1))
        )
    (recent,) = client.transfer_matrix(hours=2)["cells"]
    assert (recent["done"], recent["bytes"]) == (1, 500)
    assert client.transfer_matrix(hours=48)["cells"][0]["done"] == 3
    assert "100% (1/1)" in ok(cli("transfers", "matrix", "--hours", "2")).stdout
    assert_one_error_line(cli("transfers", "matrix", "--hours", "-1"))


def test_rest_and_cli_show_the_failed_link(
    cli: Any, client: Client, lake: Lake, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 2)
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    block_destination(lake, "lab", "f1.dat")
    client.add_rule(dataset, "BETA_DISK")

    def settled() -> bool:
        cells = matrix(lake)
        return len(cells) == 1 and cells[0]["done"] == 2 and cells[0]["failed"] >= 2

    wait_until(settled, timeout=20)
    lake.pause_daemons()  # the repairer requeues the stuck transfer: numbers stay put from here
    found = client.transfer_matrix()
    assert found["cells"] == matrix(lake)
    (cell,) = found["cells"]
    assert (cell["source"], cell["destination"], cell["done"]) == ("ALPHA_DISK", "BETA_DISK", 2)
    failed = cell["failed"]
    assert failed >= 2
    pct = 100 * 2 / (2 + failed)
    assert cell["success_pct"] == round(pct, 1)
    assert f"{pct:.0f}% (2/{2 + failed})" in ok(cli("transfers", "matrix")).stdout
    rows = ok_json(cli("transfers", "list", "--state", "failed", "--json"))
    assert len(rows) == failed
    assert all(r["name"] == "f1.dat" and "Not a directory" in r["error"] for r in rows)
    assert rows == client.list_transfers(state="failed")


def test_wrong_filters_are_refused(cli: Any, client: Client) -> None:
    assert_one_error_line(cli("transfers", "list", "--state", "bogus"), "done or failed")
    assert_one_error_line(cli("transfers", "list", "--limit", "0"))
    assert_one_error_line(cli("transfers", "list", "--limit", "1001"))
    wait_until(lambda: client.transfer_matrix() == {"cells": [], "rses": []})
