"""How many copies may run at once: per link (source → destination) and per RSE.

Pure bookkeeping for the conveyor's dispatcher: ``try_take`` reserves a slot on a link and on
both of its RSEs when all three have room, ``give_back`` returns them. Limits come from the
``distances`` table (``max_active`` of a link), the ``max_active_transfers`` attribute of an RSE,
or the settings' defaults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Slots"]


@dataclass
class Slots:
    link_limit: Callable[[int, int], int]
    """The most copies in flight on the link (source RSE id, destination RSE id)."""
    rse_limit: Callable[[int], int]
    """The most copies in flight that read from or write to an RSE."""
    links: Counter[tuple[int, int]] = field(default_factory=Counter)
    rses: Counter[int] = field(default_factory=Counter)

    def try_take(self, source: int, dest: int) -> bool:
        """Reserve a slot for a copy ``source`` → ``dest``; False (nothing taken) when full."""
        if self.links[(source, dest)] >= self.link_limit(source, dest):
            return False
        if self.rses[source] >= self.rse_limit(source) or self.rses[dest] >= self.rse_limit(dest):
            return False
        self.links[(source, dest)] += 1
        self.rses[source] += 1
        self.rses[dest] += 1
        return True

    def give_back(self, source: int, dest: int) -> None:
        self.links[(source, dest)] -= 1
        self.rses[source] -= 1
        self.rses[dest] -= 1

    @property
    def active(self) -> int:
        return sum(self.links.values())
