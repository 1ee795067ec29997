"""Reading the event log: what a principal may follow, from where."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement

from lacus.core import dids, events
from lacus.core.events import Event, EventFilter
from lacus.errors import InvalidInput
from lacus.service.lake import Lake, Principal

__all__ = ["PAGE", "Event", "event_filter", "page", "start_position"]

PAGE = 500
"""Events read from the catalog at once by one stream."""


def event_filter(
    lake: Lake,
    principal: Principal,
    *,
    did: tuple[str, str] | None = None,
    scope: str | None = None,
    types: Iterable[str] = (),
) -> ColumnElement[bool]:
    """The condition selecting what ``principal`` asked for and may see. A DID must exist and
    be visible to the principal (DIDNotFound otherwise); unknown event types are refused."""
    wanted = frozenset(types)
    unknown = sorted(wanted - events.TYPES)
    if unknown:
        raise InvalidInput(
            f"unknown event type {unknown[0]!r}: expected one of {', '.join(sorted(events.TYPES))}"
        )
    did_type = None
    if did is not None:
        with lake.read() as conn:
            did_type = dids.get_did(conn, *did, viewer=principal)["type"]
    return EventFilter(types=wanted, scope=scope, did=did, did_type=did_type).condition(principal)


def start_position(lake: Lake, after: int | None) -> int:
    """Where a reader starts: after the event it names, or (None) after the newest one."""
    if after is not None:
        if after < 0:
            raise InvalidInput(f"an event id is 0 or more, not {after}")
        return after
    return lake.event_log.horizon(fresh=True)


def page(lake: Lake, after: int, where: ColumnElement[bool]) -> tuple[list[Event], int]:
    """The next events after ``after`` that match, and the position to read on from (past the
    events that did not match, up to the horizon)."""
    log = lake.event_log
    upto = log.horizon()
    found = log.read(after, upto=upto, limit=PAGE, where=where)
    if len(found) == PAGE:
        return found, found[-1].id
    return found, max(after, upto)
