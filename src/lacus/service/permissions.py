"""The permission model: who may call each operation of the REST API, as data.

One row per operation (``"METHOD /path"`` exactly as in ``/openapi.json``): the noun it
belongs to, its access rule, and whether a DID the caller may not see (embargo) answers
exactly as a missing one. docs/permissions.md shows this table and ``tests/test_permissions.py``
checks both the document and the running server against it, for every route the app serves: a
new endpoint without a row fails that test.

The four rules, from the most open:

- ``ANYONE``: no token needed.
- ``ACCOUNT``: any authenticated account; reads show only what the account may see.
- ``OWNER``: the owner of the scope (or the account named in the path) and admins; a token
  limited to WLCG storage scopes is checked as well (``service.token_scopes``).
- ``ADMIN``: admins only (``Principal.require_admin``).

``require`` is the one gate: the server calls it for every request before the operation runs
(``server.deps.permitted``), so a rule in this table is enforced without the operation's code
repeating it. What depends on the data — the owner of the scopes a request's DIDs name, what a
reader may see — is checked by the service where it reads the data
(``service.scopes.require_writer_of``, ``core.visibility``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lacus.errors import AccessDenied, Unauthenticated
from lacus.service.lake import Principal


class Access(StrEnum):
    ANYONE = "anyone"
    ACCOUNT = "any account"
    OWNER = "owner or admin"
    ADMIN = "admin only"


@dataclass(frozen=True, slots=True)
class Permission:
    operation: str
    """``METHOD /path`` as in ``/openapi.json``"""
    noun: str
    access: Access
    hides: bool = False
    """a DID the caller may not see answers exactly as a missing one (same status, same
    message), in the result and in errors"""


def _rows(noun: str, access: Access, *operations: str, hides: bool = False) -> list[Permission]:
    return [Permission(operation, noun, access, hides) for operation in operations]


_A, _C, _O, _D = Access.ANYONE, Access.ACCOUNT, Access.OWNER, Access.ADMIN

PERMISSIONS: dict[str, Permission] = {
    row.operation: row
    for row in [
        *_rows("server", _A, "GET /ping"),
        *_rows("tokens", _A, "GET /auth/userpass"),
        *_rows("tokens", _C, "GET /auth/validate", "GET /auth/tokens"),
        # own tokens; admins any (``service.auth.revoke_token``)
        *_rows("tokens", _C, "DELETE /auth/tokens/{token_id}"),
        *_rows("accounts", _C, "GET /accounts/", "GET /accounts/whoami", "GET /accounts/{account}"),
        *_rows("accounts", _C, "GET /accounts/{account}/attr/"),
        *_rows(
            "accounts",
            _D,
            "POST /accounts/{account}",
            "POST /accounts/{account}/attr/{key}",
            "DELETE /accounts/{account}/attr/{key}",
        ),
        *_rows("identities", _D, "POST /accounts/{account}/identities"),
        *_rows(
            "scopes", _C, "GET /accounts/{account}/scopes/", "GET /scopes/", "GET /scopes/owner"
        ),
        *_rows(
            "scopes", _O, "POST /accounts/{account}/scopes/{scope}", "PUT /scopes/{scope}/embargo"
        ),
        *_rows(
            "DIDs",
            _C,
            "GET /dids/{scope}/dids/search",
            "GET /dids/{scope}/",
            "GET /dids/{scope}/{name}",
            "GET /dids/{scope}/{name}/dids",
            "GET /dids/{scope}/{name}/parents",
            "GET /dids/{scope}/{name}/files",
            "POST /dids/bulkmeta",
            hides=True,
        ),
        *_rows(
            "DIDs",
            _O,
            "POST /dids",
            "POST /dids/{scope}/{name}",
            "POST /dids/attachments",
            "POST /dids/{scope}/{name}/dids",
            "DELETE /dids/{scope}/{name}/dids",
            "PUT /dids/{scope}/{name}/status",
            "PUT /dids/{scope}/{name}/embargo",
        ),
        *_rows("metadata", _C, "GET /dids/{scope}/{name}/meta", hides=True),
        *_rows(
            "metadata",
            _O,
            "POST /dids/{scope}/{name}/meta",
            "DELETE /dids/{scope}/{name}/meta",
            "POST /dids/{scope}/{name}/meta/{key}",
            "DELETE /dids/{scope}/{name}/meta/{key}",
        ),
        *_rows("replicas", _O, "POST /replicas", "PUT /replicas"),
        *_rows(
            "replicas",
            _C,
            "POST /replicas/list",
            "POST /replicas/datasets_bulk",
            "GET /replicas/{scope}/{name}/datasets",
            "GET /replicas/rse/{rse}",
            hides=True,
        ),
        *_rows(
            "integrity",
            _C,
            "POST /replicas/suspicious",
            "GET /replicas/suspicious",
            "GET /replicas/bad/states",
            "GET /integrity/history/{scope}/{name}",
            hides=True,
        ),
        *_rows(
            "integrity",
            _O,
            "POST /replicas/bad",
            "POST /replicas/bad/dids",
            "POST /replicas/bad/pfns",
            "POST /integrity/declarations",
            hides=True,
        ),
        *_rows(
            "integrity",
            _D,
            "POST /replicas/quarantine",
            "GET /integrity/quarantine",
        ),
        # counts per RSE; the audits' details for admins only
        *_rows("integrity", _C, "GET /integrity/audits"),
        *_rows(
            "rules",
            _C,
            "POST /rules/",
            "GET /rules/",
            "GET /accounts/{account}/rules",
            "GET /dids/{scope}/{name}/rules",
            "GET /dids/{scope}/{name}/associated_rules",
            "GET /locks/{scope}/{name}",
            "GET /rules/{rule_id}",
            "GET /rules/{rule_id}/locks",
            "GET /rules/{rule_id}/history",
            "GET /rules/{rule_id}/analysis",
            "GET /rules/{scope}/{name}/history",
            hides=True,
        ),
        *_rows(
            "rules",
            _O,
            "PUT /rules/{rule_id}",
            "DELETE /rules/{rule_id}",
            "POST /rules/{rule_id}/move",
            "POST /rules/{rule_id}/reduce",
        ),
        *_rows(
            "subscriptions",
            _C,
            "GET /subscriptions/",
            "GET /subscriptions/name/{name}",
            "GET /subscriptions/id/{subscription_id}",
            "GET /subscriptions/{account}",
            "GET /subscriptions/{account}/{name}",
            "GET /subscriptions/{account}/{name}/rules",
        ),
        *_rows(
            "subscriptions",
            _O,
            "POST /subscriptions/{account}/{name}",
            "PUT /subscriptions/{account}/{name}",
        ),
        *_rows("policies", _C, "GET /policies/", "GET /policies/{name}"),
        *_rows("policies", _D, "POST /policies/"),
        *_rows(
            "RSEs",
            _C,
            "GET /rses/",
            "GET /rses/{rse}",
            "GET /rses/{rse}/usage",
            "GET /rses/{rse}/lfns2pfns",
            "GET /rses/{rse}/limits",
            "GET /rses/{rse}/attr/",
            "GET /rses/{rse}/protocols",
        ),
        *_rows(
            "RSEs",
            _D,
            "POST /rses/{rse}",
            "PUT /rses/{rse}",
            "POST /rses/{rse}/attr/{key}",
            "DELETE /rses/{rse}/attr/{key}",
            "POST /rses/{rse}/protocols/{scheme}",
        ),
        *_rows("distances", _C, "GET /distances/", "GET /rses/{src}/distances/{dest}"),
        *_rows(
            "distances",
            _D,
            "POST /rses/{src}/distances/{dest}",
            "PUT /rses/{src}/distances/{dest}",
            "DELETE /rses/{src}/distances/{dest}",
        ),
        *_rows(
            "limits and quotas",
            _D,
            "POST /accounts/{account}/limits/local/{rse}",
            "DELETE /accounts/{account}/limits/local/{rse}",
            "POST /accounts/{account}/limits/global/{expression}",
            "DELETE /accounts/{account}/limits/global/{expression}",
        ),
        *_rows(
            "limits and quotas",
            _O,
            "GET /accounts/{account}/limits",
            "GET /accounts/{account}/limits/local",
            "GET /accounts/{account}/limits/local/{rse}",
            "GET /accounts/{account}/limits/global",
            "GET /accounts/{account}/limits/global/{expression}",
            "GET /accounts/{account}/usage",
            "GET /accounts/{account}/usage/local",
            "GET /accounts/{account}/usage/local/{rse}",
            "GET /accounts/{account}/usage/global",
            "GET /accounts/{account}/usage/global/{expression}",
            "GET /accounts/{account}/usage/{rse}",
        ),
        *_rows("transfers", _C, "GET /transfers/", "GET /transfers/matrix", hides=True),
        *_rows("transfers", _A, "POST /traces/"),
        *_rows("events", _C, "GET /events", hides=True),
        *_rows("events", _D, "GET /events/destinations"),
        *_rows("metrics", _A, "GET /metrics"),
        # the web dashboard (outside /openapi.json): a login form, then the REST API's rules
        *_rows(
            "dashboard",
            _A,
            "GET /dashboard/login",
            "POST /dashboard/login",
            "POST /dashboard/logout",
        ),
        *_rows(
            "dashboard",
            _C,
            "GET /dashboard",
            "GET /dashboard/",
            "GET /dashboard/matrix",
            "GET /dashboard/transfers",
            "GET /dashboard/ingest",
            "GET /dashboard/integrity",
        ),
        *_rows(
            "dashboard",
            _C,
            "GET /dashboard/dids",
            "GET /dashboard/dids/{scope}/{name}",
            "GET /dashboard/dids/{scope}/{name}/replicas",
            "GET /dashboard/rules/{rule_id}",
            "GET /dashboard/events",
            hides=True,
        ),
    ]
}
"""Every operation of the REST API → its permission (see the module's docstring)."""


def require(
    principal: Principal | None,
    operation: str,
    *,
    owner: str | None = None,
    called: str | None = None,
) -> None:
    """Raise unless ``principal`` may call ``operation``: Unauthenticated without an account
    where one is needed, AccessDenied where the rule refuses (or where ``operation`` has no row:
    closed by default). For ``OWNER`` operations the owner is ``owner`` (the account the request
    names); when the request names no account, the owner is that of the scopes its data names
    and the service checks it where it reads them (``service.scopes.require_writer_of``).
    Messages name the call as ``called`` (``POST /rses/X``), else as the operation."""
    rule = _row(operation)
    call = called or operation
    if rule is None:
        raise AccessDenied(f"{operation} is not in the permission table: no one may call it")
    if rule.access is Access.ANYONE:
        return
    if principal is None:
        raise Unauthenticated(f"{call} needs a token")
    if rule.access is Access.ADMIN:
        principal.require_admin(f"call {call}")
        return
    others = rule.access is Access.OWNER and owner not in (None, principal.account)
    if others and not principal.admin:
        raise AccessDenied(
            f"account {principal.account!r} may not call {call}: only {owner!r} or an admin"
        )


def needs_account(operation: str) -> bool:
    """Whether ``operation`` needs an authenticated account (every row but ``ANYONE``'s; an
    operation without a row does too, and is then refused)."""
    rule = _row(operation)
    return rule is None or rule.access is not Access.ANYONE


def _row(operation: str) -> Permission | None:
    """The row of ``operation``, or of the same path with(out) its trailing slash: an alias that
    Rucio's clients call (``GET /accounts`` for ``GET /accounts/``) is the same operation."""
    rule = PERMISSIONS.get(operation)
    if rule is None:
        alias = operation[:-1] if operation.endswith("/") else f"{operation}/"
        rule = PERMISSIONS.get(alias)
    return rule
