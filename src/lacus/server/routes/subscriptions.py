"""Subscriptions on Rucio's paths: ``/subscriptions/{account}/{name}`` (add, update, read, its
rules), ``/subscriptions/{account}``, ``/subscriptions/``, ``/subscriptions/name/{name}`` and
``/subscriptions/id/{id}``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from lacus.errors import InvalidInput, InvalidOption, UnsupportedOperation
from lacus.models import MAX_LIFETIME, SubscriptionBody
from lacus.naming import validate_account
from lacus.server import rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream
from lacus.server.routes.rules import rule_state
from lacus.service import subscriptions

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])
OPTIONS = (
    "filter", "replication_rules", "comments", "lifetime", "retroactive", "dry_run", "priority",
    "state",
)  # fmt: skip
MAX_LIFETIME_DAYS = 100 * 365
MAX_NAME = 100


def _name(name: str) -> str:
    if not 0 < len(name) <= MAX_NAME:
        raise InvalidInput(f"a subscription name has 1 to {MAX_NAME} characters")
    return name


def _json(key: str, value: Any) -> Any:
    """``filter`` and ``replication_rules`` as JSON values (a JSON string is decoded too)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidInput(f"{key} is not valid JSON: {value[:60]!r}") from None
    return value


def _check_kinds(sub_filter: Any, replication_rules: Any) -> None:
    """What the transmogrifier reads has the kind it expects (the rest is checked below)."""
    if isinstance(sub_filter, dict):
        for key in ("pattern", "excluded_pattern"):
            if sub_filter.get(key) is not None and not isinstance(sub_filter[key], str):
                raise InvalidInput(f"filter {key!r} is a regular expression (a string)")
    if isinstance(replication_rules, list):
        for entry in replication_rules:
            if not isinstance(entry, dict):
                continue
            for key in ("lifetime", "priority"):
                value = entry.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise InvalidInput(f"a replication rule's {key} is an integer")
            if entry.get("lifetime") is not None and not 0 < entry["lifetime"] <= MAX_LIFETIME:
                raise InvalidInput(f"a replication rule's lifetime is 1 to {MAX_LIFETIME} seconds")
            for key in ("rse_expression", "activity", "weight", "source_replica_expression"):
                value = entry.get(key)
                if value is not None and not isinstance(value, str):
                    raise InvalidInput(f"a replication rule's {key} is a string")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """Rucio's options, each checked (a wrong kind is a 400 ``InvalidObject``)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidOption(
            f"{str(unknown[0])[:40]} is not a valid subscription option; options: "
            f"{', '.join(OPTIONS)}"
        )
    result: dict[str, Any] = {}
    for key in ("filter", "replication_rules"):
        if options.get(key) is not None:
            result[key] = _json(key, options[key])
    _check_kinds(result.get("filter"), result.get("replication_rules"))
    comments = options.get("comments")
    if comments is not None and (not isinstance(comments, str) or len(comments) > 255):
        raise InvalidInput("comments is a string of at most 255 characters")
    result["comments"] = comments
    lifetime = options.get("lifetime")
    if lifetime is not None and lifetime is not False:
        if isinstance(lifetime, bool) or not isinstance(lifetime, int):
            raise InvalidInput(f"lifetime is a number of days, not {lifetime!r:.40}")
        if not 0 <= lifetime <= MAX_LIFETIME_DAYS:
            raise InvalidInput(f"lifetime is between 0 and {MAX_LIFETIME_DAYS} days")
        result["lifetime"] = lifetime or None
    else:
        result["lifetime"] = None
    for key in ("retroactive", "dry_run"):
        value = options.get(key, False)
        if value is not None and not isinstance(value, bool):
            raise InvalidInput(f"{key} must be true or false, not {value!r:.40}")
        result[key] = bool(value)
    if result["dry_run"]:
        raise UnsupportedOperation("dry_run subscriptions are not supported")
    priority = options.get("priority")
    if priority is not None and not isinstance(priority, bool):
        try:  # the rucio CLI sends it as a string
            priority = int(priority)
        except (TypeError, ValueError):
            raise InvalidInput(f"priority is an integer, not {priority!r:.40}") from None
        if not 0 <= priority <= 1_000_000:
            raise InvalidInput("priority is between 0 and 1000000")
    elif isinstance(priority, bool):
        raise InvalidInput("priority is an integer, not a boolean")
    result["priority"] = priority
    state = options.get("state")
    if state is not None and not isinstance(state, str):
        raise InvalidInput(f"state is a string, not {state!r:.40}")
    result["state"] = state
    return result


@router.get("/", response_class=NDJSONResponse)
def list_all(lake: LakeDep, principal: PrincipalDep) -> Response:
    found = subscriptions.list_subscriptions(lake, principal)
    return stream(rucio.subscription(sub) for sub in found)


@router.get("/name/{name}", response_class=NDJSONResponse)
def list_by_name(name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    found = subscriptions.list_subscriptions(lake, principal, name=_name(name))
    return stream(rucio.subscription(sub) for sub in found)


@router.get("/id/{subscription_id}")
def get_by_id(subscription_id: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    found = subscriptions.get_subscription_by_id(lake, principal, subscription_id)
    return json_response(rucio.subscription(found))


@router.get("/{account}", response_class=NDJSONResponse)
def list_of_account(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    found = subscriptions.list_subscriptions(lake, principal, account=validate_account(account))
    return stream(rucio.subscription(sub) for sub in found)


@router.get("/{account}/{name}", response_class=NDJSONResponse)
def get_one(account: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """A stream of one subscription (SubscriptionNotFound when there is none)."""
    found = subscriptions.get_subscription(lake, principal, validate_account(account), _name(name))
    return stream([rucio.subscription(found)])


@router.post("/{account}/{name}", status_code=201, response_class=PlainTextResponse)
def add(
    account: str, name: str, body: SubscriptionBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Add a subscription; answers its id as plain text (Rucio's shape). ``filter``: scope
    (list of regular expressions), pattern, excluded_pattern, did_type, account, and metadata
    keys; ``replication_rules``: a list of rules (copies, rse_expression, lifetime, ...);
    ``lifetime`` in days; ``priority``."""
    options = _options(body.options)
    if options.get("state") is not None:
        raise InvalidOption("a new subscription is ACTIVE: state cannot be given")
    if "filter" not in options:
        raise InvalidInput("a subscription needs a filter")
    if "replication_rules" not in options:
        raise InvalidInput("You must specify a rule")
    subscription_id = subscriptions.add_subscription(
        lake,
        principal,
        validate_account(account),
        _name(name),
        filter=options["filter"],
        replication_rules=options["replication_rules"],
        comments=options["comments"],
        lifetime_days=options["lifetime"],
        retroactive=options["retroactive"],
        priority=options["priority"] or 3,
    )
    return PlainTextResponse(subscription_id, status_code=201)


@router.put("/{account}/{name}", status_code=201, response_class=PlainTextResponse)
def update(
    account: str, name: str, body: SubscriptionBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Change a subscription: the options given (not null) replace the stored ones; ``state``
    ``I``/``INACTIVE`` deactivates it, ``A``/``ACTIVE`` activates it."""
    options = _options(body.options)
    if options["retroactive"]:
        raise UnsupportedOperation("a subscription can be made retroactive only when added")
    changes = {
        key: options[key]
        for key in ("filter", "replication_rules", "comments", "lifetime", "priority", "state")
        if options.get(key) is not None
    }
    subscriptions.update_subscription(
        lake, principal, validate_account(account), _name(name), changes
    )
    return created()


@router.get("/{account}/{name}/rules", response_class=NDJSONResponse)
def list_rules(
    account: str, name: str, lake: LakeDep, principal: PrincipalDep, state: str | None = None
) -> Response:
    """The rules the subscription added (``state``: a rule state name or letter)."""
    found = subscriptions.subscription_rules(
        lake, principal, validate_account(account), _name(name)
    )
    if state is not None:
        wanted = rule_state(state)
        found = [rule for rule in found if rule["state"] == wanted]
    return stream(rucio.rule(rule) for rule in found)
