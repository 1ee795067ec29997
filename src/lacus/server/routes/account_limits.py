"""Account limits (quotas) and usage on Rucio's paths: ``/accounts/{a}/limits/{local|global}``
and ``/accounts/{a}/usage/{local|global}``.

Lacus keeps one kind of limit: bytes an account's locks may hold on the RSEs an expression
selects. A limit whose expression is the name of an RSE is what Rucio calls a *local* limit; any
other expression is a *global* one. Rucio's infinite limit (``-1``) is stored as the largest
size the catalog holds (2**63 - 1 bytes) and shown as ``Infinity`` again; deleting a limit is
not the same thing, because an account that has limits may use no RSE that none covers.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from lacus.errors import InvalidInput, InvalidRSEExpression
from lacus.models import LimitBody
from lacus.naming import validate_account, validate_rse
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.server.responses import NDJSONResponse, created
from lacus.service import Lake, Principal, quotas, rses
from lacus.service import rules as rule_service
from lacus.types import MAX_INT64

router = APIRouter(prefix="/accounts/{account}", tags=["account limits"])
UNLIMITED = MAX_INT64
"""The stored size of Rucio's infinite (-1) limit."""
INFINITY = math.inf
MAX_EXPRESSION = 1000


def _size(stored: int) -> float | int:
    return INFINITY if stored >= UNLIMITED else stored


def _json(value: Any, status_code: int = 200) -> Response:
    """JSON with ``Infinity`` for an unlimited size, as Rucio writes it (Python's ``json``
    reads it)."""
    return Response(json.dumps(value), status_code=status_code, media_type="application/json")


def _lines(items: list[dict[str, Any]]) -> Response:
    return NDJSONResponse(iter([b"".join(json.dumps(item).encode() + b"\n" for item in items)]))


def _expression(text: str) -> str:
    if not 0 < len(text) <= MAX_EXPRESSION:
        raise InvalidInput(f"an RSE expression has 1 to {MAX_EXPRESSION} characters")
    return text


def _rse(lake: Lake, principal: Principal, rse: str) -> str:
    rses.get_rse(lake, principal, validate_rse(rse))  # RSENotFound
    return rse


def _rse_names(lake: Lake, principal: Principal) -> dict[str, int]:
    return {info["rse"]: info["id"] for info in rses.list_rses(lake, principal)}


def _resolved(lake: Lake, principal: Principal, expression: str) -> list[str]:
    try:
        return rule_service.resolve_expression(lake, principal, expression)
    except InvalidRSEExpression:  # its RSEs are gone: it covers nothing now
        return []


# -- limits --------------------------------------------------------------------------------------
@router.post("/limits/local/{rse}", status_code=201, response_class=PlainTextResponse)
def set_local_limit(
    account: str, rse: str, body: LimitBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Allow the account ``bytes`` on one RSE (-1: no limit); admins only."""
    size = UNLIMITED if body.bytes < 0 else body.bytes
    quotas.set_limit(lake, principal, validate_account(account), _rse(lake, principal, rse), size)
    return created()


@router.post("/limits/global/{expression:path}", status_code=201, response_class=PlainTextResponse)
def set_global_limit(
    account: str, expression: str, body: LimitBody, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """Allow the account ``bytes`` on the RSEs an expression selects, together (-1: no limit)."""
    size = UNLIMITED if body.bytes < 0 else body.bytes
    quotas.set_limit(lake, principal, validate_account(account), _expression(expression), size)
    return created()


@router.delete("/limits/local/{rse}")
def delete_local_limit(account: str, rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    quotas.delete_limit(lake, principal, validate_account(account), _rse(lake, principal, rse))
    return _json({"deleted": rse})


@router.delete("/limits/global/{expression:path}")
def delete_global_limit(
    account: str, expression: str, lake: LakeDep, principal: PrincipalDep
) -> Response:
    quotas.delete_limit(lake, principal, validate_account(account), _expression(expression))
    return _json({"deleted": expression})


def _local_limits(lake: Lake, principal: Principal, account: str) -> dict[str, Any]:
    names = _rse_names(lake, principal)
    limits = quotas.limits(lake, principal, validate_account(account))
    return {expr: _size(size) for expr, size in limits.items() if expr in names}


@router.get("/limits")
def get_limits(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The account's local limits: ``{RSE: bytes}`` (``Infinity``: no limit)."""
    return _json(_local_limits(lake, principal, account))


@router.get("/limits/local")
def get_local_limits(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """The account's local limits: ``{RSE: bytes}`` (``Infinity``: no limit)."""
    return _json(_local_limits(lake, principal, account))


@router.get("/limits/local/{rse}")
def get_local_limit(account: str, rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """``{RSE: bytes}``; ``null`` when the account has no limit on the RSE."""
    _rse(lake, principal, rse)
    return _json({rse: _local_limits(lake, principal, account).get(rse)})


@router.get("/limits/global")
def get_global_limits(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """``{expression: {resolved_rses, resolved_rse_ids, limit}}`` of the global limits."""
    names = _rse_names(lake, principal)
    limits = quotas.limits(lake, principal, validate_account(account))
    answer = {}
    for expression, size in limits.items():
        if expression in names:
            continue
        resolved = _resolved(lake, principal, expression)
        answer[expression] = {
            "resolved_rses": resolved,
            "resolved_rse_ids": [str(names[name]) for name in resolved],
            "limit": _size(size),
        }
    return _json(answer)


@router.get("/limits/global/{expression:path}")
def get_global_limit(
    account: str, expression: str, lake: LakeDep, principal: PrincipalDep
) -> Response:
    """``{expression: bytes}``; ``null`` when the account has no limit on it."""
    limits = quotas.limits(lake, principal, validate_account(account))
    found = limits.get(_expression(expression))
    return _json({expression: None if found is None else _size(found)})


# -- usage ---------------------------------------------------------------------------------------
def _local_usage(
    lake: Lake, principal: Principal, account: str, only: str | None = None
) -> list[dict[str, Any]]:
    """Per RSE the account uses or has a limit on: bytes and files used, the limit that applies
    to the RSE alone and what is left of it (never null: ``Infinity`` when not limited)."""
    usage = quotas.usage(lake, principal, validate_account(account))
    names = _rse_names(lake, principal)
    limits = quotas.limits(lake, principal, account)
    covered: set[str] = set()
    for expression in limits:
        if expression not in names:
            covered.update(_resolved(lake, principal, expression))
    rows = {entry["rse"]: entry for entry in usage["rses"]}
    if only is not None and only not in rows:
        rows = {only: {"rse": only, "rse_id": names[only], "bytes": 0, "files": 0}}
    answer = []
    for name, entry in sorted(rows.items()):
        if only is not None and name != only:
            continue
        if name in limits:
            limit: float | int = _size(limits[name])
        elif not limits or name in covered:
            limit = INFINITY  # no limit of its own: nothing but a global one applies
        else:
            limit = 0  # the account has limits and none covers this RSE
        answer.append(
            {
                "rse_id": str(entry["rse_id"]),
                "rse": name,
                "bytes": entry["bytes"],
                "files": entry["files"],
                "bytes_limit": limit,
                "bytes_remaining": limit - entry["bytes"],
            }
        )
    return answer


@router.get("/usage", response_class=NDJSONResponse)
def usage(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return _lines(_local_usage(lake, principal, account))


@router.get("/usage/local", response_class=NDJSONResponse)
def local_usage(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Per RSE: ``rse``, ``rse_id``, ``bytes``, ``files``, ``bytes_limit``, ``bytes_remaining``
    (``Infinity`` where no limit applies)."""
    return _lines(_local_usage(lake, principal, account))


@router.get("/usage/local/{rse}", response_class=NDJSONResponse)
def local_usage_of_rse(account: str, rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return _lines(_local_usage(lake, principal, account, _rse(lake, principal, rse)))


@router.get("/usage/global", response_class=NDJSONResponse)
def global_usage(account: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    """Per global limit: ``rse_expression``, ``bytes`` and ``files`` used on its RSEs,
    ``bytes_limit``, ``bytes_remaining``."""
    return _lines(_global_usage(lake, principal, account))


@router.get("/usage/global/{expression:path}", response_class=NDJSONResponse)
def global_usage_of_expression(
    account: str, expression: str, lake: LakeDep, principal: PrincipalDep
) -> Response:
    return _lines(_global_usage(lake, principal, account, _expression(expression)))


@router.get("/usage/{rse}", response_class=NDJSONResponse)
def usage_of_rse(account: str, rse: str, lake: LakeDep, principal: PrincipalDep) -> Response:
    return _lines(_local_usage(lake, principal, account, _rse(lake, principal, rse)))


def _global_usage(
    lake: Lake, principal: Principal, account: str, only: str | None = None
) -> list[dict[str, Any]]:
    usage = quotas.usage(lake, principal, validate_account(account))
    names = _rse_names(lake, principal)
    files = {entry["rse"]: entry["files"] for entry in usage["rses"]}
    answer = []
    for entry in usage["expressions"]:
        expression = entry["rse_expression"]
        if expression in names or (only is not None and expression != only):
            continue
        limit = _size(entry["bytes"])
        answer.append(
            {
                "rse_expression": expression,
                "bytes": entry["used_bytes"],
                "files": sum(files.get(name, 0) for name in _resolved(lake, principal, expression)),
                "bytes_limit": limit,
                "bytes_remaining": limit - entry["used_bytes"],
            }
        )
    return answer
