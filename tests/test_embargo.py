"""Embargoed data is invisible to other accounts in every listing, search, replica list and
download; its owner and admins see it; a release date in the past ends the embargo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lacus.client import Client
from lacus.errors import DIDNotFound, LacusError, RuleNotFound, ScopeNotFound
from tests.conftest import RunningServer

PASSWORD = "password-of-the-tests"
Probe = Callable[[Client], object]


@pytest.fixture
def accounts(client: Client, server: RunningServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """alice owns scope 'alice' with dataset 'ds' (embargoed) and 'pub' (public); bob does not."""
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)
    client.add_scope("alice", account="alice")
    alice = Client(server.url, account="alice", password=PASSWORD)
    bob = Client(server.url, account="bob", password=PASSWORD)
    for name, content in (("secret.dat", b"embargoed bytes"), ("open.dat", b"public bytes")):
        (tmp_path / name).write_bytes(content)
    alice.upload([tmp_path / "secret.dat"], rse="ALPHA_DISK", scope="alice", dataset="ds")
    alice.upload([tmp_path / "open.dat"], rse="ALPHA_DISK", scope="alice", dataset="pub")
    alice.add_container("alice:box")
    alice.attach("alice:box", ["alice:ds", "alice:pub"])
    alice.set_metadata("alice:ds", {"run": 7})
    rule_id = _add_rule(alice, "alice:ds")
    alice.set_embargo("alice:ds")
    yield {"root": client, "alice": alice, "bob": bob, "rule": rule_id}
    alice.close()
    bob.close()


def _add_rule(client: Client, did: str) -> str:
    scope, name = did.split(":")
    body = {"dids": [{"scope": scope, "name": name}], "copies": 1, "rse_expression": "BETA_DISK"}
    (rule_id,) = client.session.json("POST", "/rules/", json=body)
    return str(rule_id)


def _names(items: object) -> set[str]:
    return {item["name"] for item in items}  # type: ignore[attr-defined]


PROBES: dict[str, tuple[Probe, Callable[[object], bool]]] = {
    "get the dataset": (lambda c: c.get_did("alice:ds"), lambda r: r["name"] == "ds"),  # type: ignore[index]
    "get its file": (lambda c: c.get_did("alice:secret.dat"), lambda r: r["bytes"] == 15),  # type: ignore[index]
    "search names": (
        lambda c: _names(c.list_dids("alice:*")),
        lambda r: {"ds", "secret.dat"} <= r,  # type: ignore[operator]
    ),
    "search metadata": (
        lambda c: _names(c.list_dids("alice:*", filters=["run=7"])),
        lambda r: r == {"ds"},
    ),
    "files of the container": (
        lambda c: _names(c.list_files("alice:box")),
        lambda r: r == {"secret.dat", "open.dat"},
    ),
    "content of the container": (
        lambda c: _names(c.list_content("alice:box")),
        lambda r: r == {"ds", "pub"},
    ),
    "replicas of the container": (
        lambda c: _names(c.list_replicas(["alice:box"])),
        lambda r: r == {"secret.dat", "open.dat"},
    ),
    "replicas of the file": (
        lambda c: _names(c.list_replicas(["alice:secret.dat"])),
        lambda r: r == {"secret.dat"},
    ),
    "metadata": (lambda c: c.get_metadata("alice:ds"), lambda r: r == {"run": 7}),
    "rules of the dataset": (
        lambda c: [rule["name"] for rule in c.session.ndjson("GET", "/dids/alice/ds/rules")],
        lambda r: r == ["ds"],
    ),
    "rules of the account": (
        lambda c: [rule["name"] for rule in c.session.ndjson("GET", "/accounts/alice/rules")],
        lambda r: r == ["ds"],
    ),
    "Rucio search of files": (
        lambda c: set(
            c.session.ndjson(
                "GET", "/dids/alice/dids/search", params={"type": "file", "filters": "[{}]"}
            )
        ),
        lambda r: r == {"secret.dat", "open.dat"},
    ),
    "metalink parents": (
        lambda c: (
            c.session.request(
                "POST",
                "/replicas/list",
                json={"dids": [{"scope": "alice", "name": "open.dat"}], "resolve_parents": True},
            ).text
        ),
        lambda r: "alice:ds" not in r and "alice:pub" in r,  # type: ignore[operator]
    ),
}


def _sees(client: Client, probe: Probe, check: Callable[[object], bool]) -> bool:
    try:
        result = probe(client)
    except (DIDNotFound, RuleNotFound):
        return False
    return check(result)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_embargo_matrix(accounts: dict[str, Client], probe: str) -> None:
    function, check = PROBES[probe]
    if probe == "metalink parents":
        # open.dat sits in the public dataset only: everyone sees it, nobody else sees ds above it
        assert "alice:pub" in function(accounts["bob"])  # type: ignore[operator]
        assert "alice:ds" not in function(accounts["bob"])  # type: ignore[operator]
        return
    assert _sees(accounts["alice"], function, check), f"the owner must see: {probe}"
    assert _sees(accounts["root"], function, check), f"an admin must see: {probe}"
    assert not _sees(accounts["bob"], function, check), f"another account must not see: {probe}"


def test_the_rule_itself_is_hidden(accounts: dict[str, Client]) -> None:
    rule_id = accounts["rule"]
    assert accounts["alice"].session.json("GET", f"/rules/{rule_id}")["name"] == "ds"
    with pytest.raises(RuleNotFound):
        accounts["bob"].session.json("GET", f"/rules/{rule_id}")


def test_download_of_embargoed_data_is_refused(accounts: dict[str, Client], tmp_path: Path) -> None:
    with pytest.raises(DIDNotFound):
        accounts["bob"].download(["alice:ds"], tmp_path / "bob")
    with pytest.raises(DIDNotFound):
        accounts["bob"].download(["alice:secret.dat"], tmp_path / "bob")
    got = accounts["bob"].download(["alice:*"], tmp_path / "bob")
    assert {Path(r["path"]).name for r in got} == {"open.dat"}
    assert not (tmp_path / "bob" / "alice" / "secret.dat").exists()
    accounts["alice"].download(["alice:ds"], tmp_path / "alice")
    assert (tmp_path / "alice" / "alice" / "secret.dat").read_bytes() == b"embargoed bytes"


def test_files_attached_later_inherit_the_embargo(
    accounts: dict[str, Client], tmp_path: Path
) -> None:
    (tmp_path / "late.dat").write_bytes(b"arrived later")
    accounts["alice"].upload([tmp_path / "late.dat"], rse="ALPHA_DISK", scope="alice", dataset="ds")
    with pytest.raises(DIDNotFound):
        accounts["bob"].get_did("alice:late.dat")
    assert accounts["alice"].get_did("alice:late.dat")["bytes"] == 13


def test_release_date_and_lifting(accounts: dict[str, Client]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    alice.set_embargo("alice:ds", release_at=datetime.now(UTC) + timedelta(days=30))
    with pytest.raises(DIDNotFound):
        bob.get_did("alice:secret.dat")
    alice.set_embargo("alice:ds", release_at=datetime.now(UTC) - timedelta(seconds=1))
    assert bob.get_did("alice:secret.dat")["bytes"] == 15  # released: the date has passed
    alice.set_embargo("alice:ds")
    with pytest.raises(DIDNotFound):
        bob.get_did("alice:ds")
    alice.set_embargo("alice:ds", embargoed=False)
    assert _names(bob.list_files("alice:ds")) == {"secret.dat"}


def test_scope_embargo(accounts: dict[str, Client]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    alice.set_embargo("alice")
    assert "alice" not in {s["scope"] for s in bob.list_scopes()}
    assert "alice" in {s["scope"] for s in alice.list_scopes()}
    with pytest.raises(ScopeNotFound):
        list(bob.list_dids("alice:*"))
    with pytest.raises(DIDNotFound):
        bob.get_did("alice:open.dat")
    assert alice.get_did("alice:open.dat")["bytes"] == 12
    alice.set_embargo("alice", embargoed=False)
    assert bob.get_did("alice:open.dat")["bytes"] == 12


def test_only_the_owner_may_embargo(accounts: dict[str, Client]) -> None:
    with pytest.raises(LacusError):
        accounts["bob"].set_embargo("alice:pub")
    assert accounts["bob"].get_did("alice:pub")["name"] == "pub"
