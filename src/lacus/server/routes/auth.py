"""Authentication, in Rucio's dialect: ``/auth/userpass`` issues ``X-Rucio-Auth-Token``; Lacus's
``/auth/tokens`` lists an account's tokens and revokes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from lacus.errors import Unauthenticated
from lacus.server import answers
from lacus.server.deps import LakeDep, PrincipalDep, presented_token
from lacus.server.responses import json_response
from lacus.service.auth import list_tokens, login_userpass, revoke_token, token_expiry

router = APIRouter(prefix="/auth", tags=["auth"])


@router.get("/userpass")
def userpass(
    lake: LakeDep,
    x_rucio_account: Annotated[str | None, Header()] = None,
    x_rucio_username: Annotated[str | None, Header()] = None,
    x_rucio_password: Annotated[str | None, Header()] = None,
) -> Response:
    if not x_rucio_username or x_rucio_password is None:
        raise Unauthenticated("send X-Rucio-Username and X-Rucio-Password")
    account = x_rucio_account or x_rucio_username
    token, expires_at = login_userpass(lake, account, x_rucio_username, x_rucio_password)
    response = json_response({"token": token, "expires_at": expires_at})
    response.headers["X-Rucio-Auth-Token"] = token
    response.headers["X-Rucio-Auth-Token-Expires"] = expires_at.strftime(
        "%a, %d %b %Y %H:%M:%S UTC"
    )
    return response


@router.get("/validate", response_model=answers.TokenValidation)
def validate(
    lake: LakeDep,
    principal: PrincipalDep,
    x_rucio_auth_token: Annotated[str | None, Header()] = None,
) -> Response:
    if not x_rucio_auth_token:
        raise Unauthenticated("send the token to validate in X-Rucio-Auth-Token")
    expires_at, seconds_left = token_expiry(lake, x_rucio_auth_token)
    return json_response(
        {"account": principal.account, "lifetime": expires_at, "seconds_left": seconds_left}
    )


@router.get("/tokens")
def tokens(request: Request, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The caller's account's tokens not yet expired, oldest first: ``id`` (revoke by it),
    ``account``, ``identity``, ``created_at``, ``expires_at``, ``current`` (the one sent). No
    token's secret is shown."""
    return json_response(list_tokens(lake, principal, presented=presented_token(request)))


@router.delete("/tokens/{token_id}")
def revoke(
    lake: LakeDep,
    principal: PrincipalDep,
    token_id: Annotated[str, Path(min_length=1, max_length=64, pattern="^[0-9a-f]+$")],
) -> Response:
    """Revoke one of the caller's tokens (admins: anyone's) by its ``id``: refused at once by
    this server, by others within ``token_cache_seconds``; open event streams end with it."""
    revoke_token(lake, principal, token_id)
    return json_response({"revoked": token_id})
