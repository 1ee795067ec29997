"""Request dependencies: the lake and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from lacus.errors import Unauthenticated
from lacus.service import Lake, Principal
from lacus.service.auth import authenticate

TOKEN_COOKIE = "lacus_token"
"""The cookie the dashboard's login sets (HttpOnly, SameSite=Strict): the token, for browsers,
whose EventSource cannot send a header."""

SAFE_METHODS = frozenset({"GET", "HEAD"})
"""The methods the cookie authenticates: reading only, so a request a browser makes on a user's
behalf can never change the lake (no cross-site request forgery, even where SameSite fails)."""


def get_lake(request: Request) -> Lake:
    lake: Lake = request.app.state.lake
    return lake


LakeDep = Annotated[Lake, Depends(get_lake)]


def get_principal(
    request: Request,
    lake: LakeDep,
    x_rucio_auth_token: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """Who sends the request: the token in ``X-Rucio-Auth-Token``, else a bearer token in
    ``Authorization``, else (reads only) the dashboard's cookie."""
    token = x_rucio_auth_token
    if not token and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if not token and request.method in SAFE_METHODS:
        token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise Unauthenticated("no token: send X-Rucio-Auth-Token (log in with /auth/userpass)")
    principal = authenticate(lake, token)
    request.state.token = token  # for what outlives the request's check: streams, logout
    return principal


def presented_token(request: Request) -> str:
    """The token the request was authenticated with (after ``get_principal``)."""
    token: str = request.state.token
    return token


PrincipalDep = Annotated[Principal, Depends(get_principal)]
