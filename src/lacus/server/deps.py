"""Request dependencies: the lake and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from lacus.errors import Unauthenticated
from lacus.service import Lake, Principal
from lacus.service.auth import authenticate


def get_lake(request: Request) -> Lake:
    lake: Lake = request.app.state.lake
    return lake


LakeDep = Annotated[Lake, Depends(get_lake)]


def get_principal(
    lake: LakeDep,
    x_rucio_auth_token: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    token = x_rucio_auth_token
    if not token and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if not token:
        raise Unauthenticated("no token: send X-Rucio-Auth-Token (log in with /auth/userpass)")
    return authenticate(lake, token)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
