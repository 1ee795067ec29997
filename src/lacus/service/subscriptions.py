"""Subscription use cases: accounts manage their own subscriptions (admins anyone's)."""

from __future__ import annotations

from typing import Any

from lacus.core import rules, subscriptions
from lacus.errors import AccessDenied
from lacus.service.lake import Lake, Principal
from lacus.service.token_scopes import EVERY_SCOPE, StorageOperation, may


def _may_subscribe(principal: Principal) -> None:
    """A subscription makes rules in any scope its filter matches, now and later: a token limited
    to storage scopes needs to stage in every scope (storage.stage:/ or storage.modify:/)."""
    if not may(principal, StorageOperation.STAGE, EVERY_SCOPE):
        raise AccessDenied(
            f"this token of account {principal.account!r} may not add or change subscriptions: "
            "they make rules in any scope their filter matches, and that needs storage.stage:/ "
            "or storage.modify:/"
        )


def add_subscription(
    lake: Lake,
    principal: Principal,
    account: str,
    name: str,
    *,
    filter: Any,
    replication_rules: Any,
    comments: str | None = None,
    lifetime_days: int | None = None,
    retroactive: bool = False,
    priority: int = 3,
) -> str:
    _may_subscribe(principal)
    with lake.write() as conn:
        subscription_id = subscriptions.add_subscription(
            conn,
            account,
            name,
            filter=filter,
            replication_rules=replication_rules,
            comments=comments,
            lifetime_days=lifetime_days,
            retroactive=retroactive,
            priority=priority,
        )
    lake.wake("transmogrifier")
    return subscription_id


def update_subscription(
    lake: Lake, principal: Principal, account: str, name: str, options: dict[str, Any]
) -> None:
    _may_subscribe(principal)
    with lake.write() as conn:
        subscriptions.update_subscription(conn, account, name, options)


def list_subscriptions(
    lake: Lake, principal: Principal, *, account: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    with lake.read() as conn:
        return subscriptions.list_subscriptions(conn, account=account, name=name)


def get_subscription(lake: Lake, principal: Principal, account: str, name: str) -> dict[str, Any]:
    with lake.read() as conn:
        return subscriptions.get_subscription(conn, account, name)


def get_subscription_by_id(
    lake: Lake, principal: Principal, subscription_id: str
) -> dict[str, Any]:
    with lake.read() as conn:
        return subscriptions.get_subscription_by_id(conn, subscription_id)


def subscription_rules(
    lake: Lake, principal: Principal, account: str, name: str
) -> list[dict[str, Any]]:
    with lake.read() as conn:
        subscription = subscriptions.get_subscription(conn, account, name)
        return rules.list_rules(conn, subscription_id=subscription["id"], viewer=principal)
