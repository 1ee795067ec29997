"""Scopes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lacus.models import EmbargoBody
from lacus.naming import validate_scope
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import json_response, utc_naive
from lacus.service import scopes

router = APIRouter(prefix="/scopes", tags=["scopes"])


@router.get("/owner")
def list_scope_owners(lake: LakeDep, principal: PrincipalDep) -> Response:
    found = scopes.list_scopes(lake, principal)
    return json_response(
        [{"scope": scope["scope"], "account": scope["account"]} for scope in found]
    )


@router.get("/")
def list_scopes(lake: LakeDep, principal: PrincipalDep, detail: bool = False) -> Response:
    found = scopes.list_scopes(lake, principal)
    if detail:
        return json_response(found)
    return json_response([scope["scope"] for scope in found])


@router.put("/{scope}/embargo")
def set_embargo(scope: str, body: EmbargoBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Lacus extension: hide a whole scope from other accounts (until ``release_at``)."""
    scopes.set_embargo(
        lake,
        principal,
        validate_scope(scope),
        embargoed=body.embargoed,
        release_at=utc_naive(body.release_at),
    )
    return json_response({"scope": scope, "embargoed": body.embargoed})
