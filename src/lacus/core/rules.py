"""Replication rules: recorded, listed, deleted; their satisfaction measured against replicas.

Until the rule engine (evaluator, transfers) exists, a rule's lock counts are measured when it is
read: a file counts as locked ``ok`` on each selected RSE holding an available replica, up to
``copies``; the rest are ``replicating``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, select

from lacus.core.clock import utcnow
from lacus.core.dids import files_query, find_did, get_did_row_type
from lacus.core.expressions import resolve
from lacus.core.rses import rse_attribute_map
from lacus.core.visibility import visible
from lacus.db.tables import dids, replicas, rses, rules
from lacus.errors import DuplicateRule, InvalidInput, RuleNotFound, UnsupportedOperation
from lacus.types import ReplicaState, RuleSpec, RuleState, Viewer

MAX_COPIES = 100


def add_rule(conn: Connection, spec: RuleSpec, *, account: str) -> str:
    """Record a rule; return its id (32 hex digits, a UUID)."""
    did_type = get_did_row_type(conn, spec.scope, spec.name)
    selected = resolve(spec.rse_expression, rse_attribute_map(conn))
    if not 1 <= spec.copies <= MAX_COPIES:
        raise InvalidInput(f"copies must be between 1 and {MAX_COPIES}")
    if spec.copies > len(selected):
        raise InvalidInput(
            f"{spec.copies} copies asked but {spec.rse_expression!r} selects only "
            f"{len(selected)} RSE(s): {', '.join(selected)}"
        )
    if spec.lifetime is not None and spec.lifetime <= 0:
        raise InvalidInput("a rule's lifetime is a positive number of seconds")
    duplicate = conn.execute(
        select(rules.c.id).where(
            rules.c.scope == spec.scope,
            rules.c.name == spec.name,
            rules.c.account == account,
            rules.c.rse_expression == spec.rse_expression,
        )
    ).first()
    if duplicate is not None:
        raise DuplicateRule(
            f"account {account!r} has rule {duplicate.id} on {spec.scope}:{spec.name} "
            f"for {spec.rse_expression!r} already"
        )
    now = utcnow()
    rule_id = uuid.uuid4().hex
    conn.execute(
        insert(rules).values(
            id=rule_id,
            account=account,
            scope=spec.scope,
            name=spec.name,
            did_type=did_type,
            rse_expression=spec.rse_expression,
            copies=spec.copies,
            grouping=spec.grouping.value,
            weight=spec.weight,
            locked=spec.locked,
            purge_replicas=spec.purge_replicas,
            source_replica_expression=spec.source_replica_expression,
            activity=spec.activity,
            priority=spec.priority,
            notification=spec.notification.value,
            comments=spec.comment,
            state=RuleState.REPLICATING.value,
            error=None,
            ignore_availability=spec.ignore_availability,
            ignore_account_limit=spec.ignore_account_limit,
            expires_at=now + timedelta(seconds=spec.lifetime) if spec.lifetime else None,
            created_at=now,
            updated_at=now,
        )
    )
    return rule_id


def _row(conn: Connection, rule_id: str) -> Any:
    row = conn.execute(select(rules).where(rules.c.id == rule_id)).first()
    if row is None:
        raise RuleNotFound(f"rule {rule_id} does not exist")
    return row


def get_rule(conn: Connection, rule_id: str, *, viewer: Viewer | None = None) -> dict[str, Any]:
    row = _row(conn, rule_id)
    if viewer is not None and find_did(conn, row.scope, row.name, viewer=viewer) is None:
        raise RuleNotFound(f"rule {rule_id} does not exist")
    return describe(conn, row)


def list_rules(
    conn: Connection,
    *,
    scope: str | None = None,
    name: str | None = None,
    account: str | None = None,
    state: str | None = None,
    limit: int = 10_000,
    viewer: Viewer | None = None,
) -> list[dict[str, Any]]:
    """Rules matching the filters, on DIDs ``viewer`` may see."""
    query = (
        select(rules)
        .join(dids, and_(dids.c.scope == rules.c.scope, dids.c.name == rules.c.name))
        .where(visible(viewer))
        .order_by(rules.c.created_at, rules.c.id)
        .limit(limit)
    )
    for column, value in (("scope", scope), ("name", name), ("account", account), ("state", state)):
        if value is not None:
            query = query.where(rules.c[column] == value)
    return [describe(conn, row) for row in conn.execute(query)]


def delete_rule(conn: Connection, rule_id: str) -> dict[str, Any]:
    row = _row(conn, rule_id)
    if row.locked:
        raise UnsupportedOperation(f"rule {rule_id} is locked: unlock it before deleting it")
    conn.execute(delete(rules).where(rules.c.id == rule_id))
    return _plain(row)


def describe(conn: Connection, row: Any) -> dict[str, Any]:
    """The rule as stored, plus its measured lock counts, state and total bytes."""
    info = _plain(row)
    selected = resolve_ids(conn, row.rse_expression)
    files = files_query(row.scope, row.name, row.did_type).subquery()
    holders = (
        select(
            files.c.scope,
            files.c.name,
            files.c.bytes,
            func.count(replicas.c.rse_id).label("copies"),
        )
        .select_from(
            files.outerjoin(
                replicas,
                and_(
                    replicas.c.scope == files.c.scope,
                    replicas.c.name == files.c.name,
                    replicas.c.state == ReplicaState.AVAILABLE.value,
                    replicas.c.rse_id.in_(selected),
                ),
            )
        )
        .group_by(files.c.scope, files.c.name, files.c.bytes)
        .subquery()
    )
    capped = case((holders.c.copies >= row.copies, row.copies), else_=holders.c.copies)
    totals = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(holders.c.bytes), 0),
            func.coalesce(func.sum(capped), 0),
        )
    ).one()
    file_count, total_bytes, ok = int(totals[0]), int(totals[1]), int(totals[2])
    replicating = file_count * row.copies - ok
    info["locks_ok_cnt"] = ok
    info["locks_replicating_cnt"] = replicating
    info["locks_stuck_cnt"] = 0
    info["bytes"] = total_bytes
    info["state"] = RuleState.OK.value if replicating == 0 else row.state
    return info


def _plain(row: Any) -> dict[str, Any]:
    # Column names are SQLAlchemy ``quoted_name`` objects: make them plain strings.
    return {str(key): value for key, value in row._mapping.items()}


def resolve_ids(conn: Connection, expression: str) -> list[int]:
    names = resolve(expression, rse_attribute_map(conn))
    return list(conn.execute(select(rses.c.id).where(rses.c.rse.in_(names))).scalars())
