"""Links between RSEs (distances): anyone may look, admins change.

``bidirectional`` (Rucio's option) applies the same change to the link back as well, in the same
transaction.
"""

from __future__ import annotations

from typing import Any

from lacus.core import distances, rses
from lacus.core.distances import KEEP

__all__ = [
    "KEEP",
    "add_distance",
    "delete_distance",
    "list_distances",
    "update_distance",
]
from lacus.service.lake import Lake, Principal


def _pairs(conn: Any, src: str, dest: str, bidirectional: bool) -> list[tuple[int, int]]:
    src_id, dest_id = rses.get_rse_id(conn, src), rses.get_rse_id(conn, dest)
    return [(src_id, dest_id), (dest_id, src_id)] if bidirectional else [(src_id, dest_id)]


def list_distances(
    lake: Lake, principal: Principal, *, src: str | None = None, dest: str | None = None
) -> list[dict[str, Any]]:
    """Links (all, from ``src``, to ``dest``, or between the two), sorted by RSE names."""
    with lake.read() as conn:
        src_id = None if src is None else rses.get_rse_id(conn, src)
        dest_id = None if dest is None else rses.get_rse_id(conn, dest)
        return distances.list_distances(conn, src_id=src_id, dest_id=dest_id)


def add_distance(
    lake: Lake,
    principal: Principal,
    src: str,
    dest: str,
    distance: int,
    *,
    max_active: int | None = None,
    bidirectional: bool = False,
) -> None:
    with lake.write() as conn:
        for src_id, dest_id in _pairs(conn, src, dest, bidirectional):
            distances.add_distance(conn, src_id, dest_id, distance, max_active=max_active)


def update_distance(
    lake: Lake,
    principal: Principal,
    src: str,
    dest: str,
    *,
    distance: int | None = None,
    max_active: Any = KEEP,
    bidirectional: bool = False,
) -> None:
    """``max_active``: a number, None (no limit of its own) or ``KEEP``."""
    with lake.write() as conn:
        for src_id, dest_id in _pairs(conn, src, dest, bidirectional):
            distances.update_distance(
                conn, src_id, dest_id, distance=distance, max_active=max_active
            )


def delete_distance(
    lake: Lake, principal: Principal, src: str, dest: str, *, bidirectional: bool = False
) -> None:
    with lake.write() as conn:
        for src_id, dest_id in _pairs(conn, src, dest, bidirectional):
            distances.delete_distance(conn, src_id, dest_id)
