"""ASGI middleware bounding request bodies: their size, the pauses while they arrive, and the
memory they leave behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lacus.errors import InvalidRequest, LacusError, PayloadTooLarge
from lacus.server.responses import error_response

LARGE_BODY = 1024 * 1024
"""Bytes from which a body counts as large: once its request is done, ``on_large_body`` runs."""


class BodyLimit:
    """Refuses a body larger than ``max_bytes`` (413, declared or not) and a body whose next bytes
    do not arrive within ``read_timeout`` seconds (408, then the connection is closed: a client
    trickling its body cannot hold the server's attention for ever). Only the time the
    application waits for the client counts: a pause the server makes (a full buffer) does not.

    ``on_large_body`` runs after each request whose body was at least ``LARGE_BODY`` bytes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        read_timeout: float | None = None,
        on_large_body: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.on_large_body = on_large_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await error_response(too_large)(scope, receive, send)
                    return
        received = 0
        complete = False  # the whole body is in: later reads wait for a disconnect, unbounded
        refusal: LacusError | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, complete, refusal
            if complete or self.read_timeout is None:
                message: dict[str, Any] = dict(await receive())
            else:
                try:
                    with anyio.fail_after(self.read_timeout):
                        message = dict(await receive())
                except TimeoutError:
                    refusal = InvalidRequest(
                        f"the request body stopped arriving: no bytes for {self.read_timeout:g} "
                        "seconds"
                    )
                    raise refusal from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    refusal = too_large
                    raise too_large
            else:
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app makes of the aborted body read (FastAPI answers 400 "error
            # parsing the body"), the client is told why the body was refused.
            nonlocal started
            if refusal is not None and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except LacusError as exc:
            if exc is not refusal:
                raise
        finally:
            if received >= LARGE_BODY and self.on_large_body is not None:
                self.on_large_body()
        if refusal is not None and not started:
            response = error_response(refusal)
            if refusal is not too_large:
                response.status_code = 408
                response.headers["Connection"] = "close"
            await response(scope, receive, send)
