"""The event stream (Lacus): ``GET /events`` as Server-Sent Events, resumable with
``Last-Event-ID``."""

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
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import dumps
from lacus.service import Lake
from lacus.service import events as service
from lacus.service.events import Event

router = APIRouter(tags=["events"])

HEARTBEAT = 15.0
"""Seconds between two keep-alive comments on a quiet stream (each carries the position)."""

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
    Quiet streams get a comment every 15 s, with the stream's position as ``id``."""
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
    return EventStreamResponse(_messages(request, lake, where, start))


def _event_id(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidInput(f"Last-Event-ID must be an event id, not {value[:30]!r}") from None
    if number < 0:
        raise InvalidInput(f"an event id is 0 or more, not {number}")
    return number


async def _messages(
    request: Request, lake: Lake, where: ColumnElement[bool], position: int
) -> AsyncIterator[bytes]:
    log = lake.event_log
    yield f"retry: 1000\nid: {position}\n\n".encode()
    quiet_since = time.monotonic()
    while True:
        found, position = await run_in_threadpool(service.page, lake, position, where)
        if found:
            yield b"".join(_message(event) for event in found)
            quiet_since = time.monotonic()
            if len(found) == service.PAGE:
                continue  # more to read at once; else the position is the horizon: wait past it
        if await request.is_disconnected():
            return
        remaining = HEARTBEAT - (time.monotonic() - quiet_since)
        if not await log.wait_async(position, max(0.0, remaining)):
            yield f": keep-alive\nid: {position}\n\n".encode()
            quiet_since = time.monotonic()


def _message(event: Event) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.id,
        event.type.encode(),
        dumps(event.message()),
    )
