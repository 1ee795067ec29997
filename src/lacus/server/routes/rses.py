"""RSEs, their attributes and protocols."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from lacus.models import AttributeBody, ProtocolBody, RSEBody, RSEUpdateBody
from lacus.naming import parse_did, validate_rse
from lacus.server import rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream
from lacus.service import replicas, rses
from lacus.service.rules import resolve_expression
from lacus.types import ProtocolInfo, RSEType

router = APIRouter(prefix="/rses", tags=["rses"])


@router.get("/", response_class=NDJSONResponse)
def list_rses(lake: LakeDep, principal: PrincipalDep, expression: str | None = None) -> Response:
    found = rses.list_rses(lake, principal)
    if expression is not None:
        selected = set(resolve_expression(lake, principal, expression))
        found = [info for info in found if info["rse"] in selected]
    return stream(rucio.rse(info) for info in found)


@router.post("/{rse}", status_code=201, response_class=PlainTextResponse)
def add_rse(rse: str, body: RSEBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    rses.add_rse(
        lake,
        principal,
        validate_rse(rse),
        rse_type=RSEType(body.rse_type.lower()),
        deterministic=body.deterministic,
        total_bytes=body.total_bytes,
        attributes=body.attributes,
        read_only=body.read_only,
    )
    return created()


@router.get("/{rse}")
def get_rse(rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(rucio.rse(rses.get_rse(lake, principal, rse)))


@router.get("/{rse}/usage", response_class=NDJSONResponse)
def get_usage(rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream([rucio.rse_usage(rses.get_rse(lake, principal, rse))])


@router.get("/{rse}/lfns2pfns")
def lfns2pfns(
    rse: str,
    lake: LakeDep,
    principal: PrincipalDep,
    lfn: Annotated[list[str], Query(max_length=1000)],
    scheme: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Rucio's ``scope:name`` → URL on the RSE (for uploads to non-deterministic RSEs)."""
    keys = [parse_did(item) for item in lfn]
    return json_response(replicas.lfns_to_pfns(lake, principal, rse, keys, scheme=scheme))


@router.get("/{rse}/limits")
def get_limits(rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    rses.get_rse(lake, principal, rse)
    return json_response({})


@router.put("/{rse}")
def update_rse(rse: str, body: RSEUpdateBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    rses.update_rse(lake, principal, rse, **body.model_dump())
    return json_response(rucio.rse(rses.get_rse(lake, principal, rse)))


@router.get("/{rse}/attr/")
def list_attributes(rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(rses.get_rse(lake, principal, rse)["attributes"])


@router.post("/{rse}/attr/{key}", status_code=201, response_class=PlainTextResponse)
def set_attribute(
    rse: str, key: str, body: AttributeBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    value = body.value
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    rses.set_attribute(lake, principal, rse, key, text)
    return created()


@router.delete("/{rse}/attr/{key}")
def delete_attribute(rse: str, key: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    rses.delete_attribute(lake, principal, rse, key)
    return json_response({"deleted": key})


@router.get("/{rse}/protocols")
def list_protocols(rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(
        [rucio.protocol(proto) for proto in rses.get_rse(lake, principal, rse)["protocols"]]
    )


@router.post("/{rse}/protocols/{scheme}", status_code=201, response_class=PlainTextResponse)
def add_protocol(
    rse: str, scheme: str, body: ProtocolBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    protocol = ProtocolInfo(
        scheme=scheme,
        hostname=body.hostname,
        port=body.port,
        prefix=body.prefix,
        impl=body.impl or scheme,
        extended_attributes=body.extended_attributes,
    )
    rses.add_protocol(lake, principal, rse, protocol)
    return created()
