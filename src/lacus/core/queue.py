"""What the daemons are asked to look at: rules to evaluate, collections whose content changed,
new collections to match against subscriptions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    exists,
    insert,
    literal,
    select,
    tuple_,
)

from lacus.core.clock import utcnow
from lacus.db.tables import contents, evaluations, new_dids, rules, subscriptions


class Kind:
    RULE = "rule"
    ATTACH = "attach"
    DETACH = "detach"


def enqueue_rules(conn: Connection, rule_ids: Sequence[str]) -> None:
    """Ask the evaluator to (re)evaluate these rules."""
    now = utcnow()
    if rule_ids:
        conn.execute(
            insert(evaluations),
            [{"kind": Kind.RULE, "rule_id": rule_id, "created_at": now} for rule_id in rule_ids],
        )


CHILDREN_PER_ITEM = 1000
"""An attach of more children is queued as several evaluations of this many each."""

Child = tuple[str, str, str]
"""An attached DID: scope, name, DID type."""


def content_changed(
    conn: Connection,
    scope: str,
    name: str,
    *,
    detached: bool,
    children: Sequence[Child] = (),
    covered: bool | None = None,
) -> None:
    """After attaching to or detaching from ``scope:name``: if a rule covers it (directly or
    through a collection above it), ask the evaluator to bring the rule's locks up to date.

    An attach names its ``children``: the evaluator then places the files under them only, a
    cost that grows with what was attached, not with the rule. Without children (a detach) the
    whole rule is evaluated again. ``covered``: whether a rule covers it, when the caller has
    asked already (``covered_clause``)."""
    if not (covered_by_rules(conn, scope, name) if covered is None else covered):
        return
    now = utcnow()
    item = {"scope": scope, "name": name, "created_at": now}
    if detached or not children:
        kind = Kind.DETACH if detached else Kind.ATTACH
        conn.execute(insert(evaluations).values(kind=kind, children=None, **item))
        return
    conn.execute(
        insert(evaluations),
        [
            {
                **item,
                "kind": Kind.ATTACH,
                "children": json.dumps(children[start : start + CHILDREN_PER_ITEM]),
            }
            for start in range(0, len(children), CHILDREN_PER_ITEM)
        ],
    )


def attached_children(item: Any) -> list[Child] | None:
    """The DIDs an attach evaluation names; None: the whole rule is to be evaluated."""
    if item.kind != Kind.ATTACH or not item.children:
        return None
    return [(str(c[0]), str(c[1]), str(c[2])) for c in json.loads(item.children)]


def covering_collections(
    scope: str | ColumnElement[str], name: str | ColumnElement[str]
) -> Select[Any]:
    """``scope:name`` (values, or bound parameters) and every collection above it, as
    (scope, name) rows."""
    start = select(_value(scope).label("scope"), _value(name).label("name"))
    up = start.cte("covering", recursive=True)
    step = select(contents.c.scope, contents.c.name).join(
        up, and_(contents.c.child_scope == up.c.scope, contents.c.child_name == up.c.name)
    )
    up = up.union(step)
    return select(up.c.scope, up.c.name)


def _value(value: str | ColumnElement[str]) -> ColumnElement[str]:
    return literal(value) if isinstance(value, str) else value


def covered_clause(
    scope: str | ColumnElement[str], name: str | ColumnElement[str]
) -> ColumnElement[bool]:
    """Whether a rule is on ``scope:name`` or on a collection above it, as an expression (to
    ask in the same statement as something else)."""
    above = covering_collections(scope, name).subquery()
    return exists().where(
        tuple_(rules.c.scope, rules.c.name).in_(select(above.c.scope, above.c.name))
    )


def _covered_query() -> Select[Any]:
    return select(
        covered_clause(bindparam("scope", type_=String()), bindparam("name", type_=String()))
    )


_COVERED = _covered_query()
"""Built once: asked at every attach, and building a recursive query costs more than running
it."""


def covered_by_rules(conn: Connection, scope: str, name: str) -> bool:
    """Whether a rule is on ``scope:name`` or on a collection above it."""
    return bool(conn.execute(_COVERED, {"scope": scope, "name": name}).scalar())


def collection_created(conn: Connection, scope: str, name: str, did_type: str) -> None:
    """Queue a new collection for the subscriptions, when any subscription is active."""
    active = conn.execute(select(exists().where(subscriptions.c.state == "active"))).scalar()
    if active:
        conn.execute(
            insert(new_dids).values(scope=scope, name=name, did_type=did_type, created_at=utcnow())
        )
