"""Replication rules: added, read, updated and deleted here; placed by the evaluator.

Adding a rule checks what can be checked at once (the DID, the expression, enough RSEs, the
account's quota) and queues the rule for the evaluator, which writes its locks and requests.
A rule's lock counts and state come from its locks.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from lacus.core import events, history, locks, queue
from lacus.core.clock import utcnow
from lacus.core.dids import find_did, get_did_row_type
from lacus.core.expressions import resolve
from lacus.core.quotas import quota_for
from lacus.core.rses import rse_attribute_map
from lacus.core.visibility import visible
from lacus.db.tables import dids, requests, rses, rules
from lacus.db.tables import locks as locks_table
from lacus.errors import (
    DuplicateRule,
    InsufficientAccountLimit,
    InsufficientTargetRSEs,
    InvalidInput,
    RuleNotFound,
    RuleReplaceFailed,
    UnsupportedOperation,
)
from lacus.types import (
    MAX_INT64,
    LockState,
    RuleGrouping,
    RuleNotification,
    RuleSpec,
    RuleState,
    Viewer,
)

MAX_COPIES = 100
MAX_LIFETIME = 100 * 365 * 86400
"""A century, in seconds: longer is a mistake (and would overflow a timestamp)."""
UPDATABLE = (
    "lifetime",
    "locked",
    "comment",
    "priority",
    "copies",
    "activity",
    "state",
    "source_replica_expression",
    "purge_replicas",
    "child_rule_id",
    "boost_rule",
    "approve",
)
MOVE_OVERRIDES = (
    "activity",
    "source_replica_expression",
    "comment",
    "priority",
    "copies",
    "lifetime",
    "locked",
)
"""What a moved rule's successor may change besides its RSE expression (the rest is copied)."""
"""Options ``update_rule`` takes (Rucio's names)."""


def add_rule(
    conn: Connection,
    spec: RuleSpec,
    *,
    account: str,
    policy: str | None = None,
    policy_step: int | None = None,
) -> str:
    """Record a rule and queue it for evaluation; return its id (32 hex digits, a UUID)."""
    did_type = get_did_row_type(conn, spec.scope, spec.name)
    if not 1 <= spec.copies <= MAX_COPIES:
        raise InvalidInput(f"copies must be between 1 and {MAX_COPIES}")
    if spec.lifetime is not None and not 0 < spec.lifetime <= MAX_LIFETIME:
        raise InvalidInput("a rule's lifetime is a positive number of seconds (at most 100 years)")
    if not 0 <= spec.priority <= 5:
        raise InvalidInput("a rule's priority is between 0 and 5")
    attributes = rse_attribute_map(conn)
    selected = resolve(spec.rse_expression, attributes)
    if spec.source_replica_expression:
        resolve(spec.source_replica_expression, attributes)
    if spec.copies > len(selected):
        raise InsufficientTargetRSEs(
            f"{spec.copies} copies asked but {spec.rse_expression!r} selects only "
            f"{len(selected)} RSE(s): {', '.join(selected)}"
        )
    if spec.weight is not None and not any(spec.weight in attributes[rse] for rse in selected):
        raise InvalidInput(
            f"no RSE of {spec.rse_expression!r} has the weight attribute {spec.weight!r}"
        )
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
    if not spec.ignore_account_limit:
        _check_quota(conn, spec, account, selected)
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
            delete_source=spec.delete_source,
            source_replica_expression=spec.source_replica_expression,
            activity=spec.activity,
            priority=spec.priority,
            notification=spec.notification.value,
            comments=spec.comment,
            state=(
                RuleState.WAITING_APPROVAL if spec.ask_approval else RuleState.REPLICATING
            ).value,
            error=None,
            ignore_availability=spec.ignore_availability,
            ignore_account_limit=spec.ignore_account_limit,
            subscription_id=spec.subscription_id,
            policy=policy,
            policy_step=policy_step,
            expires_at=now + timedelta(seconds=spec.lifetime) if spec.lifetime else None,
            created_at=now,
            updated_at=now,
        )
    )
    if not spec.ask_approval:  # a rule waiting for approval is evaluated once approved
        queue.enqueue_rules(conn, [rule_id])
    row = _row(conn, rule_id)
    history.record(conn, [history.Entry(row, "created", row.state, {})])
    events.emit(
        conn,
        "rule.created",
        {
            "rule_id": rule_id,
            "account": account,
            "rse_expression": spec.rse_expression,
            "copies": spec.copies,
            "expires_at": row.expires_at,
            "policy": policy,
            "policy_step": policy_step,
        },
        scope=spec.scope,
        name=spec.name,
    )
    return rule_id


def _check_quota(conn: Connection, spec: RuleSpec, account: str, selected: list[str]) -> None:
    quota = quota_for(conn, account)
    if quota is None:
        return
    size = int(
        conn.execute(
            select(dids.c.bytes).where(dids.c.scope == spec.scope, dids.c.name == spec.name)
        ).scalar()
        or 0
    )
    ids = dict(conn.execute(select(rses.c.rse, rses.c.id).where(rses.c.rse.in_(selected))).all())
    room = [rse for rse in selected if quota.allows(ids[rse], size)]
    if len(room) < spec.copies:
        raise InsufficientAccountLimit(
            f"account {account!r} has quota for {size} bytes on {len(room)} RSE(s) of "
            f"{spec.rse_expression!r} ({', '.join(room) or 'none'}); the rule asks for "
            f"{spec.copies} copies"
        )


def _row(conn: Connection, rule_id: str, *, for_update: bool = False) -> Any:
    query = select(rules).where(rules.c.id == rule_id)
    if for_update and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise RuleNotFound(f"rule {rule_id} does not exist")
    return row


def get_rule(conn: Connection, rule_id: str, *, viewer: Viewer | None = None) -> dict[str, Any]:
    row = _row(conn, rule_id)
    if viewer is not None and find_did(conn, row.scope, row.name, viewer=viewer) is None:
        raise RuleNotFound(f"rule {rule_id} does not exist")
    return describe(row, locks.lock_counts(conn, [rule_id])[rule_id])


def list_rules(
    conn: Connection,
    *,
    scope: str | None = None,
    name: str | None = None,
    account: str | None = None,
    state: str | None = None,
    subscription_id: str | None = None,
    rule_ids: list[str] | None = None,
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
    for column, value in (
        ("scope", scope),
        ("name", name),
        ("account", account),
        ("state", state),
        ("subscription_id", subscription_id),
    ):
        if value is not None:
            query = query.where(rules.c[column] == value)
    if rule_ids is not None:
        query = query.where(rules.c.id.in_(rule_ids))
    rows = list(conn.execute(query))
    counts = locks.lock_counts(conn, [row.id for row in rows])
    return [describe(row, counts[row.id]) for row in rows]


def delete_rule(
    conn: Connection,
    rule_id: str,
    *,
    purge_replicas: bool | None = None,
    ignore_lock: bool = False,
    action: str = "deleted",
    reason: str | None = None,
) -> dict[str, Any]:
    """Remove a rule and its locks; replicas left unlocked get tombstones. ``reason`` goes into
    the rule's history."""
    row = _row(conn, rule_id, for_update=True)
    if row.locked and not ignore_lock:
        raise UnsupportedOperation(f"rule {rule_id} is locked: unlock it before deleting it")
    purge = row.purge_replicas if purge_replicas is None else purge_replicas
    counts = locks.lock_counts(conn, [rule_id])[rule_id]
    locks.release_locks(conn, rule_id, purge=purge)
    detail = f"purge={purge}" if reason is None else f"purge={purge}; {reason}"
    history.record(conn, [history.Entry(row, action, row.state, counts, detail=detail)])
    events.emit(
        conn,
        "rule.expired" if action == "expired" else "rule.deleted",
        {"rule_id": rule_id, "account": row.account, "rse_expression": row.rse_expression,
         "purge_replicas": purge},
        scope=row.scope,
        name=row.name,
    )  # fmt: skip
    conn.execute(update(rules).where(rules.c.child_rule_id == rule_id).values(child_rule_id=None))
    conn.execute(delete(rules).where(rules.c.id == rule_id))
    return describe(row, counts)


def move_rule(
    conn: Connection, rule_id: str, rse_expression: str, override: dict[str, Any] | None = None
) -> str:
    """Replace a rule by one on ``rse_expression``: the new rule (same DID, account and options,
    the remaining lifetime, changed by ``override``) becomes the rule's child; the rule expirer
    deletes the rule once its child is ``OK`` (``expiry.replaced``), so the data stays where it
    is until it is where it goes; deleting the child first cancels the move. Returns the new
    rule's id."""
    override = dict(override or {})
    unknown = sorted(set(override) - set(MOVE_OVERRIDES))
    if unknown:
        raise UnsupportedOperation(
            f"a moved rule cannot override {', '.join(unknown)}; options: "
            f"{', '.join(MOVE_OVERRIDES)}"
        )
    row = _row(conn, rule_id, for_update=True)
    if row.child_rule_id is not None and _exists(conn, row.child_rule_id):
        raise UnsupportedOperation(
            f"rule {rule_id} is being replaced by rule {row.child_rule_id} already"
        )
    if row.locked:
        raise UnsupportedOperation(f"rule {rule_id} is locked: unlock it before moving it")
    now = utcnow()
    activity = override.get("activity", row.activity)
    comment = override.get("comment", row.comments)
    source = override.get("source_replica_expression", row.source_replica_expression)
    if activity is not None and (not isinstance(activity, str) or len(activity) > 50):
        raise InvalidInput("a rule's activity is a string of at most 50 characters")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 255):
        raise InvalidInput("a rule's comment is a string of at most 255 characters")
    if source is not None and not isinstance(source, str):
        raise InvalidInput("source_replica_expression is an RSE expression")
    spec = _successor(row, rse_expression)
    lifetime = override.get("lifetime", spec.lifetime)
    spec = replace(
        spec,
        copies=_integer("copies", override.get("copies", row.copies)),
        lifetime=None if lifetime is None else _integer("lifetime", lifetime),
        locked=_boolean("locked", override.get("locked", False)),
        source_replica_expression=source,
        activity=activity,
        priority=_integer("priority", override.get("priority", row.priority)),
        comment=comment,
    )
    child_id = add_rule(conn, spec, account=row.account)
    conn.execute(
        update(rules).where(rules.c.id == rule_id).values(child_rule_id=child_id, updated_at=now)
    )
    moved = _row(conn, rule_id)
    counts = locks.lock_counts(conn, [rule_id])[rule_id]
    history.record(
        conn,
        [history.Entry(moved, "moved", moved.state, counts, detail=f"child {child_id}")],
    )
    return child_id


def reduced_spec(
    conn: Connection, rule_id: str, copies: int, exclude_expression: str | None
) -> tuple[Any, RuleSpec]:
    """The rule (locked) and what replaces it when reduced to ``copies`` on its expression
    minus ``exclude_expression``: the same DID, account and options."""
    row = _row(conn, rule_id, for_update=True)
    copies = _integer("copies", copies)
    if row.copies == 1:
        raise RuleReplaceFailed(f"rule {rule_id} keeps 1 copy: nothing to reduce")
    if not 1 <= copies < row.copies:
        raise RuleReplaceFailed(
            f"rule {rule_id} has {row.copies} copies: reduce it to 1 to {row.copies - 1}"
        )
    if row.state != RuleState.OK:
        raise RuleReplaceFailed(f"rule {rule_id} is {row.state}: only an OK rule is reduced")
    if row.locked:
        raise RuleReplaceFailed(f"rule {rule_id} is locked: unlock it before reducing it")
    if row.child_rule_id is not None and _exists(conn, row.child_rule_id):
        raise RuleReplaceFailed(f"rule {rule_id} is being replaced by {row.child_rule_id}")
    expression = row.rse_expression
    if exclude_expression:
        expression = f"({row.rse_expression})\\({exclude_expression})"
    return row, replace(_successor(row, expression), copies=copies, delete_source=False)


def _successor(row: Any, rse_expression: str) -> RuleSpec:
    """A rule like ``row`` (same DID, options, the lifetime it has left) on ``rse_expression``,
    unlocked: what replaces a rule that is moved or reduced."""
    lifetime = None
    if row.expires_at is not None:
        lifetime = max(1, int((row.expires_at - utcnow()).total_seconds() + 0.999))
    return RuleSpec(
        scope=row.scope,
        name=row.name,
        rse_expression=rse_expression,
        copies=row.copies,
        grouping=RuleGrouping(row.grouping),
        lifetime=lifetime,
        weight=row.weight,
        purge_replicas=row.purge_replicas,
        delete_source=row.delete_source,
        source_replica_expression=row.source_replica_expression,
        activity=row.activity,
        priority=row.priority,
        notification=RuleNotification(row.notification),
        comment=row.comments,
        ignore_availability=row.ignore_availability,
        ignore_account_limit=row.ignore_account_limit,
        subscription_id=row.subscription_id,
    )


def _exists(conn: Connection, rule_id: str) -> bool:
    return conn.execute(select(rules.c.id).where(rules.c.id == rule_id)).first() is not None


def update_rule(conn: Connection, rule_id: str, options: dict[str, Any]) -> dict[str, Any]:
    """Change a rule: lifetime, locked, comment, priority, copies, activity, state (suspend or
    resume), source_replica_expression, purge_replicas, child_rule_id; ``approve`` a rule
    waiting for approval (true: it is evaluated; false: it is deleted, ``comment`` the reason —
    the caller checks the principal may)."""
    unknown = sorted(set(options) - set(UPDATABLE))
    if unknown:
        raise InvalidInput(
            f"rules cannot be updated with {', '.join(unknown)}; options: {', '.join(UPDATABLE)}"
        )
    row = _row(conn, rule_id, for_update=True)
    now = utcnow()
    values: dict[str, Any] = {}
    evaluate = False
    waiting = row.state == RuleState.WAITING_APPROVAL
    if "approve" in options:
        approve = _boolean("approve", options["approve"])
        if not waiting:
            raise UnsupportedOperation(f"rule {rule_id} is not waiting for approval ({row.state})")
        if not approve:
            reason = options.get("comment")
            return delete_rule(
                conn,
                rule_id,
                ignore_lock=True,
                action="denied",
                reason=None if reason is None else f"reason: {str(reason)[:200]}",
            )
        values["state"] = RuleState.REPLICATING.value
        evaluate = True
    elif "state" in options and waiting:
        raise UnsupportedOperation(
            f"rule {rule_id} waits for approval: an admin approves or denies it"
        )
    if "lifetime" in options:
        lifetime = options["lifetime"]
        if lifetime is None:
            values["expires_at"] = None
        else:
            lifetime = _integer("lifetime", lifetime)
            if not 0 <= lifetime <= MAX_LIFETIME:
                raise InvalidInput(f"a rule's lifetime is 0 to {MAX_LIFETIME} seconds")
            values["expires_at"] = now + timedelta(seconds=lifetime)
    if "locked" in options:
        values["locked"] = _boolean("locked", options["locked"])
    if "purge_replicas" in options:
        values["purge_replicas"] = _boolean("purge_replicas", options["purge_replicas"])
    if "comment" in options:
        comment = options["comment"]
        if comment is not None and (not isinstance(comment, str) or len(comment) > 255):
            raise InvalidInput("a rule's comment is a string of at most 255 characters")
        values["comments"] = comment
    if "activity" in options:
        activity = options["activity"]
        if activity is not None and (not isinstance(activity, str) or len(activity) > 50):
            raise InvalidInput("a rule's activity is a string of at most 50 characters")
        values["activity"] = activity
    if "source_replica_expression" in options:
        source = options["source_replica_expression"]
        if source is not None:
            resolve(source, rse_attribute_map(conn))
        values["source_replica_expression"] = source
    if "priority" in options:
        priority = _integer("priority", options["priority"])
        if not 0 <= priority <= 5:
            raise InvalidInput("a rule's priority is between 0 and 5")
        values["priority"] = priority
        conn.execute(
            update(requests).where(requests.c.rule_id == rule_id).values(priority=priority)
        )
    if "child_rule_id" in options:
        child = options["child_rule_id"]
        if child is not None:
            if not isinstance(child, str):
                raise InvalidInput(f"child_rule_id is a rule id, not {child!r}")
            if child == rule_id:
                raise InvalidInput("a rule cannot be its own child")
            _row(conn, child)
        values["child_rule_id"] = child
    if "copies" in options:
        copies = _integer("copies", options["copies"])
        if not 1 <= copies <= MAX_COPIES:
            raise InvalidInput(f"copies must be between 1 and {MAX_COPIES}")
        if copies < row.copies:
            _drop_extra_copies(conn, row, copies)
        elif copies > row.copies:
            evaluate = True
        values["copies"] = copies
    if "state" in options:
        state = str(options["state"]).lower()
        if state == RuleState.SUSPENDED:
            values["state"] = RuleState.SUSPENDED.value
        elif state in (RuleState.REPLICATING, "resume"):
            if row.state == RuleState.SUSPENDED:
                values["state"] = RuleState.REPLICATING.value
                evaluate = True
        else:
            raise InvalidInput(
                f"a rule's state can be set to SUSPENDED or REPLICATING, not {state!r}"
            )
    if options.get("boost_rule"):
        conn.execute(
            update(requests)
            .where(requests.c.rule_id == rule_id)
            .values(next_attempt_at=None, updated_at=now)
        )
    values["updated_at"] = now
    conn.execute(update(rules).where(rules.c.id == rule_id).values(**values))
    if evaluate:
        queue.enqueue_rules(conn, [rule_id])
    changed = ", ".join(f"{key}={options[key]!r}" for key in sorted(options))
    if waiting and "approve" in options:  # approved: no lock yet until the evaluator runs
        state_now = RuleState.REPLICATING.value
    else:
        state_now = locks.refresh_rules(conn, [rule_id]).get(rule_id, row.state)
    row = _row(conn, rule_id)
    counts = locks.lock_counts(conn, [rule_id])[rule_id]
    history.record(conn, [history.Entry(row, "updated", state_now, counts, detail=changed)])
    return describe(row, counts)


def record_failure(conn: Connection, rule_id: str, error: str) -> None:
    """The rule could not be evaluated: it is stuck, with ``error`` saying why."""
    conn.execute(
        update(rules).where(rules.c.id == rule_id).values(error=error[:255], updated_at=utcnow())
    )
    locks.refresh_rules(conn, [rule_id])


def _drop_extra_copies(conn: Connection, row: Any, copies: int) -> None:
    """Release locks beyond ``copies`` per file, waiting or stuck ones first."""
    rank = {LockState.STUCK.value: 0, LockState.REPLICATING.value: 1, LockState.OK.value: 2}
    held: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for scope, name, rse_id, state in conn.execute(
        select(
            locks_table.c.scope, locks_table.c.name, locks_table.c.rse_id, locks_table.c.state
        ).where(locks_table.c.rule_id == row.id)
    ):
        held.setdefault((scope, name), []).append((rank[state], rse_id))
    extra = []
    for (scope, name), entries in held.items():
        for _, rse_id in sorted(entries)[: max(len(entries) - copies, 0)]:
            extra.append((scope, name, rse_id))
    locks.release_locks(conn, row.id, extra, purge=row.purge_replicas)


def _integer(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT64:
        raise InvalidInput(f"{option} must be an integer, not {value!r}")
    return value


def _boolean(option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{option} must be true or false, not {value!r}")
    return value


def describe(row: Any, counts: dict[str, int]) -> dict[str, Any]:
    """The rule as stored, with its lock counts and the bytes it keeps (per copy)."""
    info = {str(key): value for key, value in row._mapping.items()}
    info["locks_ok_cnt"] = counts.get("ok", 0)
    info["locks_replicating_cnt"] = counts.get("replicating", 0)
    info["locks_stuck_cnt"] = counts.get("stuck", 0)
    info["bytes"] = counts.get("bytes", 0) // max(row.copies, 1)
    return info


def lock_details(conn: Connection, rule_id: str) -> list[dict[str, Any]]:
    """The rule's locks: file, RSE, state, bytes, times."""
    _row(conn, rule_id)
    rows = conn.execute(
        select(
            locks_table,
            rses.c.rse,
            requests.c.state.label("request_state"),
            requests.c.attempts,
            requests.c.last_error,
        )
        .join(rses, rses.c.id == locks_table.c.rse_id)
        .outerjoin(
            requests,
            and_(
                requests.c.scope == locks_table.c.scope,
                requests.c.name == locks_table.c.name,
                requests.c.dest_rse_id == locks_table.c.rse_id,
            ),
        )
        .where(locks_table.c.rule_id == rule_id)
        .order_by(locks_table.c.scope, locks_table.c.name, rses.c.rse)
    )
    return [{str(key): value for key, value in row._mapping.items()} for row in rows]


def count_rules(conn: Connection) -> dict[str, int]:
    """Rules by state."""
    return {
        state: int(count)
        for state, count in conn.execute(
            select(rules.c.state, func.count()).group_by(rules.c.state)
        )
    }


def resolve_ids(conn: Connection, expression: str) -> list[int]:
    names = resolve(expression, rse_attribute_map(conn))
    return list(conn.execute(select(rses.c.id).where(rses.c.rse.in_(names))).scalars())
