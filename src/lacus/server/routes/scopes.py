"""Scopes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import json_response
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
