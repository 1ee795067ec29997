"""Rule use cases: an account adds rules for itself (admins for anyone), changes and removes its
own; the evaluator daemon is woken for every change that needs placing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from lacus.core import accounts, dids, history, lifecycle, rules
from lacus.core.dids import get_did
from lacus.core.expressions import resolve
from lacus.core.rses import rse_attribute_map
from lacus.errors import AccessDenied, RuleNotFound, RuleReplaceFailed
from lacus.service.lake import Lake, Principal
from lacus.service.token_scopes import StorageOperation, only_allowed, require_storage_scope
from lacus.types import RuleSpec, RuleState

EVALUATOR = "evaluator"


def add_rules(
    lake: Lake, principal: Principal, specs: list[RuleSpec], *, account: str | None = None
) -> list[str]:
    """Add one rule per spec in one transaction; return their ids."""
    with lake.write() as conn:
        ids = add_rules_in(conn, principal, specs, account=account)
    lake.wake(EVALUATOR)
    return ids


def add_rules_in(
    conn: Connection, principal: Principal, specs: list[RuleSpec], *, account: str | None = None
) -> list[str]:
    """``add_rules`` inside the caller's transaction (the caller wakes the evaluator)."""
    for spec in specs:
        require_storage_scope(principal, StorageOperation.STAGE, spec.scope)
        # a DID the account may not see answers as a missing one (and gets no copies)
        dids.get_did_row_type(conn, spec.scope, spec.name, viewer=principal)
    owner = _owner(conn, principal, account)
    return [rules.add_rule(conn, spec, account=owner) for spec in specs]


def _owner(conn: Connection, principal: Principal, account: str | None) -> str:
    owner = account or principal.account
    if owner != principal.account and not principal.admin:
        raise AccessDenied(f"account {principal.account!r} may not add rules for {owner!r}")
    accounts.get_account(conn, owner)  # AccountNotFound, not a foreign-key violation
    return owner


def apply_policy(
    lake: Lake,
    principal: Principal,
    scope: str,
    name: str,
    policy: str,
    *,
    account: str | None = None,
) -> str:
    """Start a lifecycle policy on a DID: add its first step's rule."""
    require_storage_scope(principal, StorageOperation.STAGE, scope)
    with lake.write() as conn:
        owner = _owner(conn, principal, account)
        steps = lifecycle.get_policy(conn, policy)["steps"]
        spec = lifecycle.step_spec(scope, name, steps[0])
        rule_id = rules.add_rule(conn, spec, account=owner, policy=policy, policy_step=0)
    lake.wake(EVALUATOR)
    return rule_id


def get_rule(lake: Lake, principal: Principal, rule_id: str) -> dict[str, Any]:
    with lake.read() as conn:
        rule = rules.get_rule(conn, rule_id, viewer=principal)
    require_storage_scope(principal, StorageOperation.STAT, rule["scope"])
    return rule


def list_rules(
    lake: Lake,
    principal: Principal,
    *,
    scope: str | None = None,
    name: str | None = None,
    account: str | None = None,
    state: str | None = None,
    subscription_id: str | None = None,
    rule_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    with lake.read() as conn:
        found = rules.list_rules(
            conn,
            scope=scope,
            name=name,
            account=account,
            state=state,
            subscription_id=subscription_id,
            rule_ids=rule_ids,
            viewer=principal,
        )
    return only_allowed(principal, StorageOperation.STAT, found, lambda rule: rule["scope"])


def _own(conn: Connection, principal: Principal, rule_id: str, action: str) -> dict[str, Any]:
    rule = rules.get_rule(conn, rule_id, viewer=principal)
    require_storage_scope(principal, StorageOperation.STAGE, rule["scope"])
    if rule["account"] != principal.account and not principal.admin:
        raise AccessDenied(
            f"rule {rule_id} belongs to {rule['account']!r}: only its owner or an admin may "
            f"{action} it"
        )
    return rule


def delete_rule(
    lake: Lake, principal: Principal, rule_id: str, *, purge_replicas: bool | None = None
) -> None:

    def remove(conn: Connection) -> None:
        _own(conn, principal, rule_id, "remove")
        rules.delete_rule(conn, rule_id, purge_replicas=purge_replicas)

    lake.write_retrying(remove)  # the conveyor may be finishing this rule's copies meanwhile
    lake.wake("reaper")


def update_rule(
    lake: Lake, principal: Principal, rule_id: str, options: dict[str, Any]
) -> dict[str, Any]:
    if "approve" in options:
        principal.require_admin("approve or deny rules")
    with lake.write() as conn:
        _own(conn, principal, rule_id, "change")
        updated = rules.update_rule(conn, rule_id, options)
    lake.wake(EVALUATOR, "rule-expirer")
    return updated


def move_rule(
    lake: Lake,
    principal: Principal,
    rule_id: str,
    rse_expression: str,
    override: dict[str, Any] | None = None,
) -> str:
    """A rule replaced by one on ``rse_expression`` (``core.rules.move_rule``); the new id."""
    with lake.write() as conn:
        _own(conn, principal, rule_id, "move")
        child_id = rules.move_rule(conn, rule_id, rse_expression, override)
    lake.wake(EVALUATOR)
    return child_id


def reduce_rule(
    lake: Lake,
    principal: Principal,
    rule_id: str,
    copies: int,
    exclude_expression: str | None = None,
) -> str:
    """Replace an OK rule by one with fewer ``copies`` (on its expression minus
    ``exclude_expression``), Rucio's ``reduce_replication_rule``: in one transaction the rule
    goes, the new one is placed at once on replicas that are there — and if it would need a
    transfer, nothing happens (RuleReplaceFailed). The copies no rule keeps any more get
    tombstones. Returns the new rule's id."""
    from lacus.core.evaluation import evaluate_rule  # evaluation imports this module's core

    with lake.write() as conn:
        _own(conn, principal, rule_id, "reduce")
        row, spec = rules.reduced_spec(conn, rule_id, copies, exclude_expression)
        rules.delete_rule(conn, rule_id, action="reduced")
        child_id = rules.add_rule(conn, spec, account=row.account)
        outcome = evaluate_rule(conn, child_id)
        if outcome is None or outcome.state != RuleState.OK:
            raise RuleReplaceFailed(
                f"rule {rule_id} cannot be reduced to {copies} cop{'y' if copies == 1 else 'ies'}"
                f" on {spec.rse_expression!r} without new transfers"
            )
    lake.wake("reaper")
    return child_id


def rule_history(lake: Lake, principal: Principal, rule_id: str) -> list[dict[str, Any]]:
    """Everything that happened to a rule (also after it is gone, for its owner and admins)."""
    with lake.read() as conn:
        entries = history.rule_entries(conn, rule_id)
        if not entries:
            raise RuleNotFound(f"rule {rule_id} has no history")
        require_storage_scope(principal, StorageOperation.STAT, entries[0]["scope"])
        if entries[0]["account"] != principal.account and not principal.admin:
            try:
                rules.get_rule(conn, rule_id, viewer=principal)  # visible DID: readable
            except RuleNotFound:  # hidden or gone: as a rule that never was
                raise RuleNotFound(f"rule {rule_id} has no history") from None
        return entries


def did_rule_history(
    lake: Lake, principal: Principal, scope: str, name: str
) -> list[dict[str, Any]]:
    """Creation and removal of every rule ever on a DID (Rucio's DID rule history)."""
    require_storage_scope(principal, StorageOperation.STAT, scope)
    with lake.read() as conn:
        get_did(conn, scope, name, viewer=principal)
        return [
            entry
            for entry in history.did_entries(conn, scope, name)
            if entry["action"] in ("created", "deleted", "expired", "replaced", "denied", "reduced")
        ]


def rule_locks(lake: Lake, principal: Principal, rule_id: str) -> list[dict[str, Any]]:
    with lake.read() as conn:
        rule = rules.get_rule(conn, rule_id, viewer=principal)
        require_storage_scope(principal, StorageOperation.STAT, rule["scope"])
        return rules.lock_details(conn, rule_id)


def resolve_expression(lake: Lake, principal: Principal, expression: str) -> list[str]:
    """The names of the RSEs an expression selects (InvalidRSEExpression when none)."""
    with lake.read() as conn:
        return resolve(expression, rse_attribute_map(conn))
