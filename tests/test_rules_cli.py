"""``lacus rule|subscription|quota|policy``: what a user types and sees, against the real server
with its embedded daemons (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lacus.cli.policies import parse_step
from lacus.cli.quotas import parse_size
from lacus.cli.rules import parse_duration
from lacus.client import Client
from lacus.errors import InvalidInput
from lacus.service.lake import Lake
from tests.conftest import CLIResult, wait_until
from tests.rule_helpers import stall_transfers
from tests.test_cli import assert_one_error_line, ok, ok_json

pytestmark = pytest.mark.usefixtures("cli_reuses_token")


@pytest.fixture
def dataset(client: Client, tmp_path: Path) -> str:
    """lab:ds: two files of 500 bytes on ALPHA_DISK."""
    client.add_scope("lab")
    paths = []
    for i in range(2):
        (path := tmp_path / f"f{i}.dat").write_bytes(bytes([i]) * 500)
        paths.append(path)
    client.upload(paths, rse="ALPHA_DISK", scope="lab", dataset="ds")
    return "lab:ds"


def rule_id_of(result: CLIResult) -> str:
    (rule_id,) = ok(result).stdout.split()
    assert len(rule_id) == 32
    return rule_id


def test_rule_add_list_info_update_history_delete(cli: Any, client: Client, dataset: str) -> None:
    rule_id = rule_id_of(cli("rule", "add", dataset, "--rses", "ALPHA_DISK", "--comment", "keep"))
    client.wait_for_rule(rule_id, "ok", timeout=10)
    listed = ok(cli("rule", "list", "--did", dataset)).stdout
    assert rule_id in listed
    assert "OK[2/0/0]" in listed
    assert "1.0 kB" in listed
    (as_json,) = ok_json(cli("rule", "list", "--account", "root", "--state", "ok", "--json"))
    assert as_json["id"] == rule_id
    info = ok(cli("rule", "info", rule_id)).stdout
    assert "2 ok, 0 replicating, 0 stuck" in info
    assert "comment:" in info
    assert "keep" in info
    assert "error:" in info
    updated = ok(cli("rule", "update", rule_id, "--lifetime", "1d", "--locked", "--priority", "4"))
    assert "OK[2/0/0]" in updated.stdout
    rule = client.get_rule(rule_id)
    assert (rule["locked"], rule["priority"]) == (True, 4)
    assert rule["expires_at"] is not None
    assert_one_error_line(cli("rule", "delete", rule_id), "locked")
    ok(cli("rule", "update", rule_id, "--unlocked", "--lifetime", "none"))
    assert client.get_rule(rule_id)["expires_at"] is None
    ok(cli("rule", "delete", rule_id))
    assert rule_id not in [r["id"] for r in client.list_rules(did=dataset)]
    history = ok_json(cli("rule", "history", rule_id, "--json"))
    assert history[0]["action"] == "created"
    assert history[-1]["action"] == "deleted"
    did_history = ok(cli("rule", "history", dataset)).stdout
    assert "created" in did_history
    assert "deleted" in did_history
    assert_one_error_line(cli("rule", "info", rule_id), rule_id)


def test_rule_to_another_rse_shows_its_waiting_locks(
    cli: Any, client: Client, dataset: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall_transfers(lake, monkeypatch)  # BETA_DISK's copies wait
    rule_id = rule_id_of(cli("rule", "add", dataset, "--qos", "DISK", "--copies", "2"))
    wait_until(lambda: client.get_rule(rule_id)["locks_replicating_cnt"] == 2)
    rule = client.get_rule(rule_id)
    assert (rule["rse_expression"], rule["state"]) == ("qos=DISK", "REPLICATING")
    assert rule["locks_ok_cnt"] == 2  # the copies on ALPHA_DISK; BETA_DISK's wait
    assert "REPLICATING[2/2/0]" in ok(cli("rule", "list", "--state", "replicating")).stdout
    ok(cli("rule", "update", rule_id, "--suspend"))
    assert client.get_rule(rule_id)["state"] == "SUSPENDED"
    ok(cli("rule", "update", rule_id, "--resume", "--copies", "1"))
    client.wait_for_rule(rule_id, "ok", timeout=10)


def test_rule_move_to_another_rse(cli: Any, client: Client, dataset: str) -> None:
    rule_id = rule_id_of(cli("rule", "add", dataset, "--rses", "ALPHA_DISK"))
    client.wait_for_rule(rule_id, "ok", timeout=10)
    moved = ok_json(cli("rule", "move", rule_id, "--rses", "BETA_DISK", "--json"))
    child = moved["rule_id"]
    assert moved["replaces"] == rule_id
    client.wait_for_rule(child, "ok", timeout=30)
    wait_until(lambda: rule_id not in [r["id"] for r in client.list_rules(did=dataset)])
    history = ok_json(cli("rule", "history", rule_id, "--json"))
    assert [entry["action"] for entry in history][-2:] == ["moved", "replaced"]
    assert_one_error_line(cli("rule", "move", child, "--rses", "BETA_DISK"), "already")
    assert_one_error_line(cli("rule", "move", "0" * 32, "--rses", "BETA_DISK"), "does not exist")
    assert_one_error_line(cli("rule", "move", child, "--rses", "site=NOWHERE"))


def test_rule_asking_approval_then_approved_or_denied(
    cli: Any, client: Client, dataset: str
) -> None:
    rule_id = rule_id_of(cli("rule", "add", dataset, "--rses", "BETA_DISK", "--ask-approval"))
    listed = ok(cli("rule", "list", "--state", "waiting_approval")).stdout
    assert rule_id in listed
    assert "WAITING_APPROVAL[0/0/0]" in listed
    assert_one_error_line(cli("rule", "update", rule_id, "--resume"), "waits for approval")
    assert f"Approved rule {rule_id}" in ok(cli("rule", "approve", rule_id)).stdout
    client.wait_for_rule(rule_id, "ok", timeout=30)
    assert_one_error_line(cli("rule", "approve", rule_id), "not waiting for approval")
    other = rule_id_of(cli("rule", "add", dataset, "--rses", "GAMMA_TAPE", "--ask-approval"))
    ok(cli("rule", "deny", other, "--reason", "tape is full"))
    assert other not in [r["id"] for r in client.list_rules(did=dataset)]
    assert_one_error_line(cli("rule", "deny", other), "does not exist")


def test_rule_errors_are_one_line(cli: Any, dataset: str) -> None:
    assert_one_error_line(cli("rule", "add", dataset), "--rses")
    assert_one_error_line(cli("rule", "add", dataset, "--rses", "A", "--qos", "B"), "exactly one")
    assert_one_error_line(cli("rule", "add", dataset, "--rses", "site=NOWHERE"))
    assert_one_error_line(cli("rule", "add", "lab:nothing", "--rses", "ALPHA_DISK"))
    assert_one_error_line(cli("rule", "add", dataset, "--rses", "ALPHA_DISK", "--copies", "0"))
    assert_one_error_line(
        cli("rule", "add", dataset, "--rses", "ALPHA_DISK", "--lifetime", "soon"), "duration"
    )
    assert_one_error_line(cli("rule", "update", "0" * 32), "nothing to change")
    assert_one_error_line(cli("rule", "update", "0" * 32, "--priority", "2"), "does not exist")
    assert_one_error_line(cli("rule", "delete", "0" * 32))
    assert_one_error_line(cli("rule", "list", "--state", "broken"), "invalid state")


def test_quota_set_show_and_a_rule_beyond_it(cli: Any, client: Client, dataset: str) -> None:
    client.add_account("dora", password="dora-password")
    ok(cli("quota", "set", "dora", "ALPHA_DISK", "10GB"))
    ok(cli("quota", "set", "dora", "qos=DISK", "800"))
    ok(cli("quota", "set", "dora", "BETA_DISK", "infinity"))
    assert_one_error_line(
        cli("rule", "add", dataset, "--rses", "ALPHA_DISK", "--account", "dora"), "quota"
    )
    ok(cli("quota", "set", "dora", "qos=DISK", "1.5kB"))
    rule_id = rule_id_of(cli("rule", "add", dataset, "--rses", "ALPHA_DISK", "--account", "dora"))
    client.wait_for_rule(rule_id, "ok", timeout=10)
    shown = ok(cli("quota", "show", "dora")).stdout
    assert "ALPHA_DISK" in shown
    assert "10.0 GB" in shown
    assert "unlimited" in shown
    assert "qos=DISK" in shown
    usage = ok_json(cli("quota", "show", "dora", "--json"))
    alpha = next(row for row in usage["rses"] if row["rse"] == "ALPHA_DISK")
    assert (alpha["bytes"], alpha["bytes_limit"]) == (1000, 10**10)
    (expression,) = usage["expressions"]
    assert (expression["bytes_limit"], expression["bytes_remaining"]) == (1500, 500)
    assert_one_error_line(cli("quota", "set", "dora", "ALPHA_DISK", "lots"), "invalid size")
    assert_one_error_line(cli("quota", "set", "nobody", "ALPHA_DISK", "1GB"))


def test_subscription_add_list(cli: Any, client: Client, tmp_path: Path) -> None:
    client.add_scope("lab")
    added = ok(
        cli(
            "subscription", "add", "runs",
            "--filter", '{"scope": ["lab"], "pattern": "run_.*"}',
            "--rules", '[{"copies": 1, "rse_expression": "ALPHA_DISK"}]',
            "--comment", "every run", "--lifetime", "30",
        )
    ).stdout  # fmt: skip
    assert "Added subscription runs" in added
    listed = ok(cli("subscription", "list")).stdout
    assert "runs" in listed
    assert "ACTIVE" in listed
    assert "run_.*" in listed
    (as_json,) = ok_json(cli("subscription", "list", "--account", "root", "--json"))
    assert as_json["filter"] == {"scope": ["lab"], "pattern": "run_.*"}
    (path := tmp_path / "r.dat").write_bytes(b"run")
    client.upload([path], rse="ALPHA_DISK", scope="lab", dataset="run_1")
    rules = wait_until(lambda: client.list_rules(did="lab:run_1"))
    assert rules[0]["subscription_id"] == as_json["id"]
    assert_one_error_line(
        cli("subscription", "add", "bad", "--filter", "{nope", "--rules", "[]"), "--filter"
    )
    assert_one_error_line(
        cli("subscription", "add", "runs", "--filter", "{}", "--rules",
            '[{"rse_expression": "ALPHA_DISK"}]'),
        "already",
    )  # fmt: skip


def test_policy_add_list_and_apply(cli: Any, client: Client, dataset: str) -> None:
    ok(
        cli(
            "policy", "add", "disk-then-tape",
            "--step", "copies=1,qos=DISK,lifetime=30d",
            "--step", "copies=1,qos=TAPE",
            "--comment", "cheap",
        )
    )  # fmt: skip
    listed = ok(cli("policy", "list")).stdout
    assert "disk-then-tape" in listed
    assert "1 x qos=DISK for 30d -> 1 x qos=TAPE" in listed
    (policy,) = ok_json(cli("policy", "list", "--json"))
    assert policy["steps"][0]["lifetime"] == 30 * 86400
    rule_id = rule_id_of(cli("rule", "add", dataset, "--policy", "disk-then-tape"))
    info = ok(cli("rule", "info", rule_id)).stdout
    assert "disk-then-tape (step 1)" in info
    assert_one_error_line(cli("policy", "add", "p", "--step", "copies=1"), "rse_expression or")
    assert_one_error_line(cli("policy", "add", "p", "--step", "colour=blue"), "invalid step")
    assert_one_error_line(cli("rule", "add", dataset, "--policy", "nothing"), "nothing")


def test_parsers() -> None:
    assert parse_duration("3600") == 3600
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("30d") == 30 * 86400
    assert parse_size("10GB") == 10**10
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1000") == 1000
    assert parse_size("infinity") is None
    assert parse_step("copies=2,rses=A|B,lifetime=1w,grouping=all") == {
        "copies": 2,
        "rse_expression": "A|B",
        "lifetime": 7 * 86400,
        "grouping": "all",
    }
    for bad in ("0", "-5", "1x", ""):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    with pytest.raises(InvalidInput):
        parse_size("many")


def test_rule_info_shows_failing_locks_with_their_last_error(
    cli: Any, client: Client, lake: Lake, monkeypatch: pytest.MonkeyPatch, dataset: str
) -> None:
    """The conveyor finds no readable source and gives up at once (one attempt allowed): the
    locks are stuck, then the repairer queues their transfers again; either way ``rule info``
    shows them with the error of their last attempt."""
    stall_transfers(lake, monkeypatch)
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 1)
    rule_id = rule_id_of(cli("rule", "add", dataset, "--rses", "BETA_DISK"))
    info = wait_until(
        lambda: (
            "stuck or failing locks (2):" in (out := ok(cli("rule", "info", rule_id)).stdout)
            and out
        )
    )
    for name in ("f0.dat", "f1.dat"):
        assert f"lab:{name} on BETA_DISK (" in info
    assert info.count("attempt(s), last error: no source") == 2
    failing = ok_json(cli("rule", "info", rule_id, "--json"))["failing_locks"]
    assert sorted(lock["name"] for lock in failing) == ["f0.dat", "f1.dat"]
    analysis = client.examine_rule(rule_id)
    assert {(t["name"], t["rse"]) for t in analysis["transfers"]} == {
        ("f0.dat", "BETA_DISK"),
        ("f1.dat", "BETA_DISK"),
    }
    assert all(t["attempts"] >= 1 for t in analysis["transfers"])
    assert all("no source" in t["last_error"] for t in analysis["transfers"])
