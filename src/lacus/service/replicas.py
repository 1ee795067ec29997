"""Replica use cases: bulk registration (with attachment, in one transaction) and listing."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

from lacus.core import dids, embargo, integrity, metadata, reaping, replicas, rses
from lacus.core.dids import DIDKey
from lacus.core.rules import resolve_ids
from lacus.errors import (
    AccessDenied,
    ChecksumMismatch,
    InvalidInput,
    LacusError,
    ProtocolNotFound,
    ReplicaNotFound,
    RSEReadOnly,
    StorageFileNotFound,
)
from lacus.naming import deterministic_path, make_pfn, validate_name, validate_scope
from lacus.service.lake import Lake, Principal
from lacus.service.scopes import require_writer, require_writer_of
from lacus.service.token_scopes import StorageOperation, only_allowed, require_storage_scope
from lacus.storage import StorageBackend, open_backend
from lacus.types import DIDType, FileSpec, ReplicaInfo, ReplicaState, RSEInfo

MAX_FILES_PER_REQUEST = 100_000


def add_replicas(
    lake: Lake,
    principal: Principal,
    rse: str,
    files: Sequence[FileSpec],
    *,
    dataset: DIDKey | None = None,
    state: ReplicaState = ReplicaState.AVAILABLE,
    ignore_availability: bool = False,
) -> int:
    """Register files and their replicas on ``rse``; attach them to ``dataset`` when given.

    One transaction: a dataset that does not exist is created (open); either every file is
    registered and attached, or nothing is. Replicas registered ``copying`` (Rucio's upload
    announces them before writing) stay invisible until ``update_replica_states`` verifies them.
    """
    if len(files) > MAX_FILES_PER_REQUEST:
        raise InvalidInput(f"at most {MAX_FILES_PER_REQUEST} files per registration")
    if dataset is not None:
        validate_scope(dataset[0])
        validate_name(dataset[1])
    if state is ReplicaState.AVAILABLE and not principal.admin:
        with lake.read() as conn:
            info = lake.rse_configs.get(conn, rse)
            scopes_written = {spec["scope"] for spec in files} | (
                {dataset[0]} if dataset else set()
            )
            require_writer_of(
                conn, principal, scopes_written, lake=lake, operation=StorageOperation.CREATE
            )
        _require_on_storage(info, files)
    with lake.write() as conn:
        info = lake.rse_configs.get(conn, rse)
        if info["read_only"] and state is not ReplicaState.AVAILABLE:
            raise RSEReadOnly(
                f"RSE {rse} is read-only: nothing is uploaded to it; register the files already "
                "there (available)"
            )
        if not info["availability_write"] and not ignore_availability:
            raise AccessDenied(f"RSE {rse} is not available for writing")
        files = [_path_from_pfn(spec, info) if spec.get("pfn") else spec for spec in files]
        require_writer_of(
            conn,
            principal,
            {spec["scope"] for spec in files} | ({dataset[0]} if dataset else set()),
            lake=lake,
            operation=StorageOperation.CREATE,
        )
        registration = replicas.register_replicas(
            conn,
            info["id"],
            files,
            account=principal.account,
            deterministic=info["deterministic"],
            state=state,
            rse=info,
            scopes_checked=True,
        )
        meta = {(spec["scope"], spec["name"]): spec["meta"] for spec in files if spec.get("meta")}
        if meta and registration.created < len(files):  # metadata of files there before: changed
            require_writer_of(conn, principal, {key[0] for key in meta}, lake=lake)
        if meta:
            metadata.set_metadata_bulk(
                conn,
                meta,
                limits=lake.settings.metadata_limits(),
                new=registration.created == len(files),  # all new: nothing to replace
            )
        if dataset is not None:
            _into_dataset(
                conn, principal, dataset, files, all_new=registration.created == len(files)
            )
        added = registration.replicas
    lake.refresh_statistics(rows_added=added)
    return added


def _require_on_storage(info: RSEInfo, files: Sequence[FileSpec]) -> None:
    """An account that is not an admin registers ``available`` only replicas the server finds
    on the storage with their size (no ghost replicas filling an RSE's counters); without a
    storage the server can reach, it registers them ``copying`` and the server's read-back
    (``update_replica_states``) makes them available."""
    try:
        backend = backend_for_rse(info)
    except LacusError as exc:
        raise AccessDenied(
            f"the server cannot reach the storage of {info['rse']} to verify these files "
            f"({exc.message}); only an admin may register them available: register them "
            "copying, then set them available once written"
        ) from None
    try:
        for spec in files:
            spec = _path_from_pfn(spec, info) if spec.get("pfn") else spec
            path = spec.get("path") or deterministic_path(spec["scope"], spec["name"])
            try:
                size = backend.stat(path).bytes
            except StorageFileNotFound:
                raise ReplicaNotFound(
                    f"{spec['scope']}:{spec['name']} is not on {info['rse']} ({path}): upload "
                    "it, or register it copying"
                ) from None
            if size != spec["bytes"]:
                raise ChecksumMismatch(
                    f"{spec['scope']}:{spec['name']} on {info['rse']}: {size} bytes on the "
                    f"storage, {spec['bytes']} registered"
                )
    finally:
        close_backend(backend)


def _into_dataset(
    conn: Connection,
    principal: Principal,
    dataset: DIDKey,
    files: Sequence[FileSpec],
    *,
    all_new: bool,
) -> None:
    """Attach the registered files to ``dataset``, creating it (open) if it does not exist."""
    children = [(spec["scope"], spec["name"]) for spec in files]
    if all_new:  # attached nowhere yet
        sized = [(key, spec["bytes"]) for key, spec in zip(children, files, strict=True)]
        parent = dids.attach_new_files(conn, *dataset, sized)
        if parent is None:
            dids.add_collection(conn, *dataset, DIDType.DATASET, account=principal.account)
            parent = dids.attach_new_files(conn, *dataset, sized)
    else:
        parent = dids.lock_collection(conn, *dataset)
        if parent is None:
            dids.add_collection(conn, *dataset, DIDType.DATASET, account=principal.account)
            parent = dids.lock_collection(conn, *dataset)
        dids.attach(conn, *dataset, children, ignore_duplicates=True)
    if parent.embargoed:
        embargo.inherit_embargo(conn, dataset, children)


def _path_from_pfn(spec: FileSpec, info: RSEInfo) -> FileSpec:
    """A file given by its URL (Rucio's ``pfn``): its path under the RSE protocol it names."""
    pfn = str(spec.get("pfn"))
    found = urlsplit(pfn)
    within = re.sub("/+", "/", found.path)
    for proto in info["protocols"]:
        base = urlsplit(
            make_pfn(proto["scheme"], proto["hostname"], proto["port"], proto["prefix"], "")
        )
        if (found.scheme, found.netloc) == (base.scheme, base.netloc) and within.startswith(
            re.sub("/+", "/", base.path)
        ):
            path = within[len(re.sub("/+", "/", base.path)) :]
            if spec.get("path") not in (None, path):
                break
            return FileSpec(**{**spec, "path": path, "pfn": None})  # type: ignore[typeddict-item]
    raise InvalidInput(
        f"{spec['scope']}:{spec['name']}: {pfn[:200]!r} is not a URL under a protocol of "
        f"{info['rse']} (or does not match the path given)"
    )


def lfns_to_pfns(
    lake: Lake, principal: Principal, rse: str, lfns: Sequence[DIDKey], *, scheme: str | None
) -> dict[str, str]:
    """``scope:name`` → its URL on ``rse`` under the protocol ``scheme`` (else the first): the
    deterministic path, or on a non-deterministic RSE the path its replica was registered with
    (Rucio's upload asks this of the server; only writers of the scope may)."""
    with lake.read() as conn:
        info = rses.get_rse(conn, rse)
        protocols = [p for p in info["protocols"] if scheme in (None, p["scheme"])]
        if not protocols:
            raise ProtocolNotFound(f"RSE {rse} has no protocol {scheme or ''}".rstrip())
        proto = protocols[0]
        paths = {key: deterministic_path(*key) for key in lfns}
        if not info["deterministic"]:
            for scope in sorted({key[0] for key in lfns}):
                require_writer(conn, principal, scope, operation=StorageOperation.CREATE)
            rows = replicas.replica_rows(conn, info["id"], list(lfns))
            paths = {key: replicas.replica_path(*key, rows[key].path) for key in lfns}
    return {
        f"{scope}:{name}": make_pfn(
            proto["scheme"], proto["hostname"], proto["port"], proto["prefix"], path
        )
        for (scope, name), path in paths.items()
    }


def list_replicas(
    lake: Lake,
    principal: Principal,
    targets: Sequence[DIDKey],
    *,
    rse: str | None = None,
    rse_expression: str | None = None,
    states: Sequence[ReplicaState] = (ReplicaState.AVAILABLE,),
    with_parents: bool = False,
) -> Iterator[ReplicaInfo]:
    """Stream the replicas of the files at or below each target DID, a page per transaction.

    ``rse`` or ``rse_expression`` restrict the RSEs; ``with_parents`` adds every ancestor
    collection of each file (``parents``, as ``scope:name``).
    """
    size = lake.settings.page_size
    rse_ids: list[int] | None = None
    if rse is not None or rse_expression is not None:
        with lake.read() as conn:
            rse_ids = [rses.get_rse_id(conn, rse)] if rse is not None else []
            if rse_expression is not None:
                rse_ids += resolve_ids(conn, rse_expression)
    for scope, _ in targets:
        require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:  # every target exists (DIDNotFound) before the answer starts
        for scope, name in targets:
            dids.get_did_row_type(conn, scope, name, viewer=principal)
    seen: set[DIDKey] = set()
    for scope, name in targets:
        after: DIDKey | None = None
        while True:
            with lake.read() as conn:
                page = replicas.list_file_page(
                    conn, scope, name, after=after, limit=size, viewer=principal
                )
                fresh = [row for row in page if (row.scope, row.name) not in seen]
                fresh = only_allowed(principal, StorageOperation.READ, fresh, lambda row: row.scope)
                found = replicas.replicas_of(conn, fresh, rse_ids=rse_ids, states=states)
                if with_parents:
                    parents = dids.ancestors(
                        conn, [(row.scope, row.name) for row in fresh], viewer=principal
                    )
                    for item in found:
                        item["parents"] = parents.get((item["scope"], item["name"]), [])
            if len(targets) > 1:
                seen.update((row.scope, row.name) for row in fresh)
            yield from found
            if len(page) < size:
                break
            after = (page[-1].scope, page[-1].name)


def update_replica_states(
    lake: Lake, principal: Principal, rse: str, files: Sequence[tuple[DIDKey, ReplicaState]]
) -> int:
    """Change replica states on ``rse``. A replica becomes ``available`` only after its bytes
    on the storage are verified (size and adler32 read back) when the server can reach them;
    one declared bad, suspicious or unavailable goes through ``core.integrity`` (locks held,
    history, repair)."""
    doubted = [(key, state) for key, state in files if state in integrity.declarable()]
    if doubted:
        with lake.write() as conn:
            info = rses.get_rse(conn, rse)
            for scope in sorted({key[0] for key, _ in doubted}):
                require_writer(conn, principal, scope)
            replicas.replica_rows(conn, info["id"], [key for key, _ in doubted])
            for state in {state for _, state in doubted}:
                integrity.declare(
                    conn,
                    [
                        integrity.Declaration(*key, info["id"], "declared by its owner")
                        for key, wanted in doubted
                        if wanted is state
                    ],
                    state,
                    account=principal.account,
                    suspicious_limit=lake.settings.suspicious_reports_limit,
                )
        lake.wake("necromancer")
        files = [(key, state) for key, state in files if state not in integrity.declarable()]
        if not files:
            return len(doubted)
    finishing = all(state is ReplicaState.AVAILABLE for _, state in files)  # an upload's end
    operation = StorageOperation.CREATE if finishing else StorageOperation.MODIFY
    with lake.read() as conn:
        info = rses.get_rse(conn, rse)
        for scope in sorted({key[0] for key, _ in files}):
            require_writer(conn, principal, scope, operation=operation)
        found = replicas.replica_rows(conn, info["id"], [key for key, _ in files])
    becoming_available = [
        found[key]
        for key, state in files
        if state is ReplicaState.AVAILABLE and found[key].state != ReplicaState.AVAILABLE
    ]
    if becoming_available:
        verify_on_storage(info, becoming_available, admin=principal.admin)
    with lake.write() as conn:
        return replicas.set_states(conn, info["id"], [(key, state) for key, state in files])


def verify_on_storage(info: RSEInfo, rows: Sequence[Any], *, admin: bool = True) -> None:
    """Size and adler32 of each replica's bytes, read back from the RSE, against the catalog."""
    try:
        backend = backend_for_rse(info)
    except LacusError:
        if not admin:
            raise AccessDenied(
                f"the server cannot reach the storage of {info['rse']} to verify these "
                "replicas: only an admin may set them available"
            ) from None
        return  # the server cannot see this storage: the admin vouches for it (as Rucio does)
    for row in rows:
        path = replicas.replica_path(row.scope, row.name, row.path)
        stat = backend.stat(path)
        if stat.bytes != row.bytes:
            raise ChecksumMismatch(
                f"{row.scope}:{row.name} on {info['rse']}: {stat.bytes} bytes on the storage, "
                f"{row.bytes} registered"
            )
        stored = backend.checksum(path, "adler32")
        if stored != row.adler32:
            raise ChecksumMismatch(
                f"{row.scope}:{row.name} on {info['rse']}: adler32 {stored} on the storage, "
                f"{row.adler32} registered"
            )


def close_backend(backend: object) -> None:
    """Close a backend's connections to its storage server, if it keeps any; never raises."""
    close = getattr(backend, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def backend_for_rse(info: RSEInfo) -> StorageBackend:
    for proto in info["protocols"]:
        try:
            return open_backend(
                proto["scheme"],
                prefix=proto["prefix"],
                hostname=proto["hostname"],
                port=proto["port"],
                **(proto.get("extended_attributes") or {}),
            )
        except LacusError:
            continue
    raise ProtocolNotFound(f"no protocol of {info['rse']} is reachable from the server")


def datasets_on_rse(lake: Lake, principal: Principal, rse: str) -> list[dict[str, Any]]:
    """The datasets with files available on ``rse``, and how much of each is there."""
    with lake.read() as conn:
        found = replicas.datasets_on_rse(conn, rse, viewer=principal)
    return only_allowed(principal, StorageOperation.READ, found, lambda item: item["scope"])


def dataset_replicas(
    lake: Lake, principal: Principal, scope: str, name: str
) -> list[dict[str, Any]]:
    """Per RSE: how many of the files below a collection it holds (available), and their bytes."""
    require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:
        return replicas.collection_replicas(conn, scope, name, viewer=principal)


MAX_READS = 10_000


def record_reads(lake: Lake, reads: Sequence[tuple[str, str, str]]) -> int:
    """Files were read from RSEs (``(scope, name, rse)``, from download traces): their
    replicas' ``accessed_at`` becomes now, at most once a minute each (the reaper deletes the
    least recently accessed first). A read transaction finds what to change; a write
    transaction is opened only when something is. Returns how many replicas changed."""
    if not reads:
        return 0
    with lake.read() as conn:
        names = sorted({rse for _, _, rse in reads[:MAX_READS]})
        ids = {info["rse"]: info["id"] for info in rses.list_rses(conn, names=names)}
        keys = [(scope, name, ids[rse]) for scope, name, rse in reads[:MAX_READS] if rse in ids]
        stale = reaping.stale_reads(conn, keys)
    if not stale:
        return 0
    with lake.write() as conn:
        return reaping.mark_accessed(conn, stale)
