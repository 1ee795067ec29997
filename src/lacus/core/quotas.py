"""Account quotas: how many bytes an account's locks may hold on the RSEs an expression selects.

A limit on a single RSE name is what Rucio calls a local limit; on any other expression, a
global one. Usage is the bytes of the account's locks (a file kept twice counts twice). An
account without limits is not limited; once it has one, an RSE no limit covers takes none of its
rules' copies.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from lacus.core.accounts import get_account
from lacus.core.clock import utcnow
from lacus.core.expressions import resolve
from lacus.core.placement import Quota
from lacus.core.rses import rse_attribute_map
from lacus.db.tables import account_limits, locks, rses
from lacus.errors import InvalidInput, NotFound
from lacus.types import MAX_INT64


def set_limit(conn: Connection, account: str, rse_expression: str, size: int) -> None:
    """Allow ``account`` ``size`` bytes on ``rse_expression`` (replacing an earlier limit)."""
    get_account(conn, account)
    if not 0 <= size <= MAX_INT64:
        raise InvalidInput(f"a quota is between 0 and {MAX_INT64} bytes, not {size}")
    resolve(rse_expression, rse_attribute_map(conn))  # InvalidRSEExpression early
    now = utcnow()
    values = {"bytes": size, "updated_at": now}
    changed = conn.execute(
        update(account_limits)
        .where(
            account_limits.c.account == account,
            account_limits.c.rse_expression == rse_expression,
        )
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(
            insert(account_limits).values(
                account=account, rse_expression=rse_expression, created_at=now, **values
            )
        )


def delete_limit(conn: Connection, account: str, rse_expression: str) -> None:
    removed = conn.execute(
        delete(account_limits).where(
            account_limits.c.account == account,
            account_limits.c.rse_expression == rse_expression,
        )
    ).rowcount
    if not removed:
        raise NotFound(f"account {account!r} has no limit on {rse_expression!r}")


def list_limits(conn: Connection, account: str, *, check: bool = True) -> dict[str, int]:
    """Expression → bytes (``check``: AccountNotFound for an unknown account)."""
    if check:
        get_account(conn, account)
    rows = conn.execute(
        select(account_limits.c.rse_expression, account_limits.c.bytes)
        .where(account_limits.c.account == account)
        .order_by(account_limits.c.rse_expression)
    )
    return {row.rse_expression: int(row.bytes) for row in rows}


def usage_by_rse(conn: Connection, account: str) -> dict[int, tuple[int, int]]:
    """RSE id → (bytes, files) of the account's locks."""
    rows = conn.execute(
        select(locks.c.rse_id, func.sum(locks.c.bytes), func.count())
        .where(locks.c.account == account)
        .group_by(locks.c.rse_id)
    )
    return {row[0]: (int(row[1] or 0), int(row[2])) for row in rows}


def usage(conn: Connection, account: str) -> list[dict[str, Any]]:
    """Per RSE: bytes and files used, and the limits covering it."""
    get_account(conn, account)
    used = usage_by_rse(conn, account)
    names = {row.id: row.rse for row in conn.execute(select(rses.c.id, rses.c.rse))}
    return [
        {"rse": names[rse_id], "rse_id": rse_id, "bytes": size, "files": count}
        for rse_id, (size, count) in sorted(used.items(), key=lambda item: names[item[0]])
    ]


def expression_usage(conn: Connection, account: str) -> list[dict[str, Any]]:
    """Per limit: the expression, its bytes, the bytes used on the RSEs it selects, what is left."""
    attributes = rse_attribute_map(conn)
    ids = {row.rse: row.id for row in conn.execute(select(rses.c.id, rses.c.rse))}
    used = usage_by_rse(conn, account)
    answer = []
    for expression, size in list_limits(conn, account).items():
        selected = {ids[name] for name in _selected(expression, attributes)}
        spent = sum(used.get(rse_id, (0, 0))[0] for rse_id in selected)
        answer.append(
            {
                "rse_expression": expression,
                "bytes": size,
                "used_bytes": spent,
                "remaining_bytes": size - spent,
            }
        )
    return answer


def quota_for(conn: Connection, account: str) -> Quota | None:
    """The account's quota as placement uses it (None: not limited)."""
    limits = list_limits(conn, account, check=False)
    if not limits:
        return None
    attributes = rse_attribute_map(conn)
    ids = {row.rse: row.id for row in conn.execute(select(rses.c.id, rses.c.rse))}
    used = usage_by_rse(conn, account)
    entries = []
    for expression, size in limits.items():
        selected = frozenset(ids[name] for name in _selected(expression, attributes))
        spent = sum(used.get(rse_id, (0, 0))[0] for rse_id in selected)
        entries.append((selected, size - spent))
    return Quota(entries)


def _selected(expression: str, attributes: dict[str, dict[str, str]]) -> list[str]:
    try:
        return resolve(expression, attributes)
    except InvalidInput:  # the RSEs it named are gone: it covers nothing now
        return []
