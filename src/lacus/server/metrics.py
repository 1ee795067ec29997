"""Counting requests for ``/metrics``: an ASGI middleware (streamed answers pass untouched)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lacus.service.metrics import REQUEST_SECONDS, REQUESTS

STREAMS = frozenset({"/events"})
"""Routes whose answers last as long as the client listens: counted, not timed."""


class RequestMetrics:
    """Counts each HTTP request per method, route template and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            if route not in STREAMS:
                REQUEST_SECONDS.labels(scope["method"], route).observe(
                    time.perf_counter() - started
                )


def _route(scope: Scope) -> str:
    """The route's template (``/dids/{scope}/{name}``), never the raw path: bounded labels."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
