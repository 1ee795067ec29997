"""Liveness and version, as Rucio's ``GET /ping``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lacus._version import __version__
from lacus.server import answers
from lacus.server.responses import json_response

router = APIRouter(tags=["ping"])


@router.get("/ping", response_model=answers.Ping)
def ping() -> Response:
    return json_response({"version": __version__, "server": "lacus"})
