"""Who sees which DIDs and scopes: embargoed ones only their owners and admins, until released.

One SQL condition per table, added to every read of ``dids`` and ``scopes``. A DID's
``embargoed``/``embargo_release_at`` is its effective embargo — its own and all that its paths up
pass, kept by ``embargo`` —; its own scope's embargo is checked here. Building these conditions
costs more than running them: each account's is built once (a few hundred are kept), with the
time read when the statement runs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, exists, or_, true

from lacus.core.clock import utcnow
from lacus.db.tables import dids, scopes
from lacus.types import Viewer


def visible(viewer: Viewer | None) -> ColumnElement[bool]:
    """The condition on ``dids`` rows that ``viewer`` may see (everything for None or admins):
    its own DIDs, the DIDs of its scopes, and those neither embargoed nor in an embargoed scope
    (or released)."""
    if viewer is None or viewer.admin:
        return true()
    return _visible_dids(viewer.account)


def scope_visible(viewer: Viewer | None) -> ColumnElement[bool]:
    """The condition on ``scopes`` rows that ``viewer`` may see."""
    if viewer is None or viewer.admin:
        return true()
    return _visible_scopes(viewer.account)


@lru_cache(maxsize=512)
def _visible_dids(account: str) -> ColumnElement[bool]:
    now = _now()
    return or_(
        dids.c.account == account,
        exists().where(
            scopes.c.scope == dids.c.scope,
            or_(scopes.c.account == account, and_(_free(scopes, now), _free(dids, now))),
        ),
    )


@lru_cache(maxsize=512)
def _visible_scopes(account: str) -> ColumnElement[bool]:
    return or_(scopes.c.account == account, _free(scopes, _now()))


def _free(table: Any, now: BindParameter[Any]) -> ColumnElement[bool]:
    """Not embargoed, or released (never NULL: the condition may be negated)."""
    released = and_(table.c.embargo_release_at.is_not(None), table.c.embargo_release_at <= now)
    return or_(~table.c.embargoed, released)


def _now() -> BindParameter[Any]:
    """The current time, read each time a statement holding it runs (``utcnow`` looked up then,
    so a test can fix the time)."""
    return bindparam("now", callable_=lambda: utcnow(), unique=True)  # typed by its column
