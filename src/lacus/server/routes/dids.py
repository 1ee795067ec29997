"""DIDs: search, collections, content, status and metadata, on Rucio's paths."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from lacus.errors import InvalidInput
from lacus.models import AttachBody, CollectionBody, MetaBody, MetaBulkBody, StatusBody
from lacus.naming import validate_name, validate_scope
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import created, json_response, stream
from lacus.service import dids
from lacus.types import DIDType

router = APIRouter(prefix="/dids", tags=["dids"])


def _did(scope: str, name: str) -> tuple[str, str]:
    return validate_scope(scope), validate_name(name)


def _did_type(value: str | None) -> DIDType | None:
    if value is None or value in ("all", "any", ""):
        return None
    if value == "collection":
        return None
    try:
        return DIDType(value.lower())
    except ValueError:
        raise InvalidInput(
            f"invalid type {value[:30]!r}: use file, dataset, container, collection or all"
        ) from None


@router.get("/{scope}/dids/search")
def search(
    scope: str,
    lake: LakeDep,
    principal: PrincipalDep,
    name: str = "*",
    type: str | None = None,
    filter: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    long: bool = False,
) -> Response:
    did_type = _did_type(type)
    found = dids.search_dids(
        lake, principal, scope, name=name, filters=filter or [], did_type=did_type, limit=limit
    )
    if type == "collection":
        found = (did for did in found if did["type"] != DIDType.FILE)
    if long:
        return stream(found)
    return stream(did["name"] for did in found)


@router.post("/{scope}/{name}", status_code=201)
def add_collection(
    scope: str, name: str, body: CollectionBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.add_collection(
        lake, principal, *_did(scope, name), DIDType(body.type.lower()), meta=body.meta
    )
    return created()


@router.get("/{scope}/{name}")
def get_did(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(dids.get_did(lake, principal, *_did(scope, name)))


@router.get("/{scope}/{name}/dids")
def list_content(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream(dids.list_content(lake, principal, *_did(scope, name)))


@router.post("/{scope}/{name}/dids", status_code=201)
def attach(
    scope: str, name: str, body: AttachBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    children = [_did(ref.scope, ref.name) for ref in body.dids]
    dids.attach(
        lake, principal, *_did(scope, name), children, ignore_duplicates=body.ignore_duplicate
    )
    return created()


@router.delete("/{scope}/{name}/dids")
def detach(
    scope: str, name: str, body: AttachBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    children = [_did(ref.scope, ref.name) for ref in body.dids]
    count = dids.detach(lake, principal, *_did(scope, name), children)
    return json_response({"detached": count})


@router.get("/{scope}/{name}/parents")
def list_parents(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    parents = dids.list_parents(lake, principal, *_did(scope, name))
    return json_response([{"scope": s, "name": n} for s, n in parents])


@router.get("/{scope}/{name}/files")
def list_files(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream(dids.list_files(lake, principal, *_did(scope, name)))


@router.put("/{scope}/{name}/status")
def set_status(
    scope: str, name: str, body: StatusBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.set_open(lake, principal, *_did(scope, name), is_open=body.open)
    return json_response(dids.get_did(lake, principal, *_did(scope, name)))


@router.get("/{scope}/{name}/meta")
def get_metadata(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return json_response(dids.get_metadata(lake, principal, *_did(scope, name)))


@router.post("/{scope}/{name}/meta", status_code=201)
def set_metadata_bulk(
    scope: str, name: str, body: MetaBulkBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.set_metadata(lake, principal, *_did(scope, name), body.meta)
    return created()


@router.post("/{scope}/{name}/meta/{key}", status_code=201)
def set_metadata(
    scope: str, name: str, key: str, body: MetaBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.set_metadata(lake, principal, *_did(scope, name), {key: body.value})
    return created()


@router.delete("/{scope}/{name}/meta/{key}")
def delete_metadata(
    scope: str, name: str, key: str, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.delete_metadata(lake, principal, *_did(scope, name), key)
    return json_response({"deleted": key})
