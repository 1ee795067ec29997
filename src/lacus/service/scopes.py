"""Scope use cases: an account may create scopes for itself; admins for anyone."""

from __future__ import annotations

from sqlalchemy import Connection

from lacus.core import scopes
from lacus.errors import AccessDenied
from lacus.service.lake import Lake, Principal
from lacus.types import ScopeInfo


def add_scope(lake: Lake, principal: Principal, scope: str, *, account: str) -> None:
    if account != principal.account and not principal.admin:
        raise AccessDenied(
            f"account {principal.account!r} may not create scopes for account {account!r}"
        )
    with lake.write() as conn:
        scopes.add_scope(conn, scope, account=account)


def list_scopes(lake: Lake, principal: Principal, *, account: str | None = None) -> list[ScopeInfo]:
    with lake.read() as conn:
        return scopes.list_scopes(conn, account=account)


def require_writer(conn: Connection, principal: Principal, scope: str) -> None:
    """Raise AccessDenied unless ``principal`` may write into ``scope`` (owner or admin)."""
    owner = scopes.get_scope(conn, scope)["account"]
    if owner != principal.account and not principal.admin:
        raise AccessDenied(
            f"account {principal.account!r} may not write into scope {scope!r} (owned by {owner!r})"
        )
