"""Source ranking and copy slots, the conveyor's pure parts: checked on every input hypothesis
finds, not only on the examples of the engine tests."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from lacus.core.distances import DEFAULT_DISTANCE, Links
from lacus.core.sources import Replica, routes, success_rate
from lacus.daemons.slots import Slots

DEST = 0


def replica(rse_id: int) -> Replica:
    return Replica(rse_id, f"RSE_{rse_id}", f"path/on/{rse_id}")


def test_an_unknown_link_counts_as_even() -> None:
    assert success_rate(0, 0) == 0.5
    assert success_rate(9, 0) > success_rate(5, 0) > success_rate(5, 5) > success_rate(0, 5)


def test_closer_sources_first_then_better_links_then_names() -> None:
    distances = {(1, DEST): 5, (2, DEST): 1, (3, DEST): 5, (4, DEST): 5}
    found = routes(
        [replica(n) for n in (1, 2, 3, 4)],
        DEST,
        distance=lambda s, d: distances.get((s, d)),
        success={(3, DEST): 0.9, (4, DEST): 0.1},
    )
    assert [r.source.rse_id for r in found] == [2, 3, 1, 4]
    assert all(r.hops == () for r in found)


def test_a_source_that_failed_this_request_goes_last() -> None:
    found = routes(
        [replica(1), replica(2)],
        DEST,
        distance=lambda s, d: {1: 1, 2: 9}[s],
        success={},
        failed_sources=frozenset({1}),
    )
    assert [r.source.rse_id for r in found] == [2, 1]


def test_multi_hop_only_without_a_direct_link() -> None:
    links = Links({(1, 7): (2, None), (7, DEST): (3, None), (1, 8): (1, None)}, frozenset({1, 7}))
    found = routes([replica(1)], DEST, distance=links.distance, success={}, hops=[7, 8])
    # 8 has no row of its own, so it reaches DEST at the default distance: 1 + 10 > 2 + 3.
    assert [(r.hops, r.distance) for r in found] == [((7,), 5), ((8,), 1 + DEFAULT_DISTANCE)]
    linked = Links({(1, DEST): (50, None)}, frozenset({1}))
    direct = routes([replica(1)], DEST, distance=linked.distance, success={}, hops=[7, 8])
    assert [(r.hops, r.distance) for r in direct] == [((), 50)]


def test_the_destination_is_never_a_source_nor_a_hop() -> None:
    found = routes([replica(DEST)], DEST, distance=lambda s, d: 1, success={}, hops=[DEST])
    assert found == []


@given(
    st.dictionaries(
        st.tuples(st.integers(0, 5), st.integers(0, 5)), st.integers(0, 20), max_size=25
    ),
    st.sets(st.integers(1, 5), max_size=5),
    st.sets(st.integers(1, 5), max_size=5),
    st.sets(st.integers(1, 5), max_size=3),
)
def test_routes_are_sound(
    rows: dict[tuple[int, int], int], sources: set[int], hops: set[int], failed: set[int]
) -> None:
    links = Links({k: (v, None) for k, v in rows.items()}, frozenset(s for s, _ in rows))
    found = routes(
        [replica(n) for n in sorted(sources)],
        DEST,
        distance=links.distance,
        success={},
        failed_sources=frozenset(failed),
        hops=sorted(hops),
    )
    direct = [s for s in sources if links.distance(s, DEST) is not None]
    if direct:  # every linked source, each once, and nothing else
        assert sorted(r.source.rse_id for r in found) == sorted(direct)
    for route in found:
        assert route.source.rse_id in sources
        path = [route.source.rse_id, *route.hops, DEST]
        assert len(set(path)) == len(path)  # no RSE twice, the destination last
        steps = [links.distance(a, b) for a, b in itertools.pairwise(path)]
        assert None not in steps
        assert route.distance == sum(s for s in steps if s is not None)
    keys = [(r.source.rse_id in failed, r.distance) for r in found]
    assert keys == sorted(keys)  # not-failed first, then the closest


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=60))
def test_slots_never_exceed_their_limits(copies: list[tuple[int, int]]) -> None:
    slots = Slots(link_limit=lambda s, d: 1 + (s + d) % 3, rse_limit=lambda r: 2 + r)
    taken = []
    for source, dest in copies:
        if source == dest:
            continue
        if slots.try_take(source, dest):
            taken.append((source, dest))
        for (s, d), count in slots.links.items():
            assert count <= 1 + (s + d) % 3
        for rse, count in slots.rses.items():
            assert count <= 2 + rse
    for link in taken:
        slots.give_back(*link)
    assert slots.active == 0
    assert not any(slots.rses.values())
