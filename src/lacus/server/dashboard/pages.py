"""The dashboard's pages: overview, DID browser, DID, rule, transfer matrix, transfers over
time, live events, ingest latencies, integrity. Each page is one service call (one read transaction)
rendered by a template; listings are keyset pages (``after``, ``limit``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from lacus.naming import parse_did, validate_name, validate_scope
from lacus.server.dashboard import charts
from lacus.server.dashboard.render import PREFIX, PageRoute, human_bytes, render, seconds
from lacus.server.deps import LakeDep, PrincipalDep
from lacus.service import dashboard, transfers
from lacus.types import DIDType, LockState

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)

Limit = Annotated[int, Query(ge=1, le=dashboard.MAX_PAGE, description="rows per page")]
Hours = Annotated[float, Query(gt=0, le=dashboard.MAX_HOURS)]


@router.get("")
@router.get("/")
def overview(request: Request, lake: LakeDep, principal: PrincipalDep) -> HTMLResponse:
    """RSEs with their usage, rules and transfer requests by state, stuck rules."""
    return render(
        request,
        "overview.html",
        {"principal": principal, "view": dashboard.overview(lake, principal)},
    )


@router.get("/dids")
def search_dids(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    scope: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str, Query(max_length=1000)] = "*",
    filter: Annotated[list[str] | None, Query(max_length=1000)] = None,
    type: Annotated[str, Query(pattern="^(all|file|dataset|container)$")] = "all",
    after: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Limit = 50,
) -> HTMLResponse:
    """The scopes, and with ``scope`` a page of its DIDs matching ``name`` (wildcards ``*``)
    and every ``filter`` (``key=value``, ``key>n``..., as ``lacus ls --filter``)."""
    filters = [text for text in filter or [] if text.strip()]
    page = None
    if scope:
        page = dashboard.search(
            lake,
            principal,
            validate_scope(scope),
            name=name.strip() or "*",
            filters=filters,
            did_type=None if type == "all" else DIDType(type),
            after=None if after is None else validate_name(after),
            limit=limit,
        )
    return render(
        request,
        "dids.html",
        {
            "principal": principal,
            "scopes": dashboard.visible_scopes(lake, principal),
            "scope": scope or "",
            "name": name,
            "filters": filters,
            "type": type,
            "limit": limit,
            "page": page,
        },
    )


@router.get("/dids/{scope}/{name}")
def did(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    scope: str,
    name: str,
    after: Annotated[str | None, Query(max_length=1200, description="SCOPE:NAME")] = None,
    limit: Limit = 50,
) -> HTMLResponse:
    """A DID: metadata, parents, a page of its content with each file's replicas and their
    states, its rules."""
    view = dashboard.did_view(
        lake,
        principal,
        validate_scope(scope),
        validate_name(name),
        after=None if after is None else parse_did(after),
        limit=limit,
    )
    return render(request, "did.html", {"principal": principal, "view": view, "limit": limit})


@router.get("/dids/{scope}/{name}/replicas")
def did_replicas(
    request: Request, lake: LakeDep, principal: PrincipalDep, scope: str, name: str
) -> HTMLResponse:
    """A fragment: per RSE, how many of a collection's files it holds (loaded by the DID page
    after it is shown: it reads every file of the collection)."""
    summary = dashboard.dataset_replicas(
        lake, principal, validate_scope(scope), validate_name(name)
    )
    return render(request, "dataset_replicas.html", {"summary": summary})


@router.get("/rules/{rule_id}")
def rule(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    rule_id: Annotated[str, Path(max_length=32, pattern="^[0-9a-f]{32}$")],
    state: LockState | None = None,
    after: Annotated[str | None, Query(max_length=1200, description="SCOPE:NAME")] = None,
    after_rse: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 50,
) -> HTMLResponse:
    """A rule: lock counts, a page of its locks (of one state), why it is stuck, history."""
    key = None
    if after is not None:
        key = (*parse_did(after), after_rse or "")
    view = dashboard.rule_view(lake, principal, rule_id, state=state, after=key, limit=limit)
    return render(
        request,
        "rule.html",
        {"principal": principal, "view": view, "state": state, "limit": limit},
    )


@router.get("/matrix")
def matrix(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    hours: Annotated[float | None, Query(gt=0, le=dashboard.MAX_HOURS)] = None,
) -> HTMLResponse:
    """The transfer success matrix: sources down, destinations across, % of attempts done."""
    found = transfers.transfer_matrix(lake, principal, hours=hours)
    cells = {(cell["source"], cell["destination"]): cell for cell in found["cells"]}
    sources = sorted({cell["source"] for cell in found["cells"] if cell["source"]})
    destinations = sorted({cell["destination"] for cell in found["cells"]})
    unsourced = [cell for cell in found["cells"] if cell["source"] is None]
    return render(
        request,
        "matrix.html",
        {
            "principal": principal,
            "period": "" if hours is None else f"{hours:g}",
            "sources": sources,
            "destinations": destinations,
            "cells": cells,
            "unsourced": unsourced,
            "rate_class": charts.rate_class,
        },
    )


@router.get("/transfers")
def transfer_activity(
    request: Request, lake: LakeDep, principal: PrincipalDep, hours: Hours = 24.0
) -> HTMLResponse:
    """Throughput, attempts and durations per time bucket; the newest failed attempts."""
    found = dashboard.transfer_series(lake, principal, hours=hours)
    series, width = found.buckets, found.width
    starts = [entry.start for entry in series]
    axis = charts.TimeAxis(found.since, found.until, timedelta(seconds=width))
    throughput = charts.time_bars(
        starts,
        [charts.Layer("bar", "bytes/s", [entry.bytes / width for entry in series])],
        fmt=lambda value: human_bytes(value) + "/s",
        label="throughput",
        axis=axis,
    )
    attempts = charts.time_bars(
        starts,
        [
            charts.Layer("bar done", "done", [float(entry.done) for entry in series]),
            charts.Layer("bar failed", "failed", [float(entry.failed) for entry in series]),
        ],
        fmt=lambda value: f"{value:,.0f}",
        label="attempts",
        axis=axis,
    )
    durations = charts.time_bars(
        starts,
        [charts.Layer("bar", "mean", [entry.mean_seconds or 0.0 for entry in series])],
        marks=charts.Layer("mark", "longest", [entry.max_seconds or 0.0 for entry in series]),
        fmt=seconds,
        label="transfer duration",
        axis=axis,
    )
    failures = transfers.list_transfers(lake, principal, state="failed", limit=20)
    return render(
        request,
        "transfers.html",
        {
            "principal": principal,
            "period": f"{hours:g}",
            "width": width,
            "series": series,
            "throughput": throughput,
            "attempts": attempts,
            "durations": durations,
            "failures": failures,
        },
    )


@router.get("/events")
def events(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    did: Annotated[str | None, Query(max_length=1200, description="SCOPE:NAME")] = None,
    type: Annotated[list[str] | None, Query(max_length=30)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Limit = 50,
) -> HTMLResponse:
    """The newest events (of a DID, of some types), then live: the page follows ``/events``
    from where the listing ends."""
    types = [kind for kind in type or [] if kind]
    key = parse_did(did) if did else None
    found, position = dashboard.newest_events(
        lake, principal, did=key, types=types, before=before, limit=limit
    )
    return render(
        request,
        "events.html",
        {
            "principal": principal,
            "events": found,
            "position": position,
            "did": did or "",
            "types": types,
            "all_types": dashboard.EVENT_TYPES,
            "before": before,
            "limit": limit,
        },
    )


@router.get("/ingest")
def ingest(
    request: Request,
    lake: LakeDep,
    principal: PrincipalDep,
    hours: Hours = 24.0,
    scope: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """How long streamed chunks took from their creation to their announcement."""
    latencies = dashboard.ingest_latencies(
        lake, principal, hours=hours, scope=validate_scope(scope) if scope else None
    )
    summary = charts.latency_summary(latencies)
    return render(
        request,
        "ingest.html",
        {
            "principal": principal,
            "period": f"{hours:g}",
            "scope": scope or "",
            "summary": summary,
            "chart": charts.histogram(summary.bins, label="ingest latency", ticks=summary.ticks),
            "sample": dashboard.INGEST_SAMPLE,
        },
    )


@router.get("/integrity")
def integrity(request: Request, lake: LakeDep, principal: PrincipalDep) -> HTMLResponse:
    """Files lost and audits aborted on top; per RSE the last audit and scrub and the replicas
    in doubt now; for admins, audit details and the quarantined files."""
    return render(
        request,
        "integrity.html",
        {
            "principal": principal,
            "view": dashboard.integrity_view(lake, principal),
            "shown": dashboard.QUARANTINE_SHOWN,
        },
    )
