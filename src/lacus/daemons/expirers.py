"""The rule expirer (lifetimes and lifecycle transitions) and the DID expirer."""

from __future__ import annotations

import logging

from lacus.core import expiry
from lacus.service.lake import Lake

log = logging.getLogger("lacus.daemons.expirers")
BATCH = 100


def rule_expirer_pass(lake: Lake, worker: str) -> int:
    moved = 0
    with lake.write() as conn:  # the rows stay claimed (SKIP LOCKED) until this commits
        rule_ids = expiry.expired_rules(conn, limit=BATCH)
        for rule_id in rule_ids:
            try:
                with conn.begin_nested():
                    if expiry.expire_rule(conn, rule_id) != expiry.WAITING:
                        moved += 1
            except Exception:
                log.exception("%s: expiring rule %s failed", worker, rule_id)
    if moved:
        lake.wake("evaluator", "reaper")
    return moved


def did_expirer_pass(lake: Lake, worker: str) -> int:
    done = 0
    with lake.write() as conn:
        for scope, name in expiry.expired_dids(conn, limit=BATCH):
            try:
                with conn.begin_nested():
                    done += expiry.expire_did(conn, scope, name)
            except Exception:
                log.exception("%s: expiring %s:%s failed", worker, scope, name)
    if done:
        lake.wake("evaluator", "reaper")
    return done
