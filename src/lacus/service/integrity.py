"""Integrity use cases: declaring replicas suspicious, bad or unavailable (by DID or by PFN),
listing declarations, quarantining dark files, and the audit report.

Who may do what (docs/permissions.md): anyone who can see a file may report a replica of it
*suspicious* (the necromancer reads it back before anything is done); declaring a replica *bad*
or *unavailable* needs the scope's owner or an admin; quarantining files and listing the
quarantine, admins. A replica that a declarer cannot see answers as a missing one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import Connection, select, tuple_

from lacus.core import audits, integrity, rses, scopes
from lacus.core.expressions import resolve
from lacus.core.integrity import Declaration
from lacus.core.rses import rse_attribute_map
from lacus.core.visibility import visible
from lacus.db.tables import dids, replica_declarations, replicas
from lacus.db.tables import rses as rses_table
from lacus.errors import (
    AccessDenied,
    InvalidInput,
    LacusError,
    ReplicaNotFound,
    RSENotFound,
    UnsupportedOperation,
)
from lacus.naming import make_pfn
from lacus.service.lake import Lake, Principal
from lacus.service.token_scopes import StorageOperation, may
from lacus.storage import FileStat
from lacus.types import ReplicaState, RSEInfo

MAX_DECLARATIONS = 10_000
MAX_PATH = 1024
"""The longest path the quarantine keeps."""
_SLASHES = re.compile("/+")


class Refusal(NamedTuple):
    """A replica a declaration left alone, and why."""

    given: str
    """what was given: ``scope:name`` or the PFN"""
    rse: str
    """the RSE, or "" when a PFN named none"""
    reason: str
    error: type[LacusError]
    """what the refusal is, as an error: RSENotFound, ReplicaNotFound, AccessDenied, or
    UnsupportedOperation (the replica's state does not allow the declaration)"""


@dataclass(slots=True)
class Declared:
    """What a declaration did: the replicas declared, and the others with why not."""

    declared: list[tuple[str, str, str]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def declare(
    lake: Lake,
    principal: Principal,
    state: ReplicaState,
    *,
    replicas_given: Sequence[tuple[str, str, str]] = (),
    pfns: Sequence[str] = (),
    reason: str,
    expires_at: datetime | None = None,
) -> Declared:
    """Declare replicas (``(scope, name, rse)``, or PFNs) ``state``: suspicious, bad or
    unavailable (until ``expires_at``, or until set available again)."""
    if state not in integrity.declarable():
        raise InvalidInput(f"a replica can be declared suspicious, bad or unavailable, not {state}")
    if len(replicas_given) + len(pfns) > MAX_DECLARATIONS:
        raise InvalidInput(f"at most {MAX_DECLARATIONS} replicas per declaration")
    reason = (reason or "").strip()[:255] or "no reason given"
    outcome = Declared()
    with lake.write() as conn:
        infos = {info["rse"]: info for info in rses.list_rses(conn)}
        wanted: list[tuple[str, str, RSEInfo, str]] = []
        for scope, name, rse in replicas_given:
            if rse not in infos:
                outcome.refused.append(
                    Refusal(f"{scope}:{name}", rse, f"RSE {rse!r} not found", RSENotFound)
                )
            else:
                wanted.append((scope, name, infos[rse], f"{scope}:{name}"))
        for pfn in pfns:
            found = _from_pfn(conn, pfn, list(infos.values()))
            if found is None:
                outcome.refused.append(
                    Refusal(pfn, "", "not found: no replica has this PFN", ReplicaNotFound)
                )
            else:
                wanted.append((*found, pfn))
        items = _allowed(conn, principal, state, wanted, outcome)
        declared = integrity.declare(
            conn,
            [Declaration(scope, name, info["id"], reason) for scope, name, info, _ in items],
            state,
            account=principal.account,
            expires_at=expires_at,
            suspicious_limit=lake.settings.suspicious_reports_limit,
        )
        done = {d.key for d in declared}
        left = [(s, n, info["id"]) for s, n, info, _ in items if (s, n, info["id"]) not in done]
        states = _states(conn, left)
        for scope, name, info, given in items:
            key = (scope, name, info["id"])
            if key in done:
                outcome.declared.append((scope, name, info["rse"]))
            elif key not in states:
                outcome.refused.append(
                    Refusal(
                        given,
                        info["rse"],
                        f"{scope}:{name} has no replica on {info['rse']} (not found)",
                        ReplicaNotFound,
                    )
                )
            else:
                outcome.refused.append(
                    Refusal(
                        given,
                        info["rse"],
                        f"its replica on {info['rse']} is {states[key]}: it cannot be "
                        f"declared {state}",
                        UnsupportedOperation,
                    )
                )
    lake.wake("necromancer")
    return outcome


def _states(conn: Connection, keys: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], str]:
    """The states of the replicas ``keys`` (scope, name, rse_id) that exist."""
    found: dict[tuple[str, str, int], str] = {}
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        for row in conn.execute(
            select(replicas.c.scope, replicas.c.name, replicas.c.rse_id, replicas.c.state).where(
                tuple_(replicas.c.scope, replicas.c.name, replicas.c.rse_id).in_(part)
            )
        ):
            found[(row.scope, row.name, row.rse_id)] = row.state
    return found


def _allowed(
    conn: Connection,
    principal: Principal,
    state: ReplicaState,
    wanted: list[tuple[str, str, RSEInfo, str]],
    outcome: Declared,
) -> list[tuple[str, str, RSEInfo, str]]:
    """The wanted replicas that exist, are visible to ``principal`` and that it may declare."""
    keys = list({(scope, name) for scope, name, _, _ in wanted})
    seen: set[tuple[str, str]] = set()
    owners: dict[str, str] = {}
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        for row in conn.execute(
            select(dids.c.scope, dids.c.name).where(
                tuple_(dids.c.scope, dids.c.name).in_(part), visible(principal)
            )
        ):
            seen.add((row.scope, row.name))
    if state is not ReplicaState.SUSPICIOUS and not principal.admin:
        owners = scopes.require_scopes(conn, {scope for scope, _ in seen}) if seen else {}
    allowed = []
    needed = StorageOperation.READ if state is ReplicaState.SUSPICIOUS else StorageOperation.MODIFY
    for scope, name, info, given in wanted:
        if (scope, name) not in seen:  # hidden answers as missing, by name or by PFN
            missing = (
                f"{scope}:{name} not found"
                if given == f"{scope}:{name}"
                else "not found: no replica has this PFN"
            )
            outcome.refused.append(Refusal(given, info["rse"], missing, ReplicaNotFound))
        elif not may(principal, needed, scope):
            outcome.refused.append(
                Refusal(given, info["rse"], f"this token may not declare {state} replicas of "
                        f"scope {scope!r}: it needs storage.{needed}:/{scope}", AccessDenied)
            )  # fmt: skip
        elif owners.get(scope, principal.account) != principal.account:
            outcome.refused.append(
                Refusal(given, info["rse"], f"account {principal.account!r} may not declare "
                        f"{state} replicas of scope {scope!r}: its owner or an admin may",
                        AccessDenied)
            )  # fmt: skip
        else:
            allowed.append((scope, name, info, given))
    return allowed


def _from_pfn(conn: Connection, pfn: str, infos: list[RSEInfo]) -> tuple[str, str, RSEInfo] | None:
    """The replica a PFN names: the RSE whose protocol it falls under, the path below it."""
    try:
        found = urlsplit(pfn)
    except ValueError:  # not a URL (an unbalanced IPv6 bracket...)
        return None
    within = _SLASHES.sub("/", found.path)
    for info in infos:
        for proto in info["protocols"]:
            base = urlsplit(
                make_pfn(proto["scheme"], proto["hostname"], proto["port"], proto["prefix"], "")
            )
            root = _SLASHES.sub("/", base.path)
            same_host = found.netloc == base.netloc or proto["scheme"] in ("file", "posix")
            if found.scheme == base.scheme and same_host and within.startswith(root):
                path = within[len(root) :]
                known = audits.replica_at(conn, info["id"], path)
                if known is not None:
                    return (known[0], known[1], info)
    return None


def list_declared(
    lake: Lake,
    principal: Principal,
    state: ReplicaState,
    *,
    rse_expression: str | None = None,
    younger_than: datetime | None = None,
    older_than: datetime | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Replicas now in ``state`` with their latest declaration (Rucio's list of suspicious or
    bad replicas): scope, name, rse, rse_id, reason, account, created_at, cnt (reports);
    declared since ``younger_than``, before ``older_than``."""
    with lake.read() as conn:
        query = (
            select(replicas, rses_table.c.rse)
            .join(rses_table, rses_table.c.id == replicas.c.rse_id)
            .join(dids, (dids.c.scope == replicas.c.scope) & (dids.c.name == replicas.c.name))
            .where(*integrity.in_doubt(state), visible(principal))
            .order_by(replicas.c.updated_at)
            .limit(limit)
        )
        if rse_expression:
            names = resolve(rse_expression, rse_attribute_map(conn))
            query = query.where(rses_table.c.rse.in_(names))
        if younger_than is not None:
            query = query.where(replicas.c.updated_at >= younger_than)
        if older_than is not None:
            query = query.where(replicas.c.updated_at < older_than)
        return [
            {
                "scope": row.scope,
                "name": row.name,
                "rse": row.rse,
                "rse_id": row.rse_id,
                "state": row.state,
                "reason": row.state_reason,
                "account": row.state_account,
                "created_at": row.updated_at,
                "expires_at": row.state_expires_at,
                "cnt": row.suspicious_reports or 1,
                "bytes": row.bytes,
            }
            for row in conn.execute(query)
        ]


def state_reasons(
    lake: Lake, principal: Principal, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str | None]:
    """Why replicas (``(scope, name, rse)``, not available ones) are in their state: the
    reason of their declaration, for replica listings (visible files only)."""
    found: dict[tuple[str, str, str], str | None] = {}
    wanted = list(dict.fromkeys(keys))
    with lake.read() as conn:
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            query = (
                select(replicas.c.scope, replicas.c.name, rses_table.c.rse, replicas.c.state_reason)
                .join(rses_table, rses_table.c.id == replicas.c.rse_id)
                .join(dids, (dids.c.scope == replicas.c.scope) & (dids.c.name == replicas.c.name))
                .where(
                    tuple_(replicas.c.scope, replicas.c.name, rses_table.c.rse).in_(part),
                    visible(principal),
                )
            )
            for row in conn.execute(query):
                found[(row.scope, row.name, row.rse)] = row.state_reason
    return found


def history(
    lake: Lake, principal: Principal, scope: str, name: str, *, limit: int = 1000
) -> list[dict[str, Any]]:
    """The declarations of a file's replicas, oldest first (visible files only)."""
    with lake.read() as conn:
        query = (
            select(replica_declarations, rses_table.c.rse)
            .join(rses_table, rses_table.c.id == replica_declarations.c.rse_id)
            .join(
                dids,
                (dids.c.scope == replica_declarations.c.scope)
                & (dids.c.name == replica_declarations.c.name),
            )
            .where(
                replica_declarations.c.scope == scope,
                replica_declarations.c.name == name,
                visible(principal),
            )
            .order_by(replica_declarations.c.id)
            .limit(limit)
        )
        return [
            {
                "rse": row.rse,
                "state": row.state,
                "reason": row.reason,
                "account": row.account,
                "created_at": row.created_at,
                "expires_at": row.expires_at,
            }
            for row in conn.execute(query)
        ]


def quarantine(lake: Lake, principal: Principal, rse: str, paths: Sequence[str]) -> int:
    """Admins: record files on ``rse`` as dark (Rucio's quarantine_replicas); returns how many
    new. A path the catalog knows as a replica is refused."""
    if len(paths) > MAX_DECLARATIONS:
        raise InvalidInput(f"at most {MAX_DECLARATIONS} paths per request")
    with lake.write() as conn:
        rse_id = rses.get_rse_id(conn, rse)
        files = [FileStat(_storage_path(p), 0, 0.0) for p in paths]
        unknown = audits.confirm_dark(conn, rse_id, files)
        if len(unknown) != len(files):
            known = sorted({f.path for f in files} - {f.path for f in unknown})
            raise InvalidInput(f"{known[0]!r} on {rse} is a replica the catalog knows")
        return audits.quarantine_files(
            conn, rse_id, unknown, reason="declared by an admin", sized=False
        )


def _storage_path(path: str) -> str:
    """A path below an RSE's prefix, as given to quarantine: no empty or ``..`` part."""
    clean = _SLASHES.sub("/", path).strip("/")
    if not clean or ".." in clean.split("/") or len(clean) > MAX_PATH:
        raise InvalidInput(f"invalid path {path[:100]!r}: a path below the RSE's prefix")
    return clean


def list_quarantine(
    lake: Lake, principal: Principal, rse: str | None = None
) -> list[dict[str, Any]]:
    principal.require_admin("list quarantined files")
    with lake.read() as conn:
        rse_id = rses.get_rse_id(conn, rse) if rse else None
        return [
            {
                "rse": row.rse,
                "path": row.path,
                "bytes": row.bytes,
                "reason": row.reason,
                "found_at": row.found_at,
                "seen_at": row.seen_at,
            }
            for row in audits.list_quarantine(conn, rse_id, limit=100_000)
        ]


def audit_report(lake: Lake, principal: Principal, rse: str | None = None) -> list[dict[str, Any]]:
    """The last audit and scrub of each RSE (or of ``rse``), with the replicas in doubt and the
    quarantined files there now."""
    with lake.read() as conn:
        ids = [rses.get_rse_id(conn, rse)] if rse else None
        runs = audits.last_runs(conn, ids)
        doubted = audits.doubted_counts(conn, ids)
    report: dict[str, dict[str, Any]] = {}
    for run in runs:
        entry = report.setdefault(run.rse, {"rse": run.rse, "audit": None, "scrub": None})
        entry[run.kind] = {
            "state": run.state,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            **{name: getattr(run, name) for name in audits.COUNTS},
            "detail": run.detail,
        }
    for rse_name, counts in doubted.items():
        entry = report.setdefault(rse_name, {"rse": rse_name, "audit": None, "scrub": None})
        entry["now"] = counts
    for entry in report.values():
        entry.setdefault("now", audits.empty_counts())
    if not principal.admin:
        for entry in report.values():
            for kind in ("audit", "scrub"):
                if entry[kind] is not None:
                    entry[kind]["detail"] = None
    return sorted(report.values(), key=lambda e: e["rse"])
