"""Accounts, their identities (user/password, OIDC), and the tokens they authenticate with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from lacus.core.clock import utcnow
from lacus.db.tables import accounts, identities, tokens
from lacus.errors import (
    AccountAlreadyExists,
    AccountNotFound,
    AlreadyExists,
    InvalidInput,
    Unauthenticated,
)
from lacus.naming import validate_account
from lacus.types import AccountInfo, AccountType, IdentityType

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_IDENTITY = 255  # length of identities.identity


def hash_password(password: str) -> str:
    """Return a self-describing scrypt hash of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            dklen=32,
            n=int(n),
            r=int(r),
            p=int(p),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def add_account(
    conn: Connection,
    account: str,
    *,
    account_type: AccountType = AccountType.USER,
    email: str | None = None,
    admin: bool = False,
) -> None:
    validate_account(account)
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(accounts).values(
                    account=account,
                    account_type=account_type.value,
                    status="active",
                    email=email,
                    admin=admin,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise AccountAlreadyExists(f"account {account!r} exists already") from None


def _account_info(row: Any) -> AccountInfo:
    return AccountInfo(
        account=row.account,
        account_type=row.account_type,
        status=row.status,
        email=row.email,
        admin=bool(row.admin),
        created_at=row.created_at,
    )


def find_account(conn: Connection, account: str) -> AccountInfo | None:
    row = conn.execute(select(accounts).where(accounts.c.account == account)).first()
    return _account_info(row) if row is not None else None


def get_account(conn: Connection, account: str) -> AccountInfo:
    info = find_account(conn, account)
    if info is None:
        raise AccountNotFound(f"account {account!r} does not exist")
    return info


def list_accounts(conn: Connection) -> list[AccountInfo]:
    rows = conn.execute(select(accounts).order_by(accounts.c.account))
    return [_account_info(row) for row in rows]


def add_userpass(conn: Connection, account: str, username: str, password: str) -> None:
    """Let ``username``/``password`` authenticate as ``account``."""
    get_account(conn, account)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(identities).values(
                    identity=username,
                    identity_type=IdentityType.USERPASS.value,
                    account=account,
                    password_hash=hash_password(password),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise AlreadyExists(f"identity {username!r} exists already") from None


def authenticate_userpass(conn: Connection, account: str, username: str, password: str) -> None:
    """Raise Unauthenticated unless the credentials are valid for ``account``."""
    row = conn.execute(
        select(identities.c.account, identities.c.password_hash).where(
            identities.c.identity == username,
            identities.c.identity_type == IdentityType.USERPASS.value,
        )
    ).first()
    if row is None or row.account != account or not check_password(password, row.password_hash):
        raise Unauthenticated(f"cannot authenticate {username!r} as account {account!r}")


def oidc_identity(subject: str, issuer: str) -> str:
    """The identity string of an OIDC subject: ``sub@iss``."""
    return f"{subject}@{issuer}"


def add_oidc_identity(conn: Connection, account: str, subject: str, issuer: str) -> None:
    """Let JWTs of ``issuer`` whose ``sub`` is ``subject`` authenticate as ``account``."""
    if not subject or not issuer or "\x00" in subject + issuer:
        raise InvalidInput("an OIDC identity needs both a subject and an issuer")
    identity = oidc_identity(subject, issuer)
    if len(identity) > MAX_IDENTITY:
        raise InvalidInput(f"the OIDC identity {identity[:60]!r}... exceeds {MAX_IDENTITY} chars")
    get_account(conn, account)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(identities).values(
                    identity=identity,
                    identity_type=IdentityType.OIDC.value,
                    account=account,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise AlreadyExists(f"identity {identity!r} is mapped already") from None


def find_oidc_account(
    conn: Connection, subject: str, issuer: str, *, claimed: str | None = None
) -> AccountInfo | None:
    """The account of the OIDC identity ``subject``@``issuer``: the one it is mapped to, else the
    account named ``claimed`` (by the token's account claim), else None. One query."""
    identity = oidc_identity(subject, issuer)
    wanted: ColumnElement[Any] | str | None = claimed
    if len(identity) <= MAX_IDENTITY and "\x00" not in identity:  # else it was never added
        mapped = (
            select(identities.c.account)
            .where(
                identities.c.identity == identity,
                identities.c.identity_type == IdentityType.OIDC.value,
            )
            .scalar_subquery()
        )
        wanted = func.coalesce(mapped, claimed)
    if wanted is None:
        return None
    row = conn.execute(select(accounts).where(accounts.c.account == wanted)).first()
    return _account_info(row) if row is not None else None


def add_token(
    conn: Connection, account: str, *, identity: str, lifetime: timedelta
) -> tuple[str, datetime]:
    """Issue a new opaque token for ``account``; return it with its expiry."""
    now = utcnow()
    token = f"{account}-{secrets.token_urlsafe(32)}"
    expires_at = now + lifetime
    conn.execute(
        insert(tokens).values(
            token=token, account=account, identity=identity, expires_at=expires_at, created_at=now
        )
    )
    conn.execute(delete(tokens).where(tokens.c.expires_at < now))
    return token, expires_at


def delete_token(conn: Connection, token: str) -> bool:
    """Revoke a token (a logout); whether it existed."""
    return bool(conn.execute(delete(tokens).where(tokens.c.token == token)).rowcount)


def list_tokens(conn: Connection, account: str | None = None) -> list[Any]:
    """The tokens not yet expired (of ``account``, or every account's), oldest first: rows with
    ``token``, ``account``, ``identity``, ``created_at``, ``expires_at``."""
    query = select(tokens).where(tokens.c.expires_at > utcnow())
    if account is not None:
        query = query.where(tokens.c.account == account)
    return list(conn.execute(query.order_by(tokens.c.created_at, tokens.c.token)))


def validate_token(conn: Connection, token: str) -> tuple[str, datetime]:
    """Return (account, expiry) of a valid token, else raise Unauthenticated."""
    row = conn.execute(
        select(tokens.c.account, tokens.c.expires_at).where(tokens.c.token == token)
    ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthenticated("the token is unknown or has expired: log in again")
    return row.account, row.expires_at
