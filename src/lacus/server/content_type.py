"""ASGI middleware: a request body without ``Content-Type`` is JSON (Rucio's clients send none)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class DefaultJSON:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "DELETE", "PATCH"):
            headers = scope.get("headers", [])
            if not any(key == b"content-type" for key, _ in headers):
                scope = dict(scope)
                scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, receive, send)
