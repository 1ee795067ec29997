"""WLCG Common JWT Profile tokens: ``storage.*`` scopes limit a token, ``wlcg.groups`` pick its
account and make admins — against the real loopback issuer of ``test_oidc`` and the real server.

The lake: scopes ``virgo`` and ``lofar``, both owned by alice, so that whatever alice's tokens are
refused is refused by their scopes, never by ownership. ``virgo:ds`` holds ``virgo:v1`` and, from
the other scope, ``lofar:l1``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lacus.client import Client
from lacus.errors import AccessDenied, InvalidInput, Unauthenticated
from lacus.service import accounts
from lacus.service.settings import load_settings
from lacus.service.token_scopes import parse_storage_scopes
from tests import test_oidc
from tests.conftest import ROOT_PASSWORD, RunningServer
from tests.test_oidc import ROOT, Issuer, account_of, refused
from tests.test_rest import assert_error

RSE = "ALPHA_DISK"

# The loopback issuer, trusted for each test, and raw HTTP to the server (from test_oidc).
issuer_server = test_oidc.issuer_server
issuer = test_oidc.issuer
http = test_oidc.http


@pytest.fixture
def lake_files(server: RunningServer, issuer: Issuer, tmp_path: Path) -> Path:
    """virgo:v1, virgo:ds = {virgo:v1, lofar:l1}, lofar:l1 (both scopes alice's); a rule on
    virgo:ds. Returns a directory of local files to upload."""
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        root.add_scope("virgo", account="alice")
        root.add_scope("lofar", account="alice")
        local = tmp_path / "local"
        local.mkdir()
        for name in ("v1", "l1", "v2", "v3", "l2"):
            (local / name).write_bytes(name.encode() * 1000)
        root.upload([local / "v1"], rse=RSE, scope="virgo", dataset="ds")
        root.upload([local / "l1"], rse=RSE, scope="lofar")
        root.attach("virgo:ds", ["lofar:l1"])
    return local


def bearer(server: RunningServer, issuer: Issuer, scope: str | None, **claims: object) -> Client:
    """A token-only client of a token for alice (unless ``claims`` say otherwise)."""
    claims.setdefault("preferred_username", "alice")
    return Client(server.url, token=issuer.sign(scope=scope, **claims))


def denied(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The message of the AccessDenied ``call(*args, **kwargs)`` raises (a stream: read)."""

    def run() -> None:
        result = call(*args, **kwargs)
        if isinstance(result, Iterator):
            list(result)

    with pytest.raises(AccessDenied) as caught:
        run()
    return str(caught.value)


def dids_of(client: Client, pattern: str) -> list[str]:
    return sorted(f"{d['scope']}:{d['name']}" for d in client.list_dids(pattern))


# -- parsing -------------------------------------------------------------------------------------


def test_storage_scopes_are_parsed_as_the_profile_writes_them() -> None:
    assert parse_storage_scopes("openid profile wlcg.groups") is None
    assert parse_storage_scopes(None) is None
    assert parse_storage_scopes("openid storage.read:/ storage.create:/virgo/") == {
        ("read", "/"),
        ("create", "/virgo"),
    }
    assert parse_storage_scopes(["storage.modify:/vir%67o", 7]) == {("modify", "/virgo")}
    for bad, reason in [
        ("storage.read", "has no path"),
        ("storage.read:", "absolute"),
        ("storage.read:virgo", "absolute"),
        ("storage.read:/virgo/../lofar", "normalised"),
        ("storage.read://virgo", "normalised"),
    ]:
        with pytest.raises(Unauthenticated, match=reason):
            parse_storage_scopes(f"openid {bad}")


def test_a_storage_scope_without_a_path_makes_the_token_invalid(
    lake_files: Path, server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    token = issuer.sign(preferred_username="alice", scope="storage.read")
    assert "'storage.read' has no path" in refused(http, token)
    token = issuer.sign(preferred_username="alice", scope="storage.read:virgo")
    assert "absolute, normalised path" in refused(http, token)


# -- each scope allows what it says --------------------------------------------------------------


def test_a_token_without_storage_scopes_keeps_its_account_s_rights(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    with bearer(server, issuer, "openid profile wlcg.groups") as alice:
        assert dids_of(alice, "lofar:*") == ["lofar:l1"]
        alice.upload([lake_files / "v2"], rse=RSE, scope="virgo")
        alice.set_metadata("lofar:l1", {"run": 1})


def test_storage_read_reads_its_scope_and_nothing_else(
    lake_files: Path, server: RunningServer, issuer: Issuer, http: httpx.Client, tmp_path: Path
) -> None:
    token = issuer.sign(preferred_username="alice", scope="openid storage.read:/virgo")
    with Client(server.url, token=token) as alice:
        assert dids_of(alice, "virgo:*") == ["virgo:ds", "virgo:v1"]
        assert alice.get_did("virgo:v1")["bytes"] == 2000
        assert alice.get_metadata("virgo:v1") == {}
        # The other scope's file in virgo:ds is left out of every listing.
        assert [f"{d['scope']}:{d['name']}" for d in alice.list_content("virgo:ds")] == ["virgo:v1"]
        assert [f["name"] for f in alice.list_files("virgo:ds")] == ["v1"]
        assert [r["name"] for r in alice.list_replicas(["virgo:ds"])] == ["v1"]
        assert [s["scope"] for s in alice.list_scopes()] == ["virgo"]
        done = alice.download(["virgo:ds"], tmp_path / "down")
        assert [Path(item["path"]).name for item in done] == ["v1"]

        message = denied(alice.list_dids, "lofar:*")
        assert message == (
            "this token of account 'alice' may not read scope 'lofar': it carries "
            "storage.read:/virgo, and that needs storage.read:/lofar"
        )
        denied(alice.get_did, "lofar:l1")
        denied(alice.list_replicas, ["lofar:l1"])
        denied(alice.download, ["lofar:l1"], tmp_path / "down2")
        message = denied(alice.upload, [lake_files / "v2"], rse=RSE, scope="virgo")
        assert "may not add to scope 'virgo'" in message
        assert "needs storage.create:/virgo or storage.modify:/virgo" in message
        assert "may not change or delete in" in denied(alice.set_metadata, "virgo:v1", {"a": 1})
        assert "may not add or change rules" in denied(alice.add_rule, "virgo:ds", "BETA_DISK")

    # Over REST, as Rucio's client sees it: 403 AccessDenied with the reason.
    headers = {"X-Rucio-Auth-Token": token}
    response = http.get("/dids/lofar/dids/search", params={"name": "*"}, headers=headers)
    assert "may not read scope 'lofar'" in assert_error(response, 403, "AccessDenied")
    response = http.get("/dids/lofar/l1", headers=headers)
    assert "may not look up DIDs in scope 'lofar'" in assert_error(response, 403, "AccessDenied")


def test_storage_create_adds_but_never_changes(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    with bearer(server, issuer, "storage.create:/virgo") as alice:
        alice.upload([lake_files / "v2"], rse=RSE, scope="virgo", dataset="new")
        alice.add_dataset("virgo:more")
        alice.attach("virgo:more", ["virgo:v2"])
        assert alice.get_did("virgo:v2")["bytes"] == 2000  # a stat: allowed by every scope
        assert "may not read scope 'virgo'" in denied(alice.list_dids, "virgo:*")
        denied(alice.list_replicas, ["virgo:v2"])
        for call, args in [
            (alice.set_metadata, ("virgo:v1", {"a": 1})),
            (alice.detach, ("virgo:more", ["virgo:v2"])),
            (alice.close_dataset, ("virgo:more",)),
        ]:
            assert "may not change or delete in scope 'virgo'" in denied(call, *args), call
        # Registering a file again with metadata would replace its metadata: a change.
        known = alice.get_did("virgo:v1")
        again = {"scope": "virgo", "name": "v1", "bytes": 2000, "adler32": known["adler32"]}
        again |= {"state": "C"}  # announced, as an upload would
        message = denied(alice.add_replicas, "BETA_DISK", [{**again, "meta": {"a": 1}}])
        assert "may not change or delete in scope 'virgo'" in message
        assert "may not add to scope 'lofar'" in denied(
            alice.upload, [lake_files / "l2"], rse=RSE, scope="lofar"
        )
        denied(alice.add_rule, "virgo:new", "BETA_DISK")
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        assert dids_of(root, "virgo:*") == [
            "virgo:ds",
            "virgo:more",
            "virgo:new",
            "virgo:v1",
            "virgo:v2",
        ]
        assert root.get_metadata("virgo:v1") == {}


def test_storage_modify_changes_and_deletes_but_does_not_read(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    with bearer(server, issuer, "storage.modify:/virgo") as alice:
        alice.upload([lake_files / "v2"], rse=RSE, scope="virgo")
        alice.set_metadata("virgo:v1", {"run": 7})
        alice.detach("virgo:ds", ["lofar:l1"])
        (rule_id,) = alice.add_rule("virgo:ds", "BETA_DISK")
        alice.delete_rule(rule_id)
        denied(alice.list_dids, "virgo:*")
        denied(alice.set_metadata, "lofar:l1", {"run": 7})
        assert "may not add or change rules in scope 'lofar'" in denied(
            alice.add_rule, "lofar:l1", "BETA_DISK"
        )
    with bearer(server, issuer, "storage.read:/") as alice:
        assert alice.get_metadata("virgo:v1") == {"run": 7}
        assert [d["name"] for d in alice.list_content("virgo:ds")] == ["v1"]


def test_storage_stage_manages_rules_only(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    with bearer(server, issuer, "storage.stage:/virgo") as alice:
        (rule_id,) = alice.add_rule("virgo:ds", "BETA_DISK")
        assert alice.get_rule(rule_id)["scope"] == "virgo"
        assert [rule["id"] for rule in alice.list_rules()] == [rule_id]
        alice.update_rule(rule_id, lifetime=3600)
        alice.delete_rule(rule_id)
        denied(alice.add_rule, "lofar:l1", "BETA_DISK")
        denied(alice.upload, [lake_files / "v2"], rse=RSE, scope="virgo")
        denied(alice.list_dids, "virgo:*")
    with bearer(server, issuer, None) as full:
        (other,) = full.add_rule("lofar:l1", "BETA_DISK")
    with bearer(server, issuer, "storage.stage:/virgo") as alice:
        assert "may not look up DIDs in scope 'lofar'" in denied(alice.get_rule, other)
        assert "may not add or change rules in scope 'lofar'" in denied(alice.delete_rule, other)
        assert alice.list_rules() == []


def test_storage_scopes_limit_locks_histories_transfers_and_subscriptions(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    """The read paths around rules name files too: a token sees them only in its scopes."""
    with bearer(server, issuer, None) as full:
        (other,) = full.add_rule("lofar:l1", "BETA_DISK")
        deadline = time.monotonic() + 60
        while not full.list_transfers(did="lofar:l1", state="done"):
            assert time.monotonic() < deadline, "the rule's copy never finished"
            time.sleep(0.2)
        assert full.rule_locks(other)
        assert full.rule_history(other)
    with bearer(server, issuer, "storage.stage:/virgo storage.read:/virgo") as alice:
        looking = "may not look up DIDs in scope 'lofar'"
        assert looking in denied(alice.rule_locks, other)
        assert looking in denied(alice.rule_history, other)
        assert looking in denied(alice.did_rule_history, "lofar:l1")
        assert "may not read scope 'lofar'" in denied(alice.list_transfers, did="lofar:l1")
        assert [t for t in alice.list_transfers() if t["scope"] != "virgo"] == []
        message = denied(alice.add_subscription, "mine", filter={"scope": ["virgo"]}, rules=[])
        assert message == (
            "this token of account 'alice' may not add or change subscriptions: they make rules "
            "in any scope their filter matches, and that needs storage.stage:/ or "
            "storage.modify:/"
        )
    rules = [{"copies": 1, "rse_expression": "BETA_DISK"}]
    with bearer(server, issuer, "storage.modify:/") as alice:
        assert alice.add_subscription("mine", filter={"scope": ["virgo"]}, rules=rules)


@pytest.mark.parametrize(
    ("scope", "virgo", "lofar"),
    [
        ("storage.read:/", True, True),
        ("storage.read:/virgo/", True, False),
        ("storage.read:/virgo storage.read:/lofar", True, True),
        ("storage.read:/virgo/raw", False, False),  # below a scope: Lacus grants whole scopes
        ("storage.read:/vir", False, False),  # a path matches whole names, not prefixes
        ("storage.create:/ storage.read:/lofar", False, True),
    ],
)
def test_paths_name_scopes(
    lake_files: Path, server: RunningServer, issuer: Issuer, scope: str, virgo: bool, lofar: bool
) -> None:
    with bearer(server, issuer, scope) as alice:
        for name, allowed in (("virgo", virgo), ("lofar", lofar)):
            if allowed:
                assert dids_of(alice, f"{name}:*")
            else:
                denied(alice.list_dids, f"{name}:*")


def test_a_token_with_storage_scopes_is_refused_admin_operations(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    with bearer(server, issuer, "storage.modify:/ storage.read:/", preferred_username="root") as r:
        r.set_metadata("lofar:l1", {"checked": True})  # root's rights, within its scopes
        message = denied(r.add_account, "carol")
        assert message == (
            "a token limited to storage scopes may not call POST /accounts/carol: use a token of "
            "account 'root' without storage.* scopes"
        )
        denied(r.set_rse_attribute, RSE, "site", "X")
    with bearer(server, issuer, None, preferred_username="root") as root:
        root.add_account("carol")


def test_create_scope_lets_a_token_create_a_new_scope(
    lake_files: Path, server: RunningServer, issuer: Issuer
) -> None:
    with bearer(server, issuer, "storage.create:/ligo") as alice:
        alice.add_scope("ligo")
        assert "may not add to scope 'kagra'" in denied(alice.add_scope, "kagra")
        assert [s["scope"] for s in alice.list_scopes()] == ["ligo"]


# -- groups --------------------------------------------------------------------------------------


def _with_groups(server: RunningServer, **update: object) -> None:
    config = server.lake.settings.oidc_issuers[0].model_copy(update=update)
    server.lake.settings.oidc_issuers = [config]


def test_groups_map_to_accounts_in_the_token_s_order(
    server: RunningServer, issuer: Issuer, http: httpx.Client
) -> None:
    accounts.add_account(server.lake, ROOT, "virgo_ops")
    _with_groups(server, group_accounts={"/virgo": "virgo_ops", "/virgo/prod": "bob"})
    assert account_of(http, issuer.sign(**{"wlcg.groups": ["/virgo"]})) == "virgo_ops"
    # The first mapped group wins; the group wins over the account claim.
    groups = ["/lofar", "/virgo/prod", "/virgo"]
    token = issuer.sign(preferred_username="alice", **{"wlcg.groups": groups})
    assert account_of(http, token) == "bob"
    # A child group does not make its bearer a member of the parent group.
    token = issuer.sign(preferred_username="alice", **{"wlcg.groups": ["/virgo/other"]})
    assert account_of(http, token) == "alice"
    # An identity an admin mapped wins over groups.
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        root.add_oidc_identity("alice", "alice-sub", issuer.url)
    token = issuer.sign(sub="alice-sub", **{"wlcg.groups": ["/virgo"]})
    assert account_of(http, token) == "alice"
    # A group mapped to an account that does not exist is refused, saying so.
    _with_groups(server, group_accounts={"/virgo": "nobody"})
    message = refused(http, issuer.sign(**{"wlcg.groups": ["/virgo"]}))
    assert "maps to no Lacus account" in message
    assert "'wlcg.groups' claim names no account" in message


def test_admin_groups_make_admins_unless_the_token_has_storage_scopes(
    server: RunningServer, issuer: Issuer
) -> None:
    _with_groups(server, admin_groups=["/lake/admins"])
    admins = {"wlcg.groups": ["/virgo", "/lake/admins"]}
    with bearer(server, issuer, None, preferred_username="bob", **admins) as bob:
        bob.add_account("carol")
    with bearer(server, issuer, None, preferred_username="bob", **{"wlcg.groups": ["/virgo"]}) as b:
        assert "admins only" in denied(b.add_account, "dave")
    with bearer(server, issuer, "storage.read:/", preferred_username="bob", **admins) as bob:
        assert "admins only" in denied(bob.add_account, "dave")


def test_group_settings_are_read_from_lake_json(tmp_path: Path) -> None:
    trusted = {
        "issuer": "https://iam.example.org/",
        "jwks_url": "https://iam.example.org/jwk",
        "audience": "lacus",
        "group_accounts": {"/virgo": "virgo_ops"},
        "admin_groups": ["/lake/admins"],
    }
    config = {"database_url": "sqlite:///x.db", "oidc_issuers": [trusted]}
    (tmp_path / "lake.json").write_text(json.dumps(config))
    (loaded,) = load_settings(tmp_path).oidc_issuers
    assert (loaded.group_accounts, loaded.admin_groups) == (
        {"/virgo": "virgo_ops"},
        ["/lake/admins"],
    )
    trusted["admin_groups"] = ["admins"]
    (tmp_path / "lake.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInput, match="start with '/'"):
        load_settings(tmp_path)
