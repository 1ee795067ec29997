"""Links between RSEs (the ``distances`` table): how close a source is, how many copies may run.

A source RSE with no row at all is linked to every RSE at ``DEFAULT_DISTANCE``; once it has rows
it is linked only to the destinations they name (the conveyor reaches the others by multi-hop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from lacus.db.tables import distances, rses
from lacus.errors import AlreadyExists, InvalidInput, NotFound

__all__ = [
    "DEFAULT_DISTANCE",
    "KEEP",
    "Links",
    "add_distance",
    "delete_distance",
    "list_distances",
    "load_links",
    "update_distance",
]

DEFAULT_DISTANCE = 10
MAX_DISTANCE = 1_000_000
MAX_ACTIVE = 1_000_000


@dataclass(frozen=True)
class Links:
    rows: dict[tuple[int, int], tuple[int, int | None]] = field(default_factory=dict)
    """(source id, destination id) → (distance, max_active)."""
    sources: frozenset[int] = frozenset()
    """RSEs with at least one row: linked only where a row says."""

    def distance(self, src_id: int, dest_id: int) -> int | None:
        """The distance from ``src_id`` to ``dest_id``; None when they are not linked."""
        row = self.rows.get((src_id, dest_id))
        if row is not None:
            return row[0]
        return None if src_id in self.sources else DEFAULT_DISTANCE

    def max_active(self, src_id: int, dest_id: int) -> int | None:
        """The most copies in flight on the link, when its row sets one."""
        row = self.rows.get((src_id, dest_id))
        return None if row is None else row[1]


def load_links(conn: Connection) -> Links:
    rows = {
        (row.src_rse_id, row.dest_rse_id): (row.distance, row.max_active)
        for row in conn.execute(select(distances))
    }
    return Links(rows, frozenset(src for src, _ in rows))


def _check(src_id: int, dest_id: int, distance: int, max_active: int | None) -> None:
    if src_id == dest_id:
        raise InvalidInput("a link joins two different RSEs")
    if isinstance(distance, bool) or not 0 <= distance <= MAX_DISTANCE:
        raise InvalidInput(f"distance must be an integer from 0 to {MAX_DISTANCE}")
    if max_active is not None and (
        isinstance(max_active, bool) or not 1 <= max_active <= MAX_ACTIVE
    ):
        raise InvalidInput(f"max_active must be an integer from 1 to {MAX_ACTIVE} (or none)")


class _Keep:
    """``update_distance(max_active=KEEP)``: leave the link's limit as it is."""


KEEP = _Keep


def add_distance(
    conn: Connection, src_id: int, dest_id: int, distance: int, *, max_active: int | None = None
) -> None:
    """Link ``src_id`` to ``dest_id``; AlreadyExists when they are linked already."""
    _check(src_id, dest_id, distance, max_active)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(distances).values(
                    src_rse_id=src_id, dest_rse_id=dest_id, distance=distance, max_active=max_active
                )
            )
    except IntegrityError:
        raise AlreadyExists("the two RSEs are linked already: update the link instead") from None


def update_distance(
    conn: Connection,
    src_id: int,
    dest_id: int,
    *,
    distance: int | None = None,
    max_active: int | type[_Keep] | None = KEEP,
) -> None:
    """Change a link (``distance``; ``max_active``: a number, None for no limit, or ``KEEP``);
    NotFound when there is none."""
    found = conn.execute(
        select(distances).where(
            distances.c.src_rse_id == src_id, distances.c.dest_rse_id == dest_id
        )
    ).first()
    if found is None:
        raise NotFound("the two RSEs are not linked: add the link first")
    values: dict[str, Any] = {}
    if distance is not None:
        values["distance"] = distance
    if max_active is not _Keep:
        values["max_active"] = max_active
    merged = {"distance": found.distance, "max_active": found.max_active, **values}
    _check(src_id, dest_id, merged["distance"], merged["max_active"])
    if values:
        conn.execute(
            update(distances)
            .where(distances.c.src_rse_id == src_id, distances.c.dest_rse_id == dest_id)
            .values(**values)
        )


def delete_distance(conn: Connection, src_id: int, dest_id: int) -> None:
    """Unlink ``src_id`` from ``dest_id``; NotFound when they are not linked."""
    result = conn.execute(
        delete(distances).where(
            distances.c.src_rse_id == src_id, distances.c.dest_rse_id == dest_id
        )
    )
    if result.rowcount == 0:
        raise NotFound("the two RSEs are not linked")


def list_distances(
    conn: Connection, *, src_id: int | None = None, dest_id: int | None = None
) -> list[dict[str, Any]]:
    """Links (all, or from ``src_id``, or to ``dest_id``) with both RSE names, sorted by names."""
    source, dest = aliased(rses), aliased(rses)
    query = (
        select(distances, source.c.rse.label("src_rse"), dest.c.rse.label("dest_rse"))
        .join(source, source.c.id == distances.c.src_rse_id)
        .join(dest, dest.c.id == distances.c.dest_rse_id)
        .order_by(source.c.rse, dest.c.rse)
    )
    if src_id is not None:
        query = query.where(distances.c.src_rse_id == src_id)
    if dest_id is not None:
        query = query.where(distances.c.dest_rse_id == dest_id)
    return [
        {
            "src_rse_id": row.src_rse_id,
            "src_rse": row.src_rse,
            "dest_rse_id": row.dest_rse_id,
            "dest_rse": row.dest_rse,
            "distance": row.distance,
            "max_active": row.max_active,
        }
        for row in conn.execute(query)
    ]
