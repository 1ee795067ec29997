"""Transfer history and the transfer success matrix: read use cases, for any authenticated
account (the history lists only files the account may see)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lacus.core import transfers
from lacus.core.clock import utcnow
from lacus.errors import InvalidOption
from lacus.service.lake import Lake, Principal
from lacus.service.token_scopes import StorageOperation, only_allowed, require_storage_scope

STATES = ("done", "failed")
MAX_LIMIT = 1000


def list_transfers(
    lake: Lake,
    principal: Principal,
    *,
    scope: str | None = None,
    name: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest attempts first: file, source, destination, bytes, state, error, duration."""
    if state is not None and state not in STATES:
        raise InvalidOption(f"invalid state {state[:30]!r}: use done or failed")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidOption(f"limit must be between 1 and {MAX_LIMIT}")
    if scope is not None:
        require_storage_scope(principal, StorageOperation.READ, scope)
    with lake.read() as conn:
        found = transfers.list_transfers(
            conn, scope=scope, name=name, state=state, limit=limit, viewer=principal
        )
    return only_allowed(principal, StorageOperation.READ, found, lambda row: row["scope"])


def transfer_matrix(
    lake: Lake, principal: Principal, *, hours: float | None = None
) -> dict[str, Any]:
    """Per link (source, destination): attempts done and failed, % success, bytes, mean
    seconds; with the sorted names of every RSE that appears (``rses``). ``hours``: only the
    attempts of the last ``hours`` hours."""
    if hours is not None and not 0 < hours <= 24 * 366:
        raise InvalidOption(f"hours must be between 0 and {24 * 366}, not {hours}")
    since = None if hours is None else utcnow() - timedelta(hours=hours)
    with lake.read() as conn:
        cells = transfers.transfer_matrix(conn, since=since)
    names = sorted({c[key] for c in cells for key in ("source", "destination") if c[key]})
    return {"cells": cells, "rses": names}
