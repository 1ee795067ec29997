"""Reading the event log: what a principal may follow, from where, and what of each event it may
read.

Redaction, per reader (admins read everything): an event about a DID the reader may not see is
never read (``EventFilter``'s condition); payload fields naming other DIDs — the ``children`` of
``did.attached``/``did.detached`` — lose the DIDs the reader may not see (or that no longer
exist), and an event left with none of them is not sent. One visibility query per page of events,
not per event. Events about no DID (``audit.*``, ``scrub.*``) carry counts and RSE names, never
storage paths (``core.audits``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Connection

from lacus.core import dids, events
from lacus.core.events import Event, EventFilter
from lacus.errors import InvalidInput
from lacus.service.lake import Lake, Principal
from lacus.types import Viewer

__all__ = ["MEMBERSHIP", "PAGE", "Event", "event_filter", "page", "redact", "start_position"]

PAGE = 500
"""Events read from the catalog at once by one stream."""

MEMBERSHIP = frozenset({"did.attached", "did.detached"})
"""Event types whose payload names other DIDs (``children``: scope, name, type)."""


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


def page(
    lake: Lake, after: int, where: ColumnElement[bool], viewer: Viewer | None
) -> tuple[list[Event], int, bool]:
    """The next events after ``after`` that match, redacted for ``viewer``; the position to
    read on from (past the events that did not match, up to the horizon); whether more may be
    read at once (a full page was read)."""
    log = lake.event_log
    upto = log.horizon()
    found = log.read(after, upto=upto, limit=PAGE, where=where)
    full = len(found) == PAGE
    position = found[-1].id if full else max(after, upto)
    if found and _needs_redaction(found, viewer):
        with lake.read() as conn:
            found = redact(conn, found, viewer)
    return found, position, full


def redact(conn: Connection, found: Sequence[Event], viewer: Viewer | None) -> list[Event]:
    """``found`` as ``viewer`` may read them: hidden DIDs taken out of the payloads, events
    left naming none of theirs dropped (one query for the whole page)."""
    if not _needs_redaction(found, viewer):
        return list(found)
    named = {key for event in found for key in _children(event)}
    shown = dids.find_dids(conn, named, viewer=viewer).keys()
    kept: list[Event] = []
    for event in found:
        children = event.payload.get("children") if event.type in MEMBERSHIP else None
        if not isinstance(children, list):
            kept.append(event)
            continue
        visible = [c for c in children if (c.get("scope"), c.get("name")) in shown]
        if len(visible) == len(children):
            kept.append(event)
        elif visible:
            kept.append(dataclasses.replace(event, payload={**event.payload, "children": visible}))
    return kept


def _needs_redaction(found: Sequence[Event], viewer: Viewer | None) -> bool:
    return viewer is not None and not viewer.admin and any(e.type in MEMBERSHIP for e in found)


def _children(event: Event) -> list[tuple[str, str]]:
    children = event.payload.get("children") if event.type in MEMBERSHIP else None
    if not isinstance(children, list):
        return []
    return [
        (c["scope"], c["name"])
        for c in children
        if isinstance(c, dict)
        and isinstance(c.get("scope"), str)
        and isinstance(c.get("name"), str)
    ]
