"""The rule evaluator: places new rules and follows content changes of covered collections.

A pass claims queued evaluations (with a lease), then works through them a few at a time; each
transaction first deletes its items — only while this worker's claims still hold — then
evaluates the rules they name. A worker killed mid-batch loses nothing: the items it had not
finished are claimed again when their lease runs out, and an item is never done twice because
its deletion and its work commit together.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, select, tuple_

from lacus.core import claims, evaluation
from lacus.core import rules as rules_core
from lacus.core.queue import Child, Kind, attached_children, covering_collections
from lacus.db.tables import evaluations, rules
from lacus.service.lake import Lake

log = logging.getLogger("lacus.daemons.evaluator")
BATCH = 200
PER_TRANSACTION = 20


def evaluator_pass(lake: Lake, worker: str) -> int:
    with lake.write() as conn:
        items = claims.claim(
            conn,
            evaluations,
            worker=worker,
            limit=BATCH,
            lease_seconds=lake.settings.claim_lease_seconds,
        )
    lease = lake.settings.claim_lease_seconds
    done = 0
    for start in range(0, len(items), PER_TRANSACTION):
        chunk = items[start : start + PER_TRANSACTION]
        try:
            with lake.write() as conn:
                if not claims.finish(conn, evaluations, chunk, worker=worker):
                    raise _ClaimLost
                _evaluate(conn, chunk)
                rest = items[start + PER_TRANSACTION :]
                if rest:  # the claims on what is left last from now on
                    claims.renew(conn, evaluations, rest, worker=worker, lease_seconds=lease)
            done += len(chunk)
        except _ClaimLost:
            log.info("%s: claims lost (lease ran out); another worker has them", worker)
        except Exception:
            log.exception("%s: evaluating %d items failed; one at a time now", worker, len(chunk))
            for item in chunk:
                done += _evaluate_alone(lake, worker, item)
    if items:
        lake.wake("reaper", "conveyor")
    return done


class _ClaimLost(Exception):
    pass


def _evaluate(conn: Connection, items: list[Any]) -> None:
    """Evaluate the rules ``items`` name or cover: a rule only for the children its attach
    items name when that is all they ask, else whole (pruned after a detach)."""
    whole: dict[str, bool] = {}  # rule id → prune
    only: dict[str, list[Child]] = {}  # rule id → attached children
    for item in items:
        if item.kind == Kind.RULE:
            whole.setdefault(item.rule_id, False)
            continue
        above = covering_collections(item.scope, item.name).subquery()
        covering = conn.execute(
            select(rules.c.id).where(
                tuple_(rules.c.scope, rules.c.name).in_(select(above.c.scope, above.c.name))
            )
        ).scalars()
        children = attached_children(item)
        for rule_id in covering:
            if children is None:
                whole[rule_id] = whole.get(rule_id, False) or item.kind == Kind.DETACH
            else:
                only.setdefault(rule_id, []).extend(children)
    targets: list[tuple[str, bool, list[Child] | None]]
    targets = [(rule_id, prune, None) for rule_id, prune in whole.items()]
    targets += [(rule_id, False, kids) for rule_id, kids in only.items() if rule_id not in whole]
    context = evaluation.Context.load(conn) if targets else None
    for rule_id, prune, children in sorted(targets, key=lambda target: target[0]):
        evaluation.evaluate_rule(conn, rule_id, prune=prune, only=children, context=context)


def _evaluate_alone(lake: Lake, worker: str, item: Any) -> int:
    try:
        with lake.write() as conn:
            if not claims.finish(conn, evaluations, [item], worker=worker):
                return 0
            _evaluate(conn, [item])
            return 1
    except Exception as exc:
        log.exception("%s: evaluation %s failed", worker, item.id)
        with lake.write() as conn:  # give up on the item, say why on the rule
            if claims.finish(conn, evaluations, [item], worker=worker) and item.rule_id:
                rules_core.record_failure(conn, item.rule_id, f"evaluation failed: {exc}")
        return 1
