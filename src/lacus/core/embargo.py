"""Embargo: DIDs and scopes hidden from every account but their owners and admins, until an
optional release date.

Embargoing a collection embargoes everything below it (now, and what is attached later), so no
listing, search, replica list or download reveals a file through another path. Who sees what is
decided in ``visibility``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from lacus.core.dids import DIDKey, file_tree, get_did_row_type, names_by_scope
from lacus.db.tables import dids, scopes
from lacus.types import DIDType


def set_did_embargo(
    conn: Connection, scope: str, name: str, *, embargoed: bool, release_at: datetime | None
) -> int:
    """Embargo (or release) a DID and everything below it; returns how many DIDs changed."""
    did_type = get_did_row_type(conn, scope, name)
    values = {"embargoed": embargoed, "embargo_release_at": release_at if embargoed else None}
    changed = conn.execute(
        update(dids).where(dids.c.scope == scope, dids.c.name == name).values(**values)
    ).rowcount
    if did_type != DIDType.FILE:
        tree = file_tree(scope, name)
        below = select(tree.c.child_scope, tree.c.child_name).distinct()
        keys = [(row.child_scope, row.child_name) for row in conn.execute(below)]
        changed += _update_many(conn, keys, values)
    return changed


def inherit_embargo(conn: Connection, parent: DIDKey, children: list[DIDKey]) -> None:
    """Children attached to an embargoed collection (and all below them) become embargoed."""
    row = conn.execute(
        select(dids.c.embargoed, dids.c.embargo_release_at).where(
            dids.c.scope == parent[0], dids.c.name == parent[1]
        )
    ).first()
    if row is None or not row.embargoed:
        return
    values = {"embargoed": True, "embargo_release_at": row.embargo_release_at}
    _update_many(conn, children, values)
    collections = [
        (r.scope, r.name)
        for scope, names in names_by_scope(children)
        for r in conn.execute(
            select(dids.c.scope, dids.c.name).where(
                dids.c.scope == scope, dids.c.name.in_(names), dids.c.did_type != DIDType.FILE
            )
        )
    ]
    for key in collections:
        set_did_embargo(conn, *key, embargoed=True, release_at=row.embargo_release_at)


def set_scope_embargo(
    conn: Connection, scope: str, *, embargoed: bool, release_at: datetime | None
) -> None:
    conn.execute(
        update(scopes)
        .where(scopes.c.scope == scope)
        .values(embargoed=embargoed, embargo_release_at=release_at if embargoed else None)
    )


def _update_many(conn: Connection, keys: list[DIDKey], values: dict[str, Any]) -> int:
    changed = 0
    for scope, names in names_by_scope(keys):
        changed += conn.execute(
            update(dids).where(dids.c.scope == scope, dids.c.name.in_(names)).values(**values)
        ).rowcount
    return changed
