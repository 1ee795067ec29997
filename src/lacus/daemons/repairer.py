"""The rule repairer: stuck locks are retried, or moved to another RSE; rules whose placement
failed are evaluated again (space or quota may have been freed)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, or_, select, update

from lacus.core import evaluation, locks, queue
from lacus.core.clock import utcnow
from lacus.core.integrity import LOST_ERROR
from lacus.db.engine import is_sqlite
from lacus.db.tables import locks as locks_table
from lacus.db.tables import replicas, requests, rses, rules
from lacus.service.lake import Lake
from lacus.types import LockState, ReplicaState, RequestState, RuleState

BATCH = 100
RETRY_PLACEMENT_SECONDS = 60.0


def repairer_pass(lake: Lake, worker: str) -> int:
    settings = lake.settings
    now = utcnow()
    done = 0
    with lake.write() as conn:
        query = (
            select(
                locks_table,
                rses.c.availability_write,
                requests.c.attempts,
                requests.c.id.label("request_id"),
            )
            .join(rses, rses.c.id == locks_table.c.rse_id)
            .outerjoin(
                requests,
                (requests.c.scope == locks_table.c.scope)
                & (requests.c.name == locks_table.c.name)
                & (requests.c.dest_rse_id == locks_table.c.rse_id),
            )
            .where(
                locks_table.c.state == LockState.STUCK.value,
                ~exists().where(  # a lost file: nothing to copy from, said loudly elsewhere
                    replicas.c.scope == locks_table.c.scope,
                    replicas.c.name == locks_table.c.name,
                    replicas.c.state == ReplicaState.LOST.value,
                ),
            )
            .order_by(locks_table.c.updated_at)
            .limit(BATCH)
        )
        if not is_sqlite(conn):
            query = query.with_for_update(skip_locked=True, of=locks_table)
        stuck = list(conn.execute(query))
        touched: set[str] = set()
        for lock in stuck:
            key = (lock.scope, lock.name, lock.rse_id)
            too_long = lock.updated_at < now - timedelta(seconds=settings.repair_replace_after)
            exhausted = (lock.attempts or 0) >= 2 * settings.transfer_max_attempts
            move = not lock.availability_write or too_long or exhausted or lock.request_id is None
            if move and evaluation.replace_lock(
                conn, lock.rule_id, key, exclude_current=lock.request_id is not None
            ):
                touched.add(lock.rule_id)
                continue
            where = (
                locks_table.c.rule_id == lock.rule_id,
                locks_table.c.scope == lock.scope,
                locks_table.c.name == lock.name,
                locks_table.c.rse_id == lock.rse_id,
            )
            if lock.request_id is None:  # nowhere to go and nothing to retry: look again later
                conn.execute(update(locks_table).where(*where).values(updated_at=now))
                continue
            # Retry where it is (also when no other RSE can take it), after a pause.
            backoff = min(2 ** min(lock.attempts or 0, 10), 3600)
            conn.execute(
                update(requests)
                .where(requests.c.id == lock.request_id)
                .values(
                    state=RequestState.QUEUED.value,
                    next_attempt_at=now + timedelta(seconds=backoff),
                    updated_at=now,
                )
            )
            conn.execute(
                update(locks_table)
                .where(*where)
                .values(state=LockState.REPLICATING.value, updated_at=now)
            )
            touched.add(lock.rule_id)
        locks.refresh_rules(conn, touched)
        done += len(touched)
        failed_placement = list(
            conn.execute(
                select(rules.c.id)
                .where(
                    rules.c.state == RuleState.STUCK.value,
                    rules.c.error.is_not(None),
                    ~rules.c.error.startswith(LOST_ERROR),
                    or_(
                        rules.c.updated_at.is_(None),
                        rules.c.updated_at < now - timedelta(seconds=RETRY_PLACEMENT_SECONDS),
                    ),
                )
                .limit(BATCH)
            ).scalars()
        )
        if failed_placement:
            conn.execute(
                update(rules).where(rules.c.id.in_(failed_placement)).values(updated_at=now)
            )
            queue.enqueue_rules(conn, failed_placement)
            done += len(failed_placement)
    if done:
        lake.wake("evaluator", "conveyor")
    return len(touched)
