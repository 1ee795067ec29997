"""Authentication: user/password logins issue tokens; tokens authenticate requests (cached).

A bearer token is either an opaque Lacus token (issued by ``login_userpass``, checked against the
catalog) or a JWT of a configured OIDC issuer (checked by ``Lake.oidc()``, then mapped to an
account: first through an identity ``sub@iss``, else through the issuer's ``account_claim``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from lacus.core import accounts
from lacus.core.clock import utcnow
from lacus.errors import InvalidName, NotFound, Unauthenticated
from lacus.naming import validate_account
from lacus.service.lake import Lake, Principal
from lacus.service.oidc import VerifiedToken, looks_like_jwt


def login_userpass(lake: Lake, account: str, username: str, password: str) -> tuple[str, datetime]:
    """Check the credentials and return a new token with its expiry."""
    with lake.write() as conn:
        accounts.authenticate_userpass(conn, account, username, password)
        info = accounts.get_account(conn, account)
        if info["status"] != "active":
            raise Unauthenticated(f"account {account!r} is {info['status']}")
        return accounts.add_token(
            conn,
            account,
            identity=username,
            lifetime=timedelta(seconds=lake.settings.token_lifetime),
        )


def logout(lake: Lake, token: str) -> None:
    """Revoke an opaque token: it authenticates nothing from now on, in this server at once
    (its cache entry goes), in others within ``token_cache_seconds``. A JWT is its issuer's:
    it is only forgotten here."""
    if not looks_like_jwt(token):
        with lake.write() as conn:
            accounts.delete_token(conn, token)
    lake.forget_token(token)


def authenticate(lake: Lake, token: str) -> Principal:
    """The principal a token stands for; validated tokens are cached for a few seconds (a JWT no
    longer than its ``exp``)."""
    cached = lake.cached_principal(token)
    if cached is not None:
        return cached
    if looks_like_jwt(token):
        principal, expires_at = _authenticate_jwt(lake, token)
    else:
        with lake.read() as conn:
            account, expires_at = accounts.validate_token(conn, token)
            info = accounts.get_account(conn, account)
        principal = Principal(account=account, admin=info["admin"])
    lake.cache_principal(token, principal, expires_at)
    return principal


def _authenticate_jwt(lake: Lake, token: str) -> tuple[Principal, datetime]:
    verified = lake.oidc().verify(token)
    claimed = verified.claimed_account
    with lake.read() as conn:
        info = accounts.find_oidc_account(
            conn,
            verified.subject,
            verified.issuer,
            claimed=_valid_account(claimed) if claimed is not None else None,
        )
    if info is None:
        raise Unauthenticated(_no_account(verified))
    if info["status"] != "active":
        raise Unauthenticated(f"account {info['account']!r} is {info['status']}")
    principal = Principal(
        account=info["account"],
        admin=info["admin"] or verified.admin,
        storage_scopes=verified.storage_scopes,
    )
    return principal, verified.expires_at


def _valid_account(name: str) -> str | None:
    try:
        return validate_account(name)
    except InvalidName:
        return None


def _no_account(verified: VerifiedToken) -> str:
    identity = accounts.oidc_identity(verified.subject, verified.issuer)
    claim = verified.account_claim
    named = (
        f"its {claim!r} claim names no account"
        if verified.claimed_account is not None
        else f"it has no {claim!r} claim"
    )
    return (
        f"the JWT is genuine but maps to no Lacus account: identity {identity[:120]!r} is not "
        f"mapped to an account and {named}"
    )


def token_expiry(lake: Lake, token: str) -> tuple[datetime, int]:
    """When the token expires, and how many whole seconds it has left."""
    if looks_like_jwt(token):
        expires_at = lake.oidc().verify(token).expires_at
    else:
        with lake.read() as conn:
            expires_at = accounts.validate_token(conn, token)[1]
    return expires_at, max(0, int((expires_at - utcnow()).total_seconds()))


TOKEN_ID_LENGTH = 16
"""Hex digits of a token's id: the start of its SHA-256, never the token itself."""


def token_id(token: str) -> str:
    """The id a token is listed and revoked by (the secret cannot be derived from it)."""
    return hashlib.sha256(token.encode()).hexdigest()[:TOKEN_ID_LENGTH]


def list_tokens(lake: Lake, principal: Principal, *, presented: str) -> list[dict[str, Any]]:
    """The principal's account's tokens not yet expired, oldest first: id, account, identity,
    created_at, expires_at, ``current`` (the one presented); never a token's secret."""
    with lake.read() as conn:
        rows = accounts.list_tokens(conn, principal.account)
    return [
        {
            "id": token_id(row.token),
            "account": row.account,
            "identity": row.identity,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "current": row.token == presented,
        }
        for row in rows
    ]


def revoke_token(lake: Lake, principal: Principal, wanted: str) -> None:
    """Revoke the token with id ``wanted`` (``token_id``): one of the principal's account, or
    (admins) of any account. It authenticates nothing from now on: in this process at once,
    in others once their cache entry is ``token_cache_seconds`` old. NotFound: no such token
    (or another account's, for a non-admin)."""
    account = None if principal.admin else principal.account
    with lake.write() as conn:
        found = [row.token for row in accounts.list_tokens(conn, account)]
        matching = [token for token in found if token_id(token) == wanted]
        if not matching:
            raise NotFound(f"no token with id {wanted[:40]!r} of account {principal.account!r}")
        for token in matching:
            accounts.delete_token(conn, token)
    for token in matching:
        lake.forget_token(token)


def still_valid(lake: Lake, token: str) -> bool:
    """Whether ``token`` still authenticates (not expired, not revoked): what open streams ask
    (cached like every check, so at most ``token_cache_seconds`` behind another process)."""
    try:
        authenticate(lake, token)
    except Unauthenticated:
        return False
    return True
