"""``lacus.Client``: the catalog over REST, plus verified uploads and downloads."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from lacus.client import events
from lacus.client._http import Session, raise_for_error
from lacus.client.config import ClientConfig, load_config
from lacus.client.events import Event
from lacus.errors import InvalidInput, NotFound, RSENotFound
from lacus.naming import parse_did, validate_account, validate_rse, validate_scope
from lacus.types import MetaValue

Progress = Callable[[int], None]


def _p(value: str) -> str:
    return quote(value, safe="")


def _is_rse_name(expression: str) -> bool:
    """A single RSE name (Rucio's local limit) rather than an expression (a global one)."""
    try:
        validate_rse(expression)
    except InvalidInput:
        return False
    return True


class Client:
    """A Lacus (or Rucio-dialect) server, as one account.

    Without arguments the client reads ``LACUS_URL``, ``LACUS_ACCOUNT``, ``LACUS_PASSWORD`` or
    ``LACUS_TOKEN``, else the file written by ``lacus login``. Tokens are refreshed transparently.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        account: str | None = None,
        password: str | None = None,
        token: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.config: ClientConfig = load_config(url, account, password, token)
        self.session = Session(self.config, http=http)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- server and account --------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        response = self.session.http.get("/ping")
        raise_for_error(response)
        result: dict[str, Any] = response.json()
        return result

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("GET", "/accounts/whoami")
        return result

    def token(self) -> str:
        return self.session.token

    def list_tokens(self) -> list[dict[str, Any]]:
        """The account's tokens not yet expired, oldest first: ``id``, ``identity``,
        ``created_at``, ``expires_at``, ``current`` (the one this client holds)."""
        result: list[dict[str, Any]] = self.session.json("GET", "/auth/tokens")
        return result

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by its ``id`` (own tokens; admins: anyone's)."""
        self.session.json("DELETE", f"/auth/tokens/{_p(token_id)}")

    def logout(self) -> bool:
        """Revoke the token this client holds and forget it; whether the server revoked one."""
        return self.session.logout()

    def add_account(
        self,
        account: str,
        *,
        password: str | None = None,
        email: str | None = None,
        admin: bool = False,
    ) -> None:
        body = {"type": "user", "email": email, "admin": admin, "password": password}
        self.session.request("POST", f"/accounts/{_p(validate_account(account))}", json=body)

    def add_oidc_identity(self, account: str, subject: str, issuer: str) -> None:
        """Let JWTs of ``issuer`` whose ``sub`` is ``subject`` authenticate as ``account``."""
        body = {"identity": subject, "issuer": issuer, "type": "oidc"}
        self.session.request(
            "POST", f"/accounts/{_p(validate_account(account))}/identities", json=body
        )

    # -- scopes ----------------------------------------------------------------------------------
    def add_scope(self, scope: str, *, account: str | None = None) -> None:
        owner = account or self.whoami()["account"]
        validate_scope(scope)
        self.session.request("POST", f"/accounts/{_p(owner)}/scopes/{_p(scope)}")

    def list_scopes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.session.json(
            "GET", "/scopes/", params={"detail": "true"}
        )
        return result

    # -- RSEs ------------------------------------------------------------------------------------
    def add_rse(
        self,
        rse: str,
        *,
        prefix: str | None = None,
        scheme: str = "file",
        hostname: str = "",
        port: int = 0,
        rse_type: str = "disk",
        deterministic: bool = True,
        total_bytes: int | None = None,
        attributes: Mapping[str, str] | None = None,
        read_only: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Add an RSE (admins). ``read_only``: an archive Lacus never writes to nor deletes
        from (files already there are registered)."""
        validate_rse(rse)
        body = {
            "rse_type": rse_type,
            "deterministic": deterministic,
            "total_bytes": total_bytes,
            "attributes": dict(attributes or {}),
            "read_only": read_only,
        }
        self.session.request("POST", f"/rses/{_p(rse)}", json=body)
        if prefix is not None:
            self.add_protocol(
                rse, scheme=scheme, prefix=prefix, hostname=hostname, port=port, options=options
            )

    def add_protocol(
        self,
        rse: str,
        *,
        scheme: str,
        prefix: str,
        hostname: str = "",
        port: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """A way to reach the RSE's storage (admins); ``options`` go to its storage backend
        (``verify``, ``tpc``, credentials...; the server never shows credentials back)."""
        body = {
            "hostname": hostname,
            "port": port,
            "prefix": prefix,
            "impl": scheme,
            "extended_attributes": dict(options) if options else None,
        }
        self.session.request("POST", f"/rses/{_p(rse)}/protocols/{_p(scheme)}", json=body)

    def list_rses(self) -> list[dict[str, Any]]:
        return list(self.session.ndjson("GET", "/rses/"))

    def get_rse(self, rse: str) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("GET", f"/rses/{_p(rse)}")
        return result

    def set_rse_attribute(self, rse: str, key: str, value: str) -> None:
        self.session.request("POST", f"/rses/{_p(rse)}/attr/{_p(key)}", json={"value": value})

    def delete_rse_attribute(self, rse: str, key: str) -> None:
        self.session.request("DELETE", f"/rses/{_p(rse)}/attr/{_p(key)}")

    def update_rse(self, rse: str, **values: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("PUT", f"/rses/{_p(rse)}", json=values)
        return result

    def list_distances(
        self, *, src: str | None = None, dest: str | None = None
    ) -> list[dict[str, Any]]:
        """Links between RSEs (all, from ``src``, to ``dest``): distance and ``max_active``."""
        params = {key: value for key, value in (("src", src), ("dest", dest)) if value}
        return list(self.session.ndjson("GET", "/distances/", params=params))

    def get_distance(self, src: str, dest: str) -> dict[str, Any] | None:
        """The link from ``src`` to ``dest``, or None when they are not linked."""
        found: list[dict[str, Any]] = self.session.json(
            "GET", f"/rses/{_p(src)}/distances/{_p(dest)}"
        )
        return found[0] if found else None

    def set_distance(
        self, src: str, dest: str, distance: int, *, max_active: int | None = None
    ) -> None:
        """Link ``src`` to ``dest`` at ``distance`` (lower: preferred source), with at most
        ``max_active`` copies in flight (None: no limit of its own); admins only."""
        body = {"distance": distance, "max_active": max_active}
        try:
            self.session.request("PUT", f"/rses/{_p(src)}/distances/{_p(dest)}", json=body)
        except NotFound as exc:
            if isinstance(exc, RSENotFound):
                raise
            self.session.request("POST", f"/rses/{_p(src)}/distances/{_p(dest)}", json=body)

    def delete_distance(self, src: str, dest: str) -> None:
        self.session.request("DELETE", f"/rses/{_p(src)}/distances/{_p(dest)}")

    # -- DIDs ------------------------------------------------------------------------------------
    def add_dataset(self, did: str, *, meta: Mapping[str, MetaValue] | None = None) -> None:
        self._add_collection(did, "dataset", meta)

    def add_container(self, did: str, *, meta: Mapping[str, MetaValue] | None = None) -> None:
        self._add_collection(did, "container", meta)

    def _add_collection(
        self, did: str, did_type: str, meta: Mapping[str, MetaValue] | None
    ) -> None:
        scope, name = parse_did(did)
        self.session.request(
            "POST",
            f"/dids/{_p(scope)}/{_p(name)}",
            json={"type": did_type, "meta": dict(meta or {})},
        )

    def get_did(self, did: str) -> dict[str, Any]:
        scope, name = parse_did(did)
        result: dict[str, Any] = self.session.json("GET", f"/dids/{_p(scope)}/{_p(name)}")
        return result

    def list_dids(
        self,
        pattern: str,
        *,
        filters: Sequence[str] = (),
        did_type: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """DIDs matching ``scope:name-pattern`` (``*`` wildcards) and metadata filters."""
        if ":" not in pattern:
            raise InvalidInput("a pattern is 'scope:name', e.g. 'virgo:chunk_*'")
        scope, name = pattern.split(":", 1)
        validate_scope(scope)
        params: list[tuple[str, str]] = [("name", name or "*"), ("long", "true")]
        params += [("filter", flt) for flt in filters]
        if did_type:
            params.append(("type", did_type))
        if limit:
            params.append(("limit", str(limit)))
        return self.session.ndjson("GET", f"/dids/{_p(scope)}/dids/search", params=params)

    def list_content(self, did: str) -> list[dict[str, Any]]:
        scope, name = parse_did(did)
        return list(self.session.ndjson("GET", f"/dids/{_p(scope)}/{_p(name)}/dids"))

    def list_parents(self, did: str) -> list[dict[str, Any]]:
        """The datasets and containers ``did`` is attached to (``scope``, ``name``, ``type``)."""
        scope, name = parse_did(did)
        return list(self.session.ndjson("GET", f"/dids/{_p(scope)}/{_p(name)}/parents"))

    def list_files(self, did: str) -> Iterator[dict[str, Any]]:
        scope, name = parse_did(did)
        return self.session.ndjson("GET", f"/dids/{_p(scope)}/{_p(name)}/files")

    def attach(self, did: str, children: Sequence[str], *, ignore_duplicates: bool = False) -> None:
        scope, name = parse_did(did)
        refs = [dict(zip(("scope", "name"), parse_did(child), strict=True)) for child in children]
        self.session.request(
            "POST",
            f"/dids/{_p(scope)}/{_p(name)}/dids",
            json={"dids": refs, "ignore_duplicate": ignore_duplicates},
        )

    def detach(self, did: str, children: Sequence[str]) -> None:
        scope, name = parse_did(did)
        refs = [dict(zip(("scope", "name"), parse_did(child), strict=True)) for child in children]
        self.session.request("DELETE", f"/dids/{_p(scope)}/{_p(name)}/dids", json={"dids": refs})

    def close_dataset(self, did: str) -> None:
        scope, name = parse_did(did)
        self.session.request("PUT", f"/dids/{_p(scope)}/{_p(name)}/status", json={"open": False})

    def get_metadata(self, did: str) -> dict[str, MetaValue]:
        scope, name = parse_did(did)
        result: dict[str, MetaValue] = self.session.json(
            "GET", f"/dids/{_p(scope)}/{_p(name)}/meta", params={"plugin": "JSON"}
        )
        return result

    def set_metadata(self, did: str, meta: Mapping[str, MetaValue]) -> None:
        scope, name = parse_did(did)
        self.session.request(
            "POST", f"/dids/{_p(scope)}/{_p(name)}/meta", json={"meta": dict(meta)}
        )

    def set_embargo(
        self, target: str, *, embargoed: bool = True, release_at: datetime | None = None
    ) -> None:
        """Hide a DID (``scope:name``, with everything below it) or a whole scope from other
        accounts, until ``release_at`` (forever when None); ``embargoed=False`` lifts it."""
        body = {
            "embargoed": embargoed,
            "release_at": release_at.isoformat() if release_at else None,
        }
        if ":" in target:
            scope, name = parse_did(target)
            self.session.request("PUT", f"/dids/{_p(scope)}/{_p(name)}/embargo", json=body)
        else:
            self.session.request("PUT", f"/scopes/{_p(validate_scope(target))}/embargo", json=body)

    # -- replicas --------------------------------------------------------------------------------
    def add_replicas(
        self, rse: str, files: Sequence[Mapping[str, Any]], *, dataset: str | None = None
    ) -> None:
        """Register files already on ``rse`` (one transaction; the dataset is created if needed)."""
        body: dict[str, Any] = {"rse": rse, "files": [dict(f) for f in files]}
        if dataset is not None:
            scope, name = parse_did(dataset)
            body["dataset"] = {"scope": scope, "name": name}
        self.session.request("POST", "/replicas", json=body)

    def list_replicas(
        self, dids: Sequence[str], *, rse: str | None = None, all_states: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The replicas of every file at or below ``dids``: per file its size, checksums and
        ``rses`` = {RSE: {state, path, pfn, created_at, accessed_at}}."""
        refs = [dict(zip(("scope", "name"), parse_did(did), strict=True)) for did in dids]
        body = {"dids": refs, "rse": rse, "all_states": all_states}
        for line in self.session.ndjson("POST", "/replicas/list", json=body):
            yield {
                "scope": line["scope"],
                "name": line["name"],
                "bytes": line["bytes"],
                "adler32": line["adler32"],
                "md5": line["md5"],
                "rses": line["replicas"],
            }

    def report_reads(self, reads: Sequence[tuple[str, str, str]]) -> None:
        """Tell the server files were read: ``(scope, name, rse)`` each, as Rucio's download
        traces (``POST /traces/``); the reaper deletes least recently read replicas first."""
        if reads:
            traces = [
                {
                    "eventType": "download",
                    "clientState": "DONE",
                    "scope": scope,
                    "filename": name,
                    "remoteSite": rse,
                }
                for scope, name, rse in reads
            ]
            self.session.request("POST", "/traces/", json=traces)

    # -- integrity -------------------------------------------------------------------------------
    def declare_replicas(
        self,
        state: str,
        dids: Sequence[str],
        *,
        rse: str,
        reason: str,
        until: datetime | None = None,
    ) -> list[str]:
        """Declare the replicas on ``rse`` of files (of every file of a dataset or container
        there) ``state``: "suspicious" (anyone who sees the file; the server reads it back),
        "bad" (the scope's owner or an admin; copied again from a good copy) or "unavailable"
        (until ``until``, forever when None). Returns the files declared; a replica refused
        raises its error (ReplicaNotFound, AccessDenied...) after the others were declared."""
        from lacus.client.integrity import declare

        return declare(self, state, dids, rse=rse, reason=reason, until=until)

    def report_suspicious(
        self, replicas: Sequence[tuple[str, str, str]], *, reason: str
    ) -> dict[str, list[str]]:
        """Report replicas ``(scope, name, rse)`` suspicious (Rucio's ``POST
        /replicas/suspicious``); returns those not declared, per RSE, with why."""
        body = {
            "replicas": [{"scope": s, "name": n, "rse": r} for s, n, r in replicas],
            "reason": reason,
        }
        result: dict[str, list[str]] = self.session.json("POST", "/replicas/suspicious", json=body)
        return result

    def list_suspicious(self, *, rse_expression: str | None = None) -> list[dict[str, Any]]:
        """Replicas suspicious now: scope, name, rse, ``cnt`` (reports), reason, created_at."""
        params = {"rse_expression": rse_expression} if rse_expression else None
        result: list[dict[str, Any]] = self.session.json(
            "GET", "/replicas/suspicious", params=params
        )
        return result

    def replica_history(self, did: str) -> list[dict[str, Any]]:
        """What was declared of the file's replicas, oldest first: rse, state, reason,
        account, created_at."""
        scope, name = parse_did(did)
        return list(self.session.ndjson("GET", f"/integrity/history/{_p(scope)}/{_p(name)}"))

    def audit_report(self, rse: str | None = None) -> list[dict[str, Any]]:
        """Per RSE (or ``rse``): its last ``audit`` and ``scrub`` (state, times, counts) and
        the replicas in doubt ``now`` (suspicious, bad, unavailable, lost, quarantined)."""
        params = {"rse": rse} if rse else None
        result: list[dict[str, Any]] = self.session.json("GET", "/integrity/audits", params=params)
        return result

    def list_quarantine(self, rse: str | None = None) -> list[dict[str, Any]]:
        """Admins: the dark files in quarantine (of ``rse``): rse, path, bytes, reason,
        found_at, seen_at."""
        params = {"rse": rse} if rse else None
        return list(self.session.ndjson("GET", "/integrity/quarantine", params=params))

    def quarantine(self, rse: str, paths: Sequence[str]) -> None:
        """Admins: record files on ``rse`` the catalog does not know (paths below its prefix)
        as dark; the dark reaper deletes them once old enough and still unknown."""
        body = {"rse": rse, "replicas": [{"path": path} for path in paths]}
        self.session.request("POST", "/replicas/quarantine", json=body)

    # -- rules -----------------------------------------------------------------------------------
    def add_rule(
        self,
        dids: str | Sequence[str],
        rse_expression: str | None = None,
        *,
        copies: int = 1,
        lifetime: int | None = None,
        grouping: str = "dataset",
        weight: str | None = None,
        locked: bool = False,
        purge_replicas: bool = False,
        delete_source: bool = False,
        source_replica_expression: str | None = None,
        activity: str | None = None,
        priority: int = 3,
        comment: str | None = None,
        account: str | None = None,
        ignore_availability: bool = False,
        policy: str | None = None,
        ask_approval: bool = False,
    ) -> list[str]:
        """Keep ``copies`` of each DID on RSEs of ``rse_expression`` (or start the lifecycle
        policy ``policy`` on each); return the new rules' ids. The rule engine places them
        shortly after: see :meth:`wait_for_rule`. With ``ask_approval`` they wait
        (``WAITING_APPROVAL``) until an admin approves them (:meth:`approve_rule`)."""
        names = [dids] if isinstance(dids, str) else list(dids)
        refs = [dict(zip(("scope", "name"), parse_did(did), strict=True)) for did in names]
        body: dict[str, Any] = {"dids": refs, "account": account}
        if policy is not None:
            body["policy"] = policy
        else:
            body |= {
                "rse_expression": rse_expression,
                "copies": copies,
                "lifetime": lifetime,
                "grouping": grouping,
                "weight": weight,
                "locked": locked,
                "purge_replicas": purge_replicas,
                "delete_source": delete_source,
                "source_replica_expression": source_replica_expression,
                "activity": activity,
                "priority": priority,
                "comment": comment,
                "ignore_availability": ignore_availability,
                "ask_approval": ask_approval,
            }
        result: list[str] = self.session.json("POST", "/rules/", json=body)
        return result

    def apply_policy(self, did: str, policy: str, *, account: str | None = None) -> str:
        """Start lifecycle policy ``policy`` on a DID; return its first step's rule id."""
        (rule_id,) = self.add_rule(did, policy=policy, account=account)
        return rule_id

    def get_rule(self, rule_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("GET", f"/rules/{_p(rule_id)}")
        return result

    def list_rules(
        self,
        *,
        did: str | None = None,
        account: str | None = None,
        state: str | None = None,
        subscription_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rules filtered by DID (``scope:name``), account, state (ok, replicating, stuck,
        suspended), subscription."""
        params: dict[str, str] = {}
        if did is not None:
            params["scope"], params["name"] = parse_did(did)
        if account is not None:
            params["account"] = account
        if state is not None:
            params["state"] = state
        if subscription_id is not None:
            params["subscription_id"] = subscription_id
        return list(self.session.ndjson("GET", "/rules/", params=params))

    def update_rule(self, rule_id: str, **options: Any) -> dict[str, Any]:
        """Change a rule: ``lifetime`` (seconds; None: forever), ``locked``, ``comment``,
        ``priority``, ``copies``, ``activity``, ``state`` ("SUSPENDED", or "REPLICATING" to
        resume), ``source_replica_expression``, ``purge_replicas``, ``child_rule_id``,
        ``boost_rule``; return the rule as it is now."""
        result: dict[str, Any] = self.session.json(
            "PUT", f"/rules/{_p(rule_id)}", json={"options": options}
        )
        return result

    def approve_rule(self, rule_id: str) -> None:
        """Approve a rule waiting for approval (admins): the rule engine places it."""
        self.update_rule(rule_id, approve=True)

    def deny_rule(self, rule_id: str, reason: str | None = None) -> None:
        """Deny a rule waiting for approval (admins): it is deleted, ``reason`` in its
        history."""
        options: dict[str, Any] = {"approve": False}
        if reason is not None:
            options["comment"] = reason
        self.update_rule(rule_id, **options)

    def reduce_rule(
        self, rule_id: str, copies: int, *, exclude_expression: str | None = None
    ) -> str:
        """Replace an OK rule by one with fewer ``copies`` (on its expression minus
        ``exclude_expression``) at once, or not at all when that would need a transfer; the
        new rule's id."""
        result: str = self.session.json(
            "POST",
            f"/rules/{_p(rule_id)}/reduce",
            json={"copies": copies, "exclude_expression": exclude_expression},
        )
        return result

    def move_rule(self, rule_id: str, rse_expression: str, **override: Any) -> str:
        """Replace a rule by one on ``rse_expression`` (options copied, changed by
        ``override``: activity, source_replica_expression, comment, priority, copies,
        lifetime, locked); the rule is deleted once the new one is OK. The new rule's id."""
        result: str = self.session.json(
            "POST",
            f"/rules/{_p(rule_id)}/move",
            json={"rse_expression": rse_expression, "override": override},
        )
        return result

    def delete_rule(self, rule_id: str, *, purge_replicas: bool | None = None) -> None:
        """Remove a rule (unlock it first); ``purge_replicas`` None: the rule's own setting."""
        self.session.request(
            "DELETE", f"/rules/{_p(rule_id)}", json={"purge_replicas": purge_replicas}
        )

    def rule_locks(self, rule_id: str) -> list[dict[str, Any]]:
        """The rule's locks: file, RSE, state, and for waiting ones the transfer request's
        state, attempts and last error."""
        return list(self.session.ndjson("GET", f"/rules/{_p(rule_id)}/locks"))

    def rule_history(self, rule_id: str) -> list[dict[str, Any]]:
        """Everything that happened to a rule, oldest first (kept after its removal)."""
        return list(self.session.ndjson("GET", f"/rules/{_p(rule_id)}/history"))

    def did_rule_history(self, did: str) -> list[dict[str, Any]]:
        """Creation and removal of every rule ever on a DID, oldest first."""
        scope, name = parse_did(did)
        return list(self.session.ndjson("GET", f"/rules/{_p(scope)}/{_p(name)}/history"))

    def examine_rule(self, rule_id: str) -> dict[str, Any]:
        """``rule_error`` (why the rule is not OK) and its failing ``transfers``."""
        result: dict[str, Any] = self.session.json("GET", f"/rules/{_p(rule_id)}/analysis")
        return result

    def wait_for_rule(
        self, rule_id: str, state: str = "ok", *, timeout: float = 60.0, interval: float = 0.2
    ) -> dict[str, Any]:
        """Poll the rule until it is in ``state`` (ok, replicating, stuck, suspended); return
        it. TimeoutError, saying where it is, if it is not there within ``timeout`` seconds."""
        wanted = state.upper()
        deadline = time.monotonic() + timeout
        while True:
            rule = self.get_rule(rule_id)
            if str(rule["state"]).upper() == wanted:
                return rule
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"rule {rule_id} is {rule['state']} after {timeout:g} s, not {wanted} "
                    f"(locks ok/replicating/stuck: {rule['locks_ok_cnt']}/"
                    f"{rule['locks_replicating_cnt']}/{rule['locks_stuck_cnt']})"
                )
            time.sleep(interval)

    def make_available(
        self,
        did: str,
        *,
        rse: str,
        lifetime: int | None = 86400,
        timeout: float = 3600.0,
    ) -> str | dict[str, str]:
        """Bring ``did`` to ``rse`` (an RSE or an expression) for ``lifetime`` seconds (None:
        until the rule is removed) and return where it is there once it is: the local path
        when that storage is a directory on this machine, else the replica's URL; for a
        dataset or container {``scope:name``: path or URL} of each file.

        Adds a rule (or extends this account's rule for the DID on ``rse``) and waits for its
        ``rule.ok`` event (never polling). RuleStuck, with the rule's error, when it is stuck;
        TimeoutError after ``timeout`` seconds. See :mod:`lacus.client.availability`.
        """
        from lacus.client.availability import make_available

        return make_available(self, did, rse=rse, lifetime=lifetime, timeout=timeout)

    # -- subscriptions ---------------------------------------------------------------------------
    def add_subscription(
        self,
        name: str,
        *,
        filter: Mapping[str, Any],
        rules: Sequence[Mapping[str, Any]],
        comment: str | None = None,
        lifetime_days: int | None = None,
        retroactive: bool = False,
        priority: int = 3,
        account: str | None = None,
    ) -> str:
        """Add rules to every new DID matching ``filter`` (and to existing ones when
        ``retroactive``); return the subscription's id."""
        owner = account or self.config.account or self.whoami()["account"]
        options = {
            "filter": dict(filter),
            "replication_rules": [dict(rule) for rule in rules],
            "comments": comment,
            "lifetime": lifetime_days,
            "retroactive": retroactive,
            "dry_run": False,
            "priority": priority,
        }
        response = self.session.request(
            "POST", f"/subscriptions/{_p(owner)}/{_p(name)}", json={"options": options}
        )
        return response.text

    def update_subscription(self, name: str, *, account: str | None = None, **options: Any) -> None:
        """Change ``filter``, ``replication_rules``, ``comments``, ``lifetime`` (days),
        ``priority`` or ``state`` ("ACTIVE"/"INACTIVE")."""
        owner = account or self.config.account or self.whoami()["account"]
        self.session.request(
            "PUT", f"/subscriptions/{_p(owner)}/{_p(name)}", json={"options": options}
        )

    def list_subscriptions(self, *, account: str | None = None) -> list[dict[str, Any]]:
        """Subscriptions (of ``account``, else everyone's), ``filter`` and
        ``replication_rules`` decoded."""
        path = f"/subscriptions/{_p(account)}" if account else "/subscriptions/"
        found = list(self.session.ndjson("GET", path))
        for item in found:
            item["filter"] = orjson.loads(item["filter"])
            item["replication_rules"] = orjson.loads(item["replication_rules"])
        return found

    def subscription_rules(self, name: str, *, account: str | None = None) -> list[dict[str, Any]]:
        owner = account or self.config.account or self.whoami()["account"]
        return list(self.session.ndjson("GET", f"/subscriptions/{_p(owner)}/{_p(name)}/rules"))

    # -- quotas ----------------------------------------------------------------------------------
    def set_quota(self, account: str, rse_expression: str, size: int | None) -> None:
        """Allow ``account`` ``size`` bytes on the RSEs ``rse_expression`` selects (None: no
        limit there). An account with quotas may use only RSEs some quota covers."""
        locality = "local" if _is_rse_name(rse_expression) else "global"
        self.session.request(
            "POST",
            f"/accounts/{_p(validate_account(account))}/limits/{locality}/{_p(rse_expression)}",
            json={"bytes": -1 if size is None else size},
        )

    def delete_quota(self, account: str, rse_expression: str) -> None:
        locality = "local" if _is_rse_name(rse_expression) else "global"
        self.session.request(
            "DELETE",
            f"/accounts/{_p(validate_account(account))}/limits/{locality}/{_p(rse_expression)}",
        )

    def quota_usage(self, account: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """``rses``: per RSE bytes and files used, ``bytes_limit`` and ``bytes_remaining``;
        ``expressions``: the same per quota on an expression. An unlimited size is None."""
        owner = validate_account(account or self.config.account or self.whoami()["account"])
        return {
            "rses": self._lines(f"/accounts/{_p(owner)}/usage/local"),
            "expressions": self._lines(f"/accounts/{_p(owner)}/usage/global"),
        }

    def _lines(self, path: str) -> list[dict[str, Any]]:
        """A stream that may hold ``Infinity`` (Rucio's unlimited size), read as None."""
        response = self.session.request("GET", path)
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        for line in lines:
            for key, value in line.items():
                if isinstance(value, float) and math.isinf(value):
                    line[key] = None
        return lines

    # -- lifecycle policies ----------------------------------------------------------------------
    def add_policy(
        self, name: str, steps: Sequence[Mapping[str, Any]], *, comment: str | None = None
    ) -> None:
        """Define a lifecycle policy (admins): steps of ``copies`` on ``rse_expression`` or
        ``qos`` for ``lifetime`` seconds, e.g. ``[{"copies": 2, "qos": "DISK", "lifetime":
        2592000}, {"copies": 1, "qos": "TAPE"}]``."""
        body = {"name": name, "steps": [dict(step) for step in steps], "comment": comment}
        self.session.request("POST", "/policies/", json=body)

    def list_policies(self) -> list[dict[str, Any]]:
        return list(self.session.ndjson("GET", "/policies/"))

    def get_policy(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.session.json("GET", f"/policies/{_p(name)}")
        return result

    # -- transfers -------------------------------------------------------------------------------
    # -- events --------------------------------------------------------------------------------
    def watch(
        self,
        did: str | None = None,
        *,
        types: Sequence[str] | None = None,
        scope: str | None = None,
        after: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Event]:
        """The events this account may see, as they happen (docs/events.md): on ``did`` (and,
        for a dataset or container, on every DID in it), in ``scope``, of ``types``.

        ``after``: start after this event id (0: every event still kept); None: with the next
        event. The stream reconnects by itself after a lost connection or a server restart and
        resumes where it was: no event lost, none repeated. ``timeout``: stop after that many
        seconds without an event (None: never).
        """
        return events.watch(self, did, types=types, scope=scope, after=after, timeout=timeout)

    def list_transfers(
        self, *, did: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Transfer attempts, newest first, of one file (``scope:name``) or all; ``state``:
        done or failed; at most ``limit`` (1 to 1000)."""
        params: dict[str, str] = {"limit": str(limit)}
        if did is not None:
            params["scope"], params["name"] = parse_did(did)
        if state is not None:
            params["state"] = state
        return list(self.session.ndjson("GET", "/transfers/", params=params))

    def transfer_matrix(self, *, hours: float | None = None) -> dict[str, Any]:
        """The transfer success matrix: ``cells`` (source, destination, done, failed,
        success_pct, bytes, mean_seconds) and ``rses``, every RSE named, sorted; ``hours``:
        only the attempts of the last ``hours`` hours."""
        params = {} if hours is None else {"hours": str(hours)}
        result: dict[str, Any] = self.session.json("GET", "/transfers/matrix", params=params)
        return result

    # -- data ------------------------------------------------------------------------------------
    def upload(
        self,
        paths: Sequence[str | Path],
        *,
        rse: str,
        scope: str,
        dataset: str | None = None,
        md5: bool = True,
        meta: Mapping[str, MetaValue] | None = None,
        workers: int = 4,
        progress: Progress | None = None,
        path: str | None = None,
    ) -> list[dict[str, Any]]:
        """Upload files and directory trees; see :mod:`lacus.client.upload`. ``path``: where
        the one file goes on a non-deterministic RSE."""
        from lacus.client.upload import Uploader

        uploader = Uploader(self, rse=rse, scope=scope, md5=md5, workers=workers, progress=progress)
        return uploader.upload([Path(p) for p in paths], dataset=dataset, meta=meta, path=path)

    def download(
        self,
        dids: Sequence[str],
        directory: str | Path,
        *,
        structure: bool = False,
        rse: str | None = None,
        workers: int = 4,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Download files, datasets, containers or wildcards; see :mod:`lacus.client.download`."""
        from lacus.client.download import Downloader

        downloader = Downloader(self, rse=rse, workers=workers, progress=progress)
        return downloader.download(list(dids), Path(directory), structure=structure)
