"""An attach to a collection a rule covers is evaluated for the attached DIDs only.

A stream ingesting chunk by chunk into a ruled dataset must not cost a reading of the whole rule
per chunk: the evaluation item carries what was attached, the evaluator places those files and
leaves the others alone. What was attached gets its locks, requests and (after the conveyor)
replicas; the files from before are untouched.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from lacus.core import dids, queue, rses
from lacus.db.tables import evaluations, locks, requests
from lacus.service.lake import Lake
from lacus.types import DIDType
from tests.rule_helpers import (
    add_rule,
    count,
    make_dataset,
    put_files,
    rule,
    settle,
)


def lock_states(lake: Lake, rule_id: str) -> dict[str, tuple[str, object]]:
    """name → (state, updated_at) of the rule's locks."""
    with lake.read() as conn:
        rows = conn.execute(
            select(locks.c.name, locks.c.state, locks.c.updated_at).where(
                locks.c.rule_id == rule_id
            )
        )
        return {row.name: (row.state, row.updated_at) for row in rows}


def queued_children(lake: Lake) -> list[list[tuple[str, str, str]] | None]:
    with lake.read() as conn:
        return [
            queue.attached_children(item)
            for item in conn.execute(select(evaluations).order_by(evaluations.c.id))
        ]


def test_attached_files_get_locks_and_replicas_and_the_others_are_left_alone(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["old1", "old2", "old3"])
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule(lake, rule_id)["state"] == "ok"
    before = lock_states(lake, rule_id)
    # Behind the evaluator's back, one old file loses its lock: an evaluation of the whole rule
    # would give it a new one; one of the attached files only does not look at it.
    with lake.write() as conn:
        conn.execute(delete(locks).where(locks.c.rule_id == rule_id, locks.c.name == "old3"))

    put_files(lake, "ALPHA_DISK", "data", ["new1", "new2"])
    with lake.write() as conn:
        dids.attach(conn, "data", "ds", [("data", "new1"), ("data", "new2")])
    assert queued_children(lake) == [[("data", "new1", "file"), ("data", "new2", "file")]]
    settle(lake, "evaluator")

    after = lock_states(lake, rule_id)
    assert set(after) == {"old1", "old2", "new1", "new2"}
    assert {after[name][0] for name in ("new1", "new2")} == {"replicating"}
    assert {name: after[name] for name in ("old1", "old2")} == {
        name: before[name] for name in ("old1", "old2")
    }
    with lake.read() as conn:
        assert sorted(conn.execute(select(requests.c.name)).scalars()) == ["new1", "new2"]

    settle(lake, "conveyor")
    info = rule(lake, rule_id)
    assert (info["state"], info["locks_ok_cnt"]) == ("ok", 4)
    assert count(lake, requests) == 0

    # A detach still evaluates the whole rule: old3 gets its lock back.
    with lake.write() as conn:
        dids.detach(conn, "data", "ds", [("data", "new2")])
    settle(lake, "evaluator")
    assert set(lock_states(lake, rule_id)) == {"old1", "old2", "old3", "new1"}


def test_a_new_file_goes_where_the_dataset_is(lake: Lake) -> None:
    """Grouped by dataset, a file attached later joins the RSE its dataset's files were given."""
    make_dataset(lake, "data", "ds", ["a", "b"])
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK|GAMMA_TAPE")
    settle(lake, "evaluator")
    (placed,) = {rse_id for *_, rse_id in _locks(lake, rule_id)}
    for index in range(5):
        put_files(lake, "ALPHA_DISK", "data", [f"late{index}"])
        with lake.write() as conn:
            dids.attach(conn, "data", "ds", [("data", f"late{index}")])
        settle(lake, "evaluator")
    assert {rse_id for *_, rse_id in _locks(lake, rule_id)} == {placed}
    assert len(_locks(lake, rule_id)) == 7


def _locks(lake: Lake, rule_id: str) -> list[tuple[str, int]]:
    with lake.read() as conn:
        rows = conn.execute(select(locks.c.name, locks.c.rse_id).where(locks.c.rule_id == rule_id))
        return [(row.name, row.rse_id) for row in rows]


def test_a_dataset_attached_to_a_ruled_container_brings_its_files(lake: Lake) -> None:
    make_dataset(lake, "data", "ds1", ["a1", "a2"])
    with lake.write() as conn:
        dids.add_collection(conn, "data", "box", DIDType.CONTAINER, account="root")
        dids.attach(conn, "data", "box", [("data", "ds1")])
    rule_id = add_rule(lake, "data", "box", "BETA_DISK")
    settle(lake, "evaluator")
    make_dataset(lake, "data", "ds2", ["b1", "b2", "b3"])
    with lake.write() as conn:
        dids.attach(conn, "data", "box", [("data", "ds2")])
    assert queued_children(lake) == [[("data", "ds2", "dataset")]]
    settle(lake, "evaluator")
    assert set(lock_states(lake, rule_id)) == {"a1", "a2", "b1", "b2", "b3"}
    # and files attached to a dataset inside the container
    put_files(lake, "ALPHA_DISK", "data", ["b4"])
    with lake.write() as conn:
        dids.attach(conn, "data", "ds2", [("data", "b4")])
    settle(lake, "evaluator", "conveyor")
    info = rule(lake, rule_id)
    assert (info["state"], info["locks_ok_cnt"]) == ("ok", 6)


def test_a_large_attach_is_queued_in_parts_and_every_file_is_placed(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "CHILDREN_PER_ITEM", 2)
    make_dataset(lake, "data", "ds", ["first"])
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    names = [f"n{index}" for index in range(5)]
    put_files(lake, "ALPHA_DISK", "data", names)
    with lake.write() as conn:
        dids.attach(conn, "data", "ds", [("data", name) for name in names])
    assert [len(children or []) for children in queued_children(lake)] == [2, 2, 1]
    settle(lake, "evaluator")
    assert set(lock_states(lake, rule_id)) == {"first", *names}


def test_a_rule_whose_placement_failed_is_evaluated_whole_on_the_next_attach(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["a", "b"])
    with lake.write() as conn:  # nothing can be written to BETA_DISK: the placement fails
        rses.update_rse(conn, rses.get_rse_id(conn, "BETA_DISK"), availability_write=False)
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    assert rule(lake, rule_id)["error"]
    assert lock_states(lake, rule_id) == {}
    with lake.write() as conn:
        rses.update_rse(conn, rses.get_rse_id(conn, "BETA_DISK"), availability_write=True)
    put_files(lake, "ALPHA_DISK", "data", ["c"])
    with lake.write() as conn:
        dids.attach(conn, "data", "ds", [("data", "c")])
    settle(lake, "evaluator")
    assert set(lock_states(lake, rule_id)) == {"a", "b", "c"}
    assert rule(lake, rule_id)["error"] is None
