"""WLCG token scopes: what a JWT carrying ``storage.*`` scopes may do in the lake.

A token of the WLCG Common JWT Profile may carry capabilities in its ``scope`` claim
(``storage.read:/virgo storage.create:/virgo``). Such a token is limited to them: it keeps none
of its account's rights outside them, and inside them only what the account may do anyway (the
account is the "VO" the profile maps a token to; the scopes narrow it). A token with no
``storage.*`` scope keeps its account's full rights, as an opaque Lacus token does.

Paths name Lacus scopes: ``/`` is every scope, ``/virgo`` the scope ``virgo`` (a trailing ``/``
changes nothing). Lacus grants rights on whole scopes, so a path below a scope
(``/virgo/raw``) grants nothing here: a token never gets more than it asked for.

=========  =====================================================================  ================
operation  what it covers, in a scope                                             granted by
=========  =====================================================================  ================
stat       one DID's record, a rule's state, locks and history, the scope in the  storage.read,
           list of scopes                                                         .create, .modify,
                                                                                  .stage, .poll
read       list and search DIDs, content, parents, files, metadata, replicas      storage.read
           (and so downloads), transfer history
create     new scopes, files, replicas (uploads, registration, an upload's        storage.create,
           copying → available), datasets and containers, attachments             storage.modify
modify     metadata changed or removed (also on files registered again),          storage.modify
           detach, close, embargo, replicas declared bad/suspicious/unavailable
stage      add, change and remove rules (and start lifecycle policies);           storage.stage,
           subscriptions need it in every scope (path ``/``)                      storage.modify
=========  =====================================================================  ================

A token with ``storage.*`` scopes is refused every admin-only operation
(``Principal.require_admin``), whatever its account. ``require_storage_scope`` is the one check;
the service calls it where it already checks writers (``service.scopes.require_writer_of``) and at
the entry points that read DIDs, replicas and rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

from lacus.errors import AccessDenied, Unauthenticated

if TYPE_CHECKING:
    from lacus.service.lake import Principal

T = TypeVar("T")

StorageScopes = frozenset[tuple[str, str]]
"""A token's ``storage.*`` scopes as (capability, path) pairs: ``("read", "/virgo")``."""


class StorageOperation(StrEnum):
    STAT = "stat"
    READ = "read"
    CREATE = "create"
    MODIFY = "modify"
    STAGE = "stage"


GRANTED_BY: dict[StorageOperation, tuple[str, ...]] = {
    StorageOperation.STAT: ("read", "create", "modify", "stage", "poll"),
    StorageOperation.READ: ("read",),
    StorageOperation.CREATE: ("create", "modify"),
    StorageOperation.MODIFY: ("modify",),
    StorageOperation.STAGE: ("stage", "modify"),
}
"""Which ``storage.*`` capabilities grant each operation (``modify`` is a superset of
``create``, as the profile says, and covers rules too: it may already delete what they keep)."""

_DOING = {
    StorageOperation.STAT: "look up DIDs in",
    StorageOperation.READ: "read",
    StorageOperation.CREATE: "add to",
    StorageOperation.MODIFY: "change or delete in",
    StorageOperation.STAGE: "add or change rules in",
}

_PREFIX = "storage."


def parse_storage_scopes(claim: object) -> StorageScopes | None:
    """The ``storage.*`` scopes of a token's ``scope`` claim (a space-separated string, or a
    list of strings as some issuers send); None when it has none. A storage scope without an
    absolute, normalised path makes the token invalid (Unauthenticated), as the profile asks."""
    if isinstance(claim, str):
        items = claim.split()
    elif isinstance(claim, list):
        items = [item for item in claim if isinstance(item, str)]
    else:
        return None
    found = set()
    for item in items:
        if not item.startswith(_PREFIX):
            continue
        capability, colon, path = item[len(_PREFIX) :].partition(":")
        if not colon:
            raise Unauthenticated(
                f"the JWT's scope {item[:80]!r} has no path: WLCG storage scopes name one "
                f"(storage.{capability[:20]}:/ for everything)"
            )
        found.add((capability, _normal_path(item, path)))
    return frozenset(found) if found else None


def _normal_path(item: str, path: str) -> str:
    """``path`` without a trailing ``/`` and URL escapes; Unauthenticated unless it is absolute
    and normalised (no empty, ``.`` or ``..`` part)."""
    parts = [unquote(part) for part in path.removesuffix("/").split("/")[1:]]
    if not path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise Unauthenticated(
            f"the JWT's scope {item[:80]!r} does not name an absolute, normalised path "
            "(like /virgo)"
        )
    return "/" + "/".join(parts)


EVERY_SCOPE = ""
"""Ask ``may`` about this to learn whether a token's rights cover every scope (path ``/``)."""


def covers(path: str, scope: str) -> bool:
    """Whether a token path grants rights on the whole of ``scope``."""
    return path == "/" or path == f"/{scope}"


def may(principal: Principal, operation: StorageOperation, scope: str) -> bool:
    """Whether the token ``principal`` authenticated with allows ``operation`` in ``scope``."""
    granted = principal.storage_scopes
    if granted is None:
        return True
    wanted = GRANTED_BY[operation]
    return any(capability in wanted and covers(path, scope) for capability, path in granted)


def require_storage_scope(principal: Principal, operation: StorageOperation, scope: str) -> None:
    """AccessDenied unless the token's storage scopes allow ``operation`` in ``scope`` (a token
    without storage scopes allows everything its account may do)."""
    if may(principal, operation, scope):
        return
    granted = principal.storage_scopes or frozenset()
    has = " ".join(sorted(f"storage.{capability}:{path}" for capability, path in granted))
    needs = " or ".join(f"storage.{capability}:/{scope}" for capability in GRANTED_BY[operation])
    raise AccessDenied(
        f"this token of account {principal.account!r} may not {_DOING[operation]} scope "
        f"{scope!r}: it carries {has[:300]}, and that needs {needs}"
    )


def only_allowed(
    principal: Principal,
    operation: StorageOperation,
    items: Iterable[T],
    scope: Callable[[T], str],
) -> list[T]:
    """The ``items`` in scopes where the token allows ``operation`` (all of them, at no cost, for
    a token without storage scopes)."""
    if principal.storage_scopes is None:
        return items if isinstance(items, list) else list(items)
    return [item for item in items if may(principal, operation, scope(item))]
