"""Quota use cases: admins set and remove limits; an account reads its own (admins any)."""

from __future__ import annotations

from typing import Any

from lacus.core import quotas
from lacus.core.rses import find_rse_id
from lacus.service.lake import Lake, Principal


def set_limit(
    lake: Lake, principal: Principal, account: str, rse_expression: str, size: int
) -> None:
    with lake.write() as conn:
        quotas.set_limit(conn, account, rse_expression, size)
    lake.wake("repairer")


def delete_limit(lake: Lake, principal: Principal, account: str, rse_expression: str) -> None:
    with lake.write() as conn:
        quotas.delete_limit(conn, account, rse_expression)


def limits(lake: Lake, principal: Principal, account: str) -> dict[str, int]:
    """Expression → bytes."""
    with lake.read() as conn:
        return quotas.list_limits(conn, account)


def usage(lake: Lake, principal: Principal, account: str) -> dict[str, Any]:
    """``rses``: per RSE bytes and files used, with its limit when the RSE is limited by name;
    ``expressions``: per limit, bytes allowed, used and remaining."""
    with lake.read() as conn:
        per_rse = quotas.usage(conn, account)
        expressions = quotas.expression_usage(conn, account)
        by_name = {entry["rse_expression"]: entry for entry in expressions}
        listed = {entry["rse"] for entry in per_rse}
        for expression in by_name:
            if expression not in listed and find_rse_id(conn, expression) is not None:
                per_rse.append(
                    {
                        "rse": expression,
                        "rse_id": find_rse_id(conn, expression),
                        "bytes": 0,
                        "files": 0,
                    }
                )
    for entry in per_rse:
        limit = by_name.get(entry["rse"])
        entry["bytes_limit"] = None if limit is None else limit["bytes"]
        entry["bytes_remaining"] = None if limit is None else limit["bytes"] - entry["bytes"]
    return {"rses": sorted(per_rse, key=lambda e: e["rse"]), "expressions": expressions}
