"""The ASGI application: ``create_app(settings)``; errors are mapped to responses here, once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lacus._version import __version__
from lacus.daemons import DAEMONS, DaemonRunner
from lacus.errors import (
    AccessDenied,
    InvalidRequest,
    LacusError,
    NotFound,
    ServerError,
    Unauthenticated,
    UnsupportedOperation,
)
from lacus.server import dashboard
from lacus.server.content_type import DefaultJSON
from lacus.server.deps import permitted
from lacus.server.limits import BodyLimit
from lacus.server.memory import MemoryRelease
from lacus.server.metrics import RequestMetrics
from lacus.server.responses import ERROR_RESPONSES, error_response
from lacus.server.routes import (
    account_limits,
    accounts,
    auth,
    dids,
    distances,
    event_destinations,
    events,
    integrity,
    metrics,
    ping,
    policies,
    replicas,
    rses,
    rules,
    scopes,
    subscriptions,
    traces,
    transfers,
)
from lacus.service import Lake, Settings
from lacus.service import metrics as lacus_metrics

log = logging.getLogger("lacus.server")


def create_app(
    settings: Settings, *, lake: Lake | None = None, daemons: bool | None = None
) -> FastAPI:
    """Build the server of one lake. ``lake`` lets a caller share an existing catalog engine;
    ``daemons`` (default: the ``embedded_daemons`` setting) runs every daemon in threads while
    the server runs."""
    owned = lake is None
    the_lake = lake or Lake(settings)
    embedded = settings.embedded_daemons if daemons is None else daemons

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        skipped = set(settings.embedded_daemons_skipped)
        chosen = [daemon for name, daemon in DAEMONS.items() if name not in skipped]
        runner = DaemonRunner(the_lake, chosen) if embedded else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            if owned:
                the_lake.close()

    app = FastAPI(
        title="Lacus",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,
        dependencies=[Depends(_no_nul_in_parameters), Depends(permitted)],
    )
    app.state.lake = the_lake
    app.state.metrics = lacus_metrics.registry(the_lake)
    for module in (
        ping, auth, account_limits, accounts, scopes, rses, distances, dids, replicas, integrity,
        rules, subscriptions, policies, traces, transfers, events, event_destinations, metrics,
    ):  # fmt: skip
        app.include_router(module.router, responses=ERROR_RESPONSES)
    dashboard.install(app)
    app.add_exception_handler(LacusError, _lacus_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(DefaultJSON)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        read_timeout=settings.server_body_timeout_seconds,
        on_large_body=MemoryRelease().request,
    )
    app.add_middleware(RequestMetrics)
    return app


async def _no_nul_in_parameters(request: Request) -> None:
    """No path or query parameter holds a NUL character: PostgreSQL can neither store nor compare
    one, and no name or key may contain it."""
    for kind, items in (
        ("path", request.path_params.items()),
        ("query", request.query_params.multi_items()),
    ):
        for key, value in items:
            if "\x00" in key or "\x00" in str(value):
                raise InvalidRequest(
                    f"invalid {kind} parameter {key[:40]!r}: it contains a NUL character"
                )


async def _lacus_error(_request: Request, exc: LacusError) -> Response:
    return error_response(exc)


async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if not errors:
        return error_response(InvalidRequest("invalid request"))
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return error_response(InvalidRequest(f"invalid {where}: {first.get('msg', 'invalid value')}"))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
    mapping: dict[int, type[LacusError]] = {
        401: Unauthenticated,
        403: AccessDenied,
        404: NotFound,
        405: UnsupportedOperation,
    }
    error_class = mapping.get(exc.status_code, InvalidRequest)
    detail = exc.detail if isinstance(exc.detail, str) else "invalid request"
    if exc.status_code == 404:
        detail = "no such resource"
    elif exc.status_code == 405:
        detail = "method not allowed on this resource"
    response = error_response(error_class(detail))
    response.status_code = exc.status_code if exc.status_code < 500 else 400
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(ServerError(f"internal error ({type(exc).__name__}); see the server log"))
