"""Replicas: the copies of files on RSEs. Bulk registration and listing, set-based."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, func, or_, select, update

from lacus.core import events
from lacus.core.clock import utcnow
from lacus.core.dids import DIDKey, files_query, get_did_row_type, names_by_scope
from lacus.core.locks import replicas_arrived
from lacus.core.rses import adjust_usage, get_rse_id
from lacus.core.scopes import require_scopes
from lacus.core.visibility import visible
from lacus.db.engine import insert_rows
from lacus.db.tables import contents, dids, replicas, rse_protocols, rses
from lacus.errors import (
    DIDAlreadyExists,
    InvalidInput,
    ReplicaAlreadyExists,
    ReplicaNotFound,
    UnsupportedOperation,
)
from lacus.naming import deterministic_path, make_pfn, validate_name, validate_scope
from lacus.types import (
    DIDType,
    FileSpec,
    ReplicaInfo,
    ReplicaLocation,
    ReplicaState,
    RSEInfo,
    Viewer,
)

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


class Registration(NamedTuple):
    """What one registration did."""

    replicas: int
    """Replicas added: one per file."""
    created: int
    """File DIDs created; the others existed already (with the same size and adler32)."""


_DID_COLUMNS = (
    "scope", "name", "did_type", "account", "is_open", "bytes", "length", "adler32", "md5",
    "created_at", "updated_at",
)  # fmt: skip
_REPLICA_COLUMNS = (
    "scope", "name", "rse_id", "bytes", "adler32", "md5", "path", "state", "created_at",
    "updated_at", "accessed_at", "tombstone",
)  # fmt: skip


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
    registration = register_replicas(
        conn, rse_id, files, account=account, deterministic=deterministic, state=state
    )
    return registration.replicas


def register_replicas(
    conn: Connection,
    rse_id: int,
    files: Sequence[FileSpec],
    *,
    account: str,
    deterministic: bool,
    state: ReplicaState = ReplicaState.AVAILABLE,
    rse: RSEInfo | None = None,
    scopes_checked: bool = False,
) -> Registration:
    """``add_replicas``, also saying how many file DIDs it created.

    The file DIDs are inserted first, those that exist already left out by the database (an
    index probe per row, no lookup). Only when some existed are the files read back and checked:
    each must be a file of the same size and adler32, without a replica on this RSE.

    ``rse``: the RSE's configuration when the caller has it (its name and protocols are then not
    read again for the events); ``scopes_checked``: the caller made sure the scopes exist.
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
    if not scopes_checked:
        require_scopes(conn, {key[0] for key in keys})
    now = utcnow()
    file_type = DIDType.FILE.value
    created = insert_rows(
        conn,
        dids,
        _DID_COLUMNS,
        [
            (
                s["scope"],
                s["name"],
                file_type,
                account,
                None,
                s["bytes"],
                None,
                s["adler32"],
                s.get("md5"),
                now,
                now,
            )
            for s in files
        ],
        skip_existing=True,
    )
    existing: dict[DIDKey, Any] = {}
    if created != len(files):  # some existed: check them (the new ones pass every check)
        existing = _existing_files(conn, keys)
        _refuse_existing_replicas(conn, rse_id, list(existing))
        for spec in files:
            key = (spec["scope"], spec["name"])
            row = existing[key]
            if row.bytes != spec["bytes"] or row.adler32 != spec["adler32"]:
                raise DIDAlreadyExists(
                    f"file {key[0]}:{key[1]} exists already with {row.bytes} bytes, adler32 "
                    f"{row.adler32}; this one has {spec['bytes']} bytes, adler32 {spec['adler32']}"
                )
        # read back after the insert: the files this registration created are among them
        existing = {key: row for key, row in existing.items() if row.created_at != now}
    if files:
        state_value = state.value
        insert_rows(
            conn,
            replicas,
            _REPLICA_COLUMNS,
            [
                (
                    s["scope"],
                    s["name"],
                    rse_id,
                    s["bytes"],
                    s["adler32"],
                    s.get("md5"),
                    _stored_path(s, deterministic),
                    state_value,
                    now,
                    now,
                    None,
                    None,
                )
                for s in files
            ],
        )
        adjust_usage(
            conn, rse_id, bytes_delta=sum(spec["bytes"] for spec in files), files_delta=len(files)
        )
        if state is ReplicaState.AVAILABLE:
            # Locks wait only for files that existed before: a file this transaction created
            # has none (nothing could place a lock on it yet).
            replicas_arrived(conn, rse_id, list(existing))
            _emit_available(conn, rse_id, files, existed=existing, rse=rse)
    return Registration(replicas=len(files), created=created)


def _emit_available(
    conn: Connection,
    rse_id: int,
    files: Sequence[FileSpec],
    *,
    existed: dict[DIDKey, Any] | None = None,
    rse: RSEInfo | None = None,
) -> None:
    """``replica.available`` for each file: where it is (RSE, PFN), its size, checksums and the
    metadata it was registered with, so a reader can fetch and verify it at once. Files this
    registration created (all but those that ``existed``; None: it created none) are marked
    ``new_file``: a file's creation has no event of its own (one row per file, not two, at tens
    of thousands of files per second)."""
    if rse is not None:
        name, proto = rse["rse"], first_protocol(rse)
    else:
        name = conn.execute(select(rses.c.rse).where(rses.c.id == rse_id)).scalar_one()
        proto = _protocols(conn, rse_id).get(rse_id)
    batch: list[events.EventRow] = []
    for s in files:
        path = s.get("path") or deterministic_path(s["scope"], s["name"])
        payload: dict[str, Any] = {
            "rse": name,
            "bytes": s["bytes"],
            "adler32": s["adler32"],
            "md5": s.get("md5"),
            "pfn": make_pfn(*proto, path) if proto is not None else None,
        }
        if existed is not None and (s["scope"], s["name"]) not in existed:
            payload["new_file"] = True
        meta = s.get("meta")
        if meta:
            payload["meta"] = meta
        batch.append(("replica.available", s["scope"], s["name"], payload))
    events.emit_many(conn, batch)


def _stored_path(spec: FileSpec, deterministic: bool) -> str | None:
    path = spec.get("path")
    if deterministic and (path is None or path == deterministic_path(spec["scope"], spec["name"])):
        return None  # derived on read: no need to store it
    return path


def _existing_files(conn: Connection, keys: Sequence[DIDKey]) -> dict[DIDKey, Any]:
    found: dict[DIDKey, Any] = {}
    for scope, names in names_by_scope(keys):
        rows = conn.execute(
            select(
                dids.c.scope,
                dids.c.name,
                dids.c.did_type,
                dids.c.bytes,
                dids.c.adler32,
                dids.c.created_at,
            ).where(dids.c.scope == scope, dids.c.name.in_(names))
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
    conn: Connection,
    scope: str,
    name: str,
    *,
    after: DIDKey | None,
    limit: int,
    viewer: Viewer | None = None,
) -> list[Any]:
    """One page of the file rows at or below a DID (those ``viewer`` sees), (scope, name) order."""
    did_type = get_did_row_type(conn, scope, name, viewer=viewer)
    query = files_query(scope, name, did_type, viewer=viewer)
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
    for scope, names in names_by_scope(keys):
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
                replicas.c.scope == scope,
                replicas.c.name.in_(names),
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


def first_protocol(rse: RSEInfo) -> tuple[str, str, int, str] | None:
    """The protocol PFNs are built with (``_protocols``' choice), from an RSE's configuration."""
    if not rse["protocols"]:
        return None
    proto = min(rse["protocols"], key=lambda p: (p["scheme"], p["hostname"]))
    return (proto["scheme"], proto["hostname"], proto["port"], proto["prefix"])


def _protocols(conn: Connection, rse_id: int | None = None) -> dict[int, tuple[str, str, int, str]]:
    """The first protocol of every RSE (or of one), in scheme order, used to build PFNs."""
    chosen: dict[int, tuple[str, str, int, str]] = {}
    query = select(rse_protocols).order_by(
        rse_protocols.c.rse_id, rse_protocols.c.scheme, rse_protocols.c.hostname
    )
    if rse_id is not None:
        query = query.where(rse_protocols.c.rse_id == rse_id)
    rows = conn.execute(query)
    for row in rows:
        chosen.setdefault(row.rse_id, (row.scheme, row.hostname, row.port, row.prefix))
    return chosen


__all__ = [
    "Registration",
    "add_replicas",
    "check_file_spec",
    "list_file_page",
    "register_replicas",
    "replica_path",
    "replicas_of",
]


def replica_rows(conn: Connection, rse_id: int, keys: Sequence[DIDKey]) -> dict[DIDKey, Any]:
    """The replica rows of ``keys`` on one RSE; a missing one raises ReplicaNotFound."""
    found: dict[DIDKey, Any] = {}
    for scope, names in names_by_scope(keys):
        rows = conn.execute(
            select(replicas).where(
                replicas.c.rse_id == rse_id,
                replicas.c.scope == scope,
                replicas.c.name.in_(names),
            )
        )
        found.update({(row.scope, row.name): row for row in rows})
    for key in keys:
        if key not in found:
            raise ReplicaNotFound(f"{key[0]}:{key[1]} has no replica on this RSE")
    return found


def set_states(
    conn: Connection, rse_id: int, changes: Sequence[tuple[DIDKey, ReplicaState]]
) -> int:
    """Set the state of replicas on one RSE (grouped per state: one UPDATE per state and scope)."""
    by_state: dict[ReplicaState, list[DIDKey]] = {}
    for key, state in changes:
        by_state.setdefault(state, []).append(key)
    now = utcnow()
    changed = 0
    for state, keys in by_state.items():
        for scope, names in names_by_scope(keys):
            result = conn.execute(
                update(replicas)
                .where(
                    replicas.c.rse_id == rse_id,
                    replicas.c.scope == scope,
                    replicas.c.name.in_(names),
                )
                .values(state=state.value, updated_at=now)
            )
            changed += result.rowcount
        if state is ReplicaState.AVAILABLE:
            replicas_arrived(conn, rse_id, keys)
            _emit_available(conn, rse_id, _specs(conn, rse_id, keys))
    return changed


def _specs(conn: Connection, rse_id: int, keys: Sequence[DIDKey]) -> list[FileSpec]:
    """The replicas of ``keys`` on one RSE, as file specs (with their stored paths)."""
    specs: list[FileSpec] = []
    for scope, names in names_by_scope(keys):
        for row in conn.execute(
            select(replicas).where(
                replicas.c.rse_id == rse_id, replicas.c.scope == scope, replicas.c.name.in_(names)
            )
        ):
            spec: FileSpec = {
                "scope": row.scope,
                "name": row.name,
                "bytes": row.bytes,
                "adler32": row.adler32,
                "md5": row.md5,
            }
            if row.path is not None:
                spec["path"] = row.path
            specs.append(spec)
    return specs


def _available() -> tuple[Any, Any]:
    """The aggregate columns of a collection's available replicas: files and bytes."""
    return (
        func.count().label("available_length"),
        func.coalesce(func.sum(replicas.c.bytes), 0).label("available_bytes"),
    )


def _collection_line(
    scope: str, name: str, rse: str, rse_id: int, length: int, size: int, row: Any
) -> dict[str, Any]:
    """One line of Rucio's dataset replicas: a collection on an RSE."""
    return {
        "scope": scope,
        "name": name,
        "rse": rse,
        "rse_id": str(rse_id),
        "length": length,
        "bytes": size,
        "available_length": int(row.available_length),
        "available_bytes": int(row.available_bytes),
        "state": "AVAILABLE" if row.available_length == length else "UNAVAILABLE",
    }


def datasets_on_rse(
    conn: Connection, rse: str, *, viewer: Viewer | None = None
) -> list[dict[str, Any]]:
    """The datasets with files available on ``rse``: per dataset, how many of its files and
    bytes are there (one aggregate over the RSE's replicas), in name order."""
    rse_id = get_rse_id(conn, rse)
    dataset = (
        contents.c.scope,
        contents.c.name,
        dids.c.length,
        dids.c.bytes,
        dids.c.created_at,
        dids.c.updated_at,
    )
    rows = conn.execute(
        select(*dataset, *_available())
        .select_from(
            replicas.join(
                contents,
                and_(
                    contents.c.child_scope == replicas.c.scope,
                    contents.c.child_name == replicas.c.name,
                ),
            ).join(dids, and_(dids.c.scope == contents.c.scope, dids.c.name == contents.c.name))
        )
        .where(
            replicas.c.rse_id == rse_id,
            replicas.c.state == ReplicaState.AVAILABLE.value,
            dids.c.did_type == DIDType.DATASET.value,
            visible(viewer),
        )
        .group_by(*dataset)
        .order_by(contents.c.scope, contents.c.name)
    )
    return [
        {
            **_collection_line(
                row.scope, row.name, rse, rse_id, int(row.length or 0), int(row.bytes or 0), row
            ),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        for row in rows
    ]


def collection_replicas(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> list[dict[str, Any]]:
    """Per RSE, the available replicas of the files below a collection: count and bytes."""
    did_type = get_did_row_type(conn, scope, name, viewer=viewer)
    files = files_query(scope, name, did_type, viewer=viewer).subquery()
    total = conn.execute(select(func.count(), func.coalesce(func.sum(files.c.bytes), 0))).one()
    rows = conn.execute(
        select(
            rses.c.rse,
            rses.c.id,
            *_available(),
        )
        .select_from(
            files.join(
                replicas,
                and_(replicas.c.scope == files.c.scope, replicas.c.name == files.c.name),
            ).join(rses, rses.c.id == replicas.c.rse_id)
        )
        .where(replicas.c.state == ReplicaState.AVAILABLE.value)
        .group_by(rses.c.rse, rses.c.id)
        .order_by(rses.c.rse)
    )
    return [
        _collection_line(scope, name, row.rse, row.id, int(total[0]), int(total[1]), row)
        for row in rows
    ]
