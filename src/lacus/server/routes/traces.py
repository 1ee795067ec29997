"""``POST /traces/``: Rucio clients report each upload and download (one trace, or a list).

A finished download (``eventType`` download/get, ``clientState`` DONE, ``scope``, ``filename``,
``remoteSite`` = the RSE read from) moves that replica's ``accessed_at`` to now: the reaper
deletes least recently accessed replicas first. Anything else is accepted and dropped (Lacus's
own events record what happens). Like Rucio's, the endpoint needs no token and never fails.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.responses import PlainTextResponse

from lacus.errors import InvalidInput
from lacus.naming import validate_name, validate_rse, validate_scope
from lacus.server.deps import LakeDep
from lacus.server.responses import created
from lacus.service.replicas import MAX_READS, record_reads

router = APIRouter(tags=["traces"])
READS = {"download", "get", "get_sm", "sm_get"}


def _read(trace: Any) -> tuple[str, str, str] | None:
    if not isinstance(trace, dict):
        return None
    if str(trace.get("eventType", "")).lower() not in READS:
        return None
    if str(trace.get("clientState", "")).upper() != "DONE":
        return None
    scope, name, rse = trace.get("scope"), trace.get("filename"), trace.get("remoteSite")
    if not (isinstance(scope, str) and isinstance(name, str) and isinstance(rse, str)):
        return None
    try:
        return validate_scope(scope), validate_name(name), validate_rse(rse)
    except InvalidInput:
        return None


@router.post("/traces/", status_code=201, response_class=PlainTextResponse)
def add_trace(lake: LakeDep, payload: Annotated[Any, Body()] = None) -> Response:
    traces = payload if isinstance(payload, list) else [payload]
    reads = [read for read in map(_read, traces[:MAX_READS]) if read is not None]
    record_reads(lake, reads)
    return created()
