"""Who sees which DIDs and scopes: embargoed ones only their owners and admins, until released.

One SQL condition per table, added to every read of ``dids`` and ``scopes``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select, true

from lacus.core.clock import utcnow
from lacus.db.tables import dids, scopes
from lacus.types import Viewer


def _hidden(table: Any, now: datetime) -> ColumnElement[bool]:
    return and_(
        table.c.embargoed,
        or_(table.c.embargo_release_at.is_(None), table.c.embargo_release_at > now),
    )


def visible(viewer: Viewer | None) -> ColumnElement[bool]:
    """The condition on ``dids`` rows that ``viewer`` may see (everything for None or admins)."""
    if viewer is None or viewer.admin:
        return true()
    now = utcnow()
    owned_scope = exists(
        select(scopes.c.scope).where(
            scopes.c.scope == dids.c.scope, scopes.c.account == viewer.account
        )
    )
    hidden_scope = exists(
        select(scopes.c.scope).where(scopes.c.scope == dids.c.scope, _hidden(scopes, now))
    )
    return or_(
        dids.c.account == viewer.account,
        owned_scope,
        and_(~_hidden(dids, now), ~hidden_scope),
    )


def scope_visible(viewer: Viewer | None) -> ColumnElement[bool]:
    """The condition on ``scopes`` rows that ``viewer`` may see."""
    if viewer is None or viewer.admin:
        return true()
    return or_(scopes.c.account == viewer.account, ~_hidden(scopes, utcnow()))
