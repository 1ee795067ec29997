"""Scope use cases: an account may create scopes for itself; admins for anyone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection

from lacus.core import embargo, scopes
from lacus.errors import AccessDenied
from lacus.service.lake import Lake, Principal
from lacus.service.token_scopes import StorageOperation, only_allowed, require_storage_scope
from lacus.types import ScopeInfo


def add_scope(lake: Lake, principal: Principal, scope: str, *, account: str) -> None:
    require_storage_scope(principal, StorageOperation.CREATE, scope)
    if account != principal.account and not principal.admin:
        raise AccessDenied(
            f"account {principal.account!r} may not create scopes for account {account!r}"
        )
    with lake.write() as conn:
        scopes.add_scope(conn, scope, account=account)


def list_scopes(lake: Lake, principal: Principal, *, account: str | None = None) -> list[ScopeInfo]:
    with lake.read() as conn:
        found = scopes.list_scopes(conn, account=account, viewer=principal)
    return only_allowed(principal, StorageOperation.STAT, found, lambda info: info["scope"])


def require_writer(
    conn: Connection,
    principal: Principal,
    scope: str,
    *,
    operation: StorageOperation = StorageOperation.MODIFY,
) -> None:
    """Raise AccessDenied unless ``principal`` may write into ``scope`` (owner or admin) and its
    token's storage scopes allow ``operation`` there (creating only, or any change)."""
    require_writer_of(conn, principal, [scope], operation=operation)


def require_writer_of(
    conn: Connection,
    principal: Principal,
    names: Iterable[str],
    *,
    lake: Lake | None = None,
    operation: StorageOperation = StorageOperation.MODIFY,
) -> None:
    """``require_writer`` for several scopes, read at once (ScopeNotFound for a missing one),
    or (``lake``) from the owners it keeps."""
    names = sorted(set(names))
    for scope in names:
        require_storage_scope(principal, operation, scope)
    owners = (
        lake.scope_owners.get(conn, names)
        if lake is not None
        else scopes.require_scopes(conn, names)
    )
    for scope, owner in sorted(owners.items()):
        if owner != principal.account and not principal.admin:
            raise AccessDenied(
                f"account {principal.account!r} may not write into scope {scope!r} "
                f"(owned by {owner!r})"
            )


def set_embargo(
    lake: Lake,
    principal: Principal,
    scope: str,
    *,
    embargoed: bool,
    release_at: datetime | None = None,
) -> None:
    """Hide (or show) a whole scope from every account but its owner and admins."""
    with lake.write() as conn:
        require_writer(conn, principal, scope)
        embargo.set_scope_embargo(conn, scope, embargoed=embargoed, release_at=release_at)
