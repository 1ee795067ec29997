"""The reaper: deletes tombstoned replicas no rule needs, bytes first, then the catalog entry.

A pass picks (``core/reaping.py``) the replicas due for deletion — epoch tombstones, any past
tombstone on greedy RSEs, and on RSEs short of their free-space target the least recently
accessed tombstoned replicas until the target is met — then deletes their bytes outside any
transaction and forgets them. A replica on a read-only RSE is only forgotten: Lacus never deletes
bytes there. A storage that refuses the deletion gets its replica back (``available``).
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
from lacus.storage import StorageBackend

log = logging.getLogger("lacus.daemons.reaper")
BATCH = 200


def reaper_pass(lake: Lake, worker: str) -> int:
    with lake.write() as conn:
        chosen = reaping.pick(conn, limit=BATCH)
        infos = {row.rse: get_rse(conn, row.rse) for row in chosen if not row.read_only}
    if not chosen:
        return 0
    deleted: list[Any] = []
    failed: list[Any] = []
    backends: dict[str, StorageBackend | LacusError] = {}
    for row in chosen:
        if row.read_only:
            deleted.append(row)  # an archive Lacus never writes to: forget the replica only
            continue
        try:
            backend = backends.get(row.rse)
            if backend is None:
                try:
                    backend = backends[row.rse] = backend_for_rse(infos[row.rse])
                except LacusError as exc:
                    backend = backends[row.rse] = exc
            if isinstance(backend, LacusError):
                raise backend
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
