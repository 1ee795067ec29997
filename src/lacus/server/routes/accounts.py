"""Accounts and their scopes."""

from __future__ import annotations

import re

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from pydantic import Field

from lacus.errors import InvalidInput, UnsupportedOperation
from lacus.models import AccountBody, Body
from lacus.naming import validate_account
from lacus.server import answers
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream
from lacus.service import accounts, scopes
from lacus.types import AccountType, IdentityType

router = APIRouter(prefix="/accounts", tags=["accounts"])


def _account_type(value: str) -> AccountType:
    try:
        return AccountType(value.lower())
    except ValueError:
        raise InvalidInput(
            f"invalid account type {value[:30]!r}: use user, service or group"
        ) from None


@router.get("/", response_class=NDJSONResponse)
@router.get("", response_class=NDJSONResponse, include_in_schema=False)  # rucio account list
def list_accounts(lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream(accounts.list_accounts(lake, principal))


@router.get("/whoami", response_model=answers.Account)
def whoami(lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(accounts.get_account(lake, principal, principal.account))


@router.get("/{account}", response_model=answers.Account)
def get_account(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(accounts.get_account(lake, principal, validate_account(account)))


@router.post("/{account}", status_code=201, response_class=PlainTextResponse)
def add_account(
    account: str, body: AccountBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    accounts.add_account(
        lake,
        principal,
        account,
        account_type=_account_type(body.type),
        email=body.email,
        admin=body.admin,
        password=body.password,
    )
    return created()


@router.get("/{account}/attr/")
def list_account_attributes(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Rucio's account attributes: Lacus keeps one, ``admin``."""
    info = accounts.get_account(lake, principal, validate_account(account))
    return json_response([{"key": "admin", "value": info["admin"]}])


@router.post("/{account}/attr/{key}", status_code=201)
@router.delete("/{account}/attr/{key}")
def change_account_attribute(account: str, key: str, principal: PrincipalDep) -> Response:
    """Refused in one line: Lacus has no free account attributes, and ``admin`` is given when
    the account is created."""
    raise UnsupportedOperation(
        f"account attributes cannot be changed ({key[:40]!r} of {account[:25]!r}): Lacus keeps "
        "only 'admin', given when the account is created"
    )


@router.get("/{account}/scopes/")
def list_account_scopes(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    found = scopes.list_scopes(lake, principal, account=validate_account(account))
    return json_response([scope["scope"] for scope in found])


@router.post("/{account}/scopes/{scope}", status_code=201, response_class=PlainTextResponse)
def add_scope(account: str, scope: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    scopes.add_scope(lake, principal, scope, account=validate_account(account))
    return created()


# -- identities ----------------------------------------------------------------------------------
class IdentityBody(Body):
    """Lacus sends ``{"identity": sub, "issuer": iss, "type": "oidc"}``; Rucio clients send
    ``{"identity": "SUB=sub, ISS=iss", "authtype": "OIDC", "email": ...}``."""

    identity: str = Field(min_length=1, max_length=255)
    issuer: str | None = Field(default=None, max_length=255)
    type: str | None = None
    authtype: str | None = None
    email: str | None = None


_RUCIO_OIDC = re.compile(r"SUB=(?P<sub>.+), ISS=(?P<iss>.+)")


@router.post("/{account}/identities", status_code=201, response_class=PlainTextResponse)
def add_identity(
    account: str, body: IdentityBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    kind = (body.type or body.authtype or "").lower()
    try:
        identity_type = IdentityType(kind)
    except ValueError:
        raise InvalidInput(f"invalid identity type {kind[:30]!r}: use oidc") from None
    subject, issuer = body.identity, body.issuer
    rucio_style = _RUCIO_OIDC.fullmatch(subject)
    if issuer is None and rucio_style is not None:
        subject, issuer = rucio_style["sub"], rucio_style["iss"]
    accounts.add_identity(
        lake,
        principal,
        validate_account(account),
        kind=identity_type,
        identity=subject,
        issuer=issuer,
    )
    return created()
