"""The hop sweeper: scratch copies of multi-hop transfers that a killed worker left behind.

A multi-hop transfer copies the file to ``.lacus-hop/<request id>/<path>`` on an RSE with
``available_for_multihop=true``, then to its destination, and deletes the scratch copy; a worker
killed in between leaves it (and perhaps a temporary file of an unfinished write). A retry of the
same request through the same RSE replaces it, but a request served another way, or removed with
its rule, never comes back for it. The sweeper lists ``.lacus-hop/`` on every such RSE and deletes
what belongs to no request still in the catalog (a request being served keeps its row until its
file is registered, after its scratch copy is gone). It looks at most every
``hop_sweep_seconds`` per process; an RSE it cannot reach is tried again next time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from sqlalchemy import Connection, select

from lacus.core.rses import list_rses
from lacus.daemons.conveyor import HOP_DIR, MULTIHOP
from lacus.db.tables import requests
from lacus.errors import LacusError, StorageFileNotFound
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse, close_backend
from lacus.storage import StorageBackend
from lacus.types import RSEInfo

log = logging.getLogger("lacus.daemons.sweeper")
CHUNK = 500

_next_sweep = 0.0
_gate = threading.Lock()


def due(conn: Connection) -> bool:
    """Time for a sweep (in this process)?"""
    return time.monotonic() >= _next_sweep


def sweeper_pass(lake: Lake, worker: str) -> int:
    """Delete the scratch copies of requests that are gone; returns how many files."""
    global _next_sweep
    with _gate:
        _next_sweep = time.monotonic() + lake.settings.hop_sweep_seconds
    with lake.read() as conn:
        hops = [info for info in list_rses(conn) if _holds_hops(info)]
    deleted = 0
    for info in hops:
        try:
            deleted += _sweep(lake, info, worker)
        except LacusError as exc:
            log.warning("%s: cannot sweep %s on %s: %s", worker, HOP_DIR, info["rse"], exc)
    return deleted


def _holds_hops(info: RSEInfo) -> bool:
    return (
        str(info["attributes"].get(MULTIHOP, "")).lower() == "true"
        and not info.get("read_only", False)
        and bool(info["protocols"])
    )


def _listed(backend: StorageBackend) -> list[str]:
    try:
        return list(backend.list(HOP_DIR))
    except StorageFileNotFound:  # nothing ever hopped through it
        return []


def _sweep(lake: Lake, info: RSEInfo, worker: str) -> int:
    backend = backend_for_rse(info)
    try:
        by_request: dict[int, list[str]] = {}
        for path in _listed(backend):
            parts = path.split("/")
            if len(parts) > 2 and parts[0] == HOP_DIR and parts[1].isdigit():
                by_request.setdefault(int(parts[1]), []).append(path)
        if not by_request:
            return 0
        ids = sorted(by_request)
        with lake.read() as conn:
            live = {
                int(request_id)
                for start in range(0, len(ids), CHUNK)
                for request_id in conn.execute(
                    select(requests.c.id).where(requests.c.id.in_(ids[start : start + CHUNK]))
                ).scalars()
            }
        deleted = 0
        for request_id in ids:
            if request_id in live:
                continue
            for path in by_request[request_id]:
                with contextlib.suppress(LacusError):  # gone meanwhile: what was wanted
                    backend.delete(path)
                    deleted += 1
        if deleted:
            log.info("%s: %d scratch file(s) of finished requests removed from %s/%s",
                     worker, deleted, info["rse"], HOP_DIR)  # fmt: skip
        return deleted
    finally:
        close_backend(backend)
