"""The rule evaluator's work: bring a rule's locks and transfer requests in line with its DID.

``evaluate_rule`` is idempotent. For every file under the rule's DID that has fewer locks than
``copies`` it places the missing copies (``placement``), writes one lock per file per chosen RSE
(``ok`` where an available replica is there, else ``replicating``) and one transfer request per
missing replica; with ``prune`` it also releases the locks of files no longer under the DID. All
of it set-based: a few queries to read, one executemany per table to write.

After an attach, ``only`` names the DIDs attached: the files looked at are those under them, so
the work grows with what was attached, not with the rule (a stream attaching chunk after chunk
to a ruled dataset). The rule's lock counts (its state) are still one indexed ``GROUP BY`` over
its locks.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)

from lacus.core import guard, locks
from lacus.core.clock import utcnow
from lacus.core.dids import file_tree, files_query, names_by_scope
from lacus.core.expressions import resolve
from lacus.core.placement import Candidate, Planner, Quota
from lacus.core.queue import Child
from lacus.core.quotas import quota_for
from lacus.core.rses import rse_attribute_map
from lacus.db.engine import insert_rows, is_sqlite
from lacus.db.tables import contents, dids, replicas, requests, rses, rules
from lacus.db.tables import locks as locks_table
from lacus.errors import InsufficientAccountLimit, InsufficientTargetRSEs, InvalidInput
from lacus.types import (
    HELD_STATES,
    DIDType,
    LockState,
    ReplicaState,
    RequestState,
    RuleGrouping,
)

FileKey = tuple[str, str]
SMALL = 500
"""Up to this many files, replicas are looked up by key rather than by a join."""
ONLY_COLLECTIONS = 20
"""An attach of more collections than this evaluates the whole rule (one subquery each else)."""
_LOCK_COLUMNS = ("rule_id", "scope", "name", "rse_id", "account", "bytes", "state")
_REQUEST_COLUMNS = (
    "scope",
    "name",
    "dest_rse_id",
    "rule_id",
    "state",
    "activity",
    "priority",
    "bytes",
    "adler32",
    "md5",
    "source_replica_expression",
    "attempts",
    "created_at",
    "updated_at",
)


@dataclass(slots=True)
class Outcome:
    """What one evaluation did."""

    rule_id: str
    locks_created: int = 0
    requests_created: int = 0
    locks_released: int = 0
    error: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class _File:
    scope: str
    name: str
    bytes: int
    adler32: str | None
    md5: str | None
    group: Any


@dataclass(slots=True)
class Context:
    """What evaluations in one transaction share: RSEs, their attributes, accounts' quotas."""

    attributes: dict[str, dict[str, str]]
    rses: dict[str, Any]
    limited: dict[str, bool] = field(default_factory=dict)
    guarded: bool = False
    """Whether this transaction holds the replica guard already."""

    @classmethod
    def load(cls, conn: Connection) -> Context:
        rows = {row.rse: row for row in conn.execute(select(rses))}
        return cls(attributes=rse_attribute_map(conn), rses=rows)

    def quota(self, conn: Connection, account: str) -> Quota | None:
        if self.limited.get(account) is False:
            return None
        quota = quota_for(conn, account)
        self.limited[account] = quota is not None
        return quota


def candidates(conn: Connection, rule: Any, context: Context | None = None) -> list[Candidate]:
    """The RSEs a rule may place copies on: its expression, writable ones unless it ignores
    availability, weighted by its ``weight`` attribute (RSEs without it get none)."""
    context = context or Context.load(conn)
    attributes = context.attributes
    names = resolve(rule.rse_expression, attributes)
    found = []
    for row in sorted((context.rses[name] for name in names), key=lambda r: r.rse):
        if not rule.ignore_availability and not row.availability_write:
            continue
        weight = 1.0
        if rule.weight:
            try:
                weight = float(attributes[row.rse].get(rule.weight, 0))
            except ValueError:
                weight = 0.0
        found.append(
            Candidate(
                rse_id=row.id,
                rse=row.rse,
                weight=weight,
                total_bytes=row.total_bytes,
                used_bytes=row.used_bytes,
                read_only=bool(row.read_only),
            )
        )
    return found


def evaluate_rule(
    conn: Connection,
    rule_id: str,
    *,
    prune: bool = False,
    only: Sequence[Child] | None = None,
    rng: random.Random | None = None,
    context: Context | None = None,
) -> Outcome | None:
    """Evaluate one rule in the caller's transaction; None when the rule is gone.

    ``only``: the DIDs just attached below the rule's DID: only the files under them are
    placed — unless the rule has an error (an earlier placement failed: all is tried again).
    ``context``: shared by the evaluations of one transaction (load it once per transaction:
    it caches RSEs and which accounts have quotas)."""
    if context is None or not context.guarded:
        guard.protect_replicas(conn)
        if context is not None:
            context.guarded = True
    held = exists().where(locks_table.c.rule_id == rules.c.id).label("has_locks")
    query = select(rules, held).where(rules.c.id == rule_id)
    if not is_sqlite(conn):
        query = query.with_for_update(of=rules)
    rule = conn.execute(query).first()
    if rule is None:
        return None
    outcome = Outcome(rule_id)
    if rule.state in HELD_STATES:
        outcome.state = rule.state
        return outcome
    has_locks = bool(rule.has_locks)
    if only is not None and (
        rule.error is not None or sum(child[2] != DIDType.FILE for child in only) > ONLY_COLLECTIONS
    ):
        only = None
    if prune and has_locks:
        outcome.locks_released = len(_prune(conn, rule))
    error: str | None = None
    counts: dict[str, int] | None = None
    try:
        created, requested, counts, error = _place(
            conn,
            rule,
            has_locks=has_locks,
            only=only,
            rng=rng or random.Random(),
            context=context,
        )
        outcome.locks_created, outcome.requests_created = created, requested
    except (InsufficientTargetRSEs, InsufficientAccountLimit, InvalidInput) as exc:
        error = f"{type(exc).__name__}: {exc.message}"
    error = None if error is None else error[:255]  # what rules.error holds
    if error != rule.error:
        conn.execute(update(rules).where(rules.c.id == rule_id).values(error=error))
    outcome.error = error
    known = None
    if counts is not None and not has_locks:  # the first locks: all the rule has
        mapping = {str(key): value for key, value in rule._mapping.items() if key != "has_locks"}
        known = (SimpleNamespace(**{**mapping, "error": error}), counts)
    outcome.state = locks.refresh_rules(conn, [rule_id], action="evaluated", known=known).get(
        rule_id
    )
    return outcome


def _files(rule: Any) -> Select[Any]:
    """(scope, name, bytes, adler32, md5, group scope, group name) of every file under the rule."""
    grouping = rule.grouping
    lean = (dids.c.scope, dids.c.name, dids.c.bytes, dids.c.adler32, dids.c.md5)
    if rule.did_type == DIDType.FILE:
        return select(
            *lean, dids.c.scope.label("group_scope"), dids.c.name.label("group_name")
        ).where(dids.c.scope == rule.scope, dids.c.name == rule.name)
    if rule.did_type == DIDType.DATASET:
        group = (
            (dids.c.scope.label("group_scope"), dids.c.name.label("group_name"))
            if grouping == RuleGrouping.NONE
            else (literal(rule.scope).label("group_scope"), literal(rule.name).label("group_name"))
        )
        return (
            select(*lean, *group)
            .join(
                contents,
                and_(contents.c.child_scope == dids.c.scope, contents.c.child_name == dids.c.name),
            )
            .where(contents.c.scope == rule.scope, contents.c.name == rule.name)
        )
    if grouping in (RuleGrouping.NONE, RuleGrouping.ALL):
        base = files_query(rule.scope, rule.name, rule.did_type).subquery()
        group = (
            (base.c.scope.label("group_scope"), base.c.name.label("group_name"))
            if grouping == RuleGrouping.NONE
            else (literal(rule.scope).label("group_scope"), literal(rule.name).label("group_name"))
        )
        return select(base.c.scope, base.c.name, base.c.bytes, base.c.adler32, base.c.md5, *group)
    # A container, grouped by dataset: each file goes with the (first) dataset holding it.
    tree = file_tree(rule.scope, rule.name)
    edges = (
        select(
            tree.c.child_scope,
            tree.c.child_name,
            func.min(tree.c.scope).label("group_scope"),
            func.min(tree.c.name).label("group_name"),
        )
        .where(tree.c.child_type == DIDType.FILE.value)
        .group_by(tree.c.child_scope, tree.c.child_name)
        .subquery()
    )
    on = and_(dids.c.scope == edges.c.child_scope, dids.c.name == edges.c.child_name)
    return select(
        dids.c.scope, dids.c.name, dids.c.bytes, dids.c.adler32, dids.c.md5,
        edges.c.group_scope, edges.c.group_name,
    ).join(edges, on)  # fmt: skip


def _under(files: Select[Any], children: Sequence[Child]) -> Select[Any]:
    """The rows of ``files`` (see ``_files``) that are, or are below, one of ``children``."""
    sub = files.subquery()
    file_keys = [(scope, name) for scope, name, did_type in children if did_type == DIDType.FILE]
    conditions = [
        and_(sub.c.scope == scope, sub.c.name.in_(names))
        for scope, names in names_by_scope(file_keys)
    ]
    for scope, name, did_type in children:
        if did_type != DIDType.FILE:
            below = files_query(scope, name, did_type).subquery()
            conditions.append(
                exists().where(below.c.scope == sub.c.scope, below.c.name == sub.c.name)
            )
    return select(sub).where(or_(false(), *conditions))


def _place(
    conn: Connection,
    rule: Any,
    *,
    has_locks: bool,
    only: Sequence[Child] | None,
    rng: random.Random,
    context: Context | None,
) -> tuple[int, int, dict[str, int], str | None]:
    """Lock the rule's files short of copies (of those under ``only``, when given); request the
    missing replicas. Returns locks and requests created, the rule's lock counts (those of this
    evaluation's new locks when ``has_locks`` is False), and an error when some locks could not
    be made (a file missing on a read-only RSE the group is placed on)."""
    files_select = _files(rule)
    if only is not None:
        files_select = _under(files_select, only)
    if has_locks:  # only files short of copies
        sub = files_select.subquery()
        held_count = (
            select(func.count())
            .where(
                locks_table.c.rule_id == rule.id,
                locks_table.c.scope == sub.c.scope,
                locks_table.c.name == sub.c.name,
            )
            .scalar_subquery()
        )
        files_select = select(sub).where(held_count < rule.copies)
    files = [
        _File(row[0], row[1], int(row[2] or 0), row[3], row[4], (row[5], row[6]))
        for row in conn.execute(files_select)
    ]
    if not files:
        return 0, 0, {"ok": 0, "replicating": 0, "stuck": 0, "bytes": 0}, None
    context = context or Context.load(conn)
    pool = candidates(conn, rule, context)
    if rule.copies > len(pool):
        raise InsufficientTargetRSEs(
            f"{rule.copies} copies asked but only {len(pool)} RSE(s) of "
            f"{rule.rse_expression!r} can be written to"
        )
    pool_ids = [c.rse_id for c in pool]
    available, tombstoned = _available(
        conn, files_select, [(f.scope, f.name) for f in files], pool_ids
    )
    file_locks, group_locks = _existing_locks(conn, rule, files_select) if has_locks else ({}, {})
    quota = None if rule.ignore_account_limit else context.quota(conn, rule.account)
    planner = Planner(pool, quota=quota, rng=rng)
    groups: dict[Any, list[_File]] = defaultdict(list)
    for file in files:
        groups[file.group].append(file)
    now = utcnow()
    lock_rows: list[tuple[Any, ...]] = []
    request_rows: list[tuple[Any, ...]] = []
    ok_keys = 0
    read_only = {c.rse_id: c.rse for c in pool if c.read_only}
    not_there: list[tuple[str, FileKey]] = []
    for group, members in groups.items():
        group_bytes = sum(f.bytes for f in members)
        held: dict[int, int] = defaultdict(int)
        for f in members:
            for rse_id in available.get((f.scope, f.name), ()):
                held[rse_id] += f.bytes
        chosen = planner.choose(
            rule.copies,
            group_bytes=group_bytes,
            held=held,
            keep=group_locks.get(group, ()),
        )
        for f in members:
            key = (f.scope, f.name)
            present = available.get(key, set())
            have = file_locks.get(key, set())
            targets = [rse_id for rse_id in chosen if rse_id not in have]
            targets = targets[: max(rule.copies - len(have), 0)]
            for rse_id in targets:
                if rse_id in read_only and rse_id not in present:
                    not_there.append((read_only[rse_id], key))  # never copied there
                    continue
                planner.charge(rse_id, f.bytes)
                if rse_id in present:
                    state = LockState.OK.value
                    ok_keys += 1
                else:
                    state = LockState.REPLICATING.value
                    request_rows.append(
                        (
                            f.scope, f.name, rse_id, rule.id, RequestState.QUEUED.value,
                            rule.activity, rule.priority, f.bytes, f.adler32, f.md5,
                            rule.source_replica_expression, 0, now, now,
                        )
                    )  # fmt: skip
                lock_rows.append((rule.id, f.scope, f.name, rse_id, rule.account, f.bytes, state))
    if planner.quota is not None:  # the quota must hold after this rule's new locks too
        for _, remaining in planner.quota.limits:
            if remaining < 0:
                raise InsufficientAccountLimit(
                    f"account {rule.account!r} would exceed its quota by {-remaining} bytes"
                )
    insert_rows(
        conn,
        locks_table,
        (*_LOCK_COLUMNS, "created_at", "updated_at"),
        [(*row, now, now) for row in lock_rows],
    )
    requested = insert_rows(conn, requests, _REQUEST_COLUMNS, request_rows, skip_existing=True)
    if requested < len(request_rows):  # shared with another rule: wake a failed one up again
        _retry_failed_requests(conn, rule.id, now)
    if ok_keys and tombstoned:
        _clear_tombstones(conn, rule.id)
    counts = {"ok": 0, "replicating": 0, "stuck": 0, "bytes": 0}
    for row in lock_rows:
        counts[row[6]] += 1
        counts["bytes"] += row[5]
    error = None
    if not_there:
        rse, (scope, name) = not_there[0]
        error = (
            f"RSEReadOnly: {rse} is read-only: {len(not_there)} file(s) it does not hold cannot "
            f"be copied to it (first: {scope}:{name})"
        )
    return len(lock_rows), requested, counts, error


def _available(
    conn: Connection, files: Select[Any], keys: Sequence[FileKey], pool: Sequence[int]
) -> tuple[dict[FileKey, set[int]], bool]:
    """Per file, the candidate RSEs holding an available replica of it; and whether one of
    those replicas has a tombstone."""
    found: dict[FileKey, set[int]] = defaultdict(set)
    columns = (replicas.c.scope, replicas.c.name, replicas.c.rse_id, replicas.c.tombstone)
    wanted = (replicas.c.rse_id.in_(pool), replicas.c.state == ReplicaState.AVAILABLE.value)
    if len(keys) <= SMALL:  # index lookups (a row-value IN is a scan of the scope on PostgreSQL)
        by_scope = [
            and_(replicas.c.scope == scope, replicas.c.name.in_(names))
            for scope, names in names_by_scope(keys)
        ]
        query = select(*columns).where(or_(*by_scope), *wanted)
    else:
        sub = files.subquery()
        query = (
            select(*columns)
            .join(sub, and_(replicas.c.scope == sub.c.scope, replicas.c.name == sub.c.name))
            .where(*wanted)
        )
    tombstoned = False
    for scope, name, rse_id, tombstone in conn.execute(query):
        found[(scope, name)].add(rse_id)
        tombstoned = tombstoned or tombstone is not None
    return found, tombstoned


def _existing_locks(
    conn: Connection, rule: Any, files: Select[Any]
) -> tuple[dict[FileKey, set[int]], dict[Any, list[int]]]:
    """Locks the rule has already: per file (of ``files``) and per group (RSEs, most used first)."""
    per_file: dict[FileKey, set[int]] = defaultdict(set)
    sub = files.subquery()
    rows = conn.execute(
        select(locks_table.c.scope, locks_table.c.name, locks_table.c.rse_id)
        .join(sub, and_(locks_table.c.scope == sub.c.scope, locks_table.c.name == sub.c.name))
        .where(locks_table.c.rule_id == rule.id)
    )
    for scope, name, rse_id in rows:
        per_file[(scope, name)].add(rse_id)
    per_group: dict[Any, list[int]] = {}
    if rule.grouping == RuleGrouping.NONE or rule.did_type == DIDType.FILE:
        for key, rse_ids in per_file.items():
            per_group[key] = sorted(rse_ids)
        return per_file, per_group
    if rule.did_type == DIDType.DATASET or rule.grouping == RuleGrouping.ALL:
        rows = conn.execute(
            select(locks_table.c.rse_id, func.count().label("n"))
            .where(locks_table.c.rule_id == rule.id)
            .group_by(locks_table.c.rse_id)
            .order_by(func.count().desc(), locks_table.c.rse_id)
        )
        per_group[(rule.scope, rule.name)] = [row.rse_id for row in rows]
        return per_file, per_group
    wanted = {(row[0], row[1]) for row in conn.execute(select(sub.c.group_scope, sub.c.group_name))}
    group_rows = conn.execute(
        select(contents.c.scope, contents.c.name, locks_table.c.rse_id, func.count().label("n"))
        .join(
            contents,
            and_(
                contents.c.child_scope == locks_table.c.scope,
                contents.c.child_name == locks_table.c.name,
            ),
        )
        .where(locks_table.c.rule_id == rule.id)
        .group_by(contents.c.scope, contents.c.name, locks_table.c.rse_id)
        .order_by(func.count().desc(), locks_table.c.rse_id)
    )
    for scope, name, rse_id, _count in group_rows:
        if (scope, name) in wanted:
            per_group.setdefault((scope, name), []).append(rse_id)
    return per_file, per_group


def _prune(conn: Connection, rule: Any) -> list[locks.LockKey]:
    """Release the locks of files no longer under the rule's DID."""
    under = files_query(rule.scope, rule.name, rule.did_type).subquery()
    stale = conn.execute(
        select(locks_table.c.scope, locks_table.c.name, locks_table.c.rse_id).where(
            locks_table.c.rule_id == rule.id,
            ~exists().where(
                under.c.scope == locks_table.c.scope, under.c.name == locks_table.c.name
            ),
        )
    ).all()
    if not stale:
        return []
    return locks.release_locks(
        conn, rule.id, [(r[0], r[1], r[2]) for r in stale], purge=rule.purge_replicas
    )


def _retry_failed_requests(conn: Connection, rule_id: str, now: Any) -> None:
    mine = select(locks_table.c.scope, locks_table.c.name, locks_table.c.rse_id).where(
        locks_table.c.rule_id == rule_id, locks_table.c.state == LockState.REPLICATING.value
    )
    conn.execute(
        update(requests)
        .where(
            requests.c.state == RequestState.FAILED.value,
            tuple_(requests.c.scope, requests.c.name, requests.c.dest_rse_id).in_(mine),
        )
        .values(state=RequestState.QUEUED.value, attempts=0, updated_at=now, next_attempt_at=None)
    )


def _clear_tombstones(conn: Connection, rule_id: str) -> None:
    """Replicas the rule's locks keep are no longer candidates for deletion."""
    conn.execute(
        update(replicas)
        .where(
            replicas.c.tombstone.is_not(None),
            exists().where(
                locks_table.c.rule_id == rule_id,
                locks_table.c.scope == replicas.c.scope,
                locks_table.c.name == replicas.c.name,
                locks_table.c.rse_id == replicas.c.rse_id,
            ),
        )
        .values(tombstone=None)
    )


def replace_lock(
    conn: Connection,
    rule_id: str,
    key: locks.LockKey,
    *,
    exclude_current: bool = True,
    rng: random.Random | None = None,
) -> int | None:
    """Move one stuck lock of a rule to another RSE of its expression (or, with
    ``exclude_current`` False, place it again anywhere). Returns the new RSE id, or None when no
    other RSE can take it (the lock stays as it is)."""
    guard.protect_replicas(conn)
    rule = conn.execute(select(rules).where(rules.c.id == rule_id)).first()
    if rule is None:
        return None
    scope, name, rse_id = key
    file = conn.execute(
        select(dids.c.bytes, dids.c.adler32, dids.c.md5).where(
            dids.c.scope == scope, dids.c.name == name
        )
    ).first()
    if file is None:
        return None
    others = set(
        conn.execute(
            select(locks_table.c.rse_id).where(
                locks_table.c.rule_id == rule_id,
                locks_table.c.scope == scope,
                locks_table.c.name == name,
                locks_table.c.rse_id != rse_id,
            )
        ).scalars()
    )
    pool = candidates(conn, rule)
    exclude = list(others | ({rse_id} if exclude_current else set()))
    present = set(
        conn.execute(
            select(replicas.c.rse_id).where(
                replicas.c.scope == scope,
                replicas.c.name == name,
                replicas.c.state == ReplicaState.AVAILABLE.value,
            )
        ).scalars()
    )
    planner = Planner(pool, rng=rng or random.Random())
    try:
        chosen = planner.choose(
            1,
            group_bytes=int(file.bytes or 0),
            held={rse: int(file.bytes or 0) for rse in present},
            exclude=exclude,
        )[0]
    except (InsufficientTargetRSEs, InsufficientAccountLimit):
        return None
    locks.release_locks(conn, rule_id, [key], purge=False)
    now = utcnow()
    state = LockState.OK.value if chosen in present else LockState.REPLICATING.value
    insert_rows(
        conn,
        locks_table,
        (*_LOCK_COLUMNS, "created_at", "updated_at"),
        [(rule_id, scope, name, chosen, rule.account, int(file.bytes or 0), state, now, now)],
    )
    if state == LockState.REPLICATING.value:
        insert_rows(
            conn,
            requests,
            _REQUEST_COLUMNS,
            [
                (
                    scope,
                    name,
                    chosen,
                    rule_id,
                    RequestState.QUEUED.value,
                    rule.activity,
                    rule.priority,
                    int(file.bytes or 0),
                    file.adler32,
                    file.md5,
                    rule.source_replica_expression,
                    0,
                    now,
                    now,
                )
            ],
            skip_existing=True,
        )
    else:
        _clear_tombstones(conn, rule_id)
    return chosen
