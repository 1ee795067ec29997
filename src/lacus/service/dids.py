"""DID use cases: reading is open to every account; writing needs the scope's owner or an admin."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from lacus.core import dids, embargo, metadata
from lacus.core.dids import DIDKey
from lacus.core.filters import parse_filters
from lacus.core.scopes import get_scope, list_scopes
from lacus.errors import ScopeNotFound
from lacus.naming import validate_name, validate_scope
from lacus.service.lake import Lake, Principal
from lacus.service.rules import add_rules_in
from lacus.service.scopes import require_writer
from lacus.service.token_scopes import StorageOperation, only_allowed, require_storage_scope
from lacus.types import DIDInfo, DIDType, MetaValue, RuleSpec


@dataclass(frozen=True, slots=True)
class NewCollection:
    """A dataset or container to create, with its metadata, content and rules (each with its
    account, None for the principal's)."""

    scope: str
    name: str
    did_type: DIDType
    meta: Mapping[str, MetaValue] = field(default_factory=dict)
    children: Sequence[DIDKey] = ()
    rules: Sequence[tuple[RuleSpec, str | None]] = ()


def add_collection(
    lake: Lake,
    principal: Principal,
    scope: str,
    name: str,
    did_type: DIDType,
    *,
    meta: Mapping[str, MetaValue] | None = None,
    children: Sequence[DIDKey] = (),
    rules: Sequence[tuple[RuleSpec, str | None]] = (),
) -> None:
    """Create a collection with its metadata, content and rules, in one transaction: any
    refusal leaves nothing behind."""
    add_collections(
        lake, principal, [NewCollection(scope, name, did_type, meta or {}, children, rules)]
    )


def add_collections(lake: Lake, principal: Principal, new: Sequence[NewCollection]) -> None:
    """Create collections (``add_collection``), all in one transaction: one refused, none is
    created."""
    for item in new:
        validate_scope(item.scope)
        validate_name(item.name)
    with lake.write() as conn:
        for item in new:
            require_writer(conn, principal, item.scope, operation=StorageOperation.CREATE)
            dids.add_collection(
                conn, item.scope, item.name, item.did_type, account=principal.account
            )
        metadata.set_metadata_bulk(
            conn,
            {(item.scope, item.name): item.meta for item in new if item.meta},
            limits=lake.settings.metadata_limits(),
            new=True,
        )
        for item in new:
            scope, name = item.scope, item.name
            if item.children:
                dids.attach(conn, scope, name, item.children, viewer=principal)
                embargo.inherit_embargo(conn, (scope, name), list(item.children))
            for spec, account in item.rules:
                add_rules_in(conn, principal, [spec], account=account)


def get_did(lake: Lake, principal: Principal, scope: str, name: str) -> DIDInfo:
    require_storage_scope(principal, StorageOperation.STAT, scope)
    with lake.read() as conn:
        return dids.get_did(conn, scope, name, viewer=principal)


def search_dids(
    lake: Lake,
    principal: Principal,
    scope: str,
    *,
    name: str = "*",
    filters: Sequence[str] = (),
    groups: Sequence[Sequence[str]] = (),
    did_type: DIDType | None = None,
    limit: int | None = None,
) -> Iterator[DIDInfo]:
    """Stream the matching DIDs of a scope, a page per short read transaction.

    ``filters`` are AND-ed; with ``groups`` a DID must also match every filter of one group.
    """
    validate_scope(scope)
    require_storage_scope(principal, StorageOperation.READ, scope)
    parsed = parse_filters(list(filters))
    parsed_groups = [parse_filters(list(group)) for group in groups]
    with lake.read() as conn:
        require_visible_scope(conn, principal, scope)
    after: str | None = None
    remaining = limit
    page_size = lake.settings.page_size
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        with lake.read() as conn:
            page = dids.search_dids(
                conn,
                scope,
                name=name,
                filters=parsed,
                groups=parsed_groups,
                did_type=did_type,
                after=after,
                limit=size,
                viewer=principal,
            )
        yield from page
        if len(page) < size:
            return
        after = page[-1]["name"]
        if remaining is not None:
            remaining -= len(page)


def require_visible_scope(conn: Connection, principal: Principal, scope: str) -> None:
    """ScopeNotFound unless ``scope`` exists and ``principal`` may see it (embargo)."""
    if scope not in {info["scope"] for info in list_scopes(conn, viewer=principal)}:
        get_scope(conn, scope)
        raise ScopeNotFound(f"scope {scope!r} does not exist")


def list_content(lake: Lake, principal: Principal, scope: str, name: str) -> list[DIDInfo]:
    require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:
        found = dids.list_content(conn, scope, name, viewer=principal)
    return only_allowed(principal, StorageOperation.READ, found, lambda info: info["scope"])


def tree_below(
    lake: Lake, principal: Principal, scope: str, name: str, *, recursive: bool
) -> list[dict[str, Any]]:
    require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:
        found = dids.tree_below(conn, scope, name, recursive=recursive, viewer=principal)
    return only_allowed(principal, StorageOperation.READ, found, lambda item: item["scope"])


def list_parents(lake: Lake, principal: Principal, scope: str, name: str) -> list[DIDKey]:
    require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:
        dids.get_did_row_type(conn, scope, name, viewer=principal)
        found = dids.list_parents(conn, scope, name, viewer=principal)
    return only_allowed(principal, StorageOperation.READ, found, lambda key: key[0])


def list_files(lake: Lake, principal: Principal, scope: str, name: str) -> Iterator[DIDInfo]:
    """Stream the files at or below a DID, a page per read transaction."""
    from lacus.core.replicas import list_file_page

    require_storage_scope(principal, StorageOperation.READ, scope)
    after: DIDKey | None = None
    size = lake.settings.page_size
    while True:
        with lake.read() as conn:
            page = list_file_page(conn, scope, name, after=after, limit=size, viewer=principal)
        yield from (
            dids.did_info(row)
            for row in only_allowed(principal, StorageOperation.READ, page, lambda r: r.scope)
        )
        if len(page) < size:
            return
        after = (page[-1].scope, page[-1].name)


def attach(
    lake: Lake,
    principal: Principal,
    scope: str,
    name: str,
    children: Sequence[DIDKey],
    *,
    ignore_duplicates: bool = False,
) -> int:
    return attach_many(
        lake, principal, [((scope, name), children)], ignore_duplicates=ignore_duplicates
    )


def attach_many(
    lake: Lake,
    principal: Principal,
    attachments: Sequence[tuple[DIDKey, Sequence[DIDKey]]],
    *,
    ignore_duplicates: bool = False,
) -> int:
    """Attach children to collections, all in one transaction (one refused, none attached);
    how many were attached. The children of one collection named twice are attached together."""
    grouped: dict[DIDKey, list[DIDKey]] = {}
    for parent, children in attachments:
        grouped.setdefault(parent, []).extend(children)
    with lake.write() as conn:
        count = 0
        for (scope, name), children in grouped.items():
            require_writer(conn, principal, scope, operation=StorageOperation.CREATE)
            count += dids.attach(
                conn, scope, name, children, ignore_duplicates=ignore_duplicates, viewer=principal
            )
            embargo.inherit_embargo(conn, (scope, name), list(children))
        return count


def detach(
    lake: Lake, principal: Principal, scope: str, name: str, children: Sequence[DIDKey]
) -> int:
    with lake.write() as conn:
        require_writer(conn, principal, scope)
        return dids.detach(conn, scope, name, children)


def set_open(lake: Lake, principal: Principal, scope: str, name: str, *, is_open: bool) -> None:
    with lake.write() as conn:
        require_writer(conn, principal, scope)
        if is_open:
            principal.require_admin("reopen datasets")
        dids.set_open(conn, scope, name, is_open=is_open)


def get_metadata(lake: Lake, principal: Principal, scope: str, name: str) -> dict[str, MetaValue]:
    require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:
        return metadata.get_metadata(conn, scope, name, viewer=principal)


def get_metadata_many(
    lake: Lake, principal: Principal, keys: Sequence[DIDKey], *, columns: bool, free: bool
) -> list[tuple[DIDInfo, dict[str, MetaValue]]]:
    """Of ``keys``, the DIDs that exist and ``principal`` may see, in the order asked: their
    columns (``columns``; a container's size and length summed over its files) and their
    free-form metadata (``free``), read set-based."""
    keys = only_allowed(principal, StorageOperation.READ, keys, lambda key: key[0])
    with lake.read() as conn:
        found = dids.find_dids(conn, keys, viewer=principal)
        if columns:
            for info in found.values():
                if info["type"] == DIDType.CONTAINER:
                    info["length"], info["bytes"] = dids.container_totals(
                        conn, info["scope"], info["name"], principal
                    )
        meta = metadata.get_metadata_many(conn, list(found)) if free else {}
    return [(found[key], meta.get(key, {})) for key in dict.fromkeys(keys) if key in found]


def set_metadata(
    lake: Lake, principal: Principal, scope: str, name: str, items: Mapping[str, MetaValue]
) -> None:
    with lake.write() as conn:
        require_writer(conn, principal, scope)
        metadata.set_metadata(conn, scope, name, items, limits=lake.settings.metadata_limits())


def delete_metadata(lake: Lake, principal: Principal, scope: str, name: str, key: str) -> None:
    with lake.write() as conn:
        require_writer(conn, principal, scope)
        metadata.delete_metadata(conn, scope, name, key)


def set_embargo(
    lake: Lake,
    principal: Principal,
    scope: str,
    name: str,
    *,
    embargoed: bool,
    release_at: datetime | None = None,
) -> int:
    """Embargo (or release) a DID and everything below it: only the scope's owner, the DID's
    account and admins see it until ``release_at`` (never, when None) or until it is released."""
    with lake.write() as conn:
        require_writer(conn, principal, scope)
        dids.get_did_row_type(conn, scope, name, viewer=principal)
        return embargo.set_did_embargo(
            conn, scope, name, embargoed=embargoed, release_at=release_at
        )
