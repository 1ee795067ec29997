"""Lifecycle policies: a chain of rule steps, e.g. 2 copies on DISK for 30 days, then 1 on TAPE.

Applying a policy to a DID adds the first step's rule. When a step's rule expires, the rule
expirer adds the next step's rule (its child) and removes the expiring rule only once the child
is ``ok``: the data is never less protected than either step asks.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from lacus.core.clock import utcnow
from lacus.db.tables import lifecycle_policies
from lacus.errors import AlreadyExists, InvalidInput, PolicyNotFound
from lacus.naming import validate_name
from lacus.types import RuleGrouping, RuleSpec

STEP_KEYS = {"copies", "rse_expression", "qos", "lifetime", "grouping", "purge_replicas"}


def normalise_step(step: dict[str, Any], *, last: bool) -> dict[str, Any]:
    """Check one step: copies, rse_expression or qos, lifetime (seconds; only the last step may
    keep its copies forever), grouping, purge_replicas."""
    unknown = sorted(set(step) - STEP_KEYS)
    if unknown:
        raise InvalidInput(f"a policy step takes {', '.join(sorted(STEP_KEYS))}, not {unknown}")
    if ("qos" in step) == ("rse_expression" in step):
        raise InvalidInput("a policy step names either an rse_expression or a qos class")
    expression = step.get("rse_expression") or f"qos={step['qos']}"
    copies = step.get("copies", 1)
    lifetime = step.get("lifetime")
    if not isinstance(copies, int) or copies < 1:
        raise InvalidInput("a policy step's copies is a positive integer")
    if lifetime is not None and (not isinstance(lifetime, int) or lifetime <= 0):
        raise InvalidInput("a policy step's lifetime is a positive number of seconds")
    if lifetime is None and not last:
        raise InvalidInput("only the last step of a policy may have no lifetime")
    grouping = RuleGrouping(str(step.get("grouping", "dataset")).lower())
    return {
        "copies": copies,
        "rse_expression": expression,
        "lifetime": lifetime,
        "grouping": grouping.value,
        "purge_replicas": bool(step.get("purge_replicas", False)),
    }


def add_policy(
    conn: Connection,
    name: str,
    steps: list[dict[str, Any]],
    *,
    account: str,
    comment: str | None = None,
) -> None:
    validate_name(name)
    if not steps:
        raise InvalidInput("a policy has at least one step")
    normal = [normalise_step(step, last=i == len(steps) - 1) for i, step in enumerate(steps)]
    if conn.execute(
        select(lifecycle_policies.c.name).where(lifecycle_policies.c.name == name)
    ).first():
        raise AlreadyExists(f"policy {name!r} exists already")
    conn.execute(
        insert(lifecycle_policies).values(
            name=name,
            account=account,
            steps=orjson.dumps(normal).decode(),
            comments=comment,
            created_at=utcnow(),
        )
    )


def get_policy(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(select(lifecycle_policies).where(lifecycle_policies.c.name == name)).first()
    if row is None:
        raise PolicyNotFound(f"lifecycle policy {name!r} does not exist")
    return _info(row)


def list_policies(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(lifecycle_policies).order_by(lifecycle_policies.c.name))
    return [_info(row) for row in rows]


def _info(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "account": row.account,
        "steps": orjson.loads(row.steps),
        "comments": row.comments,
        "created_at": row.created_at,
    }


def step_spec(scope: str, name: str, step: dict[str, Any]) -> RuleSpec:
    return RuleSpec(
        scope=scope,
        name=name,
        rse_expression=step["rse_expression"],
        copies=step["copies"],
        lifetime=step["lifetime"],
        grouping=RuleGrouping(step["grouping"]),
        purge_replicas=step["purge_replicas"],
    )


def next_step(conn: Connection, rule: Any) -> RuleSpec | None:
    """The spec of the step after ``rule``'s in its policy (None: no policy or last step)."""
    if rule.policy is None or rule.policy_step is None:
        return None
    try:
        steps = get_policy(conn, rule.policy)["steps"]
    except PolicyNotFound:
        return None
    following = rule.policy_step + 1
    if following >= len(steps):
        return None
    return step_spec(rule.scope, rule.name, steps[following])
