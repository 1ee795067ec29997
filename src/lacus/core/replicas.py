"""Replicas: the copies of files on RSEs. Bulk registration and listing, set-based."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, tuple_

from lacus.core.clock import utcnow
from lacus.core.dids import DIDKey, chunks, files_query, get_did_row_type, names_by_scope
from lacus.core.rses import adjust_usage
from lacus.core.scopes import require_scopes
from lacus.db.tables import dids, replicas, rse_protocols, rses
from lacus.errors import (
    DIDAlreadyExists,
    InvalidInput,
    ReplicaAlreadyExists,
    UnsupportedOperation,
)
from lacus.naming import deterministic_path, make_pfn, validate_name, validate_scope
from lacus.types import DIDType, FileSpec, ReplicaInfo, ReplicaLocation, ReplicaState

_ADLER32 = re.compile(r"[0-9a-f]{8}")
_MD5 = re.compile(r"[0-9a-f]{32}")


def check_file_spec(spec: FileSpec) -> None:
    """Validate one file's DID, size and checksums."""
    validate_scope(spec["scope"])
    validate_name(spec["name"])
    size = spec.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{spec['scope']}:{spec['name']}: bytes must be a non-negative integer")
    if not isinstance(spec.get("adler32"), str) or not _ADLER32.fullmatch(spec["adler32"]):
        raise InvalidInput(
            f"{spec['scope']}:{spec['name']}: adler32 must be 8 lower-case hex digits"
        )
    md5 = spec.get("md5")
    if md5 is not None and (not isinstance(md5, str) or not _MD5.fullmatch(md5)):
        raise InvalidInput(f"{spec['scope']}:{spec['name']}: md5 must be 32 lower-case hex digits")
    path = spec.get("path")
    if path is not None and (
        not isinstance(path, str)
        or path.startswith("/")
        or ".." in path.split("/")
        or "\x00" in path
    ):
        raise InvalidInput(f"{spec['scope']}:{spec['name']}: invalid path {str(path)[:80]!r}")


def add_replicas(
    conn: Connection,
    rse_id: int,
    files: Sequence[FileSpec],
    *,
    account: str,
    deterministic: bool,
    state: ReplicaState = ReplicaState.AVAILABLE,
) -> int:
    """Register ``files`` as replicas on one RSE, creating the file DIDs that do not exist yet.

    An existing file DID must have the same size and adler32. Everything or nothing: the caller's
    transaction rolls back on any error. Returns the number of replicas added.
    """
    for spec in files:
        check_file_spec(spec)
        if not deterministic and not spec.get("path"):
            raise InvalidInput(
                f"{spec['scope']}:{spec['name']}: a non-deterministic RSE needs a path per file"
            )
    keys = [(spec["scope"], spec["name"]) for spec in files]
    if len(set(keys)) != len(keys):
        raise InvalidInput("the same file appears twice in one registration")
    require_scopes(conn, {key[0] for key in keys})
    existing = _existing_files(conn, keys)
    _refuse_existing_replicas(conn, rse_id, list(existing))
    now = utcnow()
    new_dids = []
    for spec in files:
        key = (spec["scope"], spec["name"])
        row = existing.get(key)
        if row is None:
            new_dids.append(
                {
                    "scope": spec["scope"],
                    "name": spec["name"],
                    "did_type": DIDType.FILE.value,
                    "account": account,
                    "is_open": None,
                    "bytes": spec["bytes"],
                    "length": None,
                    "adler32": spec["adler32"],
                    "md5": spec.get("md5"),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        elif row.bytes != spec["bytes"] or row.adler32 != spec["adler32"]:
            raise DIDAlreadyExists(
                f"file {key[0]}:{key[1]} exists already with {row.bytes} bytes, adler32 "
                f"{row.adler32}; this one has {spec['bytes']} bytes, adler32 {spec['adler32']}"
            )
    if new_dids:
        conn.execute(insert(dids), new_dids)
    if files:
        conn.execute(
            insert(replicas),
            [
                {
                    "scope": spec["scope"],
                    "name": spec["name"],
                    "rse_id": rse_id,
                    "bytes": spec["bytes"],
                    "adler32": spec["adler32"],
                    "md5": spec.get("md5"),
                    "path": _stored_path(spec, deterministic),
                    "state": state.value,
                    "created_at": now,
                    "updated_at": now,
                    "accessed_at": None,
                    "tombstone": None,
                }
                for spec in files
            ],
        )
        adjust_usage(
            conn, rse_id, bytes_delta=sum(spec["bytes"] for spec in files), files_delta=len(files)
        )
    return len(files)


def _stored_path(spec: FileSpec, deterministic: bool) -> str | None:
    path = spec.get("path")
    if deterministic and (path is None or path == deterministic_path(spec["scope"], spec["name"])):
        return None  # derived on read: no need to store it
    return path


def _existing_files(conn: Connection, keys: Sequence[DIDKey]) -> dict[DIDKey, Any]:
    found: dict[DIDKey, Any] = {}
    for scope, names in names_by_scope(keys):
        rows = conn.execute(
            select(dids.c.scope, dids.c.name, dids.c.did_type, dids.c.bytes, dids.c.adler32).where(
                dids.c.scope == scope, dids.c.name.in_(names)
            )
        )
        for row in rows:
            if row.did_type != DIDType.FILE:
                raise UnsupportedOperation(
                    f"{row.scope}:{row.name} is a {row.did_type}, not a file"
                )
            found[(row.scope, row.name)] = row
    return found


def _refuse_existing_replicas(conn: Connection, rse_id: int, keys: Sequence[DIDKey]) -> None:
    for scope, names in names_by_scope(keys):
        row = conn.execute(
            select(replicas.c.scope, replicas.c.name)
            .where(
                replicas.c.rse_id == rse_id, replicas.c.scope == scope, replicas.c.name.in_(names)
            )
            .limit(1)
        ).first()
        if row is not None:
            raise ReplicaAlreadyExists(f"{row.scope}:{row.name} has a replica on this RSE already")


def replica_path(scope: str, name: str, stored: str | None) -> str:
    return stored if stored is not None else deterministic_path(scope, name)


def list_file_page(
    conn: Connection, scope: str, name: str, *, after: DIDKey | None, limit: int
) -> list[Any]:
    """One page of the file rows at or below a DID, in (scope, name) order."""
    did_type = get_did_row_type(conn, scope, name)
    query = files_query(scope, name, did_type)
    if after is not None:
        # Spelled out, not a row comparison: PostgreSQL would use ``(scope, name) > after`` as the
        # index range of every join lookup, making each page cost O(files) lookups of O(files).
        query = query.where(
            or_(dids.c.scope > after[0], and_(dids.c.scope == after[0], dids.c.name > after[1]))
        )
    return list(conn.execute(query.order_by(dids.c.scope, dids.c.name).limit(limit)))


def replicas_of(
    conn: Connection,
    files: Sequence[Any],
    *,
    rse_ids: Iterable[int] | None = None,
    states: Iterable[ReplicaState] = (ReplicaState.AVAILABLE,),
) -> list[ReplicaInfo]:
    """The replicas of ``files`` (rows of ``dids``), with a PFN per replica and protocol."""
    keys = [(row.scope, row.name) for row in files]
    by_key: dict[DIDKey, ReplicaInfo] = {
        (row.scope, row.name): ReplicaInfo(
            scope=row.scope,
            name=row.name,
            bytes=row.bytes,
            adler32=row.adler32,
            md5=row.md5,
            rses={},
        )
        for row in files
    }
    rse_filter = list(rse_ids) if rse_ids is not None else None
    state_values = [state.value for state in states]
    protocols = _protocols(conn)
    for part in chunks(keys):
        query = (
            select(
                replicas.c.scope,
                replicas.c.name,
                replicas.c.path,
                replicas.c.state,
                replicas.c.created_at,
                replicas.c.accessed_at,
                replicas.c.rse_id,
                rses.c.rse,
            )
            .join(rses, rses.c.id == replicas.c.rse_id)
            .where(
                tuple_(replicas.c.scope, replicas.c.name).in_(part),
                replicas.c.state.in_(state_values),
            )
        )
        if rse_filter is not None:
            query = query.where(replicas.c.rse_id.in_(rse_filter))
        for row in conn.execute(query):
            path = replica_path(row.scope, row.name, row.path)
            proto = protocols.get(row.rse_id)
            pfn = make_pfn(*proto, path) if proto is not None else ""
            by_key[(row.scope, row.name)]["rses"][row.rse] = ReplicaLocation(
                state=row.state,
                path=path,
                pfn=pfn,
                created_at=row.created_at,
                accessed_at=row.accessed_at,
            )
    return [by_key[key] for key in keys]


def _protocols(conn: Connection) -> dict[int, tuple[str, str, int, str]]:
    """The first protocol of every RSE (scheme order), used to build PFNs."""
    chosen: dict[int, tuple[str, str, int, str]] = {}
    rows = conn.execute(
        select(rse_protocols).order_by(
            rse_protocols.c.rse_id, rse_protocols.c.scheme, rse_protocols.c.hostname
        )
    )
    for row in rows:
        chosen.setdefault(row.rse_id, (row.scheme, row.hostname, row.port, row.prefix))
    return chosen


__all__ = [
    "add_replicas",
    "check_file_spec",
    "list_file_page",
    "replica_path",
    "replicas_of",
]
