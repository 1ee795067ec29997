"""The transmogrifier: matches new collections against the subscriptions and adds their rules."""

from __future__ import annotations

import logging

from sqlalchemy import select

from lacus.core import claims, subscriptions
from lacus.db.tables import dids, new_dids
from lacus.service.lake import Lake

log = logging.getLogger("lacus.daemons.transmogrifier")
BATCH = 100


def transmogrifier_pass(lake: Lake, worker: str) -> int:
    with lake.write() as conn:
        items = claims.claim(
            conn,
            new_dids,
            worker=worker,
            limit=BATCH,
            lease_seconds=lake.settings.claim_lease_seconds,
        )
    created = 0
    for item in items:
        with lake.write() as conn:
            if not claims.finish(conn, new_dids, [item], worker=worker):
                continue
            did = conn.execute(
                select(dids).where(dids.c.scope == item.scope, dids.c.name == item.name)
            ).first()
            if did is None:
                continue
            rule_ids, errors = subscriptions.apply(conn, did)
            created += len(rule_ids)
            for error in errors:
                log.warning("%s:%s: %s", item.scope, item.name, error)
    if created:
        lake.wake("evaluator")
    return len(items)
