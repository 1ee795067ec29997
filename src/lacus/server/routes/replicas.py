"""Replicas: registration (``POST /replicas``), state changes (``PUT /replicas``), streamed
listing (``POST /replicas/list``, JSON lines or Metalink; with ``all_states``, each replica's
``reason`` for not being available) and per-RSE dataset summaries. Declaring replicas in doubt:
``routes/integrity.py``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from lacus.errors import InvalidInput
from lacus.models import DIDListBody, ReplicaListBody, ReplicasBody, ReplicaStatesBody
from lacus.naming import validate_name, validate_scope
from lacus.server import rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, prefetched, stream
from lacus.service import Lake, Principal, integrity, replicas
from lacus.types import FileSpec, ReplicaState

router = APIRouter(prefix="/replicas", tags=["replicas"])
METALINK = "application/metalink4+xml"
REASONS_BATCH = 256


@router.post("", status_code=201, response_class=PlainTextResponse)
@router.post("/", status_code=201, include_in_schema=False)
def add_replicas(body: ReplicasBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Register files and replicas on one RSE (creating the file DIDs), in one transaction.

    Files announced ``C`` (copying) stay invisible until ``PUT /replicas`` makes them ``A``."""
    states = {rucio.replica_state(file.state) for file in body.files}
    if len(states) > 1:
        raise InvalidInput("all files of one registration must have the same state")
    state = states.pop() if states else ReplicaState.AVAILABLE
    if state not in (ReplicaState.AVAILABLE, ReplicaState.COPYING):
        raise InvalidInput("new replicas are registered available (A) or copying (C)")
    files = [
        FileSpec(**file.model_dump(exclude={"state"}))  # type: ignore[typeddict-item]
        for file in body.files
    ]
    dataset = (body.dataset.scope, body.dataset.name) if body.dataset else None
    replicas.add_replicas(
        lake,
        principal,
        body.rse,
        files,
        dataset=dataset,
        state=state,
        ignore_availability=body.ignore_availability,
    )
    return created()


@router.put("")
def update_replicas(body: ReplicaStatesBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Change replica states; ``A`` (available) is granted only to verified bytes."""
    changes = [
        ((validate_scope(f.scope), validate_name(f.name)), rucio.replica_state(f.state))
        for f in body.files
    ]
    count = replicas.update_replica_states(lake, principal, body.rse, changes)
    return json_response({"updated": count})


@router.post(
    "/list",
    response_class=NDJSONResponse,
    responses={200: {"content": {METALINK: {"schema": {"type": "string"}}}}},
)
def list_replicas(
    body: ReplicaListBody,
    lake: LakeDep,
    principal: PrincipalDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    targets = [(validate_scope(ref.scope), validate_name(ref.name)) for ref in body.dids]
    states = list(ReplicaState) if body.all_states else [ReplicaState.AVAILABLE]
    as_metalink = accept is not None and METALINK in accept
    found = replicas.list_replicas(
        lake,
        principal,
        targets,
        rse=body.rse,
        rse_expression=body.rse_expression,
        states=states,
        with_parents=body.resolve_parents or as_metalink,
    )
    lines: Iterable[dict[str, Any]] = (
        rucio.replica(item, all_states=body.all_states, parents=item.get("parents"))
        for item in found
    )
    if body.all_states:
        lines = _with_reasons(lake, principal, lines)
    if as_metalink:
        return StreamingResponse(rucio.metalink(prefetched(lines)), media_type=METALINK)
    return stream(lines)


def _with_reasons(
    lake: Lake, principal: Principal, lines: Iterable[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The lines, each replica with its ``reason``: why it is not available (None when it
    is), looked up for a batch of files at a time, only when some are not available."""
    batch: list[dict[str, Any]] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= REASONS_BATCH:
            yield from _add_reasons(lake, principal, batch)
            batch = []
    yield from _add_reasons(lake, principal, batch)


def _add_reasons(
    lake: Lake, principal: Principal, batch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    doubted = [
        (item["scope"], item["name"], rse)
        for item in batch
        for rse, location in item["replicas"].items()
        if location["state"] != ReplicaState.AVAILABLE
    ]
    reasons = integrity.state_reasons(lake, principal, doubted) if doubted else {}
    for item in batch:
        for rse, location in item["replicas"].items():
            location["reason"] = reasons.get((item["scope"], item["name"], rse))
    return batch


@router.get("/rse/{rse}", response_class=NDJSONResponse)
def datasets_on_rse(rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The datasets with files available on the RSE, one line each: how many of its files and
    bytes are there (Rucio's ``list_datasets_per_rse``)."""
    return stream(replicas.datasets_on_rse(lake, principal, rse))


@router.post("/datasets_bulk", response_class=NDJSONResponse)
def dataset_replicas_bulk(body: DIDListBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """``dataset_replicas`` of several collections, one line per collection and RSE (Rucio's
    ``list_dataset_replicas_bulk``)."""
    keys = dict.fromkeys((validate_scope(r.scope), validate_name(r.name)) for r in body.dids)
    lines = [line for key in keys for line in replicas.dataset_replicas(lake, principal, *key)]
    return stream(lines)  # read before answering: a DID that does not exist is a 404


@router.get("/{scope}/{name}/datasets", response_class=NDJSONResponse)
def dataset_replicas(
    scope: str, name: str, lake: LakeDep, principal: PrincipalDep, deep: str = "false"
) -> Response:
    """Per RSE, how much of a collection it holds (Rucio's ``replica list dataset``)."""
    key = (validate_scope(scope), validate_name(name))
    return stream(replicas.dataset_replicas(lake, principal, *key))
