"""Authentication: user/password logins issue tokens; tokens authenticate requests (cached)."""

from __future__ import annotations

from datetime import datetime, timedelta

from lacus.core import accounts
from lacus.core.clock import utcnow
from lacus.errors import Unauthenticated
from lacus.service.lake import Lake, Principal


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


def authenticate(lake: Lake, token: str) -> Principal:
    """The principal a token stands for; validated tokens are cached for a few seconds."""
    cached = lake.cached_principal(token)
    if cached is not None:
        return cached
    with lake.read() as conn:
        account, expires_at = accounts.validate_token(conn, token)
        info = accounts.get_account(conn, account)
    principal = Principal(account=account, admin=info["admin"])
    lake.cache_principal(token, principal, expires_at)
    return principal


def token_expiry(lake: Lake, token: str) -> tuple[datetime, int]:
    """When the token expires, and how many whole seconds it has left."""
    with lake.read() as conn:
        expires_at = accounts.validate_token(conn, token)[1]
    return expires_at, max(0, int((expires_at - utcnow()).total_seconds()))
