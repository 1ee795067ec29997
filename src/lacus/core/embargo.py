"""Embargo: DIDs and scopes hidden from every account but their owners and admins, until an
optional release date.

A DID is hidden while any path from it up to a root passes an embargo not yet released: its
own, that of a collection above it, or that of the scope of a DID above it. Each DID keeps the
embargo set on it (``own_embargoed``, ``own_release_at``) apart from its effective embargo
(``embargoed``, ``embargo_release_at``), which every read checks together with the embargo of
the DID's own scope (``visibility``)::

    effective(d) = own(d) + effective(p) for each parent p of d
                          + scope(p)     for each parent p of d in another scope than d's

released when the last of them is (the latest release date; none, for ever, when one has none).
Lifting one embargo never shows what another still hides. Whatever changes it — an embargo set
or lifted on a DID or a scope, an attachment, a detachment (deleting a DID detaches it) —
recomputes the effective embargo of the DIDs below, in one statement (``_recompute``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, case, func, null, or_, select, update

from lacus.db.tables import contents, dids, scopes
from lacus.errors import DIDNotFound


def set_did_embargo(
    conn: Connection, scope: str, name: str, *, embargoed: bool, release_at: datetime | None
) -> int:
    """Embargo a DID, and so everything below it, until ``release_at`` (for ever when None), or
    lift its own embargo (``embargoed=False``: what another path hides stays hidden). Returns how
    many DIDs' effective embargo changed."""
    key = and_(dids.c.scope == scope, dids.c.name == name)
    values = {"own_embargoed": embargoed, "own_release_at": release_at if embargoed else None}
    if conn.execute(update(dids).where(key).values(**values)).rowcount == 0:
        raise DIDNotFound(f"DID {scope}:{name} does not exist")
    return _recompute(conn, select(dids.c.scope, dids.c.name).where(key))


def set_scope_embargo(
    conn: Connection, scope: str, *, embargoed: bool, release_at: datetime | None
) -> int:
    """Embargo a scope (its DIDs, and what they hold from other scopes), or lift it. Returns how
    many DIDs of other scopes below it changed (its own DIDs are checked against the scope)."""
    conn.execute(
        update(scopes)
        .where(scopes.c.scope == scope)
        .values(embargoed=embargoed, embargo_release_at=release_at if embargoed else None)
    )
    return _recompute(
        conn,
        select(contents.c.child_scope.label("scope"), contents.c.child_name.label("name")).where(
            contents.c.scope == scope, contents.c.child_scope != scope
        ),
    )


def paths_changed(
    conn: Connection, parent: tuple[str, str], children: Iterable[tuple[str, Sequence[str]]]
) -> None:
    """DIDs were attached to ``parent`` or detached from it (``children``: their names grouped
    by scope, in chunks; called by ``dids`` after the change): when ``parent`` hands an embargo
    down to them, their effective embargo, and that of everything below them, is recomputed.
    Otherwise this costs one lookup (registering into a public dataset: the hot path)."""
    row = conn.execute(
        select(dids.c.embargoed, scopes.c.embargoed.label("scope_embargoed"))
        .join(scopes)  # the scope of the DID (its foreign key)
        .where(dids.c.scope == parent[0], dids.c.name == parent[1])
    ).first()
    if row is None or not (row.embargoed or row.scope_embargoed):
        return  # a path that hands nothing down changes nothing
    for scope, names in children:
        if row.embargoed or scope != parent[0]:  # a scope's own DIDs are checked against it
            _recompute(
                conn,
                select(dids.c.scope, dids.c.name).where(
                    dids.c.scope == scope, dids.c.name.in_(names)
                ),
            )


def inherit_embargo(conn: Connection, parent: tuple[str, str], children: Sequence[Any]) -> None:
    """Nothing left to do: ``dids.attach`` and ``dids.attach_new_files`` recompute the embargo
    of what they attach (``paths_changed``). Kept until the service layer stops calling it."""


def _recompute(conn: Connection, roots: Select[Any]) -> int:
    """Recompute the effective embargo of ``roots`` (a select of ``scope``, ``name``) and of
    every DID below them; returns how many DIDs changed.

    What reaches a DID of that subtree: its own embargo; the effective embargo of each parent
    outside the subtree (nothing above such a parent changed: its value is right); the
    embargo of the scope of each parent in another scope; and, down every edge inside the
    subtree, whatever reached the parent. One row per (DID, release date) reached, then per DID:
    embargoed when anything reached it, released at the latest date (None when one has none).
    """
    below = roots.cte("below", recursive=True, nesting=True)
    below = below.union(
        select(contents.c.child_scope, contents.c.child_name).join(
            below, and_(contents.c.scope == below.c.scope, contents.c.name == below.c.name)
        )
    )
    into = and_(contents.c.child_scope == below.c.scope, contents.c.child_name == below.c.name)
    own, parent, inside = dids.alias("own"), dids.alias("parent"), below.alias("inside")
    own_embargo = (
        select(below.c.scope, below.c.name, own.c.own_release_at.label("release_at"))
        .join(own, and_(own.c.scope == below.c.scope, own.c.name == below.c.name))
        .where(own.c.own_embargoed)
    )
    from_outside = (
        select(below.c.scope, below.c.name, parent.c.embargo_release_at)
        .select_from(below)
        .join(contents, into)
        .join(parent, and_(parent.c.scope == contents.c.scope, parent.c.name == contents.c.name))
        .outerjoin(
            inside, and_(inside.c.scope == contents.c.scope, inside.c.name == contents.c.name)
        )
        .where(parent.c.embargoed, inside.c.scope.is_(None))
    )
    from_scopes = (
        select(below.c.scope, below.c.name, scopes.c.embargo_release_at)
        .select_from(below)
        .join(contents, into)
        .join(scopes, scopes.c.scope == contents.c.scope)
        .where(scopes.c.embargoed, contents.c.scope != contents.c.child_scope)
    )
    reached = own_embargo.cte("reached", recursive=True, nesting=True)
    reached = reached.union(
        from_outside,
        from_scopes,
        select(contents.c.child_scope, contents.c.child_name, reached.c.release_at).join(
            reached, and_(contents.c.scope == reached.c.scope, contents.c.name == reached.c.name)
        ),
    )
    count = func.count(reached.c.scope)
    forever = count > func.count(reached.c.release_at)  # count() skips the NULL dates
    effective = (
        select(
            below.c.scope,
            below.c.name,
            (count > 0).label("embargoed"),
            case((forever, null()), else_=func.max(reached.c.release_at)).label("release_at"),
        )
        .select_from(
            below.outerjoin(
                reached, and_(reached.c.scope == below.c.scope, reached.c.name == below.c.name)
            )
        )
        .group_by(below.c.scope, below.c.name)
        .subquery("effective")
    )
    changed = (
        update(dids)
        .where(
            dids.c.scope == effective.c.scope,
            dids.c.name == effective.c.name,
            or_(
                dids.c.embargoed.is_distinct_from(effective.c.embargoed),
                dids.c.embargo_release_at.is_distinct_from(effective.c.release_at),
            ),
        )
        .values(embargoed=effective.c.embargoed, embargo_release_at=effective.c.release_at)
    )
    return int(conn.execute(changed).rowcount)
