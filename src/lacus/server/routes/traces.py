"""``POST /traces/``: Rucio clients report each upload and download; Lacus accepts and drops them
(its own events record what happens)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from lacus.server.responses import created

router = APIRouter(tags=["traces"])


@router.post("/traces/", status_code=201, response_class=PlainTextResponse)
def add_trace() -> Response:
    return created()
