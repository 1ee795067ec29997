"""Pages of the catalog for people browsing it: a collection's content, a rule's locks, why a
rule is stuck, the newest events. Every listing is keyset-paginated (``after`` the last key of
the previous page, ``limit`` rows) and reads only the rows of its page, whatever the catalog's
size."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from lacus.core.dids import DIDKey, content_query, did_info, get_did_row_type
from lacus.core.events import Event
from lacus.db.tables import contents, events, locks, requests, rses
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
    DIDNotFound when the collection does not exist or ``viewer`` may not see it."""
    get_did_row_type(conn, scope, name, viewer=viewer)
    query = content_query(scope, name, viewer=viewer)
    if after is not None:
        query = query.where(
            or_(
                contents.c.child_scope > after[0],
                and_(contents.c.child_scope == after[0], contents.c.child_name > after[1]),
            )
        )
    query = query.order_by(contents.c.child_scope, contents.c.child_name).limit(limit)
    return [did_info(row) for row in conn.execute(query)]


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
    if after is not None:
        scope, name, rse = after
        query = query.where(
            or_(
                locks.c.scope > scope,
                and_(locks.c.scope == scope, locks.c.name > name),
                and_(locks.c.scope == scope, locks.c.name == name, rses.c.rse > rse),
            )
        )
    query = query.order_by(locks.c.scope, locks.c.name, rses.c.rse).limit(limit)
    return [{str(key): value for key, value in row._mapping.items()} for row in conn.execute(query)]


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
    return [_event(row) for row in conn.execute(query)]


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        type=row.event_type,
        scope=row.scope,
        name=row.name,
        payload=orjson.loads(row.payload),
        created_at=row.created_at,
    )
