"""Rules, locks, subscriptions, account limits and lifecycle policies over REST, on Rucio's paths
and shapes, against the real server with its embedded daemons (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from lacus.client import Client
from lacus.errors import (
    AccessDenied,
    InsufficientAccountLimit,
    PolicyNotFound,
    UnsupportedOperation,
)
from lacus.service.lake import Lake
from tests.conftest import RunningServer, wait_until
from tests.rule_helpers import stall_transfers

RULE_KEYS = {
    "id", "subscription_id", "account", "scope", "name", "did_type", "state", "error",
    "rse_expression", "copies", "expires_at", "weight", "locks_ok_cnt", "locks_replicating_cnt",
    "locks_stuck_cnt", "source_replica_expression", "activity", "grouping", "notification",
    "stuck_at", "purge_replicas", "ignore_availability", "ignore_account_limit",
    "split_container", "locked", "priority", "comments", "child_rule_id", "eol_at", "meta",
    "created_at", "updated_at", "deleted_at", "bytes",
}  # fmt: skip
"""Every key of Rucio's rule dict (the notes' §1.3)."""
FILES = 3
FILE_SIZE = 1000


@pytest.fixture
def http(server: RunningServer, client: Client) -> Any:
    """Root's raw HTTP session, to see status codes, headers and bodies as a Rucio client does."""
    with httpx.Client(
        base_url=server.url, headers={"X-Rucio-Auth-Token": client.token()}
    ) as session:
        yield session


@pytest.fixture
def dataset(client: Client, tmp_path: Path) -> str:
    """lab:ds, three files of 1,000 bytes on ALPHA_DISK (and no rule yet)."""
    client.add_scope("lab")
    paths = []
    for i in range(FILES):
        path = tmp_path / f"f{i}.dat"
        path.write_bytes(bytes([i]) * FILE_SIZE)
        paths.append(path)
    client.upload(paths, rse="ALPHA_DISK", scope="lab", dataset="ds")
    return "lab:ds"


def error_class(response: httpx.Response) -> str:
    return response.headers.get("ExceptionClass", "")


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-json-stream"
    return [json.loads(line) for line in response.text.splitlines() if line]


def add_rule(http: httpx.Client, did: str, expression: str, **fields: Any) -> str:
    scope, name = did.split(":")
    body = {"dids": [{"scope": scope, "name": name}], "rse_expression": expression, **fields}
    response = http.post("/rules/", json=body)
    assert response.status_code == 201, response.text
    (rule_id,) = response.json()
    return str(rule_id)


def settled(client: Client, rule_id: str, state: str) -> dict[str, Any]:
    return client.wait_for_rule(rule_id, state, timeout=10)


# -- rules ---------------------------------------------------------------------------------------
def test_rule_on_the_rse_holding_the_files_is_ok_with_one_lock_per_file(
    http: httpx.Client, client: Client, dataset: str
) -> None:
    rule_id = add_rule(http, dataset, "ALPHA_DISK")
    rule = settled(client, rule_id, "ok")
    assert rule["locks_ok_cnt"] == FILES
    assert (rule["locks_replicating_cnt"], rule["locks_stuck_cnt"]) == (0, 0)
    shown = http.get(f"/rules/{rule_id}")
    assert shown.headers["content-type"] == "application/json"
    body = shown.json()
    assert set(body) >= RULE_KEYS
    assert body["state"] == "OK"
    assert body["did_type"] == "DATASET"
    assert body["grouping"] == "DATASET"
    assert body["bytes"] == FILES * FILE_SIZE
    assert (body["meta"], body["eol_at"], body["deleted_at"]) == (None, None, None)
    assert body["split_container"] is False
    locks = lines(http.get(f"/rules/{rule_id}/locks"))
    assert sorted(lock["name"] for lock in locks) == ["f0.dat", "f1.dat", "f2.dat"]
    assert {(lock["rse"], lock["state"], lock["rule_id"]) for lock in locks} == {
        ("ALPHA_DISK", "OK", rule_id)
    }
    analysis = http.get(f"/rules/{rule_id}/analysis").json()
    assert analysis == {"rule_error": "This replication rule is OK", "transfers": []}


def test_rule_on_an_rse_without_copies_waits_for_transfers(
    http: httpx.Client, client: Client, dataset: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While its transfers cannot run (no readable source), the rule stays REPLICATING with one
    waiting lock per file."""
    stall_transfers(lake, monkeypatch)
    rule_id = add_rule(http, dataset, "BETA_DISK")
    rule = wait_until(lambda: (r := client.get_rule(rule_id))["locks_replicating_cnt"] and r)
    assert rule["state"] == "REPLICATING"
    assert rule["locks_replicating_cnt"] == FILES
    assert rule["locks_ok_cnt"] == 0
    locks = client.rule_locks(rule_id)
    assert {(lock["rse"], lock["state"]) for lock in locks} == {("BETA_DISK", "REPLICATING")}
    assert all(lock["request_state"] is not None for lock in locks)
    analysis = client.examine_rule(rule_id)
    assert analysis["rule_error"] == "This replication rule is currently REPLICATING"
    by_state = lines(http.get("/rules/", params={"state": "R"}))
    assert [r["id"] for r in by_state] == [rule_id]
    assert lines(http.get("/rules/", params={"state": "REPLICATING"})) == by_state
    assert lines(http.get("/rules/", params={"state": "W"})) == []
    dataset_locks = lines(http.get("/locks/lab/ds", params={"did_type": "dataset"}))
    assert [(d["rse"], d["state"], d["length"], d["bytes"]) for d in dataset_locks] == [
        ("BETA_DISK", "REPLICATING", FILES, FILES * FILE_SIZE)
    ]


def test_rule_listings_and_the_rules_of_a_file(
    http: httpx.Client, client: Client, dataset: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall_transfers(lake, monkeypatch)  # the BETA_DISK rule keeps waiting
    ok_id = add_rule(http, dataset, "ALPHA_DISK")
    settled(client, ok_id, "ok")
    beta_id = add_rule(http, dataset, "BETA_DISK")
    by_did = [r["id"] for r in lines(http.get("/rules/", params={"scope": "lab", "name": "ds"}))]
    assert by_did == [ok_id, beta_id]
    assert [r["id"] for r in lines(http.get("/rules/", params={"state": "O", "scope": "l*"}))] == [
        ok_id
    ]
    assert [
        r["id"] for r in lines(http.get("/rules/", params={"rse_expression": "BETA_DISK"}))
    ] == [beta_id]
    account_rules = lines(http.get("/accounts/root/rules", params={"state": "OK"}))
    assert ok_id in [r["id"] for r in account_rules]
    assert beta_id not in [r["id"] for r in account_rules]
    assert all(set(r) >= RULE_KEYS for r in account_rules)
    wait_until(lambda: client.get_rule(beta_id)["locks_replicating_cnt"] == FILES)
    on_file = {r["id"] for r in lines(http.get("/dids/lab/f0.dat/associated_rules"))}
    assert {ok_id, beta_id} <= on_file
    assert client.list_rules(did=dataset, state="ok")[0]["id"] == ok_id


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"state": "BROKEN"}, "invalid state"),
        ({"colour": "blue"}, "not a valid rule filter"),
        ({"did_type": "X"}, "invalid did_type"),
        ({"created_before": "yesterday"}, "invalid created_before"),
    ],
)
def test_bad_rule_filters_are_refused(
    http: httpx.Client, query: dict[str, str], message: str
) -> None:
    response = http.get("/rules/", params=query)
    assert response.status_code == 400
    assert error_class(response) == "InputValidationError"
    assert message in response.json()["ExceptionMessage"]


def test_update_lifetime_lock_priority_comment_and_delete(
    http: httpx.Client, client: Client, dataset: str
) -> None:
    rule_id = add_rule(http, dataset, "ALPHA_DISK")
    settled(client, rule_id, "ok")
    options = {"lifetime": 3600, "locked": True, "priority": 4, "comment": "keep"}
    response = http.put(f"/rules/{rule_id}", json={"options": options})
    assert response.status_code == 200, response.text
    rule = client.get_rule(rule_id)
    assert rule["expires_at"] is not None
    assert (rule["locked"], rule["priority"], rule["comments"]) == (True, 4, "keep")
    refused = http.request("DELETE", f"/rules/{rule_id}", json={"purge_replicas": None})
    assert refused.status_code == 409
    assert error_class(refused) == "UnsupportedOperation"
    assert "locked" in refused.json()["ExceptionMessage"]
    with pytest.raises(UnsupportedOperation):
        client.delete_rule(rule_id)
    client.update_rule(rule_id, locked=False, lifetime=None)
    assert client.get_rule(rule_id)["expires_at"] is None
    deleted = http.request("DELETE", f"/rules/{rule_id}", json={"purge_replicas": False})
    assert deleted.status_code == 200
    gone = http.get(f"/rules/{rule_id}")
    assert gone.status_code == 404
    assert error_class(gone) == "RuleNotFound"
    # The full history outlives the rule; the DID's history has its creation then its removal.
    actions = [entry["action"] for entry in client.rule_history(rule_id)]
    assert actions[0] == "created"
    assert actions[-1] == "deleted"
    assert "updated" in actions
    did_history = lines(http.get("/rules/lab/ds/history"))
    assert [(h["rule_id"], h["action"]) for h in did_history] == [
        (rule_id, "created"),
        (rule_id, "deleted"),
    ]
    assert did_history[0]["created_at"] == did_history[1]["created_at"]
    assert did_history[1]["updated_at"] >= did_history[0]["updated_at"]
    assert client.did_rule_history(dataset) == did_history


def test_suspend_and_resume(
    http: httpx.Client, client: Client, dataset: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall_transfers(lake, monkeypatch)  # resumed, it waits for its transfers
    rule_id = add_rule(http, dataset, "BETA_DISK")
    client.update_rule(rule_id, state="SUSPENDED")
    assert client.get_rule(rule_id)["state"] == "SUSPENDED"
    assert client.examine_rule(rule_id)["rule_error"] == "This replication rule is SUSPENDED"
    client.update_rule(rule_id, state="REPLICATING")
    settled(client, rule_id, "replicating")


def test_fewer_copies_release_locks(
    http: httpx.Client, client: Client, dataset: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall_transfers(lake, monkeypatch)  # BETA_DISK's locks are still waiting when copies drop
    rule_id = add_rule(http, dataset, "ALPHA_DISK|BETA_DISK", copies=2)
    wait_until(lambda: len(client.rule_locks(rule_id)) == 2 * FILES)
    client.update_rule(rule_id, copies=1)
    locks = client.rule_locks(rule_id)
    assert len(locks) == FILES
    assert {lock["rse"] for lock in locks} == {"ALPHA_DISK"}  # waiting locks go first
    settled(client, rule_id, "ok")


@pytest.mark.parametrize(
    ("options", "status", "exception"),
    [
        ({"colour": "blue"}, 400, "InputValidationError"),
        ({"lifetime": "soon"}, 400, "InputValidationError"),
        ({"lifetime": 10**30}, 400, "InputValidationError"),
        ({"locked": "yes"}, 400, "InputValidationError"),
        ({"priority": 9}, 400, "InvalidObject"),
        ({"priority": 1.5}, 400, "InputValidationError"),
        ({"copies": -1}, 400, "InvalidObject"),
        ({"copies": True}, 400, "InputValidationError"),
        ({"activity": {"a": 1}}, 400, "InputValidationError"),
        ({"comment": "x" * 256}, 400, "InputValidationError"),
        ({"source_replica_expression": "site=NOWHERE"}, 400, "InvalidRSEExpression"),
        ({"child_rule_id": "0" * 32}, 404, "RuleNotFound"),
        ({"child_rule_id": 7}, 400, "InputValidationError"),
        ({"state": "STUCK"}, 409, "UnsupportedOperation"),
        ({"state": "BROKEN"}, 400, "InputValidationError"),
        ({"state": 3}, 400, "InputValidationError"),
        ({"account": "alice"}, 409, "UnsupportedOperation"),
        ({"meta": {"a": 1}}, 409, "UnsupportedOperation"),
        ({"cancel_requests": True}, 409, "UnsupportedOperation"),
        ({"approve": True}, 409, "UnsupportedOperation"),
    ],
)
def test_bad_updates_are_refused_clearly(
    http: httpx.Client,
    dataset: str,
    options: dict[str, Any],
    status: int,
    exception: str,
) -> None:
    rule_id = add_rule(http, dataset, "ALPHA_DISK")
    response = http.put(f"/rules/{rule_id}", json={"options": options})
    assert (response.status_code, error_class(response)) == (status, exception), response.text
    assert response.json()["ExceptionMessage"]


def test_harmless_rucio_options_are_accepted(
    http: httpx.Client, client: Client, dataset: str
) -> None:
    rule_id = add_rule(http, dataset, "ALPHA_DISK")
    options = {"account": "root", "eol_at": None, "meta": None, "cancel_requests": False}
    assert http.put(f"/rules/{rule_id}", json={"options": options}).status_code == 200
    assert http.put(f"/rules/{rule_id}", json={"options": {}}).status_code == 200
    not_a_dict = http.put(f"/rules/{rule_id}", json={"options": [1]})
    assert not_a_dict.status_code == 400
    missing = http.put("/rules/" + "0" * 32, json={"options": {"locked": True}})
    assert (missing.status_code, error_class(missing)) == (404, "RuleNotFound")


def test_other_accounts_may_not_change_or_remove_a_rule(
    http: httpx.Client, client: Client, server: RunningServer, dataset: str
) -> None:
    rule_id = add_rule(http, dataset, "ALPHA_DISK")
    client.add_account("alice", password="alice-password")
    with Client(server.url, account="alice", password="alice-password") as alice:
        with pytest.raises(AccessDenied):
            alice.update_rule(rule_id, comment="mine")
        with pytest.raises(AccessDenied):
            alice.delete_rule(rule_id)
        with pytest.raises(AccessDenied):
            alice.set_quota("alice", "ALPHA_DISK", 10**9)
    assert client.get_rule(rule_id)["comments"] is None


# -- account limits ------------------------------------------------------------------------------
def test_limits_usage_and_a_rule_beyond_the_quota(
    http: httpx.Client, client: Client, dataset: str
) -> None:
    client.add_account("bob", password="bob-password")
    assert http.post(
        "/accounts/bob/limits/local/ALPHA_DISK", json={"bytes": 10**9}
    ).status_code == (201)
    response = http.post("/accounts/bob/limits/global/qos%3DDISK", json={"bytes": 2000})
    assert response.status_code == 201
    assert http.post("/accounts/bob/limits/local/BETA_DISK", json={"bytes": -1}).status_code == 201
    assert json.loads(http.get("/accounts/bob/limits/local").text) == {
        "ALPHA_DISK": 10**9,
        "BETA_DISK": math.inf,
    }
    assert http.get("/accounts/bob/limits/local/GAMMA_TAPE").json() == {"GAMMA_TAPE": None}
    assert http.get("/accounts/bob/limits/global").json() == {
        "qos=DISK": {
            "resolved_rses": ["ALPHA_DISK", "BETA_DISK"],
            "resolved_rse_ids": [
                str(client.get_rse("ALPHA_DISK")["id"]),
                str(client.get_rse("BETA_DISK")["id"]),
            ],
            "limit": 2000,
        }
    }
    assert http.get("/accounts/bob/limits/global/qos%3DDISK").json() == {"qos=DISK": 2000}
    # 3,000 bytes do not fit in bob's 2,000 on qos=DISK.
    refused = http.post(
        "/rules/",
        json={"dids": [{"scope": "lab", "name": "ds"}], "rse_expression": "ALPHA_DISK",
              "account": "bob"},
    )  # fmt: skip
    assert refused.status_code == 400
    assert error_class(refused) == "InsufficientAccountLimit"
    with pytest.raises(InsufficientAccountLimit):
        client.add_rule(dataset, "ALPHA_DISK", account="bob")
    client.set_quota("bob", "qos=DISK", 10**6)
    rule_id = client.add_rule(dataset, "ALPHA_DISK", account="bob")[0]
    settled(client, rule_id, "ok")
    local = lines(http.get("/accounts/bob/usage/local"))
    alpha = next(row for row in local if row["rse"] == "ALPHA_DISK")
    assert (alpha["bytes"], alpha["files"], alpha["bytes_limit"]) == (3000, FILES, 10**9)
    assert alpha["bytes_remaining"] == 10**9 - 3000
    beta = json.loads(http.get("/accounts/bob/usage/local/BETA_DISK").text.strip())
    assert (beta["bytes"], beta["bytes_limit"], beta["bytes_remaining"]) == (0, math.inf, math.inf)
    (row,) = lines(http.get("/accounts/bob/usage/global"))
    assert row == {
        "rse_expression": "qos=DISK",
        "bytes": 3000,
        "files": FILES,
        "bytes_limit": 10**6,
        "bytes_remaining": 10**6 - 3000,
    }
    usage = client.quota_usage("bob")
    assert [r["bytes_limit"] for r in usage["rses"] if r["rse"] == "BETA_DISK"] == [None]
    assert http.delete("/accounts/bob/limits/global/qos%3DDISK").status_code == 200
    assert http.delete("/accounts/bob/limits/local/BETA_DISK").status_code == 200
    missing = http.delete("/accounts/bob/limits/local/BETA_DISK")
    assert missing.status_code == 404
    unknown_rse = http.post("/accounts/bob/limits/local/NOWHERE", json={"bytes": 1})
    assert (unknown_rse.status_code, error_class(unknown_rse)) == (404, "RSENotFound")
    unknown_account = http.get("/accounts/nobody/usage/local")
    assert (unknown_account.status_code, error_class(unknown_account)) == (404, "AccountNotFound")
    for body in ({"bytes": -2}, {"bytes": "lots"}, {"bytes": 2**70}, {}):
        bad = http.post("/accounts/bob/limits/local/ALPHA_DISK", json=body)
        assert bad.status_code == 400, body


def test_usage_without_limits_is_unlimited(
    http: httpx.Client, client: Client, dataset: str
) -> None:
    rule_id = add_rule(http, dataset, "ALPHA_DISK")
    settled(client, rule_id, "ok")
    rows = lines(http.get("/accounts/root/usage/local"))
    alpha = next(row for row in rows if row["rse"] == "ALPHA_DISK")
    assert alpha["bytes_limit"] == alpha["bytes_remaining"] == math.inf
    assert lines(http.get("/accounts/root/usage/global")) == []


# -- subscriptions -------------------------------------------------------------------------------
def test_subscription_adds_rules_to_new_matching_datasets(
    http: httpx.Client, client: Client, tmp_path: Path
) -> None:
    client.add_scope("lab")
    options = {
        "filter": {"scope": ["lab"], "pattern": "run_.*"},
        "replication_rules": [{"copies": 1, "rse_expression": "ALPHA_DISK", "lifetime": 3600}],
        "comments": "every run",
        "lifetime": 10,
        "retroactive": False,
        "dry_run": False,
        "priority": "2",  # the rucio CLI sends a string
    }
    added = http.post("/subscriptions/root/runs", json={"options": options})
    assert added.status_code == 201, added.text
    subscription_id = added.text
    assert len(subscription_id) == 32
    duplicate = http.post("/subscriptions/root/runs", json={"options": options})
    assert (duplicate.status_code, error_class(duplicate)) == (409, "SubscriptionDuplicate")
    (listed,) = lines(http.get("/subscriptions/root"))
    assert listed["id"] == subscription_id
    assert json.loads(listed["filter"]) == {"scope": ["lab"], "pattern": "run_.*"}
    assert json.loads(listed["replication_rules"])[0]["rse_expression"] == "ALPHA_DISK"
    assert (listed["policyid"], listed["state"], listed["comments"]) == (2, "ACTIVE", "every run")
    assert listed["lifetime"] is not None  # the expiry date
    assert lines(http.get("/subscriptions/root/runs")) == [listed]
    assert lines(http.get("/subscriptions/")) == [listed]
    assert lines(http.get("/subscriptions/name/runs")) == [listed]
    assert http.get(f"/subscriptions/id/{subscription_id}").json() == listed
    (path := tmp_path / "r.dat").write_bytes(b"run data")
    client.upload([path], rse="ALPHA_DISK", scope="lab", dataset="run_7")
    client.add_dataset("lab:other")
    rules = wait_until(lambda: lines(http.get("/subscriptions/root/runs/rules")))
    assert [(r["name"], r["subscription_id"], r["comments"]) for r in rules] == [
        ("run_7", subscription_id, "every run")
    ]
    assert client.subscription_rules("runs")[0]["id"] == rules[0]["id"]
    assert lines(http.get("/subscriptions/root/runs/rules", params={"state": "U"})) == []
    update = {"options": {"state": "I", "comments": "paused"}}
    assert http.put("/subscriptions/root/runs", json=update).status_code == 201
    (paused,) = client.list_subscriptions(account="root")
    assert (paused["state"], paused["comments"]) == ("INACTIVE", "paused")
    assert paused["filter"] == {"scope": ["lab"], "pattern": "run_.*"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"filter": "{not json", "replication_rules": [{"rse_expression": "A"}]}, "not valid JSON"),
        ({"filter": {"pattern": "("}, "replication_rules": [{"rse_expression": "ALPHA_DISK"}]},
         "regular expression"),
        ({"filter": {"pattern": 5}, "replication_rules": [{"rse_expression": "ALPHA_DISK"}]},
         "regular expression"),
        ({"filter": {}, "replication_rules": []}, "non-empty"),
        ({"filter": {}}, "You must specify a rule"),
        ({"filter": [], "replication_rules": [{"rse_expression": "ALPHA_DISK"}]}, "JSON object"),
        ({"filter": {}, "replication_rules": [{"rse_expression": "ALPHA_DISK", "copies": -1}]},
         "copies"),
        ({"filter": {}, "replication_rules": [{"rse_expression": "ALPHA_DISK",
                                              "lifetime": "x"}]}, "lifetime"),
        ({"filter": {}, "replication_rules": [{"rse_expression": "A"}], "lifetime": "x"},
         "lifetime"),
        ({"filter": {}, "replication_rules": [{"rse_expression": "A"}], "priority": "high"},
         "priority"),
    ],
)  # fmt: skip
def test_bad_subscriptions_are_refused(
    http: httpx.Client, options: dict[str, Any], message: str
) -> None:
    response = http.post("/subscriptions/root/bad", json={"options": options})
    assert response.status_code == 400, response.text
    assert error_class(response) in ("InvalidObject", "InputValidationError")
    assert message in response.json()["ExceptionMessage"]


def test_unknown_subscriptions(http: httpx.Client) -> None:
    for path in ("/subscriptions/root/nothing", "/subscriptions/id/" + "0" * 32):
        response = http.get(path)
        assert (response.status_code, error_class(response)) == (404, "SubscriptionNotFound")
    update = http.put("/subscriptions/root/nothing", json={"options": {"comments": "x"}})
    assert (update.status_code, error_class(update)) == (404, "SubscriptionNotFound")
    assert lines(http.get("/subscriptions/root")) == []
    bad_state = http.post(
        "/subscriptions/root/s",
        json={"options": {"filter": {}, "replication_rules": [{"rse_expression": "ALPHA_DISK"}]}},
    )
    assert bad_state.status_code == 201
    refused = http.put("/subscriptions/root/s", json={"options": {"state": "Z"}})
    assert (refused.status_code, error_class(refused)) == (400, "InvalidObject")


# -- lifecycle policies --------------------------------------------------------------------------
def test_policy_starts_with_its_first_step(
    http: httpx.Client, client: Client, dataset: str
) -> None:
    steps = [
        {"copies": 1, "qos": "DISK", "lifetime": 30 * 86400},
        {"copies": 1, "qos": "TAPE"},
    ]
    client.add_policy("disk-then-tape", steps, comment="30 days on disk")
    (policy,) = client.list_policies()
    assert policy["name"] == "disk-then-tape"
    assert [s["rse_expression"] for s in policy["steps"]] == ["qos=DISK", "qos=TAPE"]
    assert client.get_policy("disk-then-tape") == policy
    rule_id = client.apply_policy(dataset, "disk-then-tape")
    rule = client.get_rule(rule_id)
    assert (rule["rse_expression"], rule["policy"], rule["policy_step"]) == (
        "qos=DISK",
        "disk-then-tape",
        0,
    )
    assert rule["expires_at"] is not None
    with pytest.raises(PolicyNotFound):
        client.apply_policy(dataset, "nothing")
    both = http.post(
        "/rules/",
        json={"dids": [{"scope": "lab", "name": "ds"}], "rse_expression": "ALPHA_DISK",
              "policy": "disk-then-tape"},
    )  # fmt: skip
    assert (both.status_code, error_class(both)) == (400, "InputValidationError")
    neither = http.post("/rules/", json={"dids": [{"scope": "lab", "name": "ds"}]})
    assert neither.status_code == 400
    for body in (
        {"name": "p", "steps": []},
        {"name": "p", "steps": [{"copies": 1}]},
        {"name": "p", "steps": [{"qos": "DISK"}, {"qos": "TAPE"}]},
        {"name": "p", "steps": [{"qos": "DISK", "colour": "blue"}]},
        {"name": "p", "steps": [{"qos": "DISK", "lifetime": -1}]},
        {"name": "p", "steps": "two"},
    ):
        assert http.post("/policies/", json=body).status_code == 400, body
    again = http.post("/policies/", json={"name": "disk-then-tape", "steps": steps})
    assert again.status_code == 409
    assert http.get("/policies/nothing").status_code == 404


def test_only_admins_define_policies(server: RunningServer, client: Client) -> None:
    client.add_account("carol", password="carol-password")
    with Client(server.url, account="carol", password="carol-password") as carol:
        with pytest.raises(AccessDenied):
            carol.add_policy("mine", [{"qos": "DISK"}])
        assert carol.list_policies() == []
