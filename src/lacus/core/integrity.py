"""Replica integrity: declaring replicas suspicious, bad, unavailable or lost, and what follows.

The states a stored replica moves through once the lake doubts it::

    available ──report──▶ suspicious ──read back wrong, or N reports──▶ bad
        ▲                     │ read back right                          │ a good copy elsewhere
        └─────────────────────┘◀──────── copied again (repaired) ◀───────┤
    available ──declared──▶ unavailable ──expiry──▶ available            │ no good copy left
                                                                         ▼
                                                                        lost

A lock is ``ok`` only on an ``available`` replica: a doubted or unavailable one turns its locks
``replicating`` (the rule says so), a bad one too while it is copied again, a lost one
``stuck``. Every declaration is kept in ``replica_declarations`` with its reason, account and
time, and reported as an event (``replica.suspicious``, ``replica.bad``, ``replica.unavailable``,
``replica.lost``, ``replica.repaired``). Nothing here deletes bytes: an unlocked bad replica
with a good copy elsewhere is tombstoned for the reaper, whose guard keeps the last copy of
anything a rule wants; a lost replica keeps whatever bytes it has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.sql.elements import TextClause

from lacus.core import events, locks
from lacus.core.clock import utcnow
from lacus.core.dids import names_by_scope
from lacus.db.engine import is_sqlite
from lacus.db.tables import (
    NOT_AVAILABLE,
    dids,
    replica_declarations,
    replicas,
    requests,
    rses,
    rules,
)
from lacus.db.tables import locks as locks_table
from lacus.types import LockState, ReplicaState, RequestState

CHUNK = 500
LOST_ERROR = "FileLost"
"""The prefix of a rule's error when some of its files have no good copy left."""
DOUBTED = (ReplicaState.SUSPICIOUS, ReplicaState.UNAVAILABLE)
"""Replicas that may come back: a file with one of these is not lost yet."""
ReplicaKey = tuple[str, str, int]

_FROM: dict[ReplicaState, tuple[ReplicaState, ...]] = {
    ReplicaState.SUSPICIOUS: (ReplicaState.AVAILABLE, ReplicaState.SUSPICIOUS),
    ReplicaState.BAD: (
        ReplicaState.AVAILABLE,
        ReplicaState.SUSPICIOUS,
        ReplicaState.UNAVAILABLE,
    ),
    ReplicaState.UNAVAILABLE: (ReplicaState.AVAILABLE, ReplicaState.SUSPICIOUS),
}
"""The states a declaration may move a replica from (others stay as they are)."""


@dataclass(frozen=True, slots=True)
class Declaration:
    """One replica said to be in doubt, and why."""

    scope: str
    name: str
    rse_id: int
    reason: str

    @property
    def key(self) -> ReplicaKey:
        return (self.scope, self.name, self.rse_id)


def in_doubt(state: ReplicaState) -> list[ColumnElement[bool] | TextClause]:
    """Replicas in ``state`` (not available), found through the partial index of those."""
    return [text(NOT_AVAILABLE), replicas.c.state == state.value]


def needs_care(conn: Connection) -> bool:
    """Whether some replica waits for the necromancer (a cheap look through the index)."""
    now = utcnow()
    return bool(
        conn.execute(
            select(
                or_(
                    exists().where(*in_doubt(ReplicaState.SUSPICIOUS)),
                    exists().where(*in_doubt(ReplicaState.BAD), replicas.c.tombstone.is_(None)),
                    exists().where(
                        *in_doubt(ReplicaState.UNAVAILABLE), replicas.c.state_expires_at <= now
                    ),
                )
            )
        ).scalar()
    )


def suspicious(conn: Connection, *, limit: int) -> list[Any]:
    """Suspicious replicas to read back, longest waiting first, with their RSE's name."""
    return list(
        conn.execute(
            select(replicas, rses.c.rse)
            .join(rses, rses.c.id == replicas.c.rse_id)
            .where(*in_doubt(ReplicaState.SUSPICIOUS))
            .order_by(replicas.c.updated_at)
            .limit(limit)
        )
    )


def declarable() -> tuple[ReplicaState, ...]:
    """The states one may declare: suspicious, bad, unavailable."""
    return tuple(_FROM)


def declare(
    conn: Connection,
    items: Sequence[Declaration],
    state: ReplicaState,
    *,
    account: str,
    expires_at: datetime | None = None,
    suspicious_limit: int = 3,
) -> list[Declaration]:
    """Declare replicas ``state`` (suspicious, bad or unavailable until ``expires_at``).

    Returns the declarations that changed a replica (or counted a suspicious report); a replica
    that does not exist, or is in a state the declaration does not apply to (copying, lost,
    being deleted, bad already), is left alone. A replica reported suspicious
    ``suspicious_limit`` times becomes bad.
    """
    if state not in _FROM:
        raise ValueError(f"cannot declare a replica {state}")
    now = utcnow()
    items = list({item.key: item for item in items}.values())
    rows = _rows(conn, [item.key for item in items])
    applied = [i for i in items if i.key in rows and rows[i.key].state in _FROM[state]]
    if not applied:
        return []
    values: dict[str, Any] = {"state": state.value, "updated_at": now, "state_account": account}
    if state is ReplicaState.UNAVAILABLE:
        values["state_expires_at"] = expires_at
    for item in applied:
        extra: dict[str, Any] = {"state_reason": item.reason[:255]}
        if state is ReplicaState.SUSPICIOUS:
            extra["suspicious_reports"] = (rows[item.key].suspicious_reports or 0) + 1
        conn.execute(update(replicas).where(*_is(item.key)).values(**values, **extra))
    _record(conn, applied, state, account=account, rows=rows, expires_at=expires_at, now=now)
    _hold_locks(conn, [item.key for item in applied], LockState.REPLICATING)
    if state is ReplicaState.SUSPICIOUS:
        over = [
            item
            for item in applied
            if (rows[item.key].suspicious_reports or 0) + 1 >= suspicious_limit
        ]
        if over:
            reason = f"reported suspicious {suspicious_limit} times"
            declare(
                conn,
                [Declaration(i.scope, i.name, i.rse_id, f"{reason}: {i.reason}") for i in over],
                ReplicaState.BAD,
                account=account,
            )
    return applied


def clear(
    conn: Connection, keys: Sequence[ReplicaKey], *, reason: str, account: str, verified: bool
) -> int:
    """Suspicious or unavailable replicas are available again (``verified``: their bytes were
    just read back and found right). Their locks turn ``ok``. Returns how many."""
    now = utcnow()
    rows = _rows(conn, keys)
    back = [key for key, row in rows.items() if row.state in {s.value for s in DOUBTED}]
    values: dict[str, Any] = {
        "state": ReplicaState.AVAILABLE.value,
        "updated_at": now,
        "state_reason": None,
        "state_account": None,
        "state_expires_at": None,
        "suspicious_reports": None,
    }
    if verified:
        values["verified_at"] = now
    for key in back:
        conn.execute(update(replicas).where(*_is(key)).values(**values))
    declared = [Declaration(*key, reason) for key in back]
    _record(conn, declared, ReplicaState.AVAILABLE, account=account, rows=rows, now=now)
    for rse_id, group in _by_rse(back).items():
        locks.replicas_arrived(conn, rse_id, group)
    return len(back)


def expire_unavailable(conn: Connection, *, limit: int = CHUNK) -> int:
    """Replicas ``unavailable`` past their expiry are available again."""
    keys = [
        (row.scope, row.name, row.rse_id)
        for row in conn.execute(
            select(replicas.c.scope, replicas.c.name, replicas.c.rse_id)
            .where(
                *in_doubt(ReplicaState.UNAVAILABLE),
                replicas.c.state_expires_at.is_not(None),
                replicas.c.state_expires_at <= utcnow(),
            )
            .limit(limit)
        )
    ]
    return clear(conn, keys, reason="unavailable until then", account="root", verified=False)


@dataclass(slots=True)
class Repairs:
    """What one look at the bad replicas did."""

    queued: int = 0
    """copies requested to replace a bad replica on its RSE"""
    moved: int = 0
    """locks stuck because the bad replica's RSE cannot be written (the repairer moves them)"""
    dropped: int = 0
    """bad replicas no rule keeps, tombstoned (another good copy exists)"""
    lost: int = 0
    """replicas of files with no good copy left"""

    @property
    def total(self) -> int:
        return self.queued + self.moved + self.dropped + self.lost


def repair_bad(conn: Connection, *, limit: int = CHUNK) -> Repairs:
    """Decide, for bad replicas nothing is done for yet, how each comes back.

    A file with an available copy elsewhere is copied again where rules keep it (a transfer
    request to the same RSE, or stuck locks that the repairer moves when the RSE cannot be
    written); a bad replica no rule keeps is tombstoned. A file with no good copy left, and none
    that may come back (suspicious, unavailable), is lost. A file still in doubt waits.
    """
    query = (
        select(replicas.c.scope, replicas.c.name, replicas.c.rse_id, replicas.c.state_reason)
        .where(
            *in_doubt(ReplicaState.BAD),
            replicas.c.tombstone.is_(None),
            ~exists().where(
                requests.c.scope == replicas.c.scope,
                requests.c.name == replicas.c.name,
                requests.c.dest_rse_id == replicas.c.rse_id,
            ),
            ~exists().where(
                locks_table.c.scope == replicas.c.scope,
                locks_table.c.name == replicas.c.name,
                locks_table.c.rse_id == replicas.c.rse_id,
                locks_table.c.state == LockState.STUCK.value,
            ),
        )
        .order_by(replicas.c.updated_at)
        .limit(limit)
    )
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True)
    bad = list(conn.execute(query))
    done = Repairs()
    if not bad:
        return done
    copies = _copies(conn, list({(row.scope, row.name) for row in bad}))
    held = _held(conn, [(row.scope, row.name, row.rse_id) for row in bad])
    writable = _writable(conn)
    lost: dict[tuple[str, str], str] = {}
    now = utcnow()
    for row in bad:
        states = copies[(row.scope, row.name)]
        if ReplicaState.AVAILABLE.value in states.values():
            key = (row.scope, row.name, row.rse_id)
            if not held.get(key):
                conn.execute(update(replicas).where(*_is(key)).values(tombstone=locks.EPOCH))
                done.dropped += 1
            elif row.rse_id in writable:
                _queue_copy(conn, key, held[key][0], now)
                done.queued += 1
            else:
                _set_locks(conn, [key], LockState.STUCK)
                done.moved += 1
        elif not any(state in {s.value for s in DOUBTED} for state in states.values()):
            lost[(row.scope, row.name)] = row.state_reason or "bad"
    done.lost = lose(conn, lost)
    locks.refresh_rules(conn, {rule for rules_of in held.values() for rule in rules_of})
    return done


def lose(conn: Connection, files: dict[tuple[str, str], str]) -> int:
    """Files with no good copy left: their bad replicas become ``lost`` (bytes kept), their
    locks ``stuck``, their rules stuck with the reason (``FileLost: ...``). Returns how many
    replicas."""
    now = utcnow()
    lost: list[Declaration] = []
    for (scope, name), reason in files.items():
        keys = [
            (scope, name, rse_id)
            for rse_id in conn.execute(
                select(replicas.c.rse_id).where(
                    replicas.c.scope == scope,
                    replicas.c.name == name,
                    replicas.c.state == ReplicaState.BAD.value,
                )
            ).scalars()
        ]
        text = f"no good copy left ({reason})"[:255]
        for key in keys:
            conn.execute(
                update(replicas)
                .where(*_is(key))
                .values(state=ReplicaState.LOST.value, state_reason=text, updated_at=now)
            )
            lost.append(Declaration(*key, text))
        touched = _set_locks(conn, keys, LockState.STUCK)
        if touched:
            error = f"{LOST_ERROR}: {scope}:{name} has {text}"[:255]
            conn.execute(update(rules).where(rules.c.id.in_(touched)).values(error=error))
            locks.refresh_rules(conn, touched)
    rows = _rows(conn, [item.key for item in lost])
    _record(conn, lost, ReplicaState.LOST, account="root", rows=rows, now=now)
    return len(lost)


def repaired(conn: Connection, rse_id: int, keys: Sequence[tuple[str, str]]) -> None:
    """Bad replicas of ``keys`` on ``rse_id`` were just replaced by verified copies (called
    before the new replicas are registered): forget the bad rows, keep the history."""
    found = _rows(conn, [(scope, name, rse_id) for scope, name in keys])
    bad = [key for key, row in found.items() if row.state == ReplicaState.BAD.value]
    for key in bad:
        conn.execute(replicas.delete().where(*_is(key)))
    if bad:
        done = [Declaration(*key, "copied again from a good copy") for key in bad]
        _record(conn, done, None, account="root", rows=found, now=utcnow())


def _record(
    conn: Connection,
    items: Sequence[Declaration],
    state: ReplicaState | None,
    *,
    account: str,
    rows: dict[ReplicaKey, Any],
    now: datetime,
    expires_at: datetime | None = None,
) -> None:
    """History rows and events: ``replica.<state>`` (``replica.repaired`` for None)."""
    if not items:
        return
    label = state.value if state is not None else "repaired"
    names: dict[int, str] = {row.id: row.rse for row in conn.execute(select(rses.c.id, rses.c.rse))}
    conn.execute(
        insert(replica_declarations),
        [
            {
                "scope": item.scope,
                "name": item.name,
                "rse_id": item.rse_id,
                "state": label,
                "reason": item.reason[:255],
                "account": account,
                "bytes": getattr(rows.get(item.key), "bytes", None),
                "created_at": now,
                "expires_at": expires_at,
            }
            for item in items
        ],
    )
    if state is ReplicaState.AVAILABLE:
        return  # replica.available is the registration's event; the history says why
    events.emit_many(
        conn,
        [
            (
                f"replica.{label}",
                item.scope,
                item.name,
                {"rse": names.get(item.rse_id), "reason": item.reason[:1000], "account": account},
            )
            for item in items
        ],
    )


def _rows(conn: Connection, keys: Iterable[ReplicaKey]) -> dict[ReplicaKey, Any]:
    found: dict[ReplicaKey, Any] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), CHUNK):
        part = unique[start : start + CHUNK]
        for row in conn.execute(
            select(replicas).where(
                tuple_(replicas.c.scope, replicas.c.name, replicas.c.rse_id).in_(part)
            )
        ):
            found[(row.scope, row.name, row.rse_id)] = row
    return found


def _is(key: ReplicaKey) -> tuple[Any, ...]:
    return (replicas.c.scope == key[0], replicas.c.name == key[1], replicas.c.rse_id == key[2])


def _by_rse(keys: Iterable[ReplicaKey]) -> dict[int, list[tuple[str, str]]]:
    grouped: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for scope, name, rse_id in keys:
        grouped[rse_id].append((scope, name))
    return grouped


def _lock_keys(keys: Sequence[ReplicaKey]) -> Any:
    return tuple_(locks_table.c.scope, locks_table.c.name, locks_table.c.rse_id).in_(keys)


def _set_locks(conn: Connection, keys: Sequence[ReplicaKey], state: LockState) -> set[str]:
    """Set the locks on these replicas to ``state``; the rules they belong to."""
    touched: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        part = list(keys[start : start + CHUNK])
        touched.update(
            conn.execute(select(locks_table.c.rule_id).where(_lock_keys(part)).distinct()).scalars()
        )
        conn.execute(
            update(locks_table)
            .where(_lock_keys(part))
            .values(state=state.value, updated_at=utcnow())
        )
    return touched


def _hold_locks(conn: Connection, keys: Sequence[ReplicaKey], state: LockState) -> None:
    """Locks ``ok`` on replicas no longer available turn ``state``; their rules follow."""
    touched: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        part = list(keys[start : start + CHUNK])
        ok = and_(_lock_keys(part), locks_table.c.state == LockState.OK.value)
        touched.update(conn.execute(select(locks_table.c.rule_id).where(ok).distinct()).scalars())
        conn.execute(update(locks_table).where(ok).values(state=state.value, updated_at=utcnow()))
    locks.refresh_rules(conn, touched)


def _copies(
    conn: Connection, files: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[int, str]]:
    """File → {rse_id: state} of its replicas (only readable RSEs count as good copies)."""
    found: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for scope, names in names_by_scope(files, CHUNK):
        for row in conn.execute(
            select(replicas.c.scope, replicas.c.name, replicas.c.rse_id, replicas.c.state)
            .join(rses, rses.c.id == replicas.c.rse_id)
            .where(
                replicas.c.scope == scope,
                replicas.c.name.in_(names),
                or_(
                    rses.c.availability_read.is_(True),
                    replicas.c.state != ReplicaState.AVAILABLE.value,
                ),
            )
        ):
            found[(row.scope, row.name)][row.rse_id] = row.state
    return found


def _held(conn: Connection, keys: Sequence[ReplicaKey]) -> dict[ReplicaKey, list[str]]:
    """Replica → the rules whose locks keep it."""
    found: dict[ReplicaKey, list[str]] = defaultdict(list)
    for start in range(0, len(keys), CHUNK):
        for row in conn.execute(
            select(
                locks_table.c.scope, locks_table.c.name, locks_table.c.rse_id, locks_table.c.rule_id
            ).where(_lock_keys(list(keys[start : start + CHUNK])))
        ):
            found[(row.scope, row.name, row.rse_id)].append(row.rule_id)
    return found


def _writable(conn: Connection) -> set[int]:
    return set(
        conn.execute(
            select(rses.c.id).where(
                rses.c.availability_write.is_(True), rses.c.read_only.is_(False)
            )
        ).scalars()
    )


def _queue_copy(conn: Connection, key: ReplicaKey, rule_id: str, now: datetime) -> None:
    """A transfer request bringing the file back to the bad replica's RSE, for ``rule_id``."""
    scope, name, rse_id = key
    file = conn.execute(
        select(dids.c.bytes, dids.c.adler32, dids.c.md5).where(
            dids.c.scope == scope, dids.c.name == name
        )
    ).one()
    rule = conn.execute(
        select(rules.c.activity, rules.c.priority, rules.c.source_replica_expression).where(
            rules.c.id == rule_id
        )
    ).one()
    conn.execute(
        insert(requests).values(
            scope=scope,
            name=name,
            dest_rse_id=rse_id,
            rule_id=rule_id,
            state=RequestState.QUEUED.value,
            activity=rule.activity,
            priority=rule.priority,
            bytes=file.bytes,
            adler32=file.adler32,
            md5=file.md5,
            source_replica_expression=rule.source_replica_expression,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    _set_locks(conn, [key], LockState.REPLICATING)
