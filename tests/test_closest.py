"""The order in which a reader on this machine tries the replicas of a file (pure)."""

from __future__ import annotations

from typing import Any

from lacus.client._closest import local_prefix, order_replicas


def rse(rse_type: str = "DISK", *, readable: bool = True) -> dict[str, Any]:
    return {"rse_type": rse_type, "availability_read": readable}


REPLICAS = {name: {"path": f"p/{name}"} for name in ["A", "B", "C", "LOCAL", "TAPE", "DOWN"]}
RSES = {
    "A": rse(),
    "B": rse(),
    "C": rse(),
    "LOCAL": rse(),
    "TAPE": rse("TAPE"),
    "DOWN": rse(readable=False),
}


def names(ordered: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in ordered]


def test_preferred_then_local_then_disk_by_distance_then_name() -> None:
    ordered = order_replicas(
        REPLICAS, RSES, preferred="C", local={"LOCAL"}, distances={"B": 1, "TAPE": 0, "A": 5}
    )
    assert names(ordered) == ["C", "LOCAL", "B", "A", "TAPE"]
    assert ordered[0][1] == {"path": "p/C"}


def test_without_preferences_local_first_and_names_break_ties() -> None:
    assert names(order_replicas(REPLICAS, RSES, local={"B"})) == ["B", "A", "C", "LOCAL", "TAPE"]


def test_unreadable_rses_are_left_out_even_when_preferred() -> None:
    assert "DOWN" not in names(order_replicas(REPLICAS, RSES, preferred="DOWN"))


def test_a_local_rse_is_a_posix_protocol_whose_prefix_is_here() -> None:
    posix = {"protocols": [{"scheme": "davs", "prefix": "/x"}, {"scheme": "file", "prefix": "/d"}]}
    assert local_prefix(posix, lambda path: path == "/d") == "/d"
    assert local_prefix(posix, lambda path: False) is None
    assert local_prefix({"protocols": [{"scheme": "davs", "prefix": "/d"}]}, lambda p: True) is None
