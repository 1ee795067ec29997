"""Request dependencies: the lake and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from lacus.errors import Unauthenticated
from lacus.service import Lake, Principal, permissions
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
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:  # authenticated by the gate (``permitted``) already
        return known
    if not token:
        raise Unauthenticated("no token: send X-Rucio-Auth-Token (log in with /auth/userpass)")
    principal = authenticate(lake, token)
    request.state.token = token  # for what outlives the request's check: streams, logout
    request.state.principal = principal
    return principal


def permitted(
    request: Request,
    lake: LakeDep,
    x_rucio_auth_token: Annotated[str | None, Header(include_in_schema=False)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """The permission model's gate, run before every operation: the caller may call it by its row
    in ``service.permissions.PERMISSIONS`` (found by the route's method and path, as in
    /openapi.json) — a token where one is needed, admins for admin operations, the account the
    path names or an admin for an owner's operation. The service checks what depends on data."""
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    operation = f"{method} {getattr(route, 'path_format', request.url.path)}"
    if not permissions.needs_account(operation):
        return
    principal = get_principal(request, lake, x_rucio_auth_token, authorization)
    owner = request.path_params.get("account")
    called = f"{method} {request.url.path}"
    permissions.require(principal, operation, owner=owner, called=called)


def presented_token(request: Request) -> str:
    """The token the request was authenticated with (after ``get_principal``)."""
    token: str = request.state.token
    return token


PrincipalDep = Annotated[Principal, Depends(get_principal)]
