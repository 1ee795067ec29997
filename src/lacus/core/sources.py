"""Where a transfer reads from: the routes from the replicas of a file to its destination.

Pure logic: the conveyor gathers the facts (available replicas, links between RSEs, past success
per link, the sources that already failed this request) and ``routes`` orders them:

1. a source that has not failed this request before one that has (a retry goes elsewhere first);
2. direct links before multi-hop routes (one intermediate RSE, used only when no replica has a
   direct link to the destination);
3. the smaller distance (the ``distances`` table; lower is closer);
4. the higher success rate on the link over the recent past ((done + 1) / (attempts + 2), so an
   unknown link counts as even);
5. the RSE name, so that the order is stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Replica", "Route", "routes", "success_rate"]


@dataclass(frozen=True, slots=True)
class Replica:
    """An available replica a transfer may read: its RSE (id and name) and its path there."""

    rse_id: int
    rse: str
    path: str


@dataclass(frozen=True, slots=True)
class Route:
    """Read ``source``, pass through the ``hops`` RSEs (in order), write the destination."""

    source: Replica
    hops: tuple[int, ...]
    distance: int

    @property
    def first_link(self) -> tuple[int, int | None]:
        """The link the first copy uses; ``None`` destination = the request's own."""
        return (self.source.rse_id, self.hops[0] if self.hops else None)


def success_rate(done: int, failed: int) -> float:
    """The share of good attempts on a link, an unknown link counting as even."""
    return (done + 1) / (done + failed + 2)


def routes(
    replicas: Iterable[Replica],
    dest_rse_id: int,
    *,
    distance: Callable[[int, int], int | None],
    success: Mapping[tuple[int, int], float],
    failed_sources: frozenset[int] = frozenset(),
    hops: Iterable[int] = (),
) -> list[Route]:
    """Every way to bring a file to ``dest_rse_id``, best first.

    ``replicas``: the usable source replicas (available, readable, outside the destination).
    ``distance(src, dest)``: None when the two RSEs are not linked. ``hops``: RSEs that may
    hold an intermediate copy. Returns an empty list when nothing reaches the destination.
    """
    sources = [replica for replica in replicas if replica.rse_id != dest_rse_id]
    direct: list[tuple[tuple[object, ...], Route]] = []
    for replica in sources:
        d = distance(replica.rse_id, dest_rse_id)
        if d is None:
            continue
        key = (
            replica.rse_id in failed_sources,
            d,
            -success.get((replica.rse_id, dest_rse_id), 0.5),
            replica.rse,
        )
        direct.append((key, Route(replica, (), d)))
    if direct:
        return [route for _, route in sorted(direct, key=lambda item: item[0])]
    via: list[tuple[tuple[object, ...], Route]] = []
    hop_ids = [hop for hop in hops if hop != dest_rse_id]
    for replica in sources:
        for hop in hop_ids:
            if hop == replica.rse_id:
                continue
            first = distance(replica.rse_id, hop)
            second = distance(hop, dest_rse_id)
            if first is None or second is None:
                continue
            rate = min(
                success.get((replica.rse_id, hop), 0.5), success.get((hop, dest_rse_id), 0.5)
            )
            key = (replica.rse_id in failed_sources, first + second, -rate, replica.rse)
            via.append(((*key, hop), Route(replica, (hop,), first + second)))
    return [route for _, route in sorted(via, key=lambda item: item[0])]
