"""Replication rules on Rucio's paths: ``/rules/``, ``/rules/{id}``, ``/accounts/{a}/rules``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from lacus.models import RuleBody, RuleDeleteBody
from lacus.naming import validate_account, validate_name, validate_scope
from lacus.server import rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, json_response, stream
from lacus.service import rules
from lacus.types import RuleGrouping, RuleNotification, RuleSpec

router = APIRouter(tags=["rules"])
_NOTIFY = {"N": "no", "Y": "yes", "C": "close", "P": "progress"}


@router.post("/rules/", status_code=201)
def add_rules(body: RuleBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """One rule per DID; answers the list of new rule ids (Rucio's shape)."""
    notify = (body.notify or "N").upper()
    specs = [
        RuleSpec(
            scope=validate_scope(ref.scope),
            name=validate_name(ref.name),
            rse_expression=body.rse_expression,
            copies=body.copies,
            grouping=RuleGrouping((body.grouping or "dataset").lower()),
            lifetime=body.lifetime,
            weight=body.weight,
            locked=body.locked,
            purge_replicas=body.purge_replicas,
            source_replica_expression=body.source_replica_expression,
            activity=body.activity,
            priority=body.priority,
            notification=RuleNotification(_NOTIFY.get(notify, notify.lower())),
            comment=body.comment,
            ignore_availability=body.ignore_availability,
            ignore_account_limit=body.ignore_account_limit,
        )
        for ref in body.dids
    ]
    ids = rules.add_rules(lake, principal, specs, account=body.account)
    return json_response(ids, status_code=201)


@router.get("/rules/", response_class=NDJSONResponse)
def list_rules(
    lake: LakeDep,
    principal: PrincipalDep,
    scope: str | None = None,
    name: str | None = None,
    account: str | None = None,
    state: str | None = None,
) -> Response:
    found = rules.list_rules(
        lake,
        principal,
        scope=scope,
        name=name,
        account=account,
        state=state.lower() if state else None,
    )
    return stream(rucio.rule(rule) for rule in found)


@router.get("/rules/{rule_id}")
def get_rule(rule_id: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(rucio.rule(rules.get_rule(lake, principal, rule_id)))


@router.delete("/rules/{rule_id}")
def delete_rule(
    rule_id: str,
    lake: LakeDep,
    principal: PrincipalDep,
    body: Annotated[RuleDeleteBody | None, Body()] = None,
) -> Response:
    rules.delete_rule(lake, principal, rule_id)
    return json_response({"deleted": rule_id})


@router.get("/accounts/{account}/rules", response_class=NDJSONResponse)
def list_account_rules(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    found = rules.list_rules(lake, principal, account=validate_account(account))
    return stream(rucio.rule(rule) for rule in found)
