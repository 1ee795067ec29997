"""DIDs: search, collections, content, status and metadata, on Rucio's paths."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from lacus.errors import InvalidInput, UnsupportedOperation
from lacus.models import (
    AttachBody,
    AttachmentsBody,
    CollectionBody,
    DIDListBody,
    EmbargoBody,
    MetaBody,
    MetaBulkBody,
    NewCollectionBody,
    StatusBody,
)
from lacus.naming import validate_name, validate_scope
from lacus.server import answers, rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream, utc_naive
from lacus.service import dids, rules
from lacus.types import DIDType, RuleGrouping, RuleSpec

router = APIRouter(prefix="/dids", tags=["dids"])


def _did(scope: str, name: str) -> tuple[str, str]:
    return validate_scope(scope), validate_name(name)


@router.get("/{scope}/dids/search", response_class=NDJSONResponse)
def search(
    scope: str,
    lake: LakeDep,
    principal: PrincipalDep,
    name: str = "*",
    type: str | None = None,
    filter: Annotated[list[str] | None, Query()] = None,
    filters: Annotated[str | None, Query(max_length=10_000)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    long: str = "false",
    recursive: str = "false",
) -> Response:
    """Search DIDs: Lacus's ``name`` + repeated ``filter`` (``key>n``), or Rucio's ``filters``
    (a literal list of dicts, OR-ed groups of AND-ed ``key[.gt|.lt|.gte|.lte|.ne]: value``)."""
    groups = rucio.parse_filters(filters) if filters else []
    type_filter = [] if type in (None, "", "all") else [f"type={type.lower()}"]
    if type is not None and type.lower() not in ("all", "collection", *DIDType):
        raise InvalidInput(
            f"invalid type {type[:30]!r}: use file, dataset, container, collection or all"
        )
    found = dids.search_dids(
        lake,
        principal,
        scope,
        name=name,
        filters=[*(filter or []), *_group_defaults(groups, type_filter)],
        groups=[_with_type(group, type_filter) for group in groups],
        limit=limit,
    )
    if long.lower() in ("true", "1"):
        return stream(rucio.did(did) for did in found)
    return stream(did["name"] for did in found)


def _group_defaults(groups: list[list[str]], type_filter: list[str]) -> list[str]:
    """The URL's type applies to the whole query unless the groups name their own types."""
    return [] if groups else type_filter


def _with_type(group: list[str], type_filter: list[str]) -> list[str]:
    if any(condition.startswith("type") for condition in group):
        return group
    return [*group, *type_filter]


MAX_BULK = 1000
"""Collections one ``POST /dids`` creates at most (each costs a few statements)."""


def _new_collection(scope: str, name: str, body: CollectionBody) -> dids.NewCollection:
    key = _did(scope, name)
    specs = [
        (
            RuleSpec(
                scope=key[0],
                name=key[1],
                rse_expression=item.rse_expression,
                copies=item.copies,
                grouping=RuleGrouping((item.grouping or "dataset").lower()),
                lifetime=item.lifetime,
            ),
            item.account,
        )
        for item in body.rules or []
    ]
    return dids.NewCollection(
        *key,
        DIDType(body.type.lower()),
        meta=body.meta or {},
        children=[_did(ref.scope, ref.name) for ref in body.dids or []],
        rules=specs,
    )


@router.post("", status_code=201, response_class=PlainTextResponse)
def add_collections(
    body: list[NewCollectionBody], lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Create datasets and containers (Rucio's ``add_dids``), each with its ``meta``, ``dids``
    and ``rules``, in one transaction: one refused, none is created."""
    if not 0 < len(body) <= MAX_BULK:
        raise InvalidInput(f"give 1 to {MAX_BULK} DIDs to create, not {len(body)}")
    dids.add_collections(lake, principal, [_new_collection(i.scope, i.name, i) for i in body])
    return created()


@router.post("/attachments", status_code=201, response_class=PlainTextResponse)
def attach_many(body: AttachmentsBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Attach children to several collections (Rucio's ``attach_dids_to_dids``), in one
    transaction: one refused, none is attached."""
    attachments = [
        (_did(item.scope, item.name), [_did(ref.scope, ref.name) for ref in item.dids])
        for item in body.attachments
    ]
    dids.attach_many(lake, principal, attachments, ignore_duplicates=body.ignore_duplicate)
    return created()


@router.post("/bulkmeta", response_class=NDJSONResponse)
def get_metadata_bulk(body: DIDListBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The metadata of several DIDs, one line each (Rucio's ``get_metadata_bulk``; ``plugin``
    as for one DID). A DID that does not exist, or that the caller may not see, has no line;
    ``inherit`` (the parents' metadata) is not supported."""
    choice = _plugin(body.plugin)
    if body.inherit:
        raise UnsupportedOperation("inherited metadata is not supported: give inherit=false")
    keys = [_did(ref.scope, ref.name) for ref in body.dids]
    found = dids.get_metadata_many(
        lake, principal, keys, columns=choice != "JSON", free=choice != "DID_COLUMN"
    )
    lines = []
    for info, meta in found:
        line: dict[str, object] = {"scope": info["scope"], "name": info["name"]}
        if choice != "JSON":
            line.update(rucio.did(info))
        line.update(meta)
        lines.append(line)
    return stream(lines)


def _plugin(plugin: str) -> str:
    choice = plugin.upper()
    if choice not in ("DID_COLUMN", "JSON", "ALL"):
        raise InvalidInput(f"invalid plugin {plugin[:30]!r}: use DID_COLUMN, JSON or ALL")
    return choice


@router.post("/{scope}/{name}", status_code=201, response_class=PlainTextResponse)
def add_collection(
    scope: str, name: str, body: CollectionBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Create a dataset or container; Rucio's ``dids`` (attach) and ``rules`` come along."""
    dids.add_collections(lake, principal, [_new_collection(scope, name, body)])
    return created()


@router.get("/{scope}/", response_class=NDJSONResponse)
def scope_list(
    scope: str,
    lake: LakeDep,
    principal: PrincipalDep,
    name: Annotated[str, Query(min_length=1, max_length=250)],
    recursive: bool = False,
) -> Response:
    """What is below a collection, one line per DID with its ``parent`` and ``level``
    (Rucio's ``scope_list``, which ``rucio replica list dataset`` uses on a container); the
    whole tree with ``recursive``. Without ``name`` use ``GET /dids/{scope}/dids/search``."""
    found = dids.tree_below(lake, principal, *_did(scope, name), recursive=recursive)
    return stream(found)


@router.get("/{scope}/{name}", response_model=answers.DID)
def get_did(
    scope: str,
    name: str,
    lake: LakeDep,
    principal: PrincipalDep,
    dynamic_depth: str | None = None,
) -> Response:
    info = dids.get_did(lake, principal, *_did(scope, name))
    if dynamic_depth is not None and info["type"] == DIDType.FILE:
        info["length"] = 1
    return json_response(rucio.did(info))


@router.get("/{scope}/{name}/rules", response_class=NDJSONResponse)
def list_did_rules(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    key = _did(scope, name)
    dids.get_did(lake, principal, *key)
    found = rules.list_rules(lake, principal, scope=key[0], name=key[1])
    return stream(rucio.rule(rule) for rule in found)


@router.get("/{scope}/{name}/dids", response_class=NDJSONResponse)
def list_content(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream(dids.list_content(lake, principal, *_did(scope, name)))


@router.post("/{scope}/{name}/dids", status_code=201, response_class=PlainTextResponse)
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


@router.get("/{scope}/{name}/parents", response_class=NDJSONResponse)
def list_parents(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    parents = dids.list_parents(lake, principal, *_did(scope, name))
    found = (dids.get_did(lake, principal, s, n) for s, n in parents)
    return stream(
        {"scope": p["scope"], "name": p["name"], "type": p["type"].upper()} for p in found
    )


@router.get("/{scope}/{name}/files", response_class=NDJSONResponse)
def list_files(scope: str, name: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return stream(dids.list_files(lake, principal, *_did(scope, name)))


@router.put("/{scope}/{name}/status")
def set_status(
    scope: str, name: str, body: StatusBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.set_open(lake, principal, *_did(scope, name), is_open=body.open)
    return json_response(dids.get_did(lake, principal, *_did(scope, name)))


@router.get("/{scope}/{name}/meta")
def get_metadata(
    scope: str,
    name: str,
    lake: LakeDep,
    principal: PrincipalDep,
    plugin: str = "DID_COLUMN",
) -> Response:
    """Rucio's plugins: ``DID_COLUMN`` (the DID's own columns, the default), ``JSON`` (free-form
    metadata) or ``ALL`` (both)."""
    key = _did(scope, name)
    choice = _plugin(plugin)
    result: dict[str, object] = {}
    if choice in ("DID_COLUMN", "ALL"):
        result.update(rucio.did(dids.get_did(lake, principal, *key)))
    if choice in ("JSON", "ALL"):
        result.update(dids.get_metadata(lake, principal, *key))
    return json_response(result)


@router.post("/{scope}/{name}/meta", status_code=201, response_class=PlainTextResponse)
def set_metadata_bulk(
    scope: str, name: str, body: MetaBulkBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    dids.set_metadata(lake, principal, *_did(scope, name), body.meta)
    return created()


@router.post("/{scope}/{name}/meta/{key}", status_code=201, response_class=PlainTextResponse)
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


@router.delete("/{scope}/{name}/meta")
def delete_metadata_by_query(
    scope: str,
    name: str,
    lake: LakeDep,
    principal: PrincipalDep,
    key: Annotated[str, Query(min_length=1, max_length=255)],
) -> Response:
    """Rucio's form (``rucio did metadata remove``): the key as ``?key=``."""
    dids.delete_metadata(lake, principal, *_did(scope, name), key)
    return json_response({"deleted": key})


@router.put("/{scope}/{name}/embargo")
def set_embargo(
    scope: str, name: str, body: EmbargoBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Lacus extension: hide a DID and everything below it from other accounts (until
    ``release_at``, naive UTC or with a zone), or show it again."""
    changed = dids.set_embargo(
        lake,
        principal,
        *_did(scope, name),
        embargoed=body.embargoed,
        release_at=utc_naive(body.release_at),
    )
    return json_response({"changed": changed})
