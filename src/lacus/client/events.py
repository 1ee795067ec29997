"""Following the lake's events from a client: ``Client.watch`` and ``follow_files``.

``watch`` reads ``GET /events`` (Server-Sent Events) and reconnects by itself, resuming after
the last event it saw (``Last-Event-ID``): a server restart loses and repeats nothing.
``follow_files`` turns the events of a dataset or container into "this file is there now",
once per file, whichever way it arrived (registered into the dataset, or attached later).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from lacus.client._http import raise_for_error
from lacus.errors import InvalidInput, LacusError, ServerUnavailable, Unauthenticated
from lacus.naming import parse_did
from lacus.types import DIDType, ReplicaState

if TYPE_CHECKING:
    from lacus.client._client import Client

READ_TIMEOUT = 40.0
"""Seconds without a byte from the server before the stream is taken for dead (the server sends
a keep-alive every 15 s)."""

AUTH_EXPIRED = "auth.expired"
"""The server's last message on a stream whose token expired or was revoked."""

RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
"""Seconds to wait before the successive attempts to reconnect (the last one repeats)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One change in the lake (docs/events.md lists the types and their payloads)."""

    id: int
    type: str
    scope: str | None
    name: str | None
    payload: dict[str, Any]


@dataclass(slots=True)
class Message:
    """One Server-Sent Events message."""

    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)


def parse_messages(lines: Iterable[str]) -> Iterator[Message]:
    """Split a ``text/event-stream`` into messages; a message with only an ``id`` (a keep-alive
    carrying the stream's position) is yielded too, with no data."""
    message = Message()
    for line in lines:
        if not line:
            if message.id is not None or message.data:
                yield message
            message = Message()
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "id":
            message.id = value
        elif key == "event":
            message.event = value
        elif key == "data":
            message.data.append(value)
    if message.data:
        yield message


def watch(
    client: Client,
    did: str | None = None,
    *,
    types: Sequence[str] | None = None,
    scope: str | None = None,
    after: int | None = None,
    timeout: float | None = None,
) -> Iterator[Event]:
    """The events the account may see, as they happen (see ``Client.watch``)."""
    params: list[tuple[str, str | int | float | bool | None]] = []
    if did is not None:
        did_scope, did_name = parse_did(did)
        params.append(("did", f"{did_scope}:{did_name}"))
    if scope is not None:
        params.append(("scope", scope))
    params.extend(("type", event_type) for event_type in types or ())
    if after is not None and after < 0:
        raise InvalidInput(f"an event id is 0 or more, not {after}")
    position = after
    last_event = time.monotonic()
    failures = 0
    session = client.session
    while True:
        read_timeout = READ_TIMEOUT if timeout is None else max(0.01, min(READ_TIMEOUT, timeout))
        try:
            # a login that finds the server away is retried like a lost stream
            headers = {"X-Rucio-Auth-Token": session.token, "Accept": "text/event-stream"}
            if position is not None:
                headers["Last-Event-ID"] = str(position)
            with session.http.stream(
                "GET",
                "/events",
                params=params,
                headers=headers,
                timeout=httpx.Timeout(10.0, read=read_timeout),
            ) as response:
                if response.status_code == 401 and session.config.password:
                    session.forget_token()
                    failures += 1
                    if failures > 2:
                        response.read()
                        raise_for_error(response)
                    continue
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response)
                failures = 0
                for message in parse_messages(response.iter_lines()):
                    if message.id is not None and message.id.isdigit():
                        position = int(message.id)
                    if message.event == AUTH_EXPIRED:  # the stream's last message
                        if not session.config.password:
                            raise Unauthenticated(
                                "the server ended the event stream: the token expired or was "
                                "revoked (log in again, then resume with after=the last id)"
                            )
                        session.forget_token()  # log in again and resume where it ended
                        break
                    if message.data:
                        last_event = time.monotonic()
                        yield _event(message)
                    elif timeout is not None and time.monotonic() - last_event >= timeout:
                        return
        except (httpx.TransportError, httpx.StreamError) as exc:
            if timeout is not None and time.monotonic() - last_event >= timeout:
                return
            if isinstance(exc, httpx.ReadTimeout):
                continue  # quiet for too long: take a fresh connection
            failures += 1
            time.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS)) - 1])
        except ServerUnavailable:
            failures += 1
            time.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS)) - 1])
        if timeout is not None and time.monotonic() - last_event >= timeout:
            return


def current_position(client: Client, did: str | None = None) -> int:
    """The event stream's position now (the id of the last event it has passed): watching
    with ``after=`` this position sees every event from now on, even one caused by the next
    call. ``did``: check now that the DID exists and may be watched (DIDNotFound)."""
    params = {} if did is None else {"did": "{}:{}".format(*parse_did(did))}
    session = client.session
    for attempt in range(2):
        headers = {"X-Rucio-Auth-Token": session.token, "Accept": "text/event-stream"}
        with session.http.stream("GET", "/events", params=params, headers=headers) as response:
            if response.status_code == 401 and session.config.password and attempt == 0:
                session.forget_token()
                continue
            if response.status_code >= 400:
                response.read()
                raise_for_error(response)
            for message in parse_messages(response.iter_lines()):
                if message.id is not None and message.id.isdigit():
                    return int(message.id)
    raise ServerUnavailable("the event stream closed before telling its position")


def _event(message: Message) -> Event:
    body = orjson.loads("\n".join(message.data))
    return Event(
        id=int(body.pop("id")),
        type=str(body.pop("type", message.event or "")),
        scope=body.get("scope"),
        name=body.get("name"),
        payload=body,
    )


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file that has just become available in a followed dataset or container."""

    scope: str
    name: str
    bytes: int
    adler32: str
    md5: str | None
    rse: str
    pfn: str
    event_id: int
    meta: dict[str, Any]

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"


FOLLOWED_TYPES = ("replica.available", "did.attached")


def follow_files(
    client: Client,
    did: str,
    *,
    after: int | None = None,
    timeout: float | None = None,
    seen: set[tuple[str, str]] | None = None,
) -> Iterator[NewFile]:
    """Each file of the dataset or container ``did`` once, as soon as it has an available
    replica: registered there with its replica, or attached after it was available. ``seen``
    (files already handled, e.g. by an earlier run) is updated as files are yielded."""
    done = seen if seen is not None else set()
    for event in watch(client, did, types=FOLLOWED_TYPES, after=after, timeout=timeout):
        if event.type == "replica.available":
            key = (event.scope or "", event.name or "")
            if key in done or not event.payload.get("pfn"):
                continue
            done.add(key)
            yield _from_event(event)
        else:
            yield from _attached(client, event, done)


def _from_event(event: Event) -> NewFile:
    payload = event.payload
    return NewFile(
        scope=event.scope or "",
        name=event.name or "",
        bytes=int(payload["bytes"]),
        adler32=str(payload["adler32"]),
        md5=payload.get("md5"),
        rse=str(payload["rse"]),
        pfn=str(payload["pfn"]),
        event_id=event.id,
        meta=dict(payload.get("meta") or {}),
    )


def _attached(client: Client, event: Event, done: set[tuple[str, str]]) -> Iterator[NewFile]:
    """Files attached (directly, or inside attached collections) that are available already."""
    children = event.payload.get("children") or []
    wanted = [
        f"{child['scope']}:{child['name']}"
        for child in children
        if child.get("type") != DIDType.FILE or (child["scope"], child["name"]) not in done
    ]
    if not wanted:
        return
    try:
        found = list(client.list_replicas(wanted))
    except LacusError:
        return  # detached or deleted again since: nothing to follow
    for replica in found:
        key = (replica["scope"], replica["name"])
        if key in done:
            continue
        available = [
            (rse, where)
            for rse, where in sorted(replica["rses"].items())
            if str(where.get("state", "")).lower() == ReplicaState.AVAILABLE and where.get("pfn")
        ]
        if not available:
            continue  # its replica.available event will come
        done.add(key)
        rse, where = available[0]
        yield NewFile(
            scope=key[0],
            name=key[1],
            bytes=int(replica["bytes"]),
            adler32=str(replica["adler32"]),
            md5=replica.get("md5"),
            rse=rse,
            pfn=str(where["pfn"]),
            event_id=event.id,
            meta={},
        )
