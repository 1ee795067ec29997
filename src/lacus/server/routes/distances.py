"""Links between RSEs, in Rucio's dialect: ``/rses/{src}/distances/{dest}`` (GET a list of zero
or one link, POST to add, PUT to change, DELETE); ``GET /distances/`` lists them all (Lacus)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from lacus.errors import InvalidInput
from lacus.models import DistanceBody
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream
from lacus.service import distances

router = APIRouter(tags=["distances"])
Bidirectional = Annotated[bool, Query(description="Also the link back (dest to src).")]


def _rucio(link: dict[str, Any]) -> dict[str, Any]:
    """A link as Rucio lists it (ids as strings, ``ranking`` = ``distance``), Lacus keys too."""
    return {
        **link,
        "src_rse_id": str(link["src_rse_id"]),
        "dest_rse_id": str(link["dest_rse_id"]),
        "ranking": link["distance"],
    }


@router.get("/distances/", response_class=NDJSONResponse)
def list_distances(
    lake: LakeDep,
    principal: PrincipalDep,
    src: Annotated[str | None, Query(max_length=100)] = None,
    dest: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """Every link (or those from ``src`` / to ``dest``), sorted by source then destination."""
    return stream(
        _rucio(link) for link in distances.list_distances(lake, principal, src=src, dest=dest)
    )


@router.get("/rses/{src}/distances/{dest}")
def get_distance(src: str, dest: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The link from ``src`` to ``dest``: a list of one, or empty when they are not linked."""
    found = distances.list_distances(lake, principal, src=src, dest=dest)
    return json_response([_rucio(link) for link in found])


@router.post("/rses/{src}/distances/{dest}", status_code=201, response_class=PlainTextResponse)
def add_distance(
    src: str, dest: str, body: DistanceBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    distance = body.distance if body.distance is not None else body.ranking
    if distance is None:
        raise InvalidInput("a link needs a distance (an integer, 0 or more)")
    distances.add_distance(
        lake,
        principal,
        src,
        dest,
        distance,
        max_active=body.max_active,
        bidirectional=body.bidirectional,
    )
    return created()


@router.put("/rses/{src}/distances/{dest}", response_class=PlainTextResponse)
def update_distance(
    src: str, dest: str, body: DistanceBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Change what the body sends: ``distance`` (or ``ranking``), ``max_active`` (null: none)."""
    distances.update_distance(
        lake,
        principal,
        src,
        dest,
        distance=body.distance if body.distance is not None else body.ranking,
        max_active=body.max_active if "max_active" in body.model_fields_set else distances.KEEP,
        bidirectional=body.bidirectional,
    )
    return PlainTextResponse(b"")


@router.delete("/rses/{src}/distances/{dest}", response_class=PlainTextResponse)
def delete_distance(
    src: str,
    dest: str,
    lake: LakeDep,
    principal: PrincipalDep,
    bidirectional: Bidirectional = False,
) -> Response:
    distances.delete_distance(lake, principal, src, dest, bidirectional=bidirectional)
    return PlainTextResponse(b"")
