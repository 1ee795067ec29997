"""What the web dashboard shows, one read transaction per page (the integrity page: two, the
audit report and the rest), as the principal may see it.

Listings are keyset pages (``after`` the last key shown, ``limit`` rows, one more read to know
whether a next page exists); overview numbers are counters kept by the catalog (RSE usage) or
grouped index scans (rules, requests by state). Aggregates over the whole lake (counts per state,
the transfer matrix and series, replicas in doubt, files lost, audit counts) name no DID, so
embargoes do not apply to them; everything that names a DID is filtered by the same visibility
rules as the REST API. An audit's detail and a dark file's path may name hidden data: admins only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from lacus.core import activity, audits, browse, dids, history, metadata, replicas, rules
from lacus.core.clock import utcnow
from lacus.core.dids import DIDKey
from lacus.core.events import TYPES, Event
from lacus.core.filters import parse_filters
from lacus.core.rses import list_rses
from lacus.core.scopes import list_scopes
from lacus.errors import InvalidOption
from lacus.service import integrity
from lacus.service.dids import require_visible_scope
from lacus.service.events import event_filter, redact
from lacus.service.lake import Lake, Principal
from lacus.types import DIDInfo, DIDType, LockState, MetaValue, ReplicaInfo, ReplicaState, RSEInfo

T = TypeVar("T")
K = TypeVar("K")

MAX_PAGE = 500
"""Rows per page at most."""
MAX_HOURS = 24 * 366
INGEST_SAMPLE = 50_000
"""Ingest latencies read at most (the newest)."""
EVENT_TYPES = sorted(TYPES)
"""Every event type, for the events page's filter."""
HISTORY = 200
"""A rule's newest history entries shown."""
QUARANTINE_SHOWN = 100
"""Quarantined files listed at most (admins only)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T, K]):
    """One page of a listing and the key to ask for the next one (None: it was the last)."""

    items: list[T]
    next_after: K | None


def _page(rows: list[T], limit: int, key: Any) -> Page[T, Any]:
    if len(rows) > limit:
        return Page(rows[:limit], key(rows[limit - 1]))
    return Page(rows, None)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidOption(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    return limit


def check_hours(hours: float) -> float:
    if not 0 < hours <= MAX_HOURS:
        raise InvalidOption(f"hours must be more than 0 and at most {MAX_HOURS}, not {hours}")
    return hours


# -- overview ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditAlert:
    """An RSE whose last audit did not finish: ``aborted`` (it found too much to believe and
    took no action) or ``failed`` (the storage could not be listed)."""

    rse: str
    state: str
    finished_at: datetime | None
    detail: str | None = None
    """Why, for admins only (it may name files)."""


@dataclass(frozen=True, slots=True)
class Overview:
    rses: list[RSEInfo]
    rules_by_state: dict[str, int]
    requests_by_state: dict[str, int]
    requests_by_destination: list[dict[str, Any]]
    stuck_rules: list[dict[str, Any]]
    """The newest stuck rules the principal may see (at most 10)."""
    lost_files: int = 0
    """Files with no good copy left."""
    aborted_audits: list[AuditAlert] = field(default_factory=list)
    """RSEs whose last audit was aborted (no detail: the integrity page has it, for admins)."""

    @property
    def replicas(self) -> int:
        return sum(rse["files"] for rse in self.rses)

    @property
    def used_bytes(self) -> int:
        return sum(rse["used_bytes"] for rse in self.rses)


def overview(lake: Lake, principal: Principal) -> Overview:
    with lake.read() as conn:
        return Overview(
            rses=list_rses(conn),
            rules_by_state=rules.count_rules(conn),
            requests_by_state=activity.requests_by_state(conn),
            requests_by_destination=activity.requests_by_destination(conn),
            stuck_rules=browse.rules_on(
                conn, state="stuck", limit=10, newest_first=True, viewer=principal
            ),
            lost_files=audits.count_lost_files(conn),
            aborted_audits=[
                AuditAlert(run.rse, run.state, run.finished_at)
                for run in audits.last_runs(conn)
                if run.kind == audits.AUDIT and run.state == "aborted"
            ],
        )


# -- DIDs ----------------------------------------------------------------------------------------


def visible_scopes(lake: Lake, principal: Principal) -> list[str]:
    with lake.read() as conn:
        return [info["scope"] for info in list_scopes(conn, viewer=principal)]


def search(
    lake: Lake,
    principal: Principal,
    scope: str,
    *,
    name: str = "*",
    filters: Sequence[str] = (),
    did_type: DIDType | None = None,
    after: str | None = None,
    limit: int = 50,
) -> Page[DIDInfo, str]:
    """One page of the DIDs of ``scope`` matching a name pattern and metadata filters (as
    ``lacus ls --filter``), in name order."""
    parsed = parse_filters(list(filters))
    with lake.read() as conn:
        require_visible_scope(conn, principal, scope)
        found = dids.search_dids(
            conn,
            scope,
            name=name,
            filters=parsed,
            did_type=did_type,
            after=after,
            limit=check_limit(limit) + 1,
            viewer=principal,
        )
    return _page(found, limit, lambda did: did["name"])


@dataclass(frozen=True, slots=True)
class DIDView:
    did: DIDInfo
    meta: dict[str, MetaValue]
    parents: list[DIDKey]
    content: Page[DIDInfo, DIDKey]
    """The page of its direct content (a file: empty)."""
    replicas: dict[DIDKey, ReplicaInfo]
    """Every replica, in any state, of the files on the page (a file: of itself)."""
    rules: list[dict[str, Any]]
    """Rules on the DID (a file: the rules holding a lock on it), without lock counts."""
    locks_by_state: dict[str, int] = field(default_factory=dict)
    """Locks on the file per state (files only)."""


def did_view(
    lake: Lake,
    principal: Principal,
    scope: str,
    name: str,
    *,
    after: DIDKey | None = None,
    limit: int = 50,
) -> DIDView:
    """A DID with its metadata, parents, a page of its content, the replicas of the files on
    that page, and its rules."""
    check_limit(limit)
    every_state = tuple(ReplicaState)
    with lake.read() as conn:
        did = dids.get_did(conn, scope, name, viewer=principal)
        meta = metadata.get_metadata(conn, scope, name, viewer=principal)
        parents = dids.list_parents(conn, scope, name, viewer=principal)
        if did["type"] == DIDType.FILE:
            content: Page[DIDInfo, DIDKey] = Page([], None)
            files = [_file_row(did)]
            rule_ids = browse.locking_rules(conn, scope, name)
            on_did = browse.rules_on(conn, ids=rule_ids, viewer=principal) if rule_ids else []
            locks_by_state = browse.file_locks_by_state(conn, scope, name)
        else:
            rows = browse.content_page(
                conn, scope, name, after=after, limit=limit + 1, viewer=principal
            )
            content = _page(rows, limit, lambda child: (child["scope"], child["name"]))
            files = [_file_row(child) for child in content.items if child["type"] == DIDType.FILE]
            on_did = browse.rules_on(conn, did=(scope, name), viewer=principal)
            locks_by_state = {}
        found = replicas.replicas_of(conn, files, states=every_state)
    return DIDView(
        did=did,
        meta=meta,
        parents=parents,
        content=content,
        replicas={(info["scope"], info["name"]): info for info in found},
        rules=on_did,
        locks_by_state=locks_by_state,
    )


@dataclass(frozen=True, slots=True)
class _FileRow:
    """What ``replicas_of`` reads of a file."""

    scope: str
    name: str
    bytes: int | None
    adler32: str | None
    md5: str | None


def _file_row(did: DIDInfo) -> _FileRow:
    return _FileRow(did["scope"], did["name"], did["bytes"], did["adler32"], did["md5"])


def dataset_replicas(
    lake: Lake, principal: Principal, scope: str, name: str
) -> list[dict[str, Any]]:
    """Per RSE, how many of a collection's files it holds available (reads every file of the
    collection: asked for separately, after the page is shown)."""
    with lake.read() as conn:
        return replicas.collection_replicas(conn, scope, name, viewer=principal)


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleView:
    rule: dict[str, Any]
    locks: Page[dict[str, Any], browse.LockKey]
    stuck_reasons: list[dict[str, Any]]
    history: list[dict[str, Any]]
    """The newest entries, newest first."""


def rule_view(
    lake: Lake,
    principal: Principal,
    rule_id: str,
    *,
    state: LockState | None = None,
    after: browse.LockKey | None = None,
    limit: int = 50,
) -> RuleView:
    """A rule with its lock counts, a page of its locks (of one state, or all), why its stuck
    locks are stuck, and its history."""
    check_limit(limit)
    with lake.read() as conn:
        rule = rules.get_rule(conn, rule_id, viewer=principal)
        rows = browse.lock_page(conn, rule_id, state=state, after=after, limit=limit + 1)
        reasons = browse.stuck_reasons(conn, rule_id) if rule["locks_stuck_cnt"] else []
        entries = history.rule_entries(conn, rule_id)[-HISTORY:]
    return RuleView(
        rule=rule,
        locks=_page(rows, limit, lambda lock: (lock["scope"], lock["name"], lock["rse"])),
        stuck_reasons=reasons,
        history=entries[::-1],
    )


# -- transfers and ingestion ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """Transfer attempts per time bucket of ``width`` seconds, from ``since`` to ``until``."""

    buckets: list[activity.Bucket]
    width: int
    since: datetime
    until: datetime


def transfer_series(lake: Lake, principal: Principal, *, hours: float, buckets: int = 48) -> Series:
    """Transfer throughput and durations over the last ``hours``, in about ``buckets`` time
    buckets."""
    check_hours(hours)
    width = bucket_width(hours * 3600 / buckets)
    until = utcnow()
    since = until - timedelta(hours=hours)
    with lake.read() as conn:
        found = activity.transfer_series(conn, since=since, bucket_seconds=width)
    return Series(found, width, since, until)


_WIDTHS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def bucket_width(seconds: float) -> int:
    """The smallest round width (1 min, 2 min, 5 min... 1 day, then whole days) of at least
    ``seconds``."""
    for width in _WIDTHS:
        if width >= seconds:
            return width
    return 86400 * -(-int(seconds) // 86400)


def ingest_latencies(
    lake: Lake, principal: Principal, *, hours: float, scope: str | None = None
) -> list[float]:
    """Creation-to-announcement seconds of the chunks ``lacus stream ingest`` registered in the
    last ``hours`` (the newest INGEST_SAMPLE), in a scope or all the principal may see."""
    check_hours(hours)
    where = event_filter(lake, principal, scope=scope, types=["replica.available"])
    with lake.read() as conn:
        return activity.ingest_latencies(
            conn, since=utcnow() - timedelta(hours=hours), limit=INGEST_SAMPLE, where=where
        )


# -- integrity -----------------------------------------------------------------------------------

_UNFINISHED = ("aborted", "failed")


@dataclass(frozen=True, slots=True)
class RSEIntegrity:
    rse: str
    audit: dict[str, Any] | None
    """The last audit: state, started_at, finished_at, files, listed, dark, lost, detail
    (None for non-admins); None: never audited."""
    scrub: dict[str, Any] | None
    """The last scrub round (may be running): files (verified), bad, bytes_verified..."""
    now: dict[str, int]
    """Replicas suspicious, bad, unavailable, lost there now, and files ``quarantined``."""


@dataclass(frozen=True, slots=True)
class IntegrityView:
    rses: list[RSEIntegrity]
    lost_files: int
    """Files with no good copy left."""
    quarantine: list[dict[str, Any]] | None
    """Admins: the first QUARANTINE_SHOWN quarantined files, oldest found first (rse, path,
    bytes, reason, found_at, seen_at); others: None (a dark file's path may name hidden data)."""

    @property
    def totals(self) -> dict[str, int]:
        """Over every RSE: replicas in each doubted state, files quarantined."""
        found = audits.empty_counts()
        for entry in self.rses:
            for key, count in entry.now.items():
                found[key] = found.get(key, 0) + count
        return found

    @property
    def unfinished_audits(self) -> list[AuditAlert]:
        """RSEs whose last audit was aborted or failed."""
        return [
            AuditAlert(
                entry.rse,
                entry.audit["state"],
                entry.audit["finished_at"],
                entry.audit["detail"],
            )
            for entry in self.rses
            if entry.audit is not None and entry.audit["state"] in _UNFINISHED
        ]


def integrity_view(lake: Lake, principal: Principal) -> IntegrityView:
    """Per RSE (every one, audited or not) the last audit and scrub and the replicas in doubt
    now (``integrity.audit_report``: details for admins only); the files lost; for admins the
    first quarantined files."""
    report = {entry["rse"]: entry for entry in integrity.audit_report(lake, principal)}
    with lake.read() as conn:
        names = {info["rse"] for info in list_rses(conn)}
        lost = audits.count_lost_files(conn)
        shown = None
        if principal.admin:
            shown = [
                {
                    "rse": row.rse,
                    "path": row.path,
                    "bytes": row.bytes,
                    "reason": row.reason,
                    "found_at": row.found_at,
                    "seen_at": row.seen_at,
                }
                for row in audits.list_quarantine(conn, limit=QUARANTINE_SHOWN)
            ]
    rows = []
    for name in sorted(names | set(report)):
        entry = report.get(name, {})
        rows.append(
            RSEIntegrity(
                rse=name,
                audit=entry.get("audit"),
                scrub=entry.get("scrub"),
                now=entry.get("now") or audits.empty_counts(),
            )
        )
    return IntegrityView(rses=rows, lost_files=lost, quarantine=shown)


# -- events --------------------------------------------------------------------------------------


def newest_events(
    lake: Lake,
    principal: Principal,
    *,
    did: DIDKey | None = None,
    types: Sequence[str] = (),
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[Event], int]:
    """The newest events the principal may see (of a DID and what is in it, of some types),
    newest first, and the position a live stream continues from (no gap, no repeat)."""
    check_limit(limit)
    where = event_filter(lake, principal, did=did, types=types)
    upto = lake.event_log.horizon(fresh=True)
    with lake.read() as conn:
        found = browse.newest_events(conn, before=before, upto=upto, limit=limit, where=where)
        found = redact(conn, found, principal)
    return found, upto


__all__ = [
    "EVENT_TYPES",
    "INGEST_SAMPLE",
    "MAX_HOURS",
    "MAX_PAGE",
    "QUARANTINE_SHOWN",
    "AuditAlert",
    "DIDView",
    "IntegrityView",
    "Overview",
    "Page",
    "RSEIntegrity",
    "RuleView",
    "Series",
    "bucket_width",
    "check_hours",
    "check_limit",
    "dataset_replicas",
    "did_view",
    "ingest_latencies",
    "integrity_view",
    "newest_events",
    "overview",
    "rule_view",
    "search",
    "transfer_series",
    "visible_scopes",
]
