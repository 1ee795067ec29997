"""Replica use cases: bulk registration (with attachment, in one transaction) and listing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from lacus.core import dids, metadata, replicas, rses
from lacus.core.dids import DIDKey
from lacus.errors import AccessDenied, InvalidInput
from lacus.naming import validate_name, validate_scope
from lacus.service.lake import Lake, Principal
from lacus.service.scopes import require_writer
from lacus.types import DIDType, FileSpec, ReplicaInfo, ReplicaState

MAX_FILES_PER_REQUEST = 100_000


def add_replicas(
    lake: Lake,
    principal: Principal,
    rse: str,
    files: Sequence[FileSpec],
    *,
    dataset: DIDKey | None = None,
) -> int:
    """Register files and their replicas on ``rse``; attach them to ``dataset`` when given.

    One transaction: a dataset that does not exist is created (open); either every file is
    registered and attached, or nothing is.
    """
    if len(files) > MAX_FILES_PER_REQUEST:
        raise InvalidInput(f"at most {MAX_FILES_PER_REQUEST} files per registration")
    if dataset is not None:
        validate_scope(dataset[0])
        validate_name(dataset[1])
    with lake.write() as conn:
        info = rses.get_rse(conn, rse)
        if not info["availability_write"]:
            raise AccessDenied(f"RSE {rse} is not available for writing")
        for scope in sorted(
            {spec["scope"] for spec in files} | ({dataset[0]} if dataset else set())
        ):
            require_writer(conn, principal, scope)
        added = replicas.add_replicas(
            conn,
            info["id"],
            files,
            account=principal.account,
            deterministic=info["deterministic"],
        )
        meta = {(spec["scope"], spec["name"]): spec["meta"] for spec in files if spec.get("meta")}
        if meta:
            metadata.set_metadata_bulk(conn, meta)
        if dataset is not None:
            if dids.find_did(conn, *dataset) is None:
                dids.add_collection(conn, *dataset, DIDType.DATASET, account=principal.account)
            dids.attach(
                conn,
                *dataset,
                [(spec["scope"], spec["name"]) for spec in files],
                ignore_duplicates=True,
            )
        return added


def list_replicas(
    lake: Lake,
    principal: Principal,
    targets: Sequence[DIDKey],
    *,
    rse: str | None = None,
    states: Sequence[ReplicaState] = (ReplicaState.AVAILABLE,),
) -> Iterator[ReplicaInfo]:
    """Stream the replicas of the files at or below each target DID, a page per transaction."""
    size = lake.settings.page_size
    rse_ids: list[int] | None = None
    if rse is not None:
        with lake.read() as conn:
            rse_ids = [rses.get_rse_id(conn, rse)]
    seen: set[DIDKey] = set()
    for scope, name in targets:
        after: DIDKey | None = None
        while True:
            with lake.read() as conn:
                page = replicas.list_file_page(conn, scope, name, after=after, limit=size)
                fresh = [row for row in page if (row.scope, row.name) not in seen]
                found = replicas.replicas_of(conn, fresh, rse_ids=rse_ids, states=states)
            if len(targets) > 1:
                seen.update((row.scope, row.name) for row in fresh)
            yield from found
            if len(page) < size:
                break
            after = (page[-1].scope, page[-1].name)
