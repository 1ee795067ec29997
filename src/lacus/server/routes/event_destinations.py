"""Where the event sender is with each broker (Lacus, admins only): ``GET /events/destinations``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import json_response
from lacus.service.event_destinations import list_destinations

router = APIRouter(tags=["events"])


@router.get("/events/destinations")
def destinations(lake: LakeDep, principal: PrincipalDep) -> Response:
    """Each configured destination: kind, target, cursor (every event up to it acknowledged),
    delivered, backlog (events not yet delivered), oldest waiting, failures in a row, last error."""
    return json_response([status.as_dict() for status in list_destinations(lake, principal)])
