"""Prometheus metrics (Lacus): ``GET /metrics`` in the text exposition format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from lacus.errors import Unauthenticated
from lacus.server.deps import LakeDep
from lacus.service.auth import authenticate

router = APIRouter(tags=["metrics"])


def _allowed(
    lake: LakeDep,
    x_rucio_auth_token: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Open to scrapers unless the lake's ``metrics_public`` setting is off: then a token."""
    if lake.settings.metrics_public:
        return
    token = x_rucio_auth_token
    if not token and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if not token:
        raise Unauthenticated("no token: /metrics needs one here (metrics_public is off)")
    authenticate(lake, token)


@router.get("/metrics", dependencies=[Depends(_allowed)], response_class=Response)
async def metrics(request: Request) -> Response:
    """Request counts and latencies, daemon passes, transfer queues, rules by state, RSE usage,
    per-link transfers of the last hour, event backlogs, catalog sizes (docs/metrics.md)."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
