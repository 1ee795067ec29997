"""The catalog through the service layer: scopes, RSEs, DIDs, replicas and metadata.

Every test runs on SQLite and on PostgreSQL (the ``lake`` fixture). Expected sizes, checksums, paths
and search results are computed here from the inputs, never read back from Lacus to compare with.
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from lacus.errors import (
    AccessDenied,
    AccountAlreadyExists,
    AccountNotFound,
    AlreadyExists,
    DIDAlreadyExists,
    DIDNotFound,
    InvalidInput,
    InvalidMetadataFilter,
    InvalidName,
    NotFound,
    ReplicaAlreadyExists,
    RSEAlreadyExists,
    RSENotFound,
    ScopeAlreadyExists,
    ScopeNotFound,
    UnsupportedOperation,
)
from lacus.naming import deterministic_path
from lacus.service import Lake, Principal, accounts, dids, permissions, replicas, rses, scopes
from lacus.types import DIDType, FileSpec, MetaValue, ProtocolInfo, ReplicaState, RSEType
from tests.rule_helpers import rse_prefix

ROOT = Principal("root", admin=True)
JDOE = Principal("jdoe")
SCOPE = "virgo"


# -- helpers -------------------------------------------------------------------------------------


def content_of(name: str, index: int = 0) -> bytes:
    return (f"{name}:{index}\n".encode()) * (index % 5 + 1)


def spec(scope: str, name: str, data: bytes | None = None, **extra: Any) -> FileSpec:
    """A file to register, with size and checksums computed from its bytes."""
    data = content_of(name) if data is None else data
    result: dict[str, Any] = {
        "scope": scope,
        "name": name,
        "bytes": len(data),
        "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
        "md5": hashlib.md5(data).hexdigest(),
    }
    result.update(extra)
    return result  # type: ignore[return-value]


def specs(scope: str, prefix: str, count: int) -> list[FileSpec]:
    return [
        spec(scope, f"{prefix}{i:05d}", content_of(f"{prefix}{i:05d}", i)) for i in range(count)
    ]


def hash_path(scope: str, name: str) -> str:
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    directory = scope.replace(".", "/") if scope.startswith(("user", "group")) else scope
    return f"{directory}/{digest[:2]}/{digest[2:4]}/{name}"


def names_of(found: Any) -> list[str]:
    return [did["name"] for did in found]


def exists(lake: Lake, scope: str, name: str) -> bool:
    try:
        dids.get_did(lake, ROOT, scope, name)
    except DIDNotFound:
        return False
    return True


def with_jdoe(lake: Lake) -> None:
    """A second, unprivileged account that owns ``user.jdoe``."""
    accounts.add_account(lake, ROOT, "jdoe", password="jdoe-password")
    scopes.add_scope(lake, ROOT, "user.jdoe", account="jdoe")


@pytest.fixture
def cat(lake: Lake) -> Lake:
    """The seeded lake plus the scope ``virgo`` owned by root."""
    scopes.add_scope(lake, ROOT, SCOPE, account="root")
    return lake


# -- accounts and scopes -------------------------------------------------------------------------


def test_scopes_belong_to_accounts(cat: Lake) -> None:
    with_jdoe(cat)
    scopes.add_scope(cat, JDOE, "jdoe_private", account="jdoe")  # for itself: allowed
    owned = {s["scope"]: s["account"] for s in scopes.list_scopes(cat, ROOT)}
    assert owned == {"virgo": "root", "user.jdoe": "jdoe", "jdoe_private": "jdoe"}
    assert [s["scope"] for s in scopes.list_scopes(cat, JDOE, account="jdoe")] == [
        "jdoe_private",
        "user.jdoe",
    ]
    with pytest.raises(AccessDenied, match="may not create scopes for account 'root'"):
        scopes.add_scope(cat, JDOE, "stolen", account="root")
    with pytest.raises(ScopeAlreadyExists, match="'virgo' exists already"):
        scopes.add_scope(cat, ROOT, "virgo", account="jdoe")
    with pytest.raises(AccountNotFound, match="'nobody'"):
        scopes.add_scope(cat, ROOT, "orphan", account="nobody")
    with pytest.raises(InvalidName, match="invalid scope"):
        scopes.add_scope(cat, ROOT, "bad/scope", account="root")
    assert "stolen" not in {s["scope"] for s in scopes.list_scopes(cat, ROOT)}


def test_accounts_are_added_by_admins_only(cat: Lake) -> None:
    with_jdoe(cat)
    assert accounts.get_account(cat, JDOE, "jdoe")["admin"] is False
    with pytest.raises(
        AccessDenied, match="admins only"
    ):  # the server's gate; see test_permissions
        permissions.require(JDOE, "POST /accounts/{account}")
    with pytest.raises(AccountAlreadyExists, match="'jdoe'"):
        accounts.add_account(cat, ROOT, "jdoe")
    with pytest.raises(InvalidName, match="invalid account"):
        accounts.add_account(cat, ROOT, "Not Valid")
    with pytest.raises(AccountNotFound, match="'mallory'"):
        accounts.get_account(cat, ROOT, "mallory")
    assert [a["account"] for a in accounts.list_accounts(cat, ROOT)] == ["jdoe", "root"]


def test_an_account_writes_only_into_its_own_scopes_but_reads_everything(cat: Lake) -> None:
    with_jdoe(cat)
    replicas.add_replicas(
        cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "root_file")], dataset=(SCOPE, "ds")
    )
    dids.set_metadata(cat, ROOT, SCOPE, "ds", {"run": 1})

    denied = "may not write into scope 'virgo'"
    with pytest.raises(AccessDenied, match=denied):
        dids.add_collection(cat, JDOE, SCOPE, "jdoe_ds", DIDType.DATASET)
    with pytest.raises(AccessDenied, match=denied):
        replicas.add_replicas(cat, JDOE, "ALPHA_DISK", [spec(SCOPE, "jdoe_file")])
    with pytest.raises(AccessDenied, match=denied):
        replicas.add_replicas(
            cat, JDOE, "ALPHA_DISK", [spec("user.jdoe", "mine")], dataset=(SCOPE, "ds")
        )
    with pytest.raises(AccessDenied, match=denied):
        dids.attach(cat, JDOE, SCOPE, "ds", [(SCOPE, "root_file")])
    with pytest.raises(AccessDenied, match=denied):
        dids.detach(cat, JDOE, SCOPE, "ds", [(SCOPE, "root_file")])
    with pytest.raises(AccessDenied, match=denied):
        dids.set_metadata(cat, JDOE, SCOPE, "ds", {"run": 2})
    with pytest.raises(AccessDenied, match=denied):
        dids.set_open(cat, JDOE, SCOPE, "ds", is_open=False)
    # Nothing of the refused writes happened.
    assert not exists(cat, SCOPE, "jdoe_ds")
    assert not exists(cat, SCOPE, "jdoe_file")
    assert not exists(cat, "user.jdoe", "mine")
    assert dids.get_metadata(cat, ROOT, SCOPE, "ds") == {"run": 1}
    assert dids.get_did(cat, ROOT, SCOPE, "ds")["open"] is True

    # Reading is open to everyone.
    assert dids.get_did(cat, JDOE, SCOPE, "ds")["length"] == 1
    assert names_of(dids.list_content(cat, JDOE, SCOPE, "ds")) == ["root_file"]
    assert names_of(dids.search_dids(cat, JDOE, SCOPE)) == ["ds", "root_file"]
    assert dids.get_metadata(cat, JDOE, SCOPE, "ds") == {"run": 1}
    found = list(replicas.list_replicas(cat, JDOE, [(SCOPE, "ds")]))
    assert [(r["name"], sorted(r["rses"])) for r in found] == [("root_file", ["ALPHA_DISK"])]

    # In its own scope the account writes freely, also files into its own dataset (the bytes
    # first: only admins register replicas the server does not find on the storage).
    stored = rse_prefix(cat, "BETA_DISK") / deterministic_path("user.jdoe", "mine")
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(content_of("mine"))
    replicas.add_replicas(
        cat, JDOE, "BETA_DISK", [spec("user.jdoe", "mine")], dataset=("user.jdoe", "my_ds")
    )
    assert dids.get_did(cat, JDOE, "user.jdoe", "my_ds")["account"] == "jdoe"
    assert dids.get_did(cat, JDOE, "user.jdoe", "mine")["account"] == "jdoe"


# -- RSEs ----------------------------------------------------------------------------------------


def test_rse_with_attributes_and_protocols(cat: Lake) -> None:
    protocol = ProtocolInfo(
        scheme="root", hostname="eos.example.org", port=1094, prefix="/eos/lake", impl="xrootd"
    )
    rses.add_rse(
        cat,
        ROOT,
        "DELTA_TAPE",
        rse_type=RSEType.TAPE,
        total_bytes=10**12,
        attributes={"site": "DELTA", "qos": "TAPE"},
        protocols=[protocol],
    )
    info = rses.get_rse(cat, JDOE, "DELTA_TAPE")
    assert info["rse_type"] == "tape"
    assert info["total_bytes"] == 10**12
    assert (info["used_bytes"], info["files"]) == (0, 0)
    assert info["attributes"] == {"site": "DELTA", "qos": "TAPE"}
    assert info["protocols"] == [protocol]
    assert [r["rse"] for r in rses.list_rses(cat, JDOE)] == [
        "ALPHA_DISK",
        "BETA_DISK",
        "DELTA_TAPE",
        "GAMMA_TAPE",
    ]
    seeded = {r["rse"]: r["attributes"]["qos"] for r in rses.list_rses(cat, ROOT)}
    assert seeded["ALPHA_DISK"] == seeded["BETA_DISK"] == "DISK"
    assert seeded["GAMMA_TAPE"] == "TAPE"

    rses.set_attribute(cat, ROOT, "DELTA_TAPE", "site", "DELTA2")
    rses.set_attribute(cat, ROOT, "DELTA_TAPE", "country", "DE")
    rses.delete_attribute(cat, ROOT, "DELTA_TAPE", "qos")
    assert rses.get_rse(cat, ROOT, "DELTA_TAPE")["attributes"] == {
        "site": "DELTA2",
        "country": "DE",
    }
    with pytest.raises(NotFound, match="no attribute 'qos'"):
        rses.delete_attribute(cat, ROOT, "DELTA_TAPE", "qos")
    with pytest.raises(InvalidInput, match="invalid RSE attribute key"):
        rses.set_attribute(cat, ROOT, "DELTA_TAPE", "bad key!", "x")

    https = ProtocolInfo(
        scheme="https", hostname="web.example.org", port=443, prefix="/lake", impl="webdav"
    )
    rses.add_protocol(cat, ROOT, "DELTA_TAPE", https)
    assert rses.get_rse(cat, ROOT, "DELTA_TAPE")["protocols"] == [https, protocol]
    with pytest.raises(AlreadyExists, match="'https' protocol"):
        rses.add_protocol(cat, ROOT, "DELTA_TAPE", https)

    rses.update_rse(cat, ROOT, "DELTA_TAPE", availability_write=False, total_bytes=5)
    updated = rses.get_rse(cat, ROOT, "DELTA_TAPE")
    assert (updated["availability_write"], updated["availability_read"]) == (False, True)
    assert updated["total_bytes"] == 5
    with pytest.raises(AccessDenied, match="not available for writing"):
        replicas.add_replicas(cat, ROOT, "DELTA_TAPE", [spec(SCOPE, "f")])
    assert not exists(cat, SCOPE, "f")


def test_rse_changes_reach_registrations(cat: Lake) -> None:
    """Registrations keep RSE configurations in memory: a change made through this lake is
    obeyed by the next registration, one made by another process within a second."""
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "before")])
    rses.update_rse(cat, ROOT, "ALPHA_DISK", availability_write=False)
    with pytest.raises(AccessDenied, match="not available for writing"):
        replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "refused")])
    rses.update_rse(cat, ROOT, "ALPHA_DISK", availability_write=True)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "again")])

    other = Lake(cat.settings)  # another server process on the same catalog
    try:
        rses.update_rse(other, ROOT, "ALPHA_DISK", availability_write=False)
    finally:
        other.engine.dispose()
    changed = time.monotonic()
    for attempt in range(40):
        try:
            replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, f"late{attempt}")])
        except AccessDenied:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a registration still went to an RSE closed for writing 2 s before")
    assert time.monotonic() - changed <= 1.5


def test_rse_errors(cat: Lake) -> None:
    with pytest.raises(RSEAlreadyExists, match="'ALPHA_DISK' exists already"):
        rses.add_rse(cat, ROOT, "ALPHA_DISK")
    with pytest.raises(InvalidName, match="invalid RSE name"):
        rses.add_rse(cat, ROOT, "lower_case")
    for operation in ("POST /rses/{rse}", "POST /rses/{rse}/attr/{key}", "PUT /rses/{rse}"):
        with pytest.raises(AccessDenied, match="admins only"):  # the server's gate
            permissions.require(JDOE, operation)
    for call in (
        lambda: rses.get_rse(cat, ROOT, "NOWHERE"),
        lambda: rses.set_attribute(cat, ROOT, "NOWHERE", "a", "b"),
        lambda: rses.update_rse(cat, ROOT, "NOWHERE", total_bytes=1),
        lambda: replicas.add_replicas(cat, ROOT, "NOWHERE", [spec(SCOPE, "f")]),
        lambda: list(replicas.list_replicas(cat, ROOT, [(SCOPE, "f")], rse="NOWHERE")),
    ):
        with pytest.raises(RSENotFound, match="'NOWHERE' does not exist"):
            call()
    assert rses.get_rse(cat, ROOT, "ALPHA_DISK")["attributes"]["qos"] == "DISK"


def test_rse_usage_follows_registered_replicas(cat: Lake) -> None:
    first = specs(SCOPE, "a", 40)
    second = specs(SCOPE, "b", 25)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", first)
    alpha = rses.get_rse(cat, ROOT, "ALPHA_DISK")
    assert (alpha["used_bytes"], alpha["files"]) == (sum(f["bytes"] for f in first), 40)

    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", second)
    replicas.add_replicas(cat, ROOT, "BETA_DISK", second[:10])
    alpha = rses.get_rse(cat, ROOT, "ALPHA_DISK")
    beta = rses.get_rse(cat, ROOT, "BETA_DISK")
    assert alpha["used_bytes"] == sum(f["bytes"] for f in first + second)
    assert alpha["files"] == 65
    assert (beta["used_bytes"], beta["files"]) == (sum(f["bytes"] for f in second[:10]), 10)
    gamma = rses.get_rse(cat, ROOT, "GAMMA_TAPE")
    assert (gamma["used_bytes"], gamma["files"]) == (0, 0)

    # A refused batch changes nothing.
    with pytest.raises(ReplicaAlreadyExists):
        replicas.add_replicas(cat, ROOT, "BETA_DISK", second[5:15])
    assert rses.get_rse(cat, ROOT, "BETA_DISK")["files"] == 10


# -- DIDs: collections, attach, detach -----------------------------------------------------------


def test_datasets_and_containers(cat: Lake) -> None:
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET)
    dids.add_collection(cat, ROOT, SCOPE, "box", DIDType.CONTAINER, meta={"campaign": "O4"})
    ds = dids.get_did(cat, ROOT, SCOPE, "ds")
    box = dids.get_did(cat, ROOT, SCOPE, "box")
    assert (ds["type"], ds["open"], ds["bytes"], ds["length"]) == ("dataset", True, 0, 0)
    assert (box["type"], box["bytes"], box["length"]) == ("container", 0, 0)
    assert ds["account"] == box["account"] == "root"
    assert dids.get_metadata(cat, ROOT, SCOPE, "box") == {"campaign": "O4"}
    with pytest.raises(InvalidInput, match="files are created by"):
        dids.add_collection(cat, ROOT, SCOPE, "f", DIDType.FILE)
    with pytest.raises(InvalidName, match="invalid name"):
        dids.add_collection(cat, ROOT, SCOPE, "../up", DIDType.DATASET)


def test_duplicate_dids_are_refused(cat: Lake) -> None:
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "f")])
    with pytest.raises(DIDAlreadyExists, match="virgo:ds exists already"):
        dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.CONTAINER)
    with pytest.raises(DIDAlreadyExists, match="virgo:f exists already"):
        dids.add_collection(cat, ROOT, SCOPE, "f", DIDType.DATASET)
    assert dids.get_did(cat, ROOT, SCOPE, "ds")["type"] == "dataset"
    assert dids.get_did(cat, ROOT, SCOPE, "f")["type"] == "file"


def test_unknown_things_raise_the_matching_not_found(cat: Lake) -> None:
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET)
    cases: list[tuple[type[Exception], str, Callable[[], object]]] = [
        (DIDNotFound, "virgo:nope", lambda: dids.get_did(cat, ROOT, SCOPE, "nope")),
        (DIDNotFound, "virgo:nope", lambda: dids.list_content(cat, ROOT, SCOPE, "nope")),
        (DIDNotFound, "virgo:nope", lambda: dids.get_metadata(cat, ROOT, SCOPE, "nope")),
        (DIDNotFound, "virgo:nope", lambda: dids.set_metadata(cat, ROOT, SCOPE, "nope", {"a": 1})),
        (DIDNotFound, "virgo:nope", lambda: list(dids.list_files(cat, ROOT, SCOPE, "nope"))),
        (DIDNotFound, "virgo:nope", lambda: dids.attach(cat, ROOT, SCOPE, "nope", [])),
        (DIDNotFound, "virgo:nope", lambda: dids.attach(cat, ROOT, SCOPE, "ds", [(SCOPE, "nope")])),
        (
            DIDNotFound,
            "virgo:nope",
            lambda: list(replicas.list_replicas(cat, ROOT, [(SCOPE, "nope")])),
        ),
        (DIDNotFound, "ghost:x", lambda: dids.get_did(cat, ROOT, "ghost", "x")),
        (ScopeNotFound, "'ghost'", lambda: list(dids.search_dids(cat, ROOT, "ghost"))),
        (
            ScopeNotFound,
            "'ghost'",
            lambda: dids.add_collection(cat, ROOT, "ghost", "ds", DIDType.DATASET),
        ),
        (
            ScopeNotFound,
            "'ghost'",
            lambda: replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec("ghost", "f")]),
        ),
        (RSENotFound, "'NOWHERE'", lambda: rses.get_rse(cat, ROOT, "NOWHERE")),
    ]
    for error, text, call in cases:
        with pytest.raises(error, match=text):
            call()


def test_attach_and_detach_update_dataset_totals(cat: Lake) -> None:
    files = specs(SCOPE, "f", 12)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", files)
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET)
    keys = [(SCOPE, f["name"]) for f in files]

    assert dids.attach(cat, ROOT, SCOPE, "ds", keys[:8]) == 8
    ds = dids.get_did(cat, ROOT, SCOPE, "ds")
    assert (ds["length"], ds["bytes"]) == (8, sum(f["bytes"] for f in files[:8]))

    with pytest.raises(DIDAlreadyExists, match="virgo:f00003 is attached to virgo:ds already"):
        dids.attach(cat, ROOT, SCOPE, "ds", keys[3:10])
    assert dids.get_did(cat, ROOT, SCOPE, "ds")["length"] == 8
    # With ignore_duplicates only the new ones count, and repeats in one call count once.
    assert dids.attach(cat, ROOT, SCOPE, "ds", keys[3:10] + keys[9:10], ignore_duplicates=True) == 2
    ds = dids.get_did(cat, ROOT, SCOPE, "ds")
    assert (ds["length"], ds["bytes"]) == (10, sum(f["bytes"] for f in files[:10]))

    assert dids.detach(cat, ROOT, SCOPE, "ds", [keys[0], keys[5], keys[5]]) == 2
    remaining = [f for i, f in enumerate(files[:10]) if i not in (0, 5)]
    ds = dids.get_did(cat, ROOT, SCOPE, "ds")
    assert (ds["length"], ds["bytes"]) == (8, sum(f["bytes"] for f in remaining))
    assert names_of(dids.list_content(cat, ROOT, SCOPE, "ds")) == [f["name"] for f in remaining]
    assert dids.list_parents(cat, ROOT, SCOPE, "f00001") == [(SCOPE, "ds")]
    assert dids.list_parents(cat, ROOT, SCOPE, "f00000") == []

    with pytest.raises(DIDNotFound, match="virgo:f00000 is not attached to virgo:ds"):
        dids.detach(cat, ROOT, SCOPE, "ds", [keys[0], keys[1]])
    assert dids.get_did(cat, ROOT, SCOPE, "ds")["length"] == 8
    # Detached files still exist, with their replicas.
    assert dids.get_did(cat, ROOT, SCOPE, "f00000")["bytes"] == files[0]["bytes"]


def test_container_totals_count_distinct_files_recursively(cat: Lake) -> None:
    files = {f["name"]: f for f in specs(SCOPE, "f", 6)}
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", list(files.values()))
    layout = {
        "ds1": ["f00000", "f00001", "f00002"],
        "ds2": ["f00002", "f00003"],  # f00002 is in two datasets
        "ds3": ["f00004"],
        "ds_empty": [],
    }
    for dataset, members in layout.items():
        dids.add_collection(cat, ROOT, SCOPE, dataset, DIDType.DATASET)
        dids.attach(cat, ROOT, SCOPE, dataset, [(SCOPE, m) for m in members])
    for container in ("top", "inner", "deep"):
        dids.add_collection(cat, ROOT, SCOPE, container, DIDType.CONTAINER)
    dids.attach(cat, ROOT, SCOPE, "top", [(SCOPE, "ds1"), (SCOPE, "ds2"), (SCOPE, "inner")])
    dids.attach(cat, ROOT, SCOPE, "inner", [(SCOPE, "deep"), (SCOPE, "ds_empty")])
    dids.attach(cat, ROOT, SCOPE, "deep", [(SCOPE, "ds3"), (SCOPE, "ds1")])

    def expected(container_files: set[str]) -> tuple[int, int]:
        return len(container_files), sum(files[n]["bytes"] for n in container_files)

    below = {
        "top": {"f00000", "f00001", "f00002", "f00003", "f00004"},
        "inner": {"f00000", "f00001", "f00002", "f00004"},
        "deep": {"f00000", "f00001", "f00002", "f00004"},
    }
    for container, members in below.items():
        info = dids.get_did(cat, ROOT, SCOPE, container)
        assert (info["length"], info["bytes"]) == expected(members), container
        assert sorted(names_of(dids.list_files(cat, ROOT, SCOPE, container))) == sorted(members)
    assert names_of(dids.list_content(cat, ROOT, SCOPE, "top")) == ["ds1", "ds2", "inner"]
    assert sorted(dids.list_parents(cat, ROOT, SCOPE, "ds1")) == [(SCOPE, "deep"), (SCOPE, "top")]

    dids.detach(cat, ROOT, SCOPE, "top", [(SCOPE, "inner")])
    info = dids.get_did(cat, ROOT, SCOPE, "top")
    assert (info["length"], info["bytes"]) == expected({"f00000", "f00001", "f00002", "f00003"})


def test_closed_dataset_refuses_new_files(cat: Lake) -> None:
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", specs(SCOPE, "f", 3), dataset=(SCOPE, "ds"))
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "late")])
    dids.set_open(cat, ROOT, SCOPE, "ds", is_open=False)
    assert dids.get_did(cat, ROOT, SCOPE, "ds")["open"] is False
    with pytest.raises(UnsupportedOperation, match="dataset virgo:ds is closed"):
        dids.attach(cat, ROOT, SCOPE, "ds", [(SCOPE, "late")])
    with pytest.raises(UnsupportedOperation, match="dataset virgo:ds is closed"):
        replicas.add_replicas(
            cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "later")], dataset=(SCOPE, "ds")
        )
    assert not exists(cat, SCOPE, "later")
    assert dids.get_did(cat, ROOT, SCOPE, "ds")["length"] == 3
    with pytest.raises(UnsupportedOperation, match="only datasets open and close"):
        dids.set_open(cat, ROOT, SCOPE, "late", is_open=False)

    with_jdoe(cat)
    replicas.add_replicas(  # announced before its bytes: only admins register bytes unseen
        cat,
        JDOE,
        "ALPHA_DISK",
        [spec("user.jdoe", "x")],
        dataset=("user.jdoe", "d"),
        state=ReplicaState.COPYING,
    )
    dids.set_open(cat, JDOE, "user.jdoe", "d", is_open=False)
    with pytest.raises(AccessDenied, match="reopen datasets"):
        dids.set_open(cat, JDOE, "user.jdoe", "d", is_open=True)
    dids.set_open(cat, ROOT, SCOPE, "ds", is_open=True)
    assert dids.attach(cat, ROOT, SCOPE, "ds", [(SCOPE, "late")]) == 1


def test_what_may_contain_what(cat: Lake) -> None:
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "f"), spec(SCOPE, "g")])
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET)
    dids.add_collection(cat, ROOT, SCOPE, "ds2", DIDType.DATASET)
    dids.add_collection(cat, ROOT, SCOPE, "box", DIDType.CONTAINER)
    with pytest.raises(UnsupportedOperation, match="virgo:f is a file: nothing can be attached"):
        dids.attach(cat, ROOT, SCOPE, "f", [(SCOPE, "g")])
    with pytest.raises(UnsupportedOperation, match="files go into datasets, not into container"):
        dids.attach(cat, ROOT, SCOPE, "box", [(SCOPE, "ds"), (SCOPE, "f")])
    with pytest.raises(UnsupportedOperation, match="only files go into dataset"):
        dids.attach(cat, ROOT, SCOPE, "ds", [(SCOPE, "ds2")])
    with pytest.raises(UnsupportedOperation, match="only files go into dataset"):
        dids.attach(cat, ROOT, SCOPE, "ds", [(SCOPE, "f"), (SCOPE, "box")])
    with pytest.raises(UnsupportedOperation, match="is a dataset, not a file"):
        replicas.add_replicas(cat, ROOT, "BETA_DISK", [spec(SCOPE, "ds")])
    # Refused attachments are all or nothing.
    for collection in ("ds", "ds2", "box"):
        assert dids.list_content(cat, ROOT, SCOPE, collection) == []
        assert dids.get_did(cat, ROOT, SCOPE, collection)["length"] == 0


def test_containers_never_form_a_cycle(cat: Lake) -> None:
    for name in ("a", "b", "c", "d"):
        dids.add_collection(cat, ROOT, SCOPE, name, DIDType.CONTAINER)
    dids.attach(cat, ROOT, SCOPE, "a", [(SCOPE, "b")])
    dids.attach(cat, ROOT, SCOPE, "b", [(SCOPE, "c")])
    with pytest.raises(UnsupportedOperation, match="cannot contain itself"):
        dids.attach(cat, ROOT, SCOPE, "a", [(SCOPE, "a")])
    with pytest.raises(UnsupportedOperation, match="would make a cycle"):
        dids.attach(cat, ROOT, SCOPE, "c", [(SCOPE, "a")])
    with pytest.raises(UnsupportedOperation, match="would make a cycle"):
        dids.attach(cat, ROOT, SCOPE, "c", [(SCOPE, "d"), (SCOPE, "b")])
    assert dids.list_content(cat, ROOT, SCOPE, "c") == []
    # A diamond is not a cycle.
    dids.attach(cat, ROOT, SCOPE, "a", [(SCOPE, "c")])
    dids.attach(cat, ROOT, SCOPE, "c", [(SCOPE, "d")])
    assert names_of(dids.list_content(cat, ROOT, SCOPE, "a")) == ["b", "c"]


# -- bulk replica registration -------------------------------------------------------------------


def test_bulk_registration_of_thousands_of_files_with_a_dataset(cat: Lake) -> None:
    files = specs(SCOPE, "chunk_", 3000)
    files[7]["meta"] = {"run": 7}
    added = replicas.add_replicas(cat, ROOT, "ALPHA_DISK", files, dataset=(SCOPE, "big"))
    assert added == 3000
    total = sum(f["bytes"] for f in files)
    ds = dids.get_did(cat, ROOT, SCOPE, "big")
    assert (ds["type"], ds["open"], ds["length"], ds["bytes"]) == ("dataset", True, 3000, total)
    content = dids.list_content(cat, ROOT, SCOPE, "big")
    assert [(d["name"], d["bytes"], d["adler32"], d["md5"]) for d in content] == [
        (f["name"], f["bytes"], f["adler32"], f["md5"]) for f in files
    ]
    alpha = rses.get_rse(cat, ROOT, "ALPHA_DISK")
    assert (alpha["files"], alpha["used_bytes"]) == (3000, total)
    assert dids.get_metadata(cat, ROOT, SCOPE, "chunk_00007") == {"run": 7}


def _existing_file_with_other_checksum(files: list[FileSpec]) -> FileSpec:
    other = dict(files[0])
    other["adler32"] = f"{(int(files[0]['adler32'], 16) + 1) % 2**32:08x}"
    return other  # type: ignore[return-value]


BAD_BATCHES: dict[str, tuple[Callable[[list[FileSpec]], FileSpec], type[Exception], str]] = {
    "invalid adler32": (
        lambda _: spec(SCOPE, "bad", adler32="ABCDEF12"),
        InvalidInput,
        "adler32 must be 8 lower-case hex digits",
    ),
    "short adler32": (lambda _: spec(SCOPE, "bad", adler32="1234"), InvalidInput, "adler32"),
    "invalid md5": (lambda _: spec(SCOPE, "bad", md5="xyz"), InvalidInput, "md5 must be"),
    "negative size": (lambda _: spec(SCOPE, "bad", bytes=-1), InvalidInput, "non-negative"),
    "invalid name": (lambda _: spec(SCOPE, "bad/name"), InvalidName, "must not contain '/'"),
    "absolute path": (lambda _: spec(SCOPE, "bad", path="/etc/passwd"), InvalidInput, "path"),
    "unknown scope": (lambda _: spec("ghost", "bad"), ScopeNotFound, "'ghost'"),
    "existing file, other adler32": (
        _existing_file_with_other_checksum,
        DIDAlreadyExists,
        "exists already with",
    ),
    "replica already on the RSE": (lambda files: files[0], ReplicaAlreadyExists, "on this RSE"),
    "same file twice": (lambda files: files[-1], InvalidInput, "appears twice"),
}


def test_one_bad_file_rejects_the_whole_batch(cat: Lake) -> None:
    before = specs(SCOPE, "old", 2)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", before)
    for case, (make_bad, error, message) in BAD_BATCHES.items():
        # The batch goes to BETA_DISK, except when the point is a replica already on the RSE.
        target = "ALPHA_DISK" if case == "replica already on the RSE" else "BETA_DISK"
        batch = specs(SCOPE, "new", 300)
        batch.insert(150, make_bad(before if case != "same file twice" else batch))
        for f in batch[:3]:
            f["meta"] = {"run": 1}

        with pytest.raises(error, match=message):
            replicas.add_replicas(cat, ROOT, target, batch, dataset=(SCOPE, "new_ds"))

        # Nothing of the batch is in the catalog: no DIDs, metadata, replicas or usage.
        assert names_of(dids.search_dids(cat, ROOT, SCOPE)) == [f["name"] for f in before], case
        assert not exists(cat, SCOPE, "new_ds"), case
        assert list(dids.search_dids(cat, ROOT, SCOPE, filters=["run=1"])) == [], case
        alpha = rses.get_rse(cat, ROOT, "ALPHA_DISK")
        beta = rses.get_rse(cat, ROOT, "BETA_DISK")
        assert (alpha["files"], alpha["used_bytes"]) == (2, sum(f["bytes"] for f in before)), case
        assert (beta["files"], beta["used_bytes"]) == (0, 0), case
        old = list(replicas.list_replicas(cat, ROOT, [(SCOPE, "old00000")]))
        assert [sorted(r["rses"]) for r in old] == [["ALPHA_DISK"]], case
        assert old[0]["adler32"] == before[0]["adler32"], case


def test_same_file_on_a_second_rse_adds_a_replica(cat: Lake) -> None:
    files = specs(SCOPE, "f", 5)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", files, dataset=(SCOPE, "ds"))
    assert replicas.add_replicas(cat, ROOT, "BETA_DISK", files[:3], dataset=(SCOPE, "ds")) == 3
    ds = dids.get_did(cat, ROOT, SCOPE, "ds")
    assert (ds["length"], ds["bytes"]) == (5, sum(f["bytes"] for f in files))
    found = {r["name"]: r for r in replicas.list_replicas(cat, ROOT, [(SCOPE, "ds")])}
    assert {name: sorted(r["rses"]) for name, r in found.items()} == {
        f["name"]: ["ALPHA_DISK", "BETA_DISK"] if i < 3 else ["ALPHA_DISK"]
        for i, f in enumerate(files)
    }
    beta = rses.get_rse(cat, ROOT, "BETA_DISK")
    assert (beta["files"], beta["used_bytes"]) == (3, sum(f["bytes"] for f in files[:3]))
    only_beta = list(replicas.list_replicas(cat, ROOT, [(SCOPE, "ds")], rse="BETA_DISK"))
    assert sorted(r["name"] for r in only_beta if r["rses"]) == [f["name"] for f in files[:3]]
    assert all(set(r["rses"]) <= {"BETA_DISK"} for r in only_beta)


def test_list_replicas_pages_through_a_large_dataset(
    cat: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = specs(SCOPE, "f", 2500)
    replicas.add_replicas(cat, ROOT, "ALPHA_DISK", files, dataset=(SCOPE, "ds"))
    replicas.add_replicas(cat, ROOT, "GAMMA_TAPE", files[::10])
    dids.add_collection(cat, ROOT, SCOPE, "box", DIDType.CONTAINER)
    dids.attach(cat, ROOT, SCOPE, "box", [(SCOPE, "ds")])
    prefixes = {r["rse"]: r["protocols"][0]["prefix"] for r in rses.list_rses(cat, ROOT)}
    on_tape = {f["name"] for f in files[::10]}
    monkeypatch.setattr(cat.settings, "page_size", 100)

    for target in [(SCOPE, "ds")], [(SCOPE, "box")], [(SCOPE, "ds"), (SCOPE, "f00042")]:
        found = list(replicas.list_replicas(cat, ROOT, target))
        assert sorted(r["name"] for r in found) == [f["name"] for f in files], target
        for r, f in zip(sorted(found, key=lambda r: r["name"]), files, strict=True):
            assert (r["bytes"], r["adler32"], r["md5"]) == (f["bytes"], f["adler32"], f["md5"])
            expected_rses = {"ALPHA_DISK", "GAMMA_TAPE"} if f["name"] in on_tape else {"ALPHA_DISK"}
            assert set(r["rses"]) == expected_rses
            for rse, location in r["rses"].items():
                path = hash_path(SCOPE, f["name"])
                assert location["path"] == path
                assert location["pfn"] == f"file://{prefixes[rse].rstrip('/')}/{path}"
                assert location["state"] == "available"

    files_listed = names_of(dids.list_files(cat, ROOT, SCOPE, "box"))
    assert files_listed == [f["name"] for f in files]


# -- metadata ------------------------------------------------------------------------------------


def test_metadata_keeps_its_types(cat: Lake) -> None:
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET)
    values: dict[str, MetaValue] = {
        "run": 358_012,
        "big": 2**62 + 1,
        "negative": -17,
        "energy": 13.6,
        "tiny": 1.5e-300,
        "whole_float": 2.0,
        "calibrated": True,
        "blinded": False,
        "detector": "H1",
        "digits": "0042",
        "empty": "",
        "note": None,
    }
    dids.set_metadata(cat, ROOT, SCOPE, "ds", values)
    got = dids.get_metadata(cat, ROOT, SCOPE, "ds")
    assert got == values
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in values.items()}

    dids.set_metadata(cat, ROOT, SCOPE, "ds", {"run": "reprocessed", "extra": 1})
    got = dids.get_metadata(cat, ROOT, SCOPE, "ds")
    assert got["run"] == "reprocessed"
    assert got["extra"] == 1
    dids.delete_metadata(cat, ROOT, SCOPE, "ds", "extra")
    assert "extra" not in dids.get_metadata(cat, ROOT, SCOPE, "ds")
    with pytest.raises(InvalidInput, match="no metadata key 'extra'"):
        dids.delete_metadata(cat, ROOT, SCOPE, "ds", "extra")


INVALID_METADATA: list[tuple[dict[str, Any], str]] = [
    ({"name": "x"}, "reserved"),
    ({"type": "x"}, "reserved"),
    ({"1st": 1}, "invalid metadata key"),
    ({"with space": 1}, "invalid metadata key"),
    ({"": 1}, "invalid metadata key"),
    ({"k" * 101: 1}, "invalid metadata key"),
    ({"k": "v" * 4097}, "at most 4096"),
    ({"k": "a\x00b"}, "no NUL"),
    ({"k": [1, 2]}, "values are strings, numbers"),
    ({"k": {"a": 1}}, "values are strings, numbers"),
    ({"k": 2**64}, "64-bit"),
    ({"k": -(2**63) - 1}, "64-bit"),
    ({"k": math.inf}, "finite"),
    ({"k": math.nan}, "finite"),
]


def test_invalid_metadata_is_refused_and_nothing_is_set(cat: Lake) -> None:
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET, meta={"kept": "yes"})
    for items, message in INVALID_METADATA:
        with pytest.raises(InvalidInput, match=message):
            dids.set_metadata(cat, ROOT, SCOPE, "ds", {"good": 1, **items})
        with pytest.raises(InvalidInput, match=message):
            replicas.add_replicas(cat, ROOT, "ALPHA_DISK", [spec(SCOPE, "f", meta=items)])
    assert dids.get_metadata(cat, ROOT, SCOPE, "ds") == {"kept": "yes"}
    assert not exists(cat, SCOPE, "f")


def _metadata_lake(cat: Lake) -> dict[str, dict[str, MetaValue]]:
    """Datasets and files with known metadata; returns {name: metadata}."""
    meta: dict[str, dict[str, MetaValue]] = {}
    for i in range(14):
        item: dict[str, MetaValue] = {
            "run": i,
            "kind": "calib" if i % 3 == 0 else "physics",
            "energy": 6.5 if i % 2 else 13.6,
        }
        if i % 4 == 0:
            item["calibrated"] = True
        meta[f"ds_{i:02d}"] = item
    meta["ds_99"] = {"kind": "physics"}  # no run, no energy
    meta["dsx10"] = {"run": 10, "kind": "physics"}  # '_' in patterns is no wildcard
    meta["ds_label"] = {"label": "042", "note": None}
    for name, item in meta.items():
        dids.add_collection(cat, ROOT, SCOPE, name, DIDType.DATASET, meta=item)
    file_meta: dict[str, dict[str, MetaValue]] = {
        f"file_{i}": {"run": i, "kind": "physics"} for i in range(4)
    }
    replicas.add_replicas(
        cat,
        ROOT,
        "ALPHA_DISK",
        [spec(SCOPE, name, meta=item) for name, item in file_meta.items()],
    )
    return meta | file_meta


def _has(key: str, test: Callable[[Any], bool]) -> Callable[[dict[str, MetaValue]], bool]:
    return lambda m: key in m and m[key] is not None and test(m[key])


def test_search_by_metadata(cat: Lake) -> None:
    meta = _metadata_lake(cat)
    files = {n for n in meta if n.startswith("file_")}

    def number(key: str, test: Callable[[float], bool]) -> Callable[[dict[str, MetaValue]], bool]:
        return _has(key, lambda v: not isinstance(v, str | bool) and test(v))

    cases: list[tuple[list[str], Callable[[str, dict[str, MetaValue]], bool]]] = [
        (["run=3"], lambda n, m: m.get("run") == 3),
        (["run=3.0"], lambda n, m: m.get("run") == 3),
        (["run = 3"], lambda n, m: m.get("run") == 3),
        (["run>5"], lambda n, m: number("run", lambda v: v > 5)(m)),
        (["run<5"], lambda n, m: number("run", lambda v: v < 5)(m)),
        (["run>=5"], lambda n, m: number("run", lambda v: v >= 5)(m)),
        (["run<=5"], lambda n, m: number("run", lambda v: v <= 5)(m)),
        (["run>-1", "run<2.5"], lambda n, m: number("run", lambda v: -1 < v < 2.5)(m)),
        (["energy>=10"], lambda n, m: number("energy", lambda v: v >= 10)(m)),
        (["energy=6.5"], lambda n, m: m.get("energy") == 6.5),
        (["energy=6.50"], lambda n, m: m.get("energy") == 6.5),
        (["kind=calib"], lambda n, m: m.get("kind") == "calib"),
        (["calibrated=true"], lambda n, m: m.get("calibrated") is True),
        (["label=042"], lambda n, m: m.get("label") == "042"),
        (["note="], lambda n, m: "note" in m and m["note"] is None),
        (["type=file"], lambda n, m: n in files),
        (["type=dataset", "run>=12"], lambda n, m: n not in files and (m.get("run") or 0) >= 12),
        (["type!=dataset"], lambda n, m: n in files),
        (
            ["run>=2", "run<9", "kind=physics"],
            lambda n, m: number("run", lambda v: 2 <= v < 9)(m) and m["kind"] == "physics",
        ),
        (["name=ds_1*"], lambda n, m: n.startswith("ds_1")),
        (["name!=ds_*"], lambda n, m: not n.startswith("ds_")),
        (["name=*_1*", "kind=calib"], lambda n, m: "_1" in n and m.get("kind") == "calib"),
        (["unknown_key=1"], lambda n, m: False),
        (["unknown_key>1"], lambda n, m: False),
    ]
    for filters, wanted in cases:
        got = names_of(dids.search_dids(cat, ROOT, SCOPE, filters=filters))
        expected = sorted(n for n, m in meta.items() if wanted(n, m))
        assert got == expected, filters

    # Name patterns and types also come as their own arguments.
    got = names_of(dids.search_dids(cat, ROOT, SCOPE, name="ds_0*", filters=["energy<10"]))
    assert got == sorted(n for n, m in meta.items() if n.startswith("ds_0") and m["energy"] == 6.5)
    got = names_of(dids.search_dids(cat, ROOT, SCOPE, name="*", did_type=DIDType.FILE))
    assert got == sorted(files)
    assert names_of(dids.search_dids(cat, ROOT, SCOPE, name="ds_05")) == ["ds_05"]
    assert names_of(dids.search_dids(cat, ROOT, SCOPE, name="ds_5")) == []


def test_equal_and_not_equal_split_every_did(cat: Lake) -> None:
    meta = _metadata_lake(cat)
    everything = sorted(meta)
    for key, value in [("run", "3"), ("kind", "calib"), ("energy", "13.6"), ("label", "042")]:
        equal = names_of(dids.search_dids(cat, ROOT, SCOPE, filters=[f"{key}={value}"]))
        other = names_of(dids.search_dids(cat, ROOT, SCOPE, filters=[f"{key}!={value}"]))
        assert equal, key
        assert not set(equal) & set(other), key
        # A DID without the key is "not equal" to any value.
        assert sorted(equal + other) == everything, key
        assert {n for n in everything if key not in meta[n]} <= set(other)


INVALID_FILTERS = [
    "run>abc",
    "run<",
    "=5",
    "run",
    "run~3",
    "1run=3",
    "type=table",
    "type>1",
    "name>3",
    "bytes=many",
    "run>nan",
]


def test_invalid_filters_are_refused(cat: Lake) -> None:
    dids.add_collection(cat, ROOT, SCOPE, "ds", DIDType.DATASET, meta={"run": 1})
    for bad in INVALID_FILTERS:
        with pytest.raises(InvalidMetadataFilter, match="filter"):
            list(dids.search_dids(cat, ROOT, SCOPE, filters=[bad]))
        with pytest.raises(InvalidMetadataFilter, match="filter"):
            list(dids.search_dids(cat, ROOT, SCOPE, filters=["run=1", bad]))


def test_search_pages_return_each_did_once_in_name_order(
    cat: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"d{i:03d}" for i in range(57)]
    for i, name in enumerate(reversed(names)):
        dids.add_collection(cat, ROOT, SCOPE, name, DIDType.DATASET, meta={"n": 56 - i})
    monkeypatch.setattr(cat.settings, "page_size", 5)
    assert names_of(dids.search_dids(cat, ROOT, SCOPE)) == names
    assert names_of(dids.search_dids(cat, ROOT, SCOPE, filters=["n>=20"])) == names[20:]
    assert names_of(dids.search_dids(cat, ROOT, SCOPE, limit=12)) == names[:12]
    assert names_of(dids.search_dids(cat, ROOT, SCOPE, name="d04*", limit=100)) == names[40:50]
    monkeypatch.setattr(cat.settings, "page_size", 57)
    assert names_of(dids.search_dids(cat, ROOT, SCOPE)) == names
