"""Which replica of a file a reader on this machine uses first (pure: no I/O).

The order, best first:

1. the reader's own RSE (``rse=`` of the fsspec file system, ``LACUS_RSE``);
2. RSEs whose storage is a directory on this machine (a POSIX protocol whose prefix exists
   here): read in place, no network;
3. disk before tape (a tape RSE may have to stage the file first);
4. the distance from the replica's RSE to the reader's RSE, as the transfer engine ranks
   sources (RSEs not linked to it last);
5. the RSE's name, so that the order is stable.

RSEs that are not available for reading are left out.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

LOCAL_SCHEMES = frozenset({"file", "posix"})


def local_prefix(rse: Mapping[str, Any], is_dir: Any) -> str | None:
    """The prefix of ``rse``'s POSIX protocol when ``is_dir(prefix)`` says it is on this
    machine, else None."""
    for protocol in rse.get("protocols") or []:
        prefix = protocol.get("prefix") or ""
        if str(protocol.get("scheme", "")).lower() in LOCAL_SCHEMES and prefix and is_dir(prefix):
            return str(prefix)
    return None


def order_replicas(
    replicas: Mapping[str, Any],
    rses: Mapping[str, Mapping[str, Any]],
    *,
    preferred: str | None = None,
    local: Collection[str] = (),
    distances: Mapping[str, int] | None = None,
) -> list[tuple[str, Any]]:
    """``replicas`` ({RSE: location}) best first, as the module says; ``rses``: the RSEs'
    descriptions (``GET /rses/NAME``), ``local``: RSEs on this machine, ``distances``: from
    each RSE to ``preferred``."""
    distances = distances or {}

    def rank(item: tuple[str, Any]) -> tuple[bool, bool, bool, float, str]:
        name = item[0]
        description = rses.get(name, {})
        return (
            name != preferred,
            name not in local,
            str(description.get("rse_type", "")).upper() == "TAPE",
            float(distances.get(name, math.inf)),
            name,
        )

    readable = [
        (name, where)
        for name, where in replicas.items()
        if rses.get(name, {}).get("availability_read", True) is not False
    ]
    return sorted(readable, key=rank)
