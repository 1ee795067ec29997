"""Lifecycle policy use cases: admins define policies; anyone may read them."""

from __future__ import annotations

from typing import Any

from lacus.core import lifecycle
from lacus.service.lake import Lake, Principal


def add_policy(
    lake: Lake,
    principal: Principal,
    name: str,
    steps: list[dict[str, Any]],
    *,
    comment: str | None = None,
) -> None:
    with lake.write() as conn:
        lifecycle.add_policy(conn, name, steps, account=principal.account, comment=comment)


def get_policy(lake: Lake, principal: Principal, name: str) -> dict[str, Any]:
    with lake.read() as conn:
        return lifecycle.get_policy(conn, name)


def list_policies(lake: Lake, principal: Principal) -> list[dict[str, Any]]:
    with lake.read() as conn:
        return lifecycle.list_policies(conn)
