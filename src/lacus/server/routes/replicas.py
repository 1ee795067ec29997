"""Replicas: bulk registration (``POST /replicas``), streamed listing (``POST /replicas/list``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lacus.models import ReplicaListBody, ReplicasBody
from lacus.naming import validate_name, validate_scope
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import created, stream
from lacus.service import replicas
from lacus.types import FileSpec, ReplicaState

router = APIRouter(prefix="/replicas", tags=["replicas"])


@router.post("", status_code=201)
@router.post("/", status_code=201, include_in_schema=False)
def add_replicas(body: ReplicasBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    files = [FileSpec(**file.model_dump()) for file in body.files]  # type: ignore[typeddict-item]
    dataset = (body.dataset.scope, body.dataset.name) if body.dataset else None
    replicas.add_replicas(lake, principal, body.rse, files, dataset=dataset)
    return created()


@router.post("/list")
def list_replicas(body: ReplicaListBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    targets = [(validate_scope(ref.scope), validate_name(ref.name)) for ref in body.dids]
    states = list(ReplicaState) if body.all_states else [ReplicaState.AVAILABLE]
    return stream(replicas.list_replicas(lake, principal, targets, rse=body.rse, states=states))
