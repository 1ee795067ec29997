"""Placement against its promises, on random RSE pools (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacus.core.placement import Candidate, Planner, Quota
from lacus.errors import InsufficientAccountLimit, InsufficientTargetRSEs

pools = st.lists(
    st.builds(
        lambda i, w, total, used: Candidate(
            rse_id=i, rse=f"R{i}", weight=w, total_bytes=total, used_bytes=used
        ),
        st.integers(0, 10_000),
        st.sampled_from([0.0, 0.5, 1.0, 5.0]),
        st.one_of(st.none(), st.integers(0, 10_000)),
        st.integers(0, 5_000),
    ),
    max_size=8,
    unique_by=lambda c: c.rse_id,
)


@settings(max_examples=300, deadline=None)
@given(
    pool=pools,
    copies=st.integers(1, 4),
    size=st.integers(0, 3_000),
    held_share=st.data(),
    seed=st.integers(0, 2**32),
)
def test_choices_are_distinct_eligible_and_prefer_held_data(
    pool: list[Candidate], copies: int, size: int, held_share: st.DataObject, seed: int
) -> None:
    held = {
        c.rse_id: held_share.draw(st.integers(0, size))
        for c in pool
        if held_share.draw(st.booleans())
    }
    planner = Planner(pool, rng=random.Random(seed))
    eligible = [
        c
        for c in pool
        if c.weight > 0 and (c.free_bytes is None or c.free_bytes >= size - held.get(c.rse_id, 0))
    ]
    if len(eligible) < copies:
        with pytest.raises(InsufficientTargetRSEs):
            planner.choose(copies, group_bytes=size, held=held)
        return
    chosen = planner.choose(copies, group_bytes=size, held=held)
    assert len(chosen) == copies
    assert len(set(chosen)) == copies, "never two copies on one RSE"
    assert set(chosen) <= {c.rse_id for c in eligible}
    # An eligible RSE holding more of the data is never passed over for one holding less.
    most = sorted((held.get(c.rse_id, 0) for c in eligible), reverse=True)[:copies]
    assert sorted((held.get(r, 0) for r in chosen), reverse=True) == most


@given(copies=st.integers(1, 3), keep=st.lists(st.integers(0, 5), unique=True, max_size=4))
def test_rses_a_group_is_locked_on_are_kept(copies: int, keep: list[int]) -> None:
    pool = [Candidate(rse_id=i, rse=f"R{i}") for i in range(6)]
    chosen = Planner(pool).choose(copies, group_bytes=10, keep=keep)
    assert chosen[: min(copies, len(keep))] == keep[:copies]
    assert len(set(chosen)) == copies


def test_quota_excludes_rses_and_says_so() -> None:
    pool = [Candidate(rse_id=1, rse="A"), Candidate(rse_id=2, rse="B")]
    quota = Quota([(frozenset({1}), 100), (frozenset({2}), 10)])
    assert Planner(pool, quota=quota).choose(1, group_bytes=50) == [1]
    with pytest.raises(InsufficientAccountLimit):
        Planner(pool, quota=quota).choose(2, group_bytes=50)


def test_space_planned_for_one_group_is_not_promised_to_the_next() -> None:
    pool = [Candidate(rse_id=1, rse="A", total_bytes=100), Candidate(rse_id=2, rse="B")]
    planner = Planner(pool, rng=random.Random(1))
    first = planner.choose(2, group_bytes=80)
    assert sorted(first) == [1, 2]
    assert planner.choose(1, group_bytes=80) == [2], "A has 20 bytes left"
