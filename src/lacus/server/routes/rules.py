"""Replication rules and their locks on Rucio's paths: ``/rules/``, ``/rules/{id}`` (read,
update, delete, locks, history, analysis), ``/rules/{scope}/{name}/history``, the rules of a
file, the locks of a dataset and ``/accounts/{a}/rules``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from lacus.errors import InvalidOption, UnsupportedOperation
from lacus.models import (
    MAX_LIFETIME,
    RuleBody,
    RuleDeleteBody,
    RuleMoveBody,
    RuleReduceBody,
    RuleUpdateBody,
)
from lacus.naming import validate_account, validate_name, validate_scope
from lacus.server import rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, json_response, stream
from lacus.service import rule_locks, rules
from lacus.types import MAX_INT64, RuleGrouping, RuleNotification, RuleSpec, RuleState

router = APIRouter(tags=["rules"])
_NOTIFY = {"N": "no", "Y": "yes", "C": "close", "P": "progress"}


@router.post("/rules/", status_code=201)
def add_rules(body: RuleBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """One rule per DID; answers the list of new rule ids (Rucio's shape). With ``policy``
    (Lacus) instead of ``rse_expression``, the lifecycle policy's first step is the rule."""
    dids = [(validate_scope(ref.scope), validate_name(ref.name)) for ref in body.dids]
    if body.policy is not None:
        if body.rse_expression is not None:
            raise InvalidOption("give either rse_expression or policy, not both")
        ids = [
            rules.apply_policy(lake, principal, scope, name, body.policy, account=body.account)
            for scope, name in dids
        ]
        return json_response(ids, status_code=201)
    if body.rse_expression is None:
        raise InvalidOption("a rule needs an rse_expression (or a lifecycle policy)")
    notify = (body.notify or "N").upper()
    specs = [
        RuleSpec(
            scope=scope,
            name=name,
            rse_expression=body.rse_expression,
            copies=body.copies,
            grouping=RuleGrouping((body.grouping or "dataset").lower()),
            lifetime=body.lifetime,
            weight=body.weight,
            locked=body.locked,
            purge_replicas=body.purge_replicas,
            delete_source=body.delete_source,
            source_replica_expression=body.source_replica_expression,
            activity=body.activity,
            priority=body.priority,
            notification=RuleNotification(_NOTIFY.get(notify, notify.lower())),
            comment=body.comment,
            ignore_availability=body.ignore_availability,
            ignore_account_limit=body.ignore_account_limit,
            ask_approval=body.ask_approval,
        )
        for scope, name in dids
    ]
    ids = rules.add_rules(lake, principal, specs, account=body.account)
    return json_response(ids, status_code=201)


# -- listing with Rucio's filters ----------------------------------------------------------------
_STATE_CODES = {
    "O": RuleState.OK,
    "R": RuleState.REPLICATING,
    "S": RuleState.STUCK,
    "U": RuleState.SUSPENDED,
    "W": RuleState.WAITING_APPROVAL,
}
_NEVER = {"I", "INJECT"}
"""Rucio states no Lacus rule is ever in: filtering on them finds nothing."""
_GROUPINGS = {"A": "all", "D": "dataset", "N": "none"}
_DID_TYPES = {"F": "file", "D": "dataset", "C": "container"}
FILTERS = (
    "scope", "name", "account", "state", "subscription_id", "id", "rse_expression", "did_type",
    "grouping", "activity", "locked", "created_before", "created_after", "updated_before",
    "updated_after",
)  # fmt: skip
"""The query keys ``GET /rules/`` filters on (Rucio's rule columns Lacus has)."""
Predicate = Callable[[dict[str, Any]], bool]


def rule_state(value: str) -> str | None:
    """A Rucio state letter or name (or Lacus's) as Lacus's value; None: no rule can match."""
    upper = value.upper()
    if upper in _NEVER:
        return None
    if upper in _STATE_CODES:
        return _STATE_CODES[upper].value
    try:
        return RuleState(value.lower()).value
    except ValueError:
        raise InvalidOption(
            f"invalid state {value[:30]!r}: use OK, REPLICATING, STUCK, SUSPENDED, "
            "WAITING_APPROVAL (or O, R, S, U, W)"
        ) from None


def _coded(key: str, value: str, codes: Mapping[str, str]) -> str:
    lowered = codes.get(value.upper(), value.lower())
    if lowered not in codes.values():
        names = ", ".join(v.upper() for v in codes.values())
        raise InvalidOption(f"invalid {key} {value[:30]!r}: use {names}")
    return lowered


def _date(key: str, value: str) -> datetime:
    """Rucio's RFC 1123 date (``Tue, 16 Nov 2021 10:00:00 UTC``) or ISO 8601, as naive UTC."""
    try:
        return datetime.strptime(value, "%a, %d %b %Y %H:%M:%S UTC")
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidOption(
            f"invalid {key} {value[:40]!r}: use 'Tue, 16 Nov 2021 10:00:00 UTC' or ISO 8601"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _equals(key: str, value: object) -> Predicate:
    return lambda rule: bool(rule[key] == value)


def _glob(key: str, pattern: str) -> Predicate:
    return lambda rule: fnmatch.fnmatchcase(str(rule[key]), pattern)


def _before(key: str, when: datetime) -> Predicate:
    return lambda rule: bool(rule[key] < when)


def _after(key: str, when: datetime) -> Predicate:
    return lambda rule: bool(rule[key] > when)


def _filtered(
    lake: LakeDep, principal: PrincipalDep, query: Mapping[str, str], **fixed: str
) -> list[dict[str, Any]]:
    """The rules matching Rucio's filters in ``query`` (and the ``fixed`` ones of the path)."""
    unknown = sorted(set(query) - set(FILTERS))
    if unknown:
        raise InvalidOption(
            f"{unknown[0][:40]!r} is not a valid rule filter; filters: {', '.join(FILTERS)}"
        )
    values = {**query, **fixed}
    exact: dict[str, str | None] = {}
    checks: list[Predicate] = []
    for key in ("scope", "account"):
        value = values.get(key)
        if value is not None and "*" in value:
            checks.append(_glob(key, value))
        elif value is not None:
            exact[key] = value
    exact["name"] = values.get("name")
    exact["subscription_id"] = values.get("subscription_id")
    if values.get("state") is not None:
        state = rule_state(values["state"])
        if state is None:
            return []
        exact["state"] = state
    for key in ("id", "rse_expression", "activity"):
        if values.get(key) is not None:
            checks.append(_equals(key, values[key]))
    if values.get("did_type") is not None:
        checks.append(_equals("did_type", _coded("did_type", values["did_type"], _DID_TYPES)))
    if values.get("grouping") is not None:
        checks.append(_equals("grouping", _coded("grouping", values["grouping"], _GROUPINGS)))
    if values.get("locked") is not None:
        locked = values["locked"].lower()
        if locked not in ("true", "false", "1", "0"):
            raise InvalidOption(f"invalid locked {values['locked'][:20]!r}: use true or false")
        checks.append(_equals("locked", locked in ("true", "1")))
    for key in ("created_before", "created_after", "updated_before", "updated_after"):
        if values.get(key) is not None:
            when = _date(key, values[key])
            column = key.split("_")[0] + "_at"
            checks.append(_before(column, when) if key.endswith("before") else _after(column, when))
    found = rules.list_rules(
        lake,
        principal,
        scope=exact.get("scope"),
        name=exact.get("name"),
        account=exact.get("account"),
        state=exact.get("state"),
        subscription_id=exact.get("subscription_id"),
    )
    return [rule for rule in found if all(check(rule) for check in checks)]


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params.items())


@router.get("/rules/", response_class=NDJSONResponse)
def list_rules(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    scope: str | None = None,
    name: str | None = None,
    account: str | None = None,
    state: Annotated[
        str | None,
        Query(description="OK, REPLICATING, STUCK, SUSPENDED, WAITING_APPROVAL or O, R, S, U, W"),
    ] = None,
    subscription_id: str | None = None,
    rse_expression: str | None = None,
    did_type: str | None = None,
    grouping: str | None = None,
    activity: str | None = None,
    created_before: str | None = None,
    created_after: str | None = None,
) -> Response:
    """Rules matching Rucio's filters (any of ``FILTERS``; ``*`` wildcards in scope and
    account; Rucio's one-letter codes or names for state, did_type and grouping)."""
    return stream(rucio.rule(rule) for rule in _filtered(lake, principal, _query(request)))


@router.get("/accounts/{account}/rules", response_class=NDJSONResponse)
def list_account_rules(
    account: str,
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    state: str | None = None,
) -> Response:
    """The account's rules; the query's filters (as for ``GET /rules/``) narrow them."""
    query = _query(request)
    query.pop("account", None)
    found = _filtered(lake, principal, query, account=validate_account(account))
    return stream(rucio.rule(rule) for rule in found)


@router.get("/dids/{scope}/{name}/associated_rules", response_class=NDJSONResponse)
def list_file_rules(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The rules that hold a lock on this file."""
    found = rule_locks.file_rules(lake, principal, validate_scope(scope), validate_name(name))
    return stream(rucio.rule(rule) for rule in found)


@router.get("/locks/{scope}/{name}", response_class=NDJSONResponse)
def list_dataset_locks(
    scope: str,
    name: str,
    lake: LakeDep,
    principal: PrincipalDep,
    did_type: str = "dataset",
) -> Response:
    """Per rule on the dataset and RSE: files locked, bytes and state (Rucio's dataset locks)."""
    if did_type.lower() != "dataset":
        raise InvalidOption(f"invalid did_type {did_type[:30]!r}: only dataset is supported")
    found = rule_locks.dataset_locks(lake, principal, validate_scope(scope), validate_name(name))
    return stream(rucio.dataset_lock(entry) for entry in found)


# -- one rule ------------------------------------------------------------------------------------
@router.get("/rules/{rule_id}")
def get_rule(rule_id: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(rucio.rule(rules.get_rule(lake, principal, rule_id)))


UPDATABLE = (
    "lifetime", "locked", "comment", "priority", "copies", "activity", "state",
    "source_replica_expression", "purge_replicas", "child_rule_id", "boost_rule", "approve",
)  # fmt: skip
"""The options Lacus changes (Rucio's names)."""
_IGNORED_WHEN_NULL = ("eol_at", "meta")
"""Rucio options Lacus does not keep: accepted only as null (nothing to change)."""


def _update_options(current: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Rucio's ``PUT /rules/{id}`` options as ``update_rule`` takes them; every value checked
    here, so a wrong kind is a 4xx, never a database error."""
    known = {*UPDATABLE, "account", "cancel_requests", "approve", *_IGNORED_WHEN_NULL}
    for key in options:
        if key not in known:
            raise InvalidOption(f"{str(key)[:40]} is not a valid option to set.")
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key in _IGNORED_WHEN_NULL:
            if value is not None:
                raise UnsupportedOperation(f"Lacus rules have no {key}; it can only be null")
        elif key == "account":
            if value != current["account"]:
                raise UnsupportedOperation(
                    "a rule's account cannot be changed: add a rule for the other account "
                    "and remove this one"
                )
        elif key == "cancel_requests":
            if not isinstance(value, bool):
                raise InvalidOption(f"cancel_requests must be true or false, not {value!r}")
            if value:
                raise UnsupportedOperation(
                    "cancel_requests is not supported: suspend the rule (state SUSPENDED) to "
                    "stop its transfers"
                )
        elif key == "state":
            result[key] = _update_state(value)
        elif key == "lifetime":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_LIFETIME
            ):
                raise InvalidOption(
                    f"lifetime is a number of seconds (at most {MAX_LIFETIME}) or null"
                )
            result[key] = value
        elif key in ("locked", "purge_replicas", "boost_rule", "approve"):
            if not isinstance(value, bool):
                raise InvalidOption(f"{key} must be true or false, not {value!r:.40}")
            result[key] = value
        elif key in ("priority", "copies"):
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT64:
                raise InvalidOption(f"{key} must be an integer, not {value!r:.40}")
            result[key] = value
        elif key in ("activity", "source_replica_expression", "comment", "child_rule_id"):
            limit = {"activity": 50, "comment": 255, "child_rule_id": 32}.get(key, 1000)
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
                raise InvalidOption(f"{key} is a string of 1 to {limit} characters or null")
            result[key] = value
    return result


def _update_state(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidOption(f"state must be a string, not {value!r:.40}")
    wanted = value.upper()
    if wanted == "STUCK":
        raise UnsupportedOperation(
            "a rule cannot be set STUCK: Lacus marks a rule stuck when one of its locks is; "
            "suspend it (SUSPENDED) or resume it (REPLICATING)"
        )
    if wanted not in ("SUSPENDED", "REPLICATING", "RESUME"):
        raise InvalidOption(f"state can be set to SUSPENDED or REPLICATING, not {value[:30]!r}")
    return wanted.lower()


@router.put("/rules/{rule_id}")
def update_rule(
    rule_id: str, body: RuleUpdateBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Change a rule with Rucio's options: ``lifetime`` (seconds, null: forever), ``locked``,
    ``comment``, ``priority``, ``copies``, ``activity``, ``state`` (SUSPENDED, REPLICATING to
    resume), ``source_replica_expression``, ``purge_replicas``, ``child_rule_id``,
    ``boost_rule``. An unknown option is an ``InputValidationError``."""
    current = rules.get_rule(lake, principal, rule_id)
    options = _update_options(current, body.options)
    updated = rules.update_rule(lake, principal, rule_id, options)
    return json_response(rucio.rule(updated))


@router.post("/rules/{rule_id}/move", status_code=201)
def move_rule(rule_id: str, body: RuleMoveBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Replace the rule by one on ``rse_expression`` (Rucio's ``rule move``): the new rule (its
    id is the answer, a JSON string) copies the rule's options, changed by ``override``
    (activity, source_replica_expression, comment, priority, copies, lifetime, locked); the
    rule is deleted once the new one is OK. A rule moved already, or locked, is refused
    (``UnsupportedOperation``)."""
    if body.rule_id is not None and body.rule_id != rule_id:
        raise InvalidOption(f"the body names rule {body.rule_id[:40]!r}, the path {rule_id!r}")
    child_id = rules.move_rule(lake, principal, rule_id, body.rse_expression, body.override)
    return json_response(child_id, status_code=201)


@router.post("/rules/{rule_id}/reduce")
def reduce_rule(
    rule_id: str, body: RuleReduceBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Replace an OK rule by one with fewer ``copies`` on its expression minus
    ``exclude_expression`` (Rucio's ``reduce_replication_rule``; the new id, a JSON string):
    at once, on the replicas that are there, or not at all (``RuleReplaceFailed``, 409)."""
    child_id = rules.reduce_rule(lake, principal, rule_id, body.copies, body.exclude_expression)
    return json_response(child_id)


@router.delete("/rules/{rule_id}")
def delete_rule(
    rule_id: str,
    lake: LakeDep,
    principal: PrincipalDep,
    body: Annotated[RuleDeleteBody | None, Body()] = None,
) -> Response:
    """Remove a rule (not while it is locked); ``purge_replicas`` (null: the rule's own
    setting) deletes the replicas it leaves without a lock at once."""
    purge = body.purge_replicas if body is not None else None
    rules.delete_rule(lake, principal, rule_id, purge_replicas=purge)
    return json_response({"deleted": rule_id})


@router.get("/rules/{rule_id}/locks", response_class=NDJSONResponse)
def list_rule_locks(rule_id: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The rule's locks: file, RSE, state, and the transfer request of waiting ones."""
    return stream(rucio.lock(entry) for entry in rules.rule_locks(lake, principal, rule_id))


@router.get("/rules/{rule_id}/history", response_class=NDJSONResponse)
def rule_history(rule_id: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Everything that happened to the rule (also after its removal): action, state, lock
    counts, detail, time."""
    return stream(rucio.rule_event(entry) for entry in rules.rule_history(lake, principal, rule_id))


@router.get("/rules/{rule_id}/analysis")
def examine_rule(rule_id: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Why a rule is not OK: its error or state, and per stuck or failing lock the transfer's
    attempts and last error (Rucio's ``rule show --examine``)."""
    rule = rules.get_rule(lake, principal, rule_id)
    state = str(rule["state"]).upper()
    if rule["error"]:
        summary = str(rule["error"])
    elif state == "OK":
        summary = "This replication rule is OK"
    elif state == "SUSPENDED":
        summary = "This replication rule is SUSPENDED"
    elif state == "WAITING_APPROVAL":
        summary = "This replication rule is WAITING APPROVAL: an admin approves or denies it"
    else:
        summary = f"This replication rule is currently {state}"
    transfers = [
        {
            "scope": lock["scope"],
            "name": lock["name"],
            "rse_id": str(lock["rse_id"]),
            "rse": lock["rse"],
            "attempts": lock["attempts"] or 0,
            "last_error": lock["last_error"],
            "last_source": None,
            "sources": [],
            "last_time": lock["updated_at"],
        }
        for lock in rules.rule_locks(lake, principal, rule_id)
        if lock["state"] == "stuck" or lock["last_error"]
    ]
    return json_response({"rule_error": summary, "transfers": transfers})


@router.get("/rules/{scope}/{name}/history", response_class=NDJSONResponse)
def did_rule_history(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Rucio's rule history of a DID: per rule a line for its creation, then one for its
    removal (``updated_at`` is when each happened)."""
    entries = rules.did_rule_history(lake, principal, validate_scope(scope), validate_name(name))
    return stream(rucio.did_rule_history(entries))
