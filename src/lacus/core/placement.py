"""Where a rule's copies go: pure logic, no I/O.

For each group of files (all of them, one dataset, or one file, by the rule's grouping) choose
``copies`` distinct RSEs among the candidates of the rule's expression:

1. RSEs the group is already locked on (a rule never moves data it placed already);
2. then RSEs that already hold the most of the group's bytes (no transfer needed);
3. then a weighted random draw: weight from the rule's ``weight`` attribute times the RSE's share
   of free space, so load spreads and fuller RSEs are picked less.

An RSE qualifies only if it has room for the bytes it would receive and the account's quota
allows the bytes its locks would hold; a read-only RSE only if it holds the whole group already
(Lacus never copies to it). Too few qualifying RSEs raise
``InsufficientTargetRSEs``, or ``InsufficientAccountLimit`` when quotas are what excluded them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lacus.errors import InsufficientAccountLimit, InsufficientTargetRSEs


@dataclass(frozen=True, slots=True)
class Candidate:
    rse_id: int
    rse: str
    weight: float = 1.0
    total_bytes: int | None = None
    used_bytes: int = 0
    read_only: bool = False

    @property
    def free_bytes(self) -> int | None:
        if self.total_bytes is None:
            return None
        return max(self.total_bytes - self.used_bytes, 0)

    @property
    def free_share(self) -> float:
        if self.total_bytes is None or self.total_bytes <= 0:
            return 1.0
        return (self.free_bytes or 0) / self.total_bytes


@dataclass(slots=True)
class Quota:
    """An account's limits: each (set of RSE ids, bytes still allowed) from one expression.

    An RSE no limit covers is refused; an account with no limits at all has no Quota.
    """

    limits: list[tuple[frozenset[int], int]]

    def allows(self, rse_id: int, size: int) -> bool:
        covering = [remaining for rses, remaining in self.limits if rse_id in rses]
        return bool(covering) and all(remaining >= size for remaining in covering)

    def charge(self, rse_id: int, size: int) -> None:
        self.limits = [
            (rses, remaining - size if rse_id in rses else remaining)
            for rses, remaining in self.limits
        ]


@dataclass(slots=True)
class Planner:
    """Chooses RSEs group after group, keeping track of the space and quota it used up."""

    candidates: Sequence[Candidate]
    quota: Quota | None = None
    rng: random.Random = field(default_factory=random.Random)
    _planned: dict[int, int] = field(default_factory=dict)

    def choose(
        self,
        copies: int,
        *,
        group_bytes: int,
        held: Mapping[int, int] | None = None,
        keep: Sequence[int] = (),
        exclude: Sequence[int] = (),
    ) -> list[int]:
        """RSE ids for ``copies`` copies of a group of ``group_bytes`` bytes.

        ``held``: bytes of the group each RSE holds already; ``keep``: RSEs the group is locked
        on already (kept first, in order); ``exclude``: RSEs not to use.
        """
        held = held or {}
        chosen = [rse_id for rse_id in dict.fromkeys(keep) if rse_id not in exclude][:copies]
        if len(chosen) == copies:
            return chosen
        by_quota = 0
        read_only = 0
        fitting: list[Candidate] = []
        for candidate in self.candidates:
            if candidate.rse_id in chosen or candidate.rse_id in exclude:
                continue
            if candidate.weight <= 0:
                continue
            incoming = group_bytes - held.get(candidate.rse_id, 0)
            if candidate.read_only and (incoming > 0 or candidate.rse_id not in held):
                read_only += 1
                continue
            free = candidate.free_bytes
            if free is not None and free - self._planned.get(candidate.rse_id, 0) < incoming:
                continue
            if self.quota is not None and not self.quota.allows(candidate.rse_id, group_bytes):
                by_quota += 1
                continue
            fitting.append(candidate)
        fitting.sort(
            key=lambda c: (
                -held.get(c.rse_id, 0),
                -(self.rng.random() ** (1.0 / max(c.weight * c.free_share, 1e-9))),
            )
        )
        needed = copies - len(chosen)
        if len(fitting) < needed:
            names = ", ".join(c.rse for c in self.candidates) or "none"
            if by_quota and len(fitting) + by_quota >= needed:
                raise InsufficientAccountLimit(
                    f"the account's quota leaves room for {len(fitting)} of {needed} more "
                    f"copies of {group_bytes} bytes on {names}"
                )
            why = (
                f"; {read_only} of them read-only, without all of these files" if read_only else ""
            )
            raise InsufficientTargetRSEs(
                f"{needed} more copies of {group_bytes} bytes needed but only {len(fitting)} "
                f"RSE(s) can take them (candidates: {names}{why})"
            )
        for candidate in fitting[:needed]:
            chosen.append(candidate.rse_id)
            incoming = group_bytes - held.get(candidate.rse_id, 0)
            self._planned[candidate.rse_id] = self._planned.get(candidate.rse_id, 0) + incoming
        return chosen

    def charge(self, rse_id: int, size: int) -> None:
        """Count ``size`` bytes of new locks on ``rse_id`` against the quota."""
        if self.quota is not None:
            self.quota.charge(rse_id, size)
