"""Lifecycle policies (Lacus): ``/policies/`` and ``/policies/{name}``. A policy is a chain of
rule steps; ``POST /rules/`` with ``policy`` starts one on a DID."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from lacus.models import PolicyBody
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream
from lacus.service import lifecycle

router = APIRouter(prefix="/policies", tags=["policies"])


@router.get("/", response_class=NDJSONResponse)
def list_policies(lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream(lifecycle.list_policies(lake, principal))


@router.post("/", status_code=201, response_class=PlainTextResponse)
def add_policy(body: PolicyBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Define a policy (admins): steps of ``copies`` on ``rse_expression`` or ``qos`` for
    ``lifetime`` seconds; only the last step may have no lifetime."""
    steps = [step.model_dump(exclude_none=True) for step in body.steps]
    lifecycle.add_policy(lake, principal, body.name, steps, comment=body.comment)
    return created()


@router.get("/{name}")
def get_policy(name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(lifecycle.get_policy(lake, principal, name))
