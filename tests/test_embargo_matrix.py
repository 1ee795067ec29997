"""Embargo against an oracle: random sequences of attach, detach, embargo set (for ever, until a
past or a future date) and lift, on DIDs and scopes, on a small random graph of containers,
datasets and files in three scopes; after every step another account reads, and what it sees
must be what walking every path up in Python says.

The oracle: bob sees a DID when he owns its scope, or when no DID on any path from it up to a
root (itself included) carries an embargo not yet released, and no such DID is in a scope with
an embargo not yet released. Runs on SQLite and on PostgreSQL (the ``lake`` fixture).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from lacus.core import dids as core_dids
from lacus.core import visibility
from lacus.service import Lake, Principal, accounts, replicas, scopes
from lacus.service import dids as service_dids
from lacus.types import DIDType

ROOT = Principal("root", admin=True)
BOB = Principal("bob")
SCOPES = ("north", "south", "bob")  # the last one bob owns
CONTAINERS, DATASETS, FILES = 2, 2, 3  # few: paths meet often
KINDS = [DIDType.CONTAINER] * CONTAINERS + [DIDType.DATASET] * DATASETS + [DIDType.FILE] * FILES
COLLECTIONS = CONTAINERS + DATASETS
WHEN = {"for ever": None, "past": timedelta(hours=-1), "future": timedelta(hours=1)}

Key = tuple[str, str]


@pytest.fixture(autouse=True)
def _conditions_built_again() -> None:
    """Each test builds the visibility conditions anew: they are kept per account, and one
    built by an earlier test (or code under test since changed) must not stand in for it."""
    visibility._visible_dids.cache_clear()
    visibility._visible_scopes.cache_clear()


@dataclass
class Oracle:
    """What the catalog should hold, in Python."""

    prefix: str  # of every name: examples share the catalog
    nodes: list[Key]
    edges: set[tuple[int, int]] = field(default_factory=set)  # (parent, child) indexes
    own: dict[int, datetime | None] = field(default_factory=dict)  # embargoed DIDs: release
    scope_embargo: dict[str, datetime | None] = field(default_factory=dict)

    def parents(self, child: int) -> Iterator[int]:
        return (parent for parent, below in self.edges if below == child)

    def reaches(self, ancestor: int, node: int) -> bool:
        return ancestor == node or any(self.reaches(ancestor, p) for p in self.parents(node))

    def hidden(self, node: int, now: datetime) -> bool:
        scope = self.nodes[node][0]
        return (
            _active(self.own, node, now)
            or _active(self.scope_embargo, scope, now)
            or any(self.hidden(parent, now) for parent in self.parents(node))
        )

    def seen_by_bob(self, now: datetime) -> set[Key]:
        return {
            key
            for index, key in enumerate(self.nodes)
            if key[0] == "bob" or not self.hidden(index, now)
        }


T = TypeVar("T")


def _active(embargoes: dict[T, datetime | None], key: T, now: datetime) -> bool:
    if key not in embargoes:
        return False
    release = embargoes[key]
    return release is None or release > now


EDGES = sorted(
    {(c, d) for c in range(CONTAINERS) for d in range(c + 1, COLLECTIONS)}  # no cycle
    | {(d, f) for d in range(CONTAINERS, COLLECTIONS) for f in range(COLLECTIONS, len(KINDS))}
)
"""The attachments a first graph may hold: containers into later containers, datasets into
containers, files into datasets."""

index = st.integers(min_value=0, max_value=len(KINDS) - 1)
collection = st.integers(min_value=0, max_value=COLLECTIONS - 1)
when = st.sampled_from(sorted(WHEN))
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("attach"), collection, index),
        st.tuples(st.just("detach"), st.integers(0, 100)),
        st.tuples(st.just("set"), st.one_of(collection, index), when),
        st.tuples(st.just("set"), collection, when),  # embargoes that reach further: twice
        st.tuples(st.just("lift"), st.one_of(collection, index)),
        st.tuples(st.just("scope set"), st.sampled_from(SCOPES), when),
        st.tuples(st.just("scope lift"), st.sampled_from(SCOPES)),
    ),
    min_size=1,
    max_size=14,
)
"""Steps: ("attach", collection, child: a file for a dataset, a collection for a container,
modulo their number), ("detach", the n-th edge modulo their number), ("set", DID, when),
("lift", DID), ("scope set", scope, when), ("scope lift", scope)."""

NORTH = ["north"] * len(KINDS)
C0, C1, D2, D3, F4, F5, F6 = range(7)


@pytest.fixture
def readers(lake: Lake) -> Lake:
    """Scopes north and south owned by alice, scope bob owned by bob; root writes, bob reads."""
    for account in ("alice", "bob"):
        accounts.add_account(lake, ROOT, account)
    for scope in SCOPES:
        scopes.add_scope(lake, ROOT, scope, account="alice" if scope != "bob" else "bob")
    return lake


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # shrinking takes minutes here
)
@given(
    homes=st.lists(
        st.sampled_from(("north", "south", "north", "south", "bob")),
        min_size=len(KINDS),
        max_size=len(KINDS),
    ),
    graph=st.sets(st.sampled_from(EDGES), max_size=len(EDGES) // 2),
    steps=STEPS,
)
# issue 16: a file in two embargoed datasets; lifting one leaves it hidden, lifting both shows it
@example(
    homes=NORTH,
    graph={(D2, F4), (D3, F4)},
    steps=[("set", D2, "for ever"), ("set", D3, "for ever"), ("lift", D3), ("lift", D2)],
)
# collections attached later to an embargoed container (and all below them), then detached
@example(
    homes=NORTH,
    graph={(D2, F4)},
    steps=[("set", C0, "for ever"), ("attach", C0, C1), ("attach", C1, D2), ("detach", 0)],
)
# detached from one of two embargoed parents, then from the other
@example(
    homes=NORTH,
    graph={(D2, F4), (D3, F4)},
    steps=[("set", D2, "future"), ("set", D3, "for ever"), ("detach", 0), ("detach", 0)],
)
# a scope's embargo reaches what its DIDs hold from another scope, also what comes later
@example(
    homes=["north", "north", "south", "north", "north", "north", "bob"],
    graph={(D2, F4), (D2, F6)},
    steps=[("scope set", "south", "future"), ("attach", D2, 1), ("scope lift", "south")],
)
# the same names in two scopes: what hides one hides nothing of the other
@example(
    homes=["north", "south", "north", "south", "north", "south", "north"],
    graph={(C0, D2), (C1, D3), (D2, F4), (D3, F5)},
    steps=[
        ("set", C0, "for ever"),
        ("set", F5, "future"),
        ("lift", C0),
        ("set", D3, "for ever"),
        ("detach", 0),
        ("scope set", "north", "for ever"),
        ("attach", D3, 0),
    ],
)
# a parent outside what is recomputed, named like a DID inside it, still hands its embargo down
@example(
    homes=["north", "south", "north", "south", "north", "south", "north"],
    graph={(C0, D2), (C1, D2), (D2, F4)},
    steps=[("set", C1, "for ever"), ("set", C0, "for ever"), ("lift", C0)],
)
# a public parent named like an embargoed DID of another scope hands nothing down
@example(
    homes=["north", "south", "north", "south", "north", "south", "north"],
    graph={(D2, F4), (D3, F5)},
    steps=[("set", D2, "for ever"), ("set", F5, "for ever"), ("lift", F5)],
)
# what is recomputed under an embargoed scope keeps its own scope out: lifting the scope shows it
@example(
    homes=NORTH,
    graph={(D2, F4)},
    steps=[("scope set", "north", "for ever"), ("set", D2, "past"), ("scope lift", "north")],
)
# a dataset and its namesake in another scope, both below one container: each hands down its own
@example(
    homes=["north", "south", "north", "south", "north", "south", "north"],
    graph={(C0, D2), (C0, D3), (D2, F4), (D3, F5)},
    steps=[("set", D2, "for ever"), ("set", C0, "past")],
)
# two release dates: shown once both have passed
@example(
    homes=NORTH,
    graph={(D2, F4), (D3, F4), (C0, D3)},
    steps=[
        ("set", D2, "past"),
        ("set", C0, "future"),
        ("set", C0, "past"),
        ("set", D2, "for ever"),
        ("lift", D2),
        ("set", F4, "future"),
    ],
)
def test_what_bob_sees_matches_walking_every_path(
    readers: Lake, homes: list[str], graph: set[tuple[int, int]], steps: list[tuple[Any, ...]]
) -> None:
    lake = readers
    example = next(_EXAMPLES)
    for scope in SCOPES:  # examples share the catalog: start with every scope public
        scopes.set_embargo(lake, ROOT, scope, embargoed=False)
    prefix = f"x{example}n"
    oracle = Oracle(prefix, _keys(prefix, homes), graph)
    _create(lake, oracle)
    now = datetime.now(UTC).replace(tzinfo=None)
    for step in steps:
        _apply(lake, oracle, step, now)
        _compare(lake, oracle, step)


_EXAMPLES = itertools.count()


def _keys(prefix: str, homes: list[str]) -> list[Key]:
    """Each node's DID: the two containers, the two datasets and two of the files share their
    name when they are in different scopes (a query that matches names without scopes shows)."""
    keys: list[Key] = []
    for node, home in enumerate(homes):
        twin = node - 1 if node % 2 and node < COLLECTIONS + 2 else None
        shared = twin is not None and homes[twin] != home
        keys.append((home, f"{prefix}{twin if shared else node}"))
    return keys


def _create(lake: Lake, oracle: Oracle) -> None:
    """The files, then the collections with their first content (each after what it holds)."""
    files = [
        {"scope": scope, "name": name, "bytes": 1, "adler32": "00000001"}
        for (scope, name), kind in zip(oracle.nodes, KINDS, strict=True)
        if kind == DIDType.FILE
    ]
    replicas.add_replicas(lake, ROOT, "ALPHA_DISK", files)  # type: ignore[arg-type]
    collections = [
        service_dids.NewCollection(
            *oracle.nodes[parent],
            KINDS[parent],
            children=[oracle.nodes[child] for p, child in sorted(oracle.edges) if p == parent],
        )
        for parent in reversed(range(COLLECTIONS))
    ]
    service_dids.add_collections(lake, ROOT, collections)


def _apply(lake: Lake, oracle: Oracle, step: tuple[Any, ...], now: datetime) -> None:
    """Do ``step`` in the catalog and in the oracle (a step that the catalog would refuse —
    a file into a container, a cycle, twice the same edge — is skipped in both)."""
    action = step[0]
    if action == "attach":
        parent, child = int(step[1]), int(step[2])
        if KINDS[parent] == DIDType.DATASET:
            child = COLLECTIONS + child % FILES
        else:
            child = child % COLLECTIONS
        if (parent, child) in oracle.edges or oracle.reaches(child, parent):
            return
        scope, name = oracle.nodes[parent]
        service_dids.attach(lake, ROOT, scope, name, [oracle.nodes[child]])
        oracle.edges.add((parent, child))
    elif action == "detach":
        if not oracle.edges:
            return
        parent, child = sorted(oracle.edges)[int(step[1]) % len(oracle.edges)]
        scope, name = oracle.nodes[parent]
        service_dids.detach(lake, ROOT, scope, name, [oracle.nodes[child]])
        oracle.edges.discard((parent, child))
    elif action in ("set", "lift"):
        node = int(step[1])
        release = _release(step, now) if action == "set" else None
        service_dids.set_embargo(
            lake, ROOT, *oracle.nodes[node], embargoed=action == "set", release_at=release
        )
        if action == "set":
            oracle.own[node] = release
        else:
            oracle.own.pop(node, None)
    else:
        scope = str(step[1])
        release = _release(step, now) if action == "scope set" else None
        scopes.set_embargo(lake, ROOT, scope, embargoed=action == "scope set", release_at=release)
        if action == "scope set":
            oracle.scope_embargo[scope] = release
        else:
            oracle.scope_embargo.pop(scope, None)


def _release(step: tuple[Any, ...], now: datetime) -> datetime | None:
    offset = WHEN[str(step[2])]
    return None if offset is None else now + offset


def _compare(lake: Lake, oracle: Oracle, step: tuple[Any, ...]) -> None:
    """What bob reads, by key and by searching each scope, against the oracle."""
    expected = oracle.seen_by_bob(datetime.now(UTC).replace(tzinfo=None))
    with lake.read() as conn:
        by_key = set(core_dids.find_dids(conn, oracle.nodes, viewer=BOB))
        searched = {
            (info["scope"], info["name"])
            for scope in SCOPES
            for info in core_dids.search_dids(conn, scope, name=f"{oracle.prefix}*", viewer=BOB)
        }
    state = f"after {step}: {sorted(oracle.edges)}, {oracle.own}, {oracle.scope_embargo}"
    assert by_key == expected, state
    assert searched == expected, state
