"""Embargoed data is invisible to other accounts in every listing, search, replica list and
download; its owner and admins see it; a release date in the past ends the embargo."""

from __future__ import annotations

import os
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select, update

from lacus.client import Client
from lacus.core import dids as core_dids
from lacus.core import embargo, expiry, visibility
from lacus.core.visibility import scope_visible, visible
from lacus.db import make_engine, transaction, upgrade
from lacus.db.tables import dids
from lacus.db.tables import scopes as scopes_table
from lacus.errors import DIDNotFound, LacusError, RuleNotFound, ScopeNotFound
from lacus.service import Lake, Principal, replicas, scopes
from lacus.service import accounts as service_accounts
from lacus.service import dids as service_dids
from lacus.types import DIDType, FileSpec
from tests.conftest import RunningServer, _postgres_database

PASSWORD = "password-of-the-tests"
Probe = Callable[[Client], object]


@pytest.fixture(autouse=True)
def _conditions_built_again() -> None:
    """Each test builds the visibility conditions anew: they are kept per account, and one
    built by an earlier test (or code under test since changed) must not stand in for it."""
    visibility._visible_dids.cache_clear()
    visibility._visible_scopes.cache_clear()
    core_dids._did_query.cache_clear()


@pytest.fixture
def accounts(client: Client, server: RunningServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """alice owns scope 'alice' with dataset 'ds' (embargoed) and 'pub' (public); bob does not.

    The clients close whatever happens (a failing setup must not leave sockets open)."""
    client.add_account("alice", password=PASSWORD)
    client.add_account("bob", password=PASSWORD)
    client.add_scope("alice", account="alice")
    with (
        Client(server.url, account="alice", password=PASSWORD) as alice,
        Client(server.url, account="bob", password=PASSWORD) as bob,
    ):
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
    assert "alice" in {s["scope"] for s in accounts["root"].list_scopes()}  # admins see it
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


# -- every path up: lifting one embargo never shows what another still hides ----------------------


def _bob_finds(bob: Client, tmp_path: Path) -> dict[str, set[str]]:
    """The names bob finds through each listing path (nothing where a DID is hidden from him)."""

    def names(probe: Callable[[], object]) -> set[str]:
        try:
            return _names(probe())
        except (DIDNotFound, ScopeNotFound):
            return set()

    search = {"type": "file", "filters": "[{}]"}
    target = tmp_path / f"download-{len(list(tmp_path.glob('download-*')))}"
    return {
        "Rucio search": set(bob.session.ndjson("GET", "/dids/alice/dids/search", params=search)),
        "Lacus search": names(lambda: bob.list_dids("alice:*")),
        "content of pub": names(lambda: bob.list_content("alice:pub")),
        "files of box": names(lambda: bob.list_files("alice:box")),
        "replicas of pub": names(lambda: bob.list_replicas(["alice:pub"])),
        "replicas of box": names(lambda: bob.list_replicas(["alice:box"])),
        "the file": names(lambda: [bob.get_did("alice:secret.dat")]),
        "wildcard download": {
            Path(found["path"]).name for found in bob.download(["alice:*"], target)
        },
    }


def test_lifting_one_embargo_keeps_what_another_hides(
    accounts: dict[str, Client], tmp_path: Path
) -> None:
    """The reproduction of issue 16: secret.dat sits in ds (embargoed, "A") and in pub ("B");
    set B, lift B: A still hides it, in every listing; lift A: it shows everywhere."""
    alice, bob = accounts["alice"], accounts["bob"]
    alice.attach("alice:pub", ["alice:secret.dat"])
    alice.set_embargo("alice:pub")
    assert all(
        not found & {"secret.dat", "open.dat"} for found in _bob_finds(bob, tmp_path).values()
    )

    alice.set_embargo("alice:pub", embargoed=False)

    found = _bob_finds(bob, tmp_path)
    assert {path: "secret.dat" in names for path, names in found.items()} == dict.fromkeys(
        found, False
    ), found
    assert found["content of pub"] == {"open.dat"}  # B itself is public again
    assert _names(alice.list_content("alice:pub")) == {"open.dat", "secret.dat"}

    alice.set_embargo("alice:ds", embargoed=False)

    found = _bob_finds(bob, tmp_path)
    assert {path: "secret.dat" in names for path, names in found.items()} == dict.fromkeys(
        found, True
    ), found


def test_collections_attached_later_to_an_embargoed_container_are_hidden(
    accounts: dict[str, Client], tmp_path: Path
) -> None:
    """Not only files: a dataset and a container attached later, and all below them."""
    alice, bob = accounts["alice"], accounts["bob"]
    (tmp_path / "late.dat").write_bytes(b"late bytes")
    alice.upload([tmp_path / "late.dat"], rse="ALPHA_DISK", scope="alice", dataset="late")
    alice.add_container("alice:inner")
    alice.attach("alice:inner", ["alice:late"])
    alice.set_embargo("alice:box")
    alice.attach("alice:box", ["alice:inner"])
    for did in ("alice:inner", "alice:late", "alice:late.dat"):
        with pytest.raises(DIDNotFound):
            bob.get_did(did)
    assert alice.get_did("alice:late.dat")["bytes"] == 10
    alice.detach("alice:box", ["alice:inner"])
    assert bob.get_did("alice:late.dat")["bytes"] == 10


# -- the same through the service layer -----------------------------------------------------------

ROOT = Principal("root", admin=True)
BOB = Principal("bob")
ALICE = Principal("alice")


@pytest.fixture
def cat(lake: Lake) -> Lake:
    """alice owns the scopes ``alice`` and ``north``; bob owns nothing there."""
    for account in ("alice", "bob"):
        service_accounts.add_account(lake, ROOT, account)
    for scope in ("alice", "north"):
        scopes.add_scope(lake, ROOT, scope, account="alice")
    return lake


def _key(did: str) -> tuple[str, str]:
    scope, name = did.split(":")
    return scope, name


def _files(lake: Lake, *dids: str, dataset: str | None = None) -> None:
    files: list[FileSpec] = []
    for did in dids:
        scope, name = _key(did)
        data = did.encode()
        adler32 = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
        files.append({"scope": scope, "name": name, "bytes": len(data), "adler32": adler32})
    into = None if dataset is None else _key(dataset)
    replicas.add_replicas(lake, ROOT, "ALPHA_DISK", files, dataset=into)  # admins register


def _collection(lake: Lake, did: str, did_type: DIDType, children: Sequence[str] = ()) -> None:
    keys = [_key(child) for child in children]
    service_dids.add_collection(lake, ALICE, *_key(did), did_type, children=keys)


def _attach(lake: Lake, parent: str, *children: str) -> None:
    service_dids.attach(lake, ALICE, *_key(parent), [_key(child) for child in children])


def _detach(lake: Lake, parent: str, *children: str) -> None:
    service_dids.detach(lake, ALICE, *_key(parent), [_key(child) for child in children])


def _embargo(lake: Lake, did: str, *, embargoed: bool = True, until: datetime | None = None) -> int:
    """Embargo (or lift) a DID or, without a colon, a scope, as alice; how many DIDs changed."""
    if ":" not in did:
        scopes.set_embargo(lake, ALICE, did, embargoed=embargoed, release_at=_naive(until))
        return 0
    return service_dids.set_embargo(
        lake, ALICE, *_key(did), embargoed=embargoed, release_at=_naive(until)
    )


def _naive(moment: datetime | None) -> datetime | None:
    """The catalog's time: naive UTC (a naive ``moment`` is that already)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _seen(lake: Lake, *dids: str, who: Principal = BOB) -> set[str]:
    """Of ``dids``, those ``who`` may get."""
    found = set()
    for did in dids:
        try:
            service_dids.get_did(lake, who, *_key(did))
        except DIDNotFound:
            continue
        found.add(did)
    return found


def _bob_lists(lake: Lake, collection: str) -> dict[str, set[str]]:
    """The names bob finds in ``alice`` and below ``collection`` through each service read."""
    scope, name = _key(collection)

    def names(probe: Callable[[], Iterable[Any]]) -> set[str]:
        try:
            return {item["name"] for item in probe()}
        except DIDNotFound:
            return set()

    return {
        "search": names(lambda: service_dids.search_dids(lake, BOB, "alice")),
        "content": names(lambda: service_dids.list_content(lake, BOB, scope, name)),
        "files": names(lambda: service_dids.list_files(lake, BOB, scope, name)),
        "replicas": names(lambda: replicas.list_replicas(lake, BOB, [(scope, name)])),
    }


def test_service_lifting_one_parent_keeps_what_another_hides(cat: Lake) -> None:
    _files(cat, "alice:f", "alice:g", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:f"])
    _embargo(cat, "alice:a")
    _embargo(cat, "alice:b")
    _embargo(cat, "alice:b", embargoed=False)
    assert _seen(cat, "alice:a", "alice:b", "alice:f", "alice:g") == {"alice:b"}
    assert {path: "f" in found for path, found in _bob_lists(cat, "alice:b").items()} == {
        "search": False,
        "content": False,
        "files": False,
        "replicas": False,
    }
    assert _seen(cat, "alice:f", who=ALICE) == {"alice:f"}  # its owner sees it
    assert _seen(cat, "alice:f", who=ROOT) == {"alice:f"}  # and admins

    _embargo(cat, "alice:a", embargoed=False)

    assert _seen(cat, "alice:a", "alice:b", "alice:f", "alice:g") == {
        "alice:a",
        "alice:b",
        "alice:f",
        "alice:g",
    }
    assert all("f" in found for found in _bob_lists(cat, "alice:b").values())


def test_lifting_the_same_embargo_twice_or_the_other_first(cat: Lake) -> None:
    _files(cat, "alice:f", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:f"])
    _embargo(cat, "alice:a")
    _embargo(cat, "alice:b")
    _embargo(cat, "alice:a", embargoed=False)
    _embargo(cat, "alice:a", embargoed=False)
    assert _seen(cat, "alice:f") == set()  # b still hides it
    _embargo(cat, "alice:b", embargoed=False)
    assert _seen(cat, "alice:f") == {"alice:f"}


def test_detaching_from_the_only_embargoed_parent_shows_the_file(cat: Lake) -> None:
    _files(cat, "alice:f", "alice:g", dataset="alice:a")
    _collection(cat, "alice:public", DIDType.DATASET, ["alice:f"])
    _embargo(cat, "alice:a")
    assert _seen(cat, "alice:f", "alice:g") == set()
    _detach(cat, "alice:a", "alice:f", "alice:g")
    assert _seen(cat, "alice:f", "alice:g") == {"alice:f", "alice:g"}
    assert _seen(cat, "alice:a") == set()


def test_detaching_from_one_of_two_embargoed_parents_keeps_it_hidden(cat: Lake) -> None:
    _files(cat, "alice:f", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:f"])
    _embargo(cat, "alice:a")
    _embargo(cat, "alice:b")
    _detach(cat, "alice:a", "alice:f")
    assert _seen(cat, "alice:f") == set()
    _detach(cat, "alice:b", "alice:f")
    assert _seen(cat, "alice:f") == {"alice:f"}


def test_an_embargo_reaches_down_every_level_and_back_up_when_detached(cat: Lake) -> None:
    """Container → container → dataset → file, embargoed at the top; collections attached
    later (not only files) inherit it; a collection detached leaves it behind."""
    _files(cat, "alice:f", dataset="alice:d1")
    _files(cat, "alice:g", dataset="alice:d2")
    _collection(cat, "alice:top", DIDType.CONTAINER, ["alice:d1"])
    _embargo(cat, "alice:top")
    assert _seen(cat, "alice:top", "alice:d1", "alice:f") == set()

    _collection(cat, "alice:mid", DIDType.CONTAINER, ["alice:d2"])
    _attach(cat, "alice:top", "alice:mid")
    assert _seen(cat, "alice:mid", "alice:d2", "alice:g") == set()
    _files(cat, "alice:h", dataset="alice:d2")  # registered into a dataset two levels down
    assert _seen(cat, "alice:h") == set()

    _detach(cat, "alice:top", "alice:mid")
    assert _seen(cat, "alice:mid", "alice:d2", "alice:g", "alice:h") == {
        "alice:mid",
        "alice:d2",
        "alice:g",
        "alice:h",
    }
    _embargo(cat, "alice:top", embargoed=False)
    assert _seen(cat, "alice:top", "alice:d1", "alice:f") == {"alice:top", "alice:d1", "alice:f"}


def test_an_embargoed_file_keeps_its_own_embargo_when_its_parent_is_lifted(cat: Lake) -> None:
    _files(cat, "alice:f", "alice:g", dataset="alice:a")
    _embargo(cat, "alice:f")
    _embargo(cat, "alice:a")
    _embargo(cat, "alice:a", embargoed=False)
    assert _seen(cat, "alice:a", "alice:f", "alice:g") == {"alice:a", "alice:g"}


def test_a_did_under_two_embargoes_shows_when_the_last_is_released(cat: Lake) -> None:
    _files(cat, "alice:f", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:f"])
    now = datetime.now(UTC)
    _embargo(cat, "alice:a", until=now - timedelta(hours=1))
    _embargo(cat, "alice:b", until=now + timedelta(hours=1))
    assert _seen(cat, "alice:a", "alice:b", "alice:f") == {"alice:a"}
    _embargo(cat, "alice:b", until=now - timedelta(minutes=1))
    assert _seen(cat, "alice:a", "alice:b", "alice:f") == {"alice:a", "alice:b", "alice:f"}
    _embargo(cat, "alice:a")  # for ever
    assert _seen(cat, "alice:f") == set()
    _embargo(cat, "alice:b", until=now + timedelta(hours=2))
    _embargo(cat, "alice:a", until=now + timedelta(hours=1))
    assert _seen(cat, "alice:f") == set()
    _embargo(cat, "alice:b", embargoed=False)
    assert _seen(cat, "alice:f") == set()  # a's date is still to come


def test_release_dates_pass_without_any_write(cat: Lake) -> None:
    """The time is read when a listing runs: the file shows once the later date has passed."""
    _files(cat, "alice:f", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:f"])
    start = datetime.now(UTC)
    _embargo(cat, "alice:a", until=start + timedelta(seconds=1))
    _embargo(cat, "alice:b", until=start + timedelta(seconds=2))
    assert _seen(cat, "alice:a", "alice:b", "alice:f") == set()
    _sleep_until(start + timedelta(seconds=1.2))
    assert _seen(cat, "alice:a", "alice:b", "alice:f") == {"alice:a"}
    _sleep_until(start + timedelta(seconds=2.2))
    assert _seen(cat, "alice:a", "alice:b", "alice:f") == {"alice:a", "alice:b", "alice:f"}
    assert "f" in {item["name"] for item in service_dids.search_dids(cat, BOB, "alice")}


def test_an_embargo_ends_at_its_release_date(cat: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _files(cat, "alice:f", dataset="alice:a")
    moment = datetime(2030, 1, 1, 12)  # a whole second: both sides compare in one format
    _embargo(cat, "alice:a", until=moment)
    _embargo(cat, "north", until=moment)
    _files(cat, "north:n")
    for now, seen in (
        (moment - timedelta(microseconds=1), set()),
        (moment, {"alice:f", "north:n"}),
    ):
        monkeypatch.setattr(visibility, "utcnow", lambda now=now: now)
        assert _seen(cat, "alice:f", "north:n") == seen
        assert ("north" in {s["scope"] for s in scopes.list_scopes(cat, BOB)}) == bool(seen)


def test_the_conditions_are_never_null(cat: Lake) -> None:
    """What bob may not see is exactly the rest (``NOT visible``: a condition that could be
    NULL would hide a DID from both, and a reader that negates it would let it through)."""
    _files(cat, "alice:f", "alice:g", "north:n", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:g"])
    _embargo(cat, "alice:a")  # for ever: no release date
    _embargo(cat, "alice:b", until=datetime.now(UTC) + timedelta(days=1))
    _embargo(cat, "north")
    with cat.read() as conn:
        seen = {row.name for row in conn.execute(select(dids.c.name).where(visible(BOB)))}
        unseen = {row.name for row in conn.execute(select(dids.c.name).where(~visible(BOB)))}
        every_scope = set(conn.scalars(select(scopes_table.c.scope)))
        scopes_seen = set(conn.scalars(select(scopes_table.c.scope).where(scope_visible(BOB))))
        scopes_unseen = set(conn.scalars(select(scopes_table.c.scope).where(~scope_visible(BOB))))
    assert (seen, unseen) == (set(), {"a", "b", "f", "g", "n"})
    assert (scopes_seen, scopes_unseen) == (every_scope - {"north"}, {"north"})


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def test_an_embargoed_scope_hides_what_its_dids_hold_from_other_scopes(cat: Lake) -> None:
    service_accounts.add_account(cat, ROOT, "carol")
    scopes.add_scope(cat, ROOT, "carol", account="carol")
    _files(cat, "alice:f", "alice:g")
    _collection(cat, "north:d", DIDType.DATASET, ["alice:f"])
    _embargo(cat, "north")
    assert _seen(cat, "north:d", "alice:f", "alice:g") == {"alice:g"}
    _attach(cat, "north:d", "alice:g")  # attached later
    assert _seen(cat, "alice:g") == set()
    assert _seen(cat, "alice:f", "alice:g", who=ALICE) == {"alice:f", "alice:g"}
    _detach(cat, "north:d", "alice:g")
    assert _seen(cat, "alice:g") == {"alice:g"}

    _embargo(cat, "north", embargoed=False)
    assert _seen(cat, "north:d", "alice:f") == {"north:d", "alice:f"}
    _embargo(cat, "north", until=datetime.now(UTC) - timedelta(seconds=1))
    assert _seen(cat, "north:d", "alice:f") == {"north:d", "alice:f"}  # released already


def test_a_scope_owner_sees_its_dids_whatever_hides_them(cat: Lake) -> None:
    """carol owns scope ``carol``; alice's embargoed dataset holds carol's file: carol (and
    whoever owns the DID) still sees it, bob does not."""
    service_accounts.add_account(cat, ROOT, "carol")
    scopes.add_scope(cat, ROOT, "carol", account="carol")
    replicas.add_replicas(
        cat,
        ROOT,
        "ALPHA_DISK",
        [{"scope": "carol", "name": "c", "bytes": 1, "adler32": "00020002"}],
    )
    _collection(cat, "alice:d", DIDType.DATASET, ["carol:c"])
    _embargo(cat, "alice:d")
    assert _seen(cat, "carol:c") == set()
    assert _seen(cat, "carol:c", who=Principal("carol")) == {"carol:c"}


def test_an_expired_embargoed_dataset_leaves_its_files_visible(cat: Lake) -> None:
    _files(cat, "alice:f", dataset="alice:a")
    _embargo(cat, "alice:a")
    with cat.write() as conn:
        expiry.set_lifetime(conn, "alice", "a", -1)
        assert expiry.expire_did(conn, "alice", "a")
    assert _seen(cat, "alice:f") == {"alice:f"}


def test_embargo_answers_how_many_dids_changed(cat: Lake) -> None:
    _files(cat, "alice:f", "alice:g", dataset="alice:a")
    _collection(cat, "alice:b", DIDType.DATASET, ["alice:f"])
    assert _embargo(cat, "alice:a") == 3
    assert _embargo(cat, "alice:a") == 0  # nothing new
    assert _embargo(cat, "alice:b") == 1  # f was hidden already, for ever
    assert _embargo(cat, "alice:a", embargoed=False) == 2  # a and g; b still hides f
    missing = pytest.raises(DIDNotFound, match=r"^DID alice:nothing does not exist$")
    with missing, cat.write() as conn:
        embargo.set_did_embargo(conn, "alice", "nothing", embargoed=True, release_at=None)


def test_a_lifted_embargo_keeps_no_release_date(cat: Lake) -> None:
    _collection(cat, "alice:a", DIDType.DATASET)
    later = datetime(2030, 1, 1)
    with cat.write() as conn:
        embargo.set_did_embargo(conn, "alice", "a", embargoed=True, release_at=later)
        embargo.set_scope_embargo(conn, "north", embargoed=True, release_at=later)
    assert _stored(cat) == {"alice:a": (True, later, True, later)}
    with cat.write() as conn:
        embargo.set_did_embargo(conn, "alice", "a", embargoed=False, release_at=later)
        embargo.set_scope_embargo(conn, "north", embargoed=False, release_at=later)
        lifted = conn.execute(
            select(scopes_table.c.embargoed, scopes_table.c.embargo_release_at).where(
                scopes_table.c.scope == "north"
            )
        ).one()
    assert _stored(cat) == {"alice:a": (False, None, False, None)}
    assert (bool(lifted.embargoed), lifted.embargo_release_at) == (False, None)


PLANTED = datetime(2099, 1, 1)


def test_recomputation_stays_below_what_changed(cat: Lake) -> None:
    """Each change recomputes the DIDs below it and nothing else (and a path that hands nothing
    down recomputes nothing): a value planted anywhere else — same names in another scope,
    other DIDs of the same scope, DIDs of a scope held in the same scope — is left as it was."""
    _files(cat, "alice:f", dataset="alice:a")  # what changes
    _files(cat, "alice:f2", dataset="alice:d")  # a public dataset
    _files(cat, "north:f2", dataset="north:a")  # the same names, in another scope
    _files(cat, "alice:y", dataset="alice:z")  # the same scope, other names
    _files(cat, "north:p", dataset="north:q")  # north within north
    _collection(cat, "north:q2", DIDType.DATASET)
    planted = ["north:f2", "alice:y", "north:p"]  # (not their parents: those would hand it down)
    with cat.write() as conn:
        for did in planted:
            scope, name = _key(did)
            conn.execute(
                update(dids)
                .where(dids.c.scope == scope, dids.c.name == name)
                .values(embargoed=True, embargo_release_at=PLANTED)
            )

    _embargo(cat, "alice:a")
    _attach(cat, "alice:a", "alice:f2")
    _detach(cat, "alice:a", "alice:f2")
    _embargo(cat, "alice:a", embargoed=False)
    _attach(cat, "alice:d", "alice:y")  # into a public dataset: nothing handed down
    _embargo(cat, "north")
    _attach(cat, "north:q2", "north:p")  # north's own DIDs are checked against north itself
    _embargo(cat, "north", embargoed=False)
    _embargo(cat, "alice")
    _embargo(cat, "alice", embargoed=False)

    stored = _stored(cat)
    assert {did: stored[did][2:] for did in planted} == dict.fromkeys(planted, (True, PLANTED))
    assert _seen(cat, "alice:a", "alice:f", "alice:f2") == {"alice:a", "alice:f", "alice:f2"}


def _stored(lake: Lake) -> dict[str, tuple[bool, datetime | None, bool, datetime | None]]:
    """Each DID's own embargo and release, effective embargo and release, as stored."""
    with lake.read() as conn:
        rows = conn.execute(select(dids).order_by(dids.c.scope, dids.c.name))
        return {
            f"{row.scope}:{row.name}": (
                bool(row.own_embargoed),
                row.own_release_at,
                bool(row.embargoed),
                row.embargo_release_at,
            )
            for row in rows
        }


# -- migration 0013: the own embargo told apart from what was copied down ------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0012(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A new catalog migrated up to 0012, the last revision that copied embargoes down."""
    urls = (
        iter([f"sqlite:///{tmp_path / 'old.db'}"])
        if request.param == "sqlite"
        else _postgres_database(f"lacus_embargo_{os.getpid()}_{secrets.token_hex(4)}")
    )
    for url in urls:
        engine = make_engine(url)
        try:
            upgrade(engine, "0012")
            yield engine
        finally:
            engine.dispose()


def test_upgrading_keeps_own_embargoes_and_hides_again_what_a_lift_showed(
    at_0012: Engine,
) -> None:
    """Before: ds:a embargoed (copied onto g and k), b lifted (which showed f, still in a), k
    given its own date, h embargoed alone, scope n embargoed with n:x holding s:y."""
    later = datetime(2030, 1, 1)
    now = datetime(2026, 1, 1)
    times = {"created_at": now, "updated_at": now}
    account = _old_table("accounts", "account", "account_type", "status", "admin")
    scope = _old_table("scopes", "scope", "account", "status", "embargoed")
    did = _old_table(
        "dids", "scope", "name", "did_type", "account", "embargoed", "embargo_release_at"
    )
    content = _old_table("contents", "scope", "name", "child_scope", "child_name", "child_type")
    dids_before = {  # name: (scope, type, embargoed, release)
        "a": ("s", "dataset", True, None),
        "b": ("s", "dataset", False, None),
        "f": ("s", "file", False, None),
        "g": ("s", "file", True, None),
        "k": ("s", "file", True, later),
        "h": ("s", "file", True, later),
        "x": ("n", "dataset", False, None),
        "y": ("s", "file", False, None),
    }
    with transaction(at_0012) as conn:
        conn.execute(
            sa.insert(account).values(
                account="root", account_type="service", status="active", admin=True, **times
            )
        )
        for name, hidden in (("s", False), ("n", True)):
            conn.execute(
                sa.insert(scope).values(
                    scope=name, account="root", status="open", embargoed=hidden, created_at=now
                )
            )
        for name, (in_scope, kind, hidden, release) in dids_before.items():
            conn.execute(
                sa.insert(did).values(
                    scope=in_scope,
                    name=name,
                    did_type=kind,
                    account="root",
                    embargoed=hidden,
                    embargo_release_at=release,
                    **times,
                )
            )
        for parent, child in (("a", "f"), ("a", "g"), ("a", "k"), ("b", "f"), ("x", "y")):
            conn.execute(
                sa.insert(content).values(
                    scope=dids_before[parent][0],
                    name=parent,
                    child_scope="s",
                    child_name=child,
                    child_type=dids_before[child][1],
                    created_at=now,
                )
            )

    upgrade(at_0012)

    def state() -> dict[str, tuple[bool, datetime | None, bool, datetime | None]]:
        with transaction(at_0012) as conn:
            rows = conn.execute(select(dids).order_by(dids.c.name))
            return {
                row.name: (
                    bool(row.own_embargoed),
                    row.own_release_at,
                    bool(row.embargoed),
                    row.embargo_release_at,
                )
                for row in rows
            }

    assert state() == {  # name: own, own release, effective, effective release
        "a": (True, None, True, None),
        "b": (False, None, False, None),
        "f": (False, None, True, None),  # a still holds it: hidden again
        "g": (False, None, True, None),
        "k": (True, later, True, None),  # its own date, and a's for ever
        "h": (True, later, True, later),
        "x": (False, None, False, None),  # in scope n: checked against the scope
        "y": (False, None, True, None),  # below a DID of the embargoed scope n
    }
    with transaction(at_0012) as conn:
        embargo.set_did_embargo(conn, "s", "a", embargoed=False, release_at=None)
    after = state()
    assert {name: after[name][2:] for name in ("a", "f", "g", "k")} == {
        "a": (False, None),
        "f": (False, None),
        "g": (False, None),
        "k": (True, later),
    }


def _old_table(name: str, *columns: str) -> sa.TableClause:
    """Enough of a table of revision 0012 to insert rows into."""
    types: dict[str, Any] = {"admin": sa.Boolean, "embargoed": sa.Boolean}
    stamps = [sa.column(stamp, sa.DateTime) for stamp in ("created_at", "updated_at")]
    typed = [sa.column(c, sa.DateTime if c.endswith("_at") else types.get(c)) for c in columns]
    return sa.table(name, *typed, *stamps)
