"""Account use cases."""

from __future__ import annotations

from lacus.core import accounts
from lacus.service.lake import Lake, Principal
from lacus.types import AccountInfo, AccountType


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
    principal.require_admin("add accounts")
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
