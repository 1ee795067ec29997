"""The necromancer: replicas in doubt are checked, bad ones brought back, lost ones said loudly.

Each pass (see ``core.integrity`` for the states):
1. replicas ``unavailable`` past their expiry are available again;
2. ``suspicious`` replicas are read back whole from their storage: right bytes clear them
   (``verified_at`` now), wrong or missing bytes make them ``bad``; a storage that cannot be
   reached judges nothing;
3. ``bad`` replicas nothing is done for yet are copied again from a good copy (a transfer
   request to the same RSE for the rules that keep them, or their locks moved when the RSE
   cannot be written), dropped when no rule keeps them, or ``lost`` with their file when no
   good copy is left.
Several necromancers may run: every change is conditional on the state it starts from, and
bad replicas are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lacus.checksums import Checksums
from lacus.core import integrity, rses
from lacus.core.integrity import Declaration
from lacus.core.replicas import replica_path
from lacus.errors import ChecksumMismatch, LacusError, StorageFileNotFound
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse, close_backend
from lacus.storage import StorageBackend, check_stored
from lacus.types import ReplicaState

log = logging.getLogger("lacus.daemons.necromancer")
READ_BACK_BATCH = 50


def necromancer_pass(lake: Lake, worker: str) -> int:
    """One pass; returns how many replicas changed."""
    with lake.write() as conn:
        done = integrity.expire_unavailable(conn)
    done += read_back_suspicious(lake, worker)
    with lake.write() as conn:
        repairs = integrity.repair_bad(conn)
    if repairs.queued or repairs.moved:
        lake.wake("conveyor", "repairer")
    if repairs.lost:
        log.error("%s: %d replica(s) lost: no good copy left", worker, repairs.lost)
    return done + repairs.total


def read_back_suspicious(lake: Lake, worker: str) -> int:
    """Read suspicious replicas back; clear the right ones, declare the others bad."""
    with lake.read() as conn:
        rows = integrity.suspicious(conn, limit=READ_BACK_BATCH)
        infos = {row.rse_id: rses.get_rse(conn, row.rse) for row in rows}
    good: list[tuple[str, str, int]] = []
    bad: list[Declaration] = []
    backends: dict[int, StorageBackend | None] = {}
    try:
        for row in rows:
            if row.rse_id not in backends:
                try:
                    backends[row.rse_id] = backend_for_rse(infos[row.rse_id])
                except LacusError as exc:
                    log.warning("%s: cannot read %s back: %s", worker, row.rse, exc)
                    backends[row.rse_id] = None
            backend = backends[row.rse_id]
            if backend is None:
                continue
            problem = judge(backend, row)
            if problem is None:
                good.append((row.scope, row.name, row.rse_id))
            elif problem:
                bad.append(Declaration(row.scope, row.name, row.rse_id, problem))
    finally:
        for backend in backends.values():
            close_backend(backend)
    with lake.write() as conn:
        cleared = integrity.clear(
            conn, good, reason="read back: the bytes are right", account="root", verified=True
        )
        declared = integrity.declare(conn, bad, ReplicaState.BAD, account="root")
    return cleared + len(declared)


def judge(
    backend: StorageBackend, row: Any, *, pace: Callable[[int], None] | None = None
) -> str | None:
    """Read one replica back: None when its bytes are right, the problem when they are not,
    "" when the storage failed (nothing to judge by)."""
    path = replica_path(row.scope, row.name, row.path)
    expected = Checksums(bytes=row.bytes, adler32=row.adler32, md5=row.md5)
    try:
        check_stored(backend, path, expected=expected, pace=pace)
    except StorageFileNotFound:
        return f"read back: missing on the storage ({backend.url}/{path})"
    except ChecksumMismatch as exc:
        return f"read back: {exc.message}"[:255]
    except LacusError:
        return ""
    return None
