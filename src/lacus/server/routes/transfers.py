"""Transfer history and the transfer success matrix (Lacus): ``/transfers/`` lists attempts,
newest first; ``/transfers/matrix`` aggregates them per source and destination RSE."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from lacus.naming import validate_name, validate_scope
from lacus.server import answers
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, json_response, stream
from lacus.service import transfers

router = APIRouter(prefix="/transfers", tags=["transfers"])


@router.get("/", response_class=NDJSONResponse)
def list_transfers(
    lake: LakeDep,
    principal: PrincipalDep,
    scope: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=1000)] = None,
    state: Annotated[str | None, Query(description="done or failed", max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=transfers.MAX_LIMIT)] = 100,
) -> Response:
    """One line per attempt: file, source and destination RSE, bytes, state, error, start,
    end, duration in seconds, activity."""
    found = transfers.list_transfers(
        lake,
        principal,
        scope=None if scope is None else validate_scope(scope),
        name=None if name is None else validate_name(name),
        state=state,
        limit=limit,
    )
    return stream(found)


@router.get("/matrix", response_model=answers.TransferMatrix)
def transfer_matrix(
    lake: LakeDep,
    principal: PrincipalDep,
    hours: Annotated[float | None, Query(gt=0, le=24 * 366)] = None,
) -> Response:
    """Per link (source, destination): attempts done and failed, % success, bytes moved and
    mean seconds of the successful ones; ``rses``: every RSE named, sorted. ``hours``: only
    the attempts that finished in the last ``hours`` hours."""
    return json_response(transfers.transfer_matrix(lake, principal, hours=hours))
