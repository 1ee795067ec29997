"""The event stream (Lacus): ``GET /events`` as Server-Sent Events, resumable with
``Last-Event-ID``; each reader's events redacted for it (``service.events``), the stream ended
when its token ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement
from starlette.concurrency import run_in_threadpool

from lacus.errors import InvalidInput
from lacus.naming import parse_did, validate_scope
from lacus.server.deps import LakeDep, PrincipalDep, presented_token
from lacus.server.responses import dumps
from lacus.service import Lake
from lacus.service import events as service
from lacus.service.auth import still_valid
from lacus.service.events import Event
from lacus.types import Viewer

router = APIRouter(tags=["events"])

HEARTBEAT = 15.0
"""Seconds between two keep-alive comments on a quiet stream (each carries the position)."""

TOKEN_CHECK = 2.0
"""Seconds between two checks that the stream's token is still valid (also checked before each
delivery): an expired or revoked token ends the stream with an ``auth.expired`` event."""

AUTH_EXPIRED = "auth.expired"
"""The last event of a stream whose token expired or was revoked: log in again, then resume
with ``Last-Event-ID``."""

EVENT_STREAM = "text/event-stream"


class EventStreamResponse(StreamingResponse):
    media_type = EVENT_STREAM


@router.get(
    "/events",
    response_class=EventStreamResponse,
    responses={200: {"content": {EVENT_STREAM: {}}, "description": "Server-Sent Events"}},
)
async def stream_events(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    did: Annotated[
        str | None,
        Query(
            max_length=1100,
            description="SCOPE:NAME: events on this DID and, for a dataset or container, on "
            "every DID in it",
        ),
    ] = None,
    scope: Annotated[str | None, Query(max_length=100)] = None,
    type: Annotated[list[str] | None, Query(description="event types (repeatable)")] = None,
    after: Annotated[int | None, Query(ge=0, description="start after this event id")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=30)] = None,
) -> StreamingResponse:
    """Every event the caller may see, as it happens: ``id`` (resume from it with
    ``Last-Event-ID``), ``event`` (its type), ``data`` (the JSON payload with ``id`` and
    ``type``). Without ``after`` or ``Last-Event-ID`` the stream starts with the next event.
    Quiet streams get a comment every 15 s, with the stream's position as ``id``. Payloads
    are redacted for the caller (hidden DIDs left out). When the token expires or is revoked,
    the stream sends ``event: auth.expired`` and ends."""
    key = parse_did(did) if did is not None else None
    where = await run_in_threadpool(
        service.event_filter,
        lake,
        principal,
        did=key,
        scope=None if scope is None else validate_scope(scope),
        types=type or (),
    )
    resume = _event_id(last_event_id) if last_event_id else after
    start = await run_in_threadpool(service.start_position, lake, resume)
    stream = _messages(request, lake, where, start, principal, presented_token(request))
    return EventStreamResponse(stream)


def _event_id(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidInput(f"Last-Event-ID must be an event id, not {value[:30]!r}") from None
    if number < 0:
        raise InvalidInput(f"an event id is 0 or more, not {number}")
    return number


async def _messages(
    request: Request,
    lake: Lake,
    where: ColumnElement[bool],
    position: int,
    viewer: Viewer,
    token: str,
) -> AsyncIterator[bytes]:
    log = lake.event_log
    yield f"retry: 1000\nid: {position}\n\n".encode()
    quiet_since = checked_at = time.monotonic()
    while True:
        found, after, more = await run_in_threadpool(service.page, lake, position, where, viewer)
        if found or time.monotonic() - checked_at >= TOKEN_CHECK:
            if not await run_in_threadpool(still_valid, lake, token):
                yield _expired(position)
                return
            checked_at = time.monotonic()
        position = after
        if found:
            yield b"".join(_message(event) for event in found)
            quiet_since = time.monotonic()
        if more:
            continue  # more to read at once; else the position is the horizon: wait past it
        if await request.is_disconnected():
            return
        remaining = HEARTBEAT - (time.monotonic() - quiet_since)
        woken = await log.wait_async(position, max(0.0, min(remaining, TOKEN_CHECK)))
        if not woken and time.monotonic() - quiet_since >= HEARTBEAT:
            yield f": keep-alive\nid: {position}\n\n".encode()
            quiet_since = time.monotonic()


def _expired(position: int) -> bytes:
    """The stream's last message: its token ended (resume from ``position`` once logged in)."""
    data = dumps({"type": AUTH_EXPIRED, "message": "the token expired or was revoked: log in "
                  "again and resume with Last-Event-ID", "position": position})  # fmt: skip
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (position, AUTH_EXPIRED.encode(), data)


def _message(event: Event) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.id,
        event.type.encode(),
        dumps(event.message()),
    )
