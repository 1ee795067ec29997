"""Subscriptions: standing filters on new collections, with the rules to add for each match.

A filter may hold ``scope`` (list of regular expressions), ``pattern`` (regular expression on the
name), ``excluded_pattern``, ``did_type`` (one or a list of FILE/DATASET/CONTAINER; default
DATASET), ``account`` (list: the DID's owner) and any other key, matched as a regular expression
against the DID's metadata value. Each entry of ``replication_rules`` becomes a rule owned by the
subscription's account (or the entry's ``account``), marked with the subscription's id.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from lacus.core import rules
from lacus.core.accounts import get_account
from lacus.core.clock import utcnow
from lacus.core.metadata import get_metadata
from lacus.core.rules import MAX_LIFETIME
from lacus.db.tables import dids, new_dids, subscriptions
from lacus.errors import (
    DuplicateRule,
    InvalidInput,
    LacusError,
    SubscriptionDuplicate,
    SubscriptionNotFound,
)
from lacus.types import DIDType, RuleGrouping, RuleSpec

ACTIVE = "active"
INACTIVE = "inactive"
_FILTER_LISTS = ("scope", "account", "did_type")
_RULE_KEYS = {
    "copies", "rse_expression", "lifetime", "activity", "grouping", "weight",
    "source_replica_expression", "comment", "comments", "purge_replicas", "locked", "priority",
    "account", "ignore_availability",
}  # fmt: skip


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def check_filter(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput("a subscription's filter is a JSON object")
    normal = dict(value)
    for key in _FILTER_LISTS:
        if key in normal and isinstance(normal[key], str):
            normal[key] = [normal[key]]
        if key in normal and not (
            isinstance(normal[key], list) and all(isinstance(v, str) for v in normal[key])
        ):
            raise InvalidInput(f"filter {key!r} is a string or a list of strings")
    for key, pattern in normal.items():
        patterns = pattern if isinstance(pattern, list) else [pattern]
        for item in patterns:
            if isinstance(item, str) and key not in ("did_type", "account"):
                try:
                    re.compile(item)
                except re.error as exc:
                    raise InvalidInput(
                        f"filter {key!r}: {item!r} is not a regular expression: {exc}"
                    ) from None
    for key in ("pattern", "excluded_pattern"):
        if key in normal and not isinstance(normal[key], str):
            raise InvalidInput(f"filter {key!r} is a regular expression (a string)")
    for did_type in normal.get("did_type", []):
        if did_type.lower() not in {t.value for t in DIDType}:
            raise InvalidInput(f"filter did_type {did_type!r}: FILE, DATASET or CONTAINER")
    return normal


def check_rules(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidInput("a subscription's replication_rules is a non-empty JSON list")
    for entry in value:
        if not isinstance(entry, dict) or not entry.get("rse_expression"):
            raise InvalidInput("each replication rule is an object with an rse_expression")
        unknown = sorted(set(entry) - _RULE_KEYS)
        if unknown:
            raise InvalidInput(f"replication rule keys {unknown} are unknown")
        copies = entry.get("copies", 1)
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise InvalidInput("a replication rule's copies is a positive integer")
        lifetime = entry.get("lifetime")
        if lifetime is not None and not (_whole(lifetime) and 0 < int(lifetime) <= MAX_LIFETIME):
            raise InvalidInput(f"a replication rule's lifetime is 1 to {MAX_LIFETIME} seconds")
        priority = entry.get("priority")
        if priority is not None and not (_whole(priority) and 0 <= int(priority) <= 5):
            raise InvalidInput("a replication rule's priority is between 0 and 5")
        for key in ("rse_expression", "activity", "weight", "source_replica_expression"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise InvalidInput(f"a replication rule's {key} is a string")
        grouping = entry.get("grouping")
        if grouping is not None and str(grouping).lower() not in {g.value for g in RuleGrouping}:
            raise InvalidInput("a replication rule's grouping is ALL, DATASET or NONE")
    return value


def _whole(value: Any) -> bool:
    """An integer, or a string of digits (Rucio's CLI sends numbers as strings)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def add_subscription(
    conn: Connection,
    account: str,
    name: str,
    *,
    filter: Any,
    replication_rules: Any,
    comments: str | None = None,
    lifetime_days: int | None = None,
    retroactive: bool = False,
    priority: int = 3,
) -> str:
    get_account(conn, account)
    if not name or len(name) > 100:
        raise InvalidInput("a subscription name has 1 to 100 characters")
    if lifetime_days is not None and not 0 < lifetime_days <= 36500:
        raise InvalidInput("a subscription's lifetime is 1 to 36500 days")
    normal_filter = check_filter(filter)
    normal_rules = check_rules(replication_rules)
    if conn.execute(
        select(subscriptions.c.id).where(
            subscriptions.c.account == account, subscriptions.c.name == name
        )
    ).first():
        raise SubscriptionDuplicate(f"account {account!r} has a subscription {name!r} already")
    now = utcnow()
    subscription_id = uuid.uuid4().hex
    conn.execute(
        insert(subscriptions).values(
            id=subscription_id,
            account=account,
            name=name,
            filter=orjson.dumps(normal_filter).decode(),
            replication_rules=orjson.dumps(normal_rules).decode(),
            state=ACTIVE,
            comments=comments,
            retroactive=retroactive,
            priority=priority,
            expires_at=now + timedelta(days=lifetime_days) if lifetime_days else None,
            created_at=now,
            updated_at=now,
        )
    )
    if retroactive:
        _queue_existing(conn, normal_filter)
    return subscription_id


def _queue_existing(conn: Connection, normal_filter: dict[str, Any]) -> None:
    types = [t.lower() for t in normal_filter.get("did_type", ["dataset"])]
    rows = conn.execute(
        select(dids.c.scope, dids.c.name, dids.c.did_type).where(
            dids.c.did_type.in_([t for t in types if t != DIDType.FILE])
        )
    )
    now = utcnow()
    batch = [
        {"scope": r.scope, "name": r.name, "did_type": r.did_type, "created_at": now} for r in rows
    ]
    queued = {(r.scope, r.name) for r in conn.execute(select(new_dids.c.scope, new_dids.c.name))}
    batch = [row for row in batch if (row["scope"], row["name"]) not in queued]
    if batch:
        conn.execute(insert(new_dids), batch)


def update_subscription(conn: Connection, account: str, name: str, options: dict[str, Any]) -> None:
    row = _find(conn, account, name)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if options.get("filter") is not None:
        values["filter"] = orjson.dumps(check_filter(options["filter"])).decode()
    if options.get("replication_rules") is not None:
        values["replication_rules"] = orjson.dumps(
            check_rules(options["replication_rules"])
        ).decode()
    if options.get("comments") is not None:
        values["comments"] = options["comments"]
    if options.get("priority") is not None:
        if not _whole(options["priority"]):
            raise InvalidInput("a subscription's priority is a whole number")
        values["priority"] = int(options["priority"])
    if options.get("lifetime"):
        if not _whole(options["lifetime"]) or int(options["lifetime"]) > 36500:
            raise InvalidInput("a subscription's lifetime is a number of days (at most 36500)")
        values["expires_at"] = utcnow() + timedelta(days=int(options["lifetime"]))
    state = options.get("state")
    if state is not None:
        state = str(state).lower()
        if state in ("i", "inactive"):
            values["state"] = INACTIVE
        elif state in ("a", "active", "u", "updated"):
            values["state"] = ACTIVE
        else:
            raise InvalidInput(f"a subscription's state is ACTIVE or INACTIVE, not {state!r}")
    conn.execute(update(subscriptions).where(subscriptions.c.id == row.id).values(**values))


def _find(conn: Connection, account: str, name: str) -> Any:
    row = conn.execute(
        select(subscriptions).where(
            subscriptions.c.account == account, subscriptions.c.name == name
        )
    ).first()
    if row is None:
        raise SubscriptionNotFound(f"account {account!r} has no subscription {name!r}")
    return row


def get_subscription(conn: Connection, account: str, name: str) -> dict[str, Any]:
    return info(_find(conn, account, name))


def get_subscription_by_id(conn: Connection, subscription_id: str) -> dict[str, Any]:
    row = conn.execute(select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
    if row is None:
        raise SubscriptionNotFound(f"subscription {subscription_id} does not exist")
    return info(row)


def list_subscriptions(
    conn: Connection, *, account: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    query = select(subscriptions).order_by(subscriptions.c.account, subscriptions.c.name)
    if account is not None:
        query = query.where(subscriptions.c.account == account)
    if name is not None:
        query = query.where(subscriptions.c.name == name)
    return [info(row) for row in conn.execute(query)]


def info(row: Any) -> dict[str, Any]:
    data = {str(key): value for key, value in row._mapping.items()}
    data["filter"] = orjson.loads(row.filter)
    data["replication_rules"] = orjson.loads(row.replication_rules)
    return data


def matches(conn: Connection, sub_filter: dict[str, Any], did: Any) -> bool:
    """Whether DID row ``did`` passes a subscription's filter."""
    types = [t.lower() for t in sub_filter.get("did_type", ["dataset"])]
    if did.did_type not in types:
        return False
    if "scope" in sub_filter and not any(
        re.fullmatch(pattern, did.scope) for pattern in sub_filter["scope"]
    ):
        return False
    if "account" in sub_filter and did.account not in sub_filter["account"]:
        return False
    pattern = sub_filter.get("pattern")
    if pattern and not re.match(pattern, did.name):
        return False
    excluded = sub_filter.get("excluded_pattern")
    if excluded and re.match(excluded, did.name):
        return False
    others = {
        key: value
        for key, value in sub_filter.items()
        if key
        not in (
            "scope",
            "account",
            "did_type",
            "pattern",
            "excluded_pattern",
            "split_rule",
            "grouping",
        )
    }
    if others:
        meta = get_metadata(conn, did.scope, did.name)
        for key, wanted in others.items():
            actual = meta.get(key)
            if actual is None:
                return False
            options = wanted if isinstance(wanted, list) else [wanted]
            if not any(re.fullmatch(str(option), str(actual)) for option in options):
                return False
    return True


def rule_specs(subscription: dict[str, Any], scope: str, name: str) -> list[tuple[str, RuleSpec]]:
    """(account, spec) of each rule the subscription adds for ``scope:name``."""
    specs = []
    for entry in subscription["replication_rules"]:
        comment = entry.get("comments") or entry.get("comment") or subscription["comments"]
        specs.append(
            (
                entry.get("account") or subscription["account"],
                RuleSpec(
                    scope=scope,
                    name=name,
                    rse_expression=entry["rse_expression"],
                    copies=int(entry.get("copies", 1)),
                    grouping=RuleGrouping(str(entry.get("grouping") or "dataset").lower()),
                    lifetime=int(entry["lifetime"]) if entry.get("lifetime") else None,
                    weight=entry.get("weight"),
                    activity=entry.get("activity"),
                    source_replica_expression=entry.get("source_replica_expression"),
                    purge_replicas=_truthy(entry.get("purge_replicas")),
                    locked=_truthy(entry.get("locked")),
                    priority=int(entry.get("priority", subscription["priority"] or 3)),
                    comment=(comment or None) and str(comment)[:255],
                    ignore_availability=_truthy(entry.get("ignore_availability")),
                    subscription_id=subscription["id"],
                ),
            )
        )
    return specs


def apply(conn: Connection, did: Any) -> tuple[list[str], list[str]]:
    """Add the rules of every active subscription ``did`` matches: (rule ids, errors)."""
    now = utcnow()
    created: list[str] = []
    errors: list[str] = []
    rows = conn.execute(select(subscriptions).where(subscriptions.c.state == ACTIVE))
    for row in rows:
        if row.expires_at is not None and row.expires_at < now:
            continue
        subscription = info(row)
        if not matches(conn, subscription["filter"], did):
            continue
        for account, spec in rule_specs(subscription, did.scope, did.name):
            try:
                with conn.begin_nested():
                    created.append(rules.add_rule(conn, spec, account=account))
            except DuplicateRule:
                continue
            except LacusError as exc:
                errors.append(f"subscription {row.name}: {type(exc).__name__}: {exc.message}")
        conn.execute(
            update(subscriptions).where(subscriptions.c.id == row.id).values(last_processed=now)
        )
    return created, errors
