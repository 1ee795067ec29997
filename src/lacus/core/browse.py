"""Pages of the catalog for people browsing it: a collection's content, a rule's locks, why a
rule is stuck, the newest events. Every listing is keyset-paginated (``after`` the last key of
the previous page, ``limit`` rows) and reads only the rows of its page, whatever the catalog's
size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, select

from lacus.core.dids import DIDKey, content_query, did_info, get_did_row_type
from lacus.core.events import Event
from lacus.core.visibility import visible
from lacus.db.tables import contents, dids, events, locks, requests, rses, rules
from lacus.types import DIDInfo, LockState, Viewer

SERVING = and_(
    requests.c.scope == locks.c.scope,
    requests.c.name == locks.c.name,
    requests.c.dest_rse_id == locks.c.rse_id,
)
"""The transfer request that brings a lock's file to its RSE."""

LockKey = tuple[str, str, str]
"""A lock's place in a rule's listing: (scope, name, RSE name)."""


def content_page(
    conn: Connection,
    scope: str,
    name: str,
    *,
    after: DIDKey | None,
    limit: int,
    viewer: Viewer | None = None,
) -> list[DIDInfo]:
    """The DIDs attached directly to a collection, in (scope, name) order, after ``after``;
    DIDNotFound when the collection does not exist or ``viewer`` may not see it.

    After a key, the rest of its scope is read first, then the scopes after it: two index
    ranges (a row comparison or an OR of both would make SQLite scan from the start)."""
    get_did_row_type(conn, scope, name, viewer=viewer)
    query = content_query(scope, name, viewer=viewer)
    rows = _keyset(conn, query, (contents.c.child_scope, contents.c.child_name), after, limit)
    return [did_info(row) for row in rows]


def _keyset(
    conn: Connection,
    query: Select[Any],
    order: Sequence[ColumnElement[Any]],
    after: Sequence[Any] | None,
    limit: int,
) -> list[Any]:
    """Up to ``limit`` rows of ``query`` in ``order`` after the key ``after``, read as index
    ranges, narrowest first: for key (a, b), the rest of ``a`` (``= a AND > b``), then what
    follows (``> a``). A row comparison, or an OR of the ranges, makes SQLite scan from the
    first row of the listing: the deeper the page, the slower."""
    if after is None:
        return list(conn.execute(query.order_by(*order).limit(limit)))
    found: list[Any] = []
    for depth in range(len(order) - 1, -1, -1):
        same = [column == value for column, value in zip(order[:depth], after, strict=False)]
        part = query.where(*same, order[depth] > after[depth]).order_by(*order)
        found.extend(conn.execute(part.limit(limit - len(found))))
        if len(found) >= limit:
            break
    return found


def rules_on(
    conn: Connection,
    *,
    did: DIDKey | None = None,
    ids: Sequence[str] = (),
    state: str | None = None,
    limit: int = 100,
    newest_first: bool = False,
    viewer: Viewer | None = None,
) -> list[dict[str, Any]]:
    """The rules on a DID, with these ids, in a state, on DIDs ``viewer`` may see, oldest first
    (or newest), as stored: without their lock counts, which cost a read of every lock (a
    rule's page shows them)."""
    order = (
        (rules.c.created_at.desc(), rules.c.id.desc())
        if newest_first
        else (
            rules.c.created_at,
            rules.c.id,
        )
    )
    query = (
        select(rules)
        .join(dids, and_(dids.c.scope == rules.c.scope, dids.c.name == rules.c.name))
        .where(visible(viewer))
        .order_by(*order)
        .limit(limit)
    )
    if state is not None:
        query = query.where(rules.c.state == state)
    if did is not None:
        query = query.where(rules.c.scope == did[0], rules.c.name == did[1])
    if ids:
        query = query.where(rules.c.id.in_(list(ids)))
    return [{str(key): value for key, value in row._mapping.items()} for row in conn.execute(query)]


def lock_page(
    conn: Connection,
    rule_id: str,
    *,
    state: LockState | None,
    after: LockKey | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A rule's locks in (scope, name, RSE) order: file, RSE, state, bytes, and the transfer
    request that serves it (state, attempts, last error), if any."""
    query = (
        select(
            locks.c.scope,
            locks.c.name,
            rses.c.rse,
            locks.c.state,
            locks.c.bytes,
            locks.c.updated_at,
            requests.c.state.label("request_state"),
            requests.c.attempts,
            requests.c.last_error,
        )
        .join(rses, rses.c.id == locks.c.rse_id)
        .outerjoin(requests, SERVING)
        .where(locks.c.rule_id == rule_id)
    )
    if state is not None:
        query = query.where(locks.c.state == state.value)
    rows = _keyset(conn, query, (locks.c.scope, locks.c.name, rses.c.rse), after, limit)
    return [{str(key): value for key, value in row._mapping.items()} for row in rows]


def locking_rules(conn: Connection, scope: str, name: str) -> list[str]:
    """The ids of the rules holding a lock on file ``scope:name``."""
    query = select(locks.c.rule_id).where(locks.c.scope == scope, locks.c.name == name)
    return list(conn.execute(query.distinct()).scalars())


def file_locks_by_state(conn: Connection, scope: str, name: str) -> dict[str, int]:
    """The locks on file ``scope:name`` per state."""
    query = (
        select(locks.c.state, func.count())
        .where(locks.c.scope == scope, locks.c.name == name)
        .group_by(locks.c.state)
    )
    return {str(state): int(count) for state, count in conn.execute(query)}


def stuck_reasons(conn: Connection, rule_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """Why a rule's locks are stuck: the last errors of the transfer requests behind its stuck
    locks, most frequent first, with how many locks each holds back and on which RSE."""
    error = func.coalesce(requests.c.last_error, "no transfer request (nothing to copy from?)")
    count = func.count().label("locks")
    query = (
        select(error.label("error"), rses.c.rse, count)
        .select_from(locks)
        .join(rses, rses.c.id == locks.c.rse_id)
        .outerjoin(requests, SERVING)
        .where(locks.c.rule_id == rule_id, locks.c.state == LockState.STUCK.value)
        .group_by(error, rses.c.rse)
        .order_by(count.desc(), rses.c.rse)
        .limit(limit)
    )
    return [
        {"error": row.error, "rse": row.rse, "locks": int(row.locks)} for row in conn.execute(query)
    ]


def newest_events(
    conn: Connection,
    *,
    before: int | None,
    upto: int,
    limit: int,
    where: ColumnElement[bool],
) -> list[Event]:
    """The newest events matching ``where`` with an id up to ``upto`` (the horizon) and below
    ``before``, newest first."""
    query = select(events).where(events.c.id <= upto, where)
    if before is not None:
        query = query.where(events.c.id < before)
    query = query.order_by(events.c.id.desc()).limit(limit)
    return [Event.from_row(row) for row in conn.execute(query)]
