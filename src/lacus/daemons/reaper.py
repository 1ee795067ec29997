"""The reaper: deletes tombstoned replicas no rule needs, bytes first, then the catalog entry.

Issue 5 adds free-space targets; here a replica goes when its tombstone is the epoch (its rule
purged it, or its DID expired) or its RSE is greedy (``greedy_deletion=true``).
"""

from __future__ import annotations

import logging
from typing import Any

from lacus.core import reaping
from lacus.core.replicas import replica_path
from lacus.core.rses import get_rse
from lacus.errors import LacusError, StorageFileNotFound
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse

log = logging.getLogger("lacus.daemons.reaper")
BATCH = 200


def reaper_pass(lake: Lake, worker: str) -> int:
    with lake.write() as conn:
        chosen = reaping.pick(conn, limit=BATCH)
        infos = {row.rse: get_rse(conn, row.rse) for row in chosen}
    if not chosen:
        return 0
    deleted: list[Any] = []
    failed: list[Any] = []
    backends: dict[str, Any] = {}
    for row in chosen:
        try:
            backend = backends.get(row.rse) or backends.setdefault(
                row.rse, backend_for_rse(infos[row.rse])
            )
            backend.delete(replica_path(row.scope, row.name, row.path))
            deleted.append(row)
        except StorageFileNotFound:
            deleted.append(row)  # gone already: nothing to keep
        except LacusError as exc:
            log.warning(
                "%s: cannot delete %s:%s on %s: %s", worker, row.scope, row.name, row.rse, exc
            )
            failed.append(row)
    with lake.write() as conn:
        reaping.forget(conn, deleted)
        reaping.restore(conn, failed)
    return len(deleted)
