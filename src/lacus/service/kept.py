"""RSE configurations and scope owners kept in memory for the hot paths (registration).

Registering a chunk must not read an RSE's row, attributes and protocols every time (three
queries of a dozen per registration). What is kept: flags, protocols and attributes as read at
most ``ttl`` seconds ago. A change made in this process (``lacus.core.rses`` marks the
transaction) empties the cache once that transaction ends; a change made by another process is
seen within ``ttl``. Usage counters in a kept entry are stale: read them from the catalog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from sqlalchemy import Connection

from lacus.core import rses, scopes
from lacus.types import RSEInfo

TTL = 1.0
"""Seconds an RSE's configuration is used before it is read again."""


class RSEConfigs:
    """RSE name → its configuration (``RSEInfo``), read again after ``ttl`` seconds."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._kept: dict[str, tuple[float, RSEInfo]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def get(self, conn: Connection, rse: str) -> RSEInfo:
        """The configuration of ``rse`` (RSENotFound when it does not exist; never kept)."""
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(rse)
            generation = self._generation
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        info = rses.get_rse(conn, rse)
        with self._lock:
            if generation == self._generation:  # no change was made while it was being read
                self._kept[rse] = (now, info)
        return info

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._generation += 1


class ScopeOwners:
    """Scope → owning account, kept once read: scopes are never deleted nor given to another
    account (a catalog emptied under a running lake needs ``clear``)."""

    def __init__(self) -> None:
        self._kept: dict[str, str] = {}

    def get(self, conn: Connection, names: Iterable[str]) -> dict[str, str]:
        """The owners of ``names`` (ScopeNotFound naming a missing one)."""
        wanted = set(names)
        kept = self._kept  # one dict: readers in other threads see it whole or not at all
        if wanted.issubset(kept):
            return {scope: kept[scope] for scope in wanted}
        owners = scopes.require_scopes(conn, wanted)
        self._kept = {**kept, **owners}
        return owners

    def clear(self) -> None:
        self._kept = {}
