"""Scopes: namespaces owned by accounts."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from lacus.core.accounts import get_account
from lacus.core.clock import utcnow
from lacus.core.visibility import scope_visible
from lacus.db.tables import scopes
from lacus.errors import ScopeAlreadyExists, ScopeNotFound
from lacus.naming import validate_scope
from lacus.types import ScopeInfo, Viewer


def add_scope(conn: Connection, scope: str, *, account: str) -> None:
    validate_scope(scope)
    get_account(conn, account)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(scopes).values(
                    scope=scope, account=account, status="open", created_at=utcnow()
                )
            )
    except IntegrityError:
        raise ScopeAlreadyExists(f"scope {scope!r} exists already") from None


def get_scope(conn: Connection, scope: str) -> ScopeInfo:
    row = conn.execute(select(scopes).where(scopes.c.scope == scope)).first()
    if row is None:
        raise ScopeNotFound(f"scope {scope!r} does not exist")
    return ScopeInfo(scope=row.scope, account=row.account, created_at=row.created_at)


def list_scopes(
    conn: Connection, *, account: str | None = None, viewer: Viewer | None = None
) -> list[ScopeInfo]:
    query = select(scopes).where(scope_visible(viewer)).order_by(scopes.c.scope)
    if account is not None:
        query = query.where(scopes.c.account == account)
    return [
        ScopeInfo(scope=row.scope, account=row.account, created_at=row.created_at)
        for row in conn.execute(query)
    ]


def require_scopes(conn: Connection, names: Iterable[str]) -> dict[str, str]:
    """Return {scope: owner} for ``names``; raise ScopeNotFound naming the first missing one."""
    wanted = set(names)
    rows = conn.execute(
        select(scopes.c.scope, scopes.c.account).where(scopes.c.scope.in_(sorted(wanted)))
    )
    owners = {row.scope: row.account for row in rows}
    missing = sorted(wanted - owners.keys())
    if missing:
        raise ScopeNotFound(f"scope {missing[0]!r} does not exist")
    return owners
