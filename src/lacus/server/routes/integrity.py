"""Integrity: replicas declared suspicious, bad or unavailable, and quarantined dark files.

On Rucio's paths (what its clients call): ``POST /replicas/bad`` (PFNs or replicas),
``POST /replicas/bad/dids``, ``POST /replicas/bad/pfns`` (BAD, SUSPICIOUS or
TEMPORARY_UNAVAILABLE until ``expires_at``), ``POST|GET /replicas/suspicious``,
``GET /replicas/bad/states`` and ``POST /replicas/quarantine`` (admins). Lacus's own, under
``/integrity``: declarations with a per-replica answer, a file's declaration history, the last
audit and scrub of each RSE, and the quarantine. Who may declare what is decided in
``service.integrity`` (docs/permissions.md), nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from lacus.errors import InvalidInput, RSENotFound
from lacus.models import (
    BadDIDsBody,
    BadPFNsBody,
    BadReplicasBody,
    DeclarationBody,
    QuarantineBody,
    ReplicaRef,
    SuspiciousBody,
)
from lacus.naming import validate_name, validate_rse, validate_scope
from lacus.server import rucio
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created, json_response, stream, utc_naive
from lacus.service import Lake, Principal, integrity, replicas, rses
from lacus.service.integrity import Declared
from lacus.types import ReplicaState

router = APIRouter(tags=["integrity"])
MAX_LISTED = 100_000
LISTED_STATES = (
    ReplicaState.BAD,
    ReplicaState.SUSPICIOUS,
    ReplicaState.UNAVAILABLE,
    ReplicaState.LOST,
)
"""What ``GET /replicas/bad/states`` lists when no state is asked for."""


def _rse_names(lake: Lake, principal: Principal) -> dict[str, str]:
    """RSE id (as Rucio's clients send it, a string) → name."""
    return {str(info["id"]): info["rse"] for info in rses.list_rses(lake, principal)}


def _replica_keys(
    lake: Lake, principal: Principal, refs: Sequence[ReplicaRef]
) -> list[tuple[str, str, str]]:
    """``(scope, name, rse)`` of replicas given by RSE name or (Rucio) RSE id."""
    names: dict[str, str] | None = None
    keys = []
    for ref in refs:
        rse = ref.rse
        if rse is None and ref.rse_id is not None:
            names = names if names is not None else _rse_names(lake, principal)
            rse = names.get(str(ref.rse_id))
            if rse is None:
                raise RSENotFound(f"no RSE has the id {str(ref.rse_id)[:40]!r}")
        if rse is None:
            raise InvalidInput(f"{ref.scope}:{ref.name}: give the replica's rse (or rse_id)")
        keys.append((validate_scope(ref.scope), validate_name(ref.name), rse))
    return keys


def _moment(value: datetime | None) -> datetime | None:
    """A date from the request as the catalog keeps it (naive UTC)."""
    try:
        return utc_naive(value)
    except OverflowError:
        raise InvalidInput(f"invalid date {value}: out of range") from None


def _not_declared(outcome: Declared) -> dict[str, list[str]]:
    return rucio.not_declared((r.given, r.rse, r.reason) for r in outcome.refused)


# -- Rucio ---------------------------------------------------------------------------------------


@router.post("/replicas/bad", status_code=201)
def declare_bad(body: BadReplicasBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Declare replicas bad (Rucio's ``declare_bad_file_replicas``): PFNs, or dicts with
    scope, name and rse (or rse_id). Answers those not declared, per RSE: ``{RSE: ["what was
    given: why", ...]}`` ("unknown" for a PFN no RSE serves); the owner of a scope, or an
    admin, may declare its replicas bad."""
    pfns = [item for item in body.replicas if isinstance(item, str)] + body.pfns
    refs = [item for item in body.replicas if not isinstance(item, str)]
    outcome = integrity.declare(
        lake,
        principal,
        ReplicaState.BAD,
        replicas_given=_replica_keys(lake, principal, refs),
        pfns=pfns,
        reason=body.reason or "",
    )
    return json_response(_not_declared(outcome), status_code=201)


@router.post("/replicas/bad/dids", status_code=201)
def declare_bad_dids(body: BadDIDsBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Declare the replicas of files on one RSE bad (Rucio's ``declare_bad_did_replicas``);
    answers the list of those not declared, ``"scope:name: why"``."""
    rse = validate_rse(body.rse)
    keys = [(validate_scope(d.scope), validate_name(d.name), rse) for d in body.dids]
    outcome = integrity.declare(
        lake, principal, ReplicaState.BAD, replicas_given=keys, reason=body.reason or ""
    )
    return json_response([f"{r.given}: {r.reason}" for r in outcome.refused], status_code=201)


@router.post("/replicas/bad/pfns", status_code=201, response_class=PlainTextResponse)
def declare_bad_pfns(body: BadPFNsBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Declare PFNs BAD, SUSPICIOUS or TEMPORARY_UNAVAILABLE until ``expires_at`` (Rucio's
    ``add_bad_pfns``: ``rucio replica state update unavailable``). Rucio answers nothing but
    "Created": a PFN that could not be declared makes the answer the error of the first one
    (the others are declared)."""
    state = rucio.bad_state(body.state)
    if state is ReplicaState.LOST:
        raise InvalidInput("a replica is not declared lost: declare it bad")
    outcome = integrity.declare(
        lake,
        principal,
        state,
        pfns=body.pfns,
        reason=body.reason or "",
        expires_at=_moment(body.expires_at) if state is ReplicaState.UNAVAILABLE else None,
    )
    if outcome.refused:
        first = outcome.refused[0]
        raise first.error(
            f"{len(outcome.refused)} of {len(body.pfns)} PFNs not declared "
            f"{state}; first: {first.given}: {first.reason}"
        )
    return created()


@router.post("/replicas/suspicious", status_code=201)
def declare_suspicious(body: SuspiciousBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Report replicas suspicious (Rucio's ``declare_suspicious_file_replicas``): PFNs, or
    (Lacus) ``replicas`` as dicts. Anyone who can see a file may report its replicas; the
    necromancer reads them back. Answers those not declared, per RSE, as ``/replicas/bad``."""
    outcome = integrity.declare(
        lake,
        principal,
        ReplicaState.SUSPICIOUS,
        replicas_given=_replica_keys(lake, principal, body.replicas),
        pfns=body.pfns,
        reason=body.reason or "",
    )
    return json_response(_not_declared(outcome), status_code=201)


@router.get("/replicas/suspicious")
def list_suspicious(
    lake: LakeDep,
    principal: PrincipalDep,
    rse_expression: Annotated[str | None, Query(max_length=1000)] = None,
    younger_than: datetime | None = None,
    nattempts: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    """The replicas suspicious now (Rucio's ``list_suspicious_replicas``), a JSON list:
    scope, name, rse, rse_id, ``cnt`` (reports), created_at (of the last report), reason;
    reported since ``younger_than``, more than ``nattempts`` times."""
    found = integrity.list_declared(
        lake,
        principal,
        ReplicaState.SUSPICIOUS,
        rse_expression=rse_expression or None,
        younger_than=_moment(younger_than),
        limit=MAX_LISTED,
    )
    least = nattempts or 0
    return json_response([rucio.doubted_replica(row) for row in found if row["cnt"] > least])


@router.get("/replicas/bad/states", response_class=NDJSONResponse)
def list_bad_states(
    lake: LakeDep,
    principal: PrincipalDep,
    state: Annotated[str | None, Query(max_length=30)] = None,
    rse: Annotated[str | None, Query(max_length=100)] = None,
    younger_than: datetime | None = None,
    older_than: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 10_000,
    list_pfns: bool = False,
) -> Response:
    """Replicas bad, suspicious, temporarily unavailable or lost (Rucio's
    ``list_bad_replicas_status``; ``state``: BAD, SUSPICIOUS, TEMPORARY_UNAVAILABLE, LOST or
    their letters; all of them when absent), one line each; ``list_pfns``: their PFNs."""
    states = [rucio.bad_state(state)] if state else list(LISTED_STATES)
    rows: list[dict[str, Any]] = []
    for wanted in states:
        rows += integrity.list_declared(
            lake,
            principal,
            wanted,
            rse_expression=validate_rse(rse) if rse else None,
            younger_than=_moment(younger_than),
            older_than=_moment(older_than),
            limit=limit - len(rows),
        )
        if len(rows) >= limit:
            break
    if list_pfns:
        return stream(_pfns(lake, principal, rows))
    return stream(rucio.doubted_replica(row) for row in rows)


def _pfns(lake: Lake, principal: Principal, rows: list[dict[str, Any]]) -> list[str]:
    """The PFNs of the replicas ``rows`` (scope, name, rse)."""
    wanted = {(row["scope"], row["name"], row["rse"]) for row in rows}
    files = list(dict.fromkeys((scope, name) for scope, name, _ in wanted))
    if not files:
        return []
    found = replicas.list_replicas(lake, principal, files, states=list(LISTED_STATES))
    return [
        location["pfn"]
        for item in found
        for rse_name, location in item["rses"].items()
        if (item["scope"], item["name"], rse_name) in wanted and location["pfn"]
    ]


@router.post("/replicas/quarantine", response_class=PlainTextResponse)
def quarantine(body: QuarantineBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Admins: record files on an RSE that the catalog does not know as dark (Rucio's
    ``quarantine_replicas``; ``rse`` or ``rse_id``, paths below the RSE's prefix). The dark
    reaper deletes them once they are old enough and still unknown."""
    if (body.rse is None) == (body.rse_id is None):
        raise InvalidInput("give either rse or rse_id")
    if not body.replicas:
        return PlainTextResponse("")
    rse = body.rse
    if rse is None:
        rse = _rse_names(lake, principal).get(str(body.rse_id))
        if rse is None:
            raise RSENotFound(f"no RSE has the id {str(body.rse_id)[:40]!r}")
    integrity.quarantine(lake, principal, rse, [item.path for item in body.replicas])
    return PlainTextResponse("")


# -- Lacus ---------------------------------------------------------------------------------------


@router.post("/integrity/declarations", status_code=201)
def declare(body: DeclarationBody, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Declare replicas (scope, name, rse) or PFNs ``suspicious``, ``bad`` or
    ``unavailable`` (until ``expires_at``; forever when absent). Answers ``declared``
    (scope, name, rse) and ``refused`` (replica, rse, reason, ``error``: the Lacus error class
    that says what the refusal is: ReplicaNotFound, AccessDenied, RSENotFound,
    UnsupportedOperation)."""
    state = ReplicaState(body.state)
    outcome = integrity.declare(
        lake,
        principal,
        state,
        replicas_given=_replica_keys(lake, principal, body.replicas),
        pfns=body.pfns,
        reason=body.reason or "",
        expires_at=_moment(body.expires_at) if state is ReplicaState.UNAVAILABLE else None,
    )
    answer = {
        "declared": [
            {"scope": scope, "name": name, "rse": rse} for scope, name, rse in outcome.declared
        ],
        "refused": [
            {
                "replica": r.given,
                "rse": r.rse or None,
                "reason": r.reason,
                "error": r.error.__name__,
            }
            for r in outcome.refused
        ],
    }
    return json_response(answer, status_code=201)


@router.get("/integrity/history/{scope}/{name}", response_class=NDJSONResponse)
def history(
    scope: str,
    name: str,
    lake: LakeDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """What was declared of a file's replicas, oldest first: rse, state (suspicious, bad,
    unavailable, lost, available again, repaired), reason, account, created_at."""
    key = (validate_scope(scope), validate_name(name))
    return stream(integrity.history(lake, principal, *key, limit=limit))


@router.get("/integrity/audits")
def audits(
    lake: LakeDep,
    principal: PrincipalDep,
    rse: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """Per RSE (or only ``rse``): its last ``audit`` and ``scrub`` (state, started_at,
    finished_at, files, listed, dark, lost, bad, suspicious, bytes_verified; ``detail`` for
    admins) and the replicas in doubt ``now`` (suspicious, bad, unavailable, lost,
    quarantined)."""
    return json_response(
        integrity.audit_report(lake, principal, validate_rse(rse) if rse else None)
    )


@router.get("/integrity/quarantine", response_class=NDJSONResponse)
def list_quarantine(
    lake: LakeDep,
    principal: PrincipalDep,
    rse: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """Admins: the quarantined dark files (of ``rse``), one line each: rse, path, bytes,
    reason, found_at, seen_at."""
    return stream(integrity.list_quarantine(lake, principal, validate_rse(rse) if rse else None))
