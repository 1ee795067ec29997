"""Expiry: rules past their lifetime (and lifecycle transitions), DIDs past theirs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, or_, select, update
from sqlalchemy.orm import aliased

from lacus.core import events, history, lifecycle, locks, rules
from lacus.core.clock import utcnow
from lacus.core.dids import detach
from lacus.db.engine import is_sqlite
from lacus.db.tables import contents, did_meta, dids, replicas
from lacus.db.tables import rules as rules_table
from lacus.types import DIDType, RuleState

EXPIRED = "expired"
TRANSITION = "transition"
REPLACED = "replaced"
WAITING = "waiting"


def expired_rules(conn: Connection, *, limit: int) -> list[str]:
    """Ids of unlocked rules that can move on now: past their lifetime (and not waiting for a
    child), or replaced by a child that is ``OK`` (claimed with ``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL: for the rest of the caller's transaction)."""
    child = aliased(rules_table)
    child_ok = exists().where(
        child.c.id == rules_table.c.child_rule_id, child.c.state == RuleState.OK.value
    )
    query = (
        select(rules_table.c.id)
        .where(
            rules_table.c.locked.is_(False),
            or_(
                and_(
                    rules_table.c.expires_at < utcnow(),
                    or_(
                        rules_table.c.child_rule_id.is_(None),
                        ~exists().where(child.c.id == rules_table.c.child_rule_id),
                        child_ok,
                    ),
                ),
                and_(rules_table.c.policy.is_(None), child_ok),
            ),
        )
        .order_by(rules_table.c.expires_at)
        .limit(limit)
    )
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True, of=rules_table)
    return list(conn.execute(query).scalars())


def replaced(conn: Connection) -> bool:
    """Is a moved rule's child ``OK`` (the moved rule is due for deletion)?"""
    child = aliased(rules_table)
    return bool(
        conn.execute(
            select(
                exists().where(
                    rules_table.c.policy.is_(None),
                    rules_table.c.locked.is_(False),
                    child.c.id == rules_table.c.child_rule_id,
                    child.c.state == RuleState.OK.value,
                )
            )
        ).scalar()
    )


def expire_rule(conn: Connection, rule_id: str) -> str:
    """Expire one rule: delete it, or start or finish its lifecycle transition."""
    row = conn.execute(select(rules_table).where(rules_table.c.id == rule_id)).first()
    if row is None or row.locked:
        return WAITING
    if row.policy is None and row.child_rule_id is not None:  # moved (``rules.move_rule``)
        child = conn.execute(
            select(rules_table.c.state).where(rules_table.c.id == row.child_rule_id)
        ).first()
        if child is not None and child.state == RuleState.OK:
            rules.delete_rule(conn, rule_id, action=REPLACED)
            return REPLACED
    if row.expires_at is None or row.expires_at >= utcnow():
        return WAITING
    following = lifecycle.next_step(conn, row)
    if following is not None and row.child_rule_id is None:
        child_id = rules.add_rule(
            conn,
            following,
            account=row.account,
            policy=row.policy,
            policy_step=row.policy_step + 1,
        )
        conn.execute(
            update(rules_table).where(rules_table.c.id == rule_id).values(child_rule_id=child_id)
        )
        counts = locks.lock_counts(conn, [rule_id])[rule_id]
        history.record(
            conn,
            [history.Entry(row, "transition", row.state, counts, detail=f"child {child_id}")],
        )
        events.emit(
            conn,
            "qos.transition",
            {
                "phase": "started",
                "policy": row.policy,
                "from_rule": rule_id,
                "from_expression": row.rse_expression,
                "to_rule": child_id,
                "to_expression": following.rse_expression,
                "step": row.policy_step + 1,
            },
            scope=row.scope,
            name=row.name,
        )
        return TRANSITION
    if row.child_rule_id is not None:
        child = conn.execute(
            select(rules_table).where(rules_table.c.id == row.child_rule_id)
        ).first()
        if child is not None and child.state != RuleState.OK:
            return WAITING
        if child is not None and row.policy is not None:
            events.emit(
                conn,
                "qos.transition",
                {
                    "phase": "done",
                    "policy": row.policy,
                    "from_rule": rule_id,
                    "from_expression": row.rse_expression,
                    "to_rule": child.id,
                    "to_expression": child.rse_expression,
                    "step": child.policy_step,
                },
                scope=row.scope,
                name=row.name,
            )
    rules.delete_rule(conn, rule_id, action=EXPIRED)
    return EXPIRED


def expired_dids(conn: Connection, *, limit: int) -> list[tuple[str, str]]:
    query = (
        select(dids.c.scope, dids.c.name)
        .where(dids.c.expired_at < utcnow())
        .order_by(dids.c.expired_at)
        .limit(limit)
    )
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True)
    return [(row.scope, row.name) for row in conn.execute(query)]


def expire_did(conn: Connection, scope: str, name: str) -> bool:
    """Remove an expired DID: its rules go (replicas tombstoned), it leaves its parents; a
    collection is deleted, a file's replicas are tombstoned for deletion (the reaper deletes the
    file once they are gone). Returns False when there was nothing to do."""
    row = conn.execute(select(dids).where(dids.c.scope == scope, dids.c.name == name)).first()
    if row is None or row.expired_at is None or row.expired_at >= utcnow():
        return False
    for rule_id in conn.execute(
        select(rules_table.c.id).where(rules_table.c.scope == scope, rules_table.c.name == name)
    ).scalars():
        rules.delete_rule(conn, rule_id, ignore_lock=True, action=EXPIRED)
    parents = conn.execute(
        select(contents.c.scope, contents.c.name).where(
            contents.c.child_scope == scope, contents.c.child_name == name
        )
    ).all()
    for parent in parents:
        detach(conn, parent.scope, parent.name, [(scope, name)])
    if row.did_type == DIDType.FILE:
        conn.execute(
            update(replicas)
            .where(
                replicas.c.scope == scope,
                replicas.c.name == name,
                or_(replicas.c.tombstone.is_(None), replicas.c.tombstone > locks.EPOCH),
            )
            .values(tombstone=locks.EPOCH)
        )
        forget_file_if_gone(conn, scope, name)
    else:
        children = conn.execute(
            select(contents.c.child_scope, contents.c.child_name).where(
                contents.c.scope == scope, contents.c.name == name
            )
        ).all()
        if children:
            detach(conn, scope, name, [(c.child_scope, c.child_name) for c in children])
        conn.execute(delete(did_meta).where(did_meta.c.scope == scope, did_meta.c.name == name))
        conn.execute(delete(dids).where(dids.c.scope == scope, dids.c.name == name))
    events.emit(conn, "did.expired", {"did_type": row.did_type}, scope=scope, name=name)
    return True


def forget_file_if_gone(conn: Connection, scope: str, name: str) -> None:
    """Delete an expired file DID that has no replica left."""
    conn.execute(
        delete(did_meta).where(
            did_meta.c.scope == scope,
            did_meta.c.name == name,
            ~exists().where(and_(replicas.c.scope == scope, replicas.c.name == name)),
            exists().where(
                dids.c.scope == scope, dids.c.name == name, dids.c.expired_at < utcnow()
            ),
        )
    )
    conn.execute(
        delete(dids).where(
            dids.c.scope == scope,
            dids.c.name == name,
            dids.c.expired_at < utcnow(),
            ~exists().where(and_(replicas.c.scope == scope, replicas.c.name == name)),
            ~exists().where(and_(contents.c.child_scope == scope, contents.c.child_name == name)),
        )
    )


def set_lifetime(conn: Connection, scope: str, name: str, lifetime: int | None) -> Any:
    """Give a DID a lifetime in seconds from now (None: keep it forever)."""
    expired_at = None if lifetime is None else utcnow() + timedelta(seconds=lifetime)
    conn.execute(
        update(dids).where(dids.c.scope == scope, dids.c.name == name).values(expired_at=expired_at)
    )
    return expired_at
