"""Account use cases."""

from __future__ import annotations

from lacus.core import accounts
from lacus.errors import InvalidInput
from lacus.service.lake import Lake, Principal
from lacus.types import AccountInfo, AccountType, IdentityType


def add_account(
    lake: Lake,
    principal: Principal,
    account: str,
    *,
    account_type: AccountType = AccountType.USER,
    email: str | None = None,
    admin: bool = False,
    password: str | None = None,
) -> None:
    with lake.write() as conn:
        accounts.add_account(conn, account, account_type=account_type, email=email, admin=admin)
        if password is not None:
            accounts.add_userpass(conn, account, account, password)


def get_account(lake: Lake, principal: Principal, account: str) -> AccountInfo:
    with lake.read() as conn:
        return accounts.get_account(conn, account)


def list_accounts(lake: Lake, principal: Principal) -> list[AccountInfo]:
    with lake.read() as conn:
        return accounts.list_accounts(conn)


def add_identity(
    lake: Lake,
    principal: Principal,
    account: str,
    *,
    kind: IdentityType,
    identity: str,
    issuer: str | None = None,
) -> None:
    """Let an external identity authenticate as ``account`` (admins only).

    For ``IdentityType.OIDC``, ``identity`` is the JWT's ``sub`` and ``issuer`` its ``iss``.
    User/password identities come with their password through ``add_account``.
    """
    if kind is not IdentityType.OIDC:
        raise InvalidInput(
            f"cannot add a {kind.value} identity here: only oidc (add passwords with the account)"
        )
    if not issuer:
        raise InvalidInput("an OIDC identity needs the issuer ('iss') of its tokens")
    with lake.write() as conn:
        accounts.add_oidc_identity(conn, account, identity, issuer)
