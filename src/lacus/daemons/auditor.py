"""The auditor: each RSE's storage listed through its backend and compared with the catalog.

One audit of one RSE (claimed, so one auditor per RSE at a time):
1. a first catalog snapshot — the RSE's replicas sorted by path — is read *while* the storage
   is listed (``scan``, same order), and the two streams are merged (``core.audit_compare``);
2. a second snapshot, after the listing, re-reads only the candidates: a replica is *lost*
   when it was available and older than ``audit_grace_seconds`` in both snapshots and is absent
   from the storage or there with another size; a file is *dark* when neither snapshot knows
   it and it was last modified before the grace period. What was created or deleted during the
   listing is thus never reported;
3. if the dark or lost files exceed ``audit_max_fraction`` of the RSE's files, nothing is done
   and ``audit.aborted`` is raised (a wrong mount or an empty bucket must not wipe a site);
   otherwise lost replicas are declared bad (the necromancer repairs them or says they are
   lost) and dark files are quarantined — listed, never deleted here.

The dark reaper deletes a quarantined file ``dark_min_age_days`` after it was first found, if
the catalog still does not know it and it still has the size it had.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from lacus.core import audits, integrity
from lacus.core.audit_compare import Comparison, compare, too_many
from lacus.core.clock import utcnow
from lacus.core.integrity import Declaration
from lacus.core.rses import list_rses
from lacus.errors import LacusError, ProtocolNotFound, StorageFileNotFound
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse, close_backend
from lacus.storage import RemovesTemporaries, ScansStorage, StorageBackend
from lacus.storage._base import is_part_name
from lacus.types import ReplicaState, RSEInfo

log = logging.getLogger("lacus.daemons.auditor")
LEASE_SECONDS = 3600.0
RETRY_SECONDS = 300.0
KEPT_MIN = 10_000
"""Candidates of each kind kept at least, whatever the RSE's size (more are only counted)."""
REAP_BATCH = 200


def due(conn: Connection) -> bool:
    return audits.due_work(conn, audits.AUDIT)


def auditor_pass(lake: Lake, worker: str) -> int:
    """Audit one RSE that is due; returns 1 when one was audited (or failed), else 0."""
    with lake.write() as conn:
        work = audits.claim_rse(conn, audits.AUDIT, worker=worker, lease_seconds=LEASE_SECONDS)
        if work is None:
            return 0
        run_id = audits.start_run(conn, work.rse_id, audits.AUDIT, worker=worker)
        info = next((i for i in list_rses(conn) if i["id"] == work.rse_id), None)
    next_at = utcnow() + timedelta(seconds=lake.settings.audit_interval_seconds)
    try:
        if info is None or not info["protocols"]:
            raise ProtocolNotFound("the RSE has no protocol to list its storage with")
        audit_rse(lake, info, run_id)
    except LacusError as exc:
        log.warning("%s: audit of RSE %s failed: %s", worker, work.rse_id, exc)
        next_at = utcnow() + timedelta(seconds=RETRY_SECONDS)
        with lake.write() as conn:
            audits.end_run(conn, run_id, state="failed", detail=f"{type(exc).__name__}: {exc}")
    finally:
        with lake.write() as conn:
            audits.release(conn, work, worker=worker, next_at=next_at, audit_id=None)
    return 1


def audit_rse(lake: Lake, info: RSEInfo, run_id: int) -> Comparison:
    """Compare one RSE's storage with the catalog and act on what differs (see the module)."""
    settings = lake.settings
    started = utcnow()
    judged_before = started - timedelta(seconds=settings.audit_grace_seconds)
    dark_before = time.time() - settings.audit_grace_seconds
    backend = backend_for_rse(info)
    try:
        if not isinstance(backend, ScansStorage):
            raise ProtocolNotFound(f"the storage of {info['rse']} cannot be listed")
        limit = int(settings.audit_max_fraction * max(info.get("files") or 0, 1)) + KEPT_MIN
        with lake.read() as conn:
            found = compare(
                audits.snapshot(conn, info["id"], judged_before=judged_before),
                _listing(backend),
                dark_before=dark_before,
                limit=limit,
            )
    finally:
        close_backend(backend)
    with lake.read() as conn:  # the second snapshot: only the candidates
        dark = audits.confirm_dark(conn, info["id"], found.dark)
        lost = audits.confirm_lost(conn, info["id"], found.lost, before=judged_before)
    dark_count = len(dark) + found.dark_count - len(found.dark)
    lost_count = len(lost) + found.lost_count - len(found.lost)
    fraction = settings.audit_max_fraction
    with lake.write() as conn:
        if too_many(dark_count, found.files, found.listed, fraction) or too_many(
            lost_count, found.files, found.listed, fraction
        ):
            detail = (
                f"{dark_count} dark and {lost_count} lost of {found.files} catalog replicas "
                f"and {found.listed} files on the storage: more than audit_max_fraction "
                f"{fraction:g}; no action taken (is the storage mounted right?)"
            )
            log.error("audit of %s aborted: %s", info["rse"], detail)
            audits.end_run(
                conn,
                run_id,
                state="aborted",
                detail=detail,
                files=found.files,
                listed=found.listed,
                dark=dark_count,
                lost=lost_count,
            )
            return found
        audits.quarantine_files(conn, info["id"], dark, reason="dark: unknown to the catalog")
        audits.forget_unseen(conn, info["id"], since=started)
        declared = integrity.declare(
            conn,
            [Declaration(e.scope, e.name, info["id"], f"audit: {why}") for e, why in lost],
            ReplicaState.BAD,
            account="root",
        )
        audits.end_run(
            conn,
            run_id,
            state="finished",
            files=found.files,
            listed=found.listed,
            dark=dark_count,
            lost=len(declared),
        )
    if declared:
        lake.wake("necromancer")
    return found


def _listing(backend: ScansStorage) -> Any:
    try:
        yield from backend.scan("")
    except StorageFileNotFound:  # nothing was ever written: an empty storage
        return


def dark_reaper_pass(lake: Lake, worker: str) -> int:
    """Delete quarantined files past ``dark_min_age_days`` that are still unknown; returns how
    many files left the quarantine."""
    cutoff = utcnow() - timedelta(days=lake.settings.dark_min_age_days)
    with lake.read() as conn:
        old = audits.list_quarantine(conn, older_than=cutoff, limit=REAP_BATCH)
        infos = {i["id"]: i for i in list_rses(conn)}
    by_rse: dict[int, list[Any]] = {}
    for entry in old:
        by_rse.setdefault(entry.rse_id, []).append(entry)
    done = 0
    for rse_id, entries in by_rse.items():
        info = infos[rse_id]
        if info.get("read_only", False) or not info["availability_delete"]:
            continue  # Lacus never deletes there: the quarantine list is the report
        with lake.read() as conn:
            unknown = audits.still_unknown(conn, rse_id, entries)
        try:
            backend = backend_for_rse(infos[rse_id])
        except LacusError as exc:
            log.warning("%s: cannot reach %s: %s", worker, infos[rse_id]["rse"], exc)
            continue
        try:
            deleted = [e for e in unknown if _delete_dark(backend, e)]
        finally:
            close_backend(backend)
        if deleted:
            log.info(
                "%s: %d dark file(s) deleted from %s", worker, len(deleted), infos[rse_id]["rse"]
            )
        with lake.write() as conn:
            audits.unquarantine(conn, rse_id, [e.path for e in entries])
        done += len(entries)
    return done


def _delete_dark(backend: StorageBackend, entry: Any) -> bool:
    """Delete one dark file if it still has the size it was found with. A temporary file of an
    unfinished write goes with the others of its name that the backend finds abandoned."""
    directory, _, name = entry.path.rpartition("/")
    if is_part_name(name):
        if not isinstance(backend, RemovesTemporaries):
            return False
        target = name[1:].rsplit(".lacus-part-", 1)[0]
        return backend.remove_temporaries(f"{directory}/{target}" if directory else target) > 0
    try:
        if entry.bytes is not None and backend.stat(entry.path).bytes != entry.bytes:
            return False  # it changed: someone writes it; the next audit looks again
        backend.delete(entry.path)
    except StorageFileNotFound:
        return False
    return True
