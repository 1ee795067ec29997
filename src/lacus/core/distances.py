"""Links between RSEs (the ``distances`` table): how close a source is, how many copies may run.

A source RSE with no row at all is linked to every RSE at ``DEFAULT_DISTANCE``; once it has rows
it is linked only to the destinations they name (the conveyor reaches the others by multi-hop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from lacus.db.tables import distances

__all__ = ["DEFAULT_DISTANCE", "Links", "load_links"]

DEFAULT_DISTANCE = 10


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
