"""Rule use cases: an account adds rules for itself (admins for anyone) and removes its own."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from lacus.core import accounts, rules
from lacus.core.expressions import resolve
from lacus.core.rses import rse_attribute_map
from lacus.errors import AccessDenied
from lacus.service.lake import Lake, Principal
from lacus.types import RuleSpec


def add_rules(
    lake: Lake, principal: Principal, specs: list[RuleSpec], *, account: str | None = None
) -> list[str]:
    """Add one rule per spec in one transaction; return their ids."""
    with lake.write() as conn:
        return add_rules_in(conn, principal, specs, account=account)


def add_rules_in(
    conn: Connection, principal: Principal, specs: list[RuleSpec], *, account: str | None = None
) -> list[str]:
    """``add_rules`` inside the caller's transaction."""
    owner = account or principal.account
    if owner != principal.account and not principal.admin:
        raise AccessDenied(f"account {principal.account!r} may not add rules for {owner!r}")
    accounts.get_account(conn, owner)  # AccountNotFound, not a foreign-key violation
    return [rules.add_rule(conn, spec, account=owner) for spec in specs]


def get_rule(lake: Lake, principal: Principal, rule_id: str) -> dict[str, Any]:
    with lake.read() as conn:
        return rules.get_rule(conn, rule_id, viewer=principal)


def list_rules(
    lake: Lake,
    principal: Principal,
    *,
    scope: str | None = None,
    name: str | None = None,
    account: str | None = None,
    state: str | None = None,
) -> list[dict[str, Any]]:
    with lake.read() as conn:
        return rules.list_rules(
            conn, scope=scope, name=name, account=account, state=state, viewer=principal
        )


def delete_rule(lake: Lake, principal: Principal, rule_id: str) -> None:
    with lake.write() as conn:
        rule = rules.get_rule(conn, rule_id)
        if rule["account"] != principal.account and not principal.admin:
            raise AccessDenied(
                f"rule {rule_id} belongs to {rule['account']!r}: only its owner or an admin "
                "may remove it"
            )
        rules.delete_rule(conn, rule_id)


def resolve_expression(lake: Lake, principal: Principal, expression: str) -> list[str]:
    """The names of the RSEs an expression selects (InvalidRSEExpression when none)."""
    with lake.read() as conn:
        return resolve(expression, rse_attribute_map(conn))
