"""Prometheus metrics: what this process counts (requests, daemon passes) and what the catalog
holds (queues, rules, RSE usage, links, event backlogs, replicas in doubt, audits), read when
scraped.

The counters live in this module (one set per process); ``registry(lake)`` gathers them with the
catalog's gauges for one lake. Metric names and meanings are listed in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from lacus.core.audits import AUDIT
from lacus.core.gauges import DOUBTED, FOUND, CatalogGauges, catalog_gauges
from lacus.service import event_destinations, transfers
from lacus.service.lake import Lake, Principal

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "lacus_http_requests",
    "HTTP requests answered, per method, route and status code",
    ["method", "route", "status"],
    registry=None,
)
REQUEST_SECONDS = Histogram(
    "lacus_http_request_seconds",
    "Seconds to answer an HTTP request, per method and route (event streams left out)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
DAEMON_PASS_SECONDS = Histogram(
    "lacus_daemon_pass_seconds",
    "Seconds per pass of a daemon's loop in this process",
    ["daemon"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
DAEMON_ITEMS = Counter(
    "lacus_daemon_items",
    "Items (rules, requests, replicas...) a daemon of this process handled",
    ["daemon"],
    registry=None,
)
DAEMON_FAILURES = Counter(
    "lacus_daemon_failed_passes",
    "Daemon passes that ended with an error in this process",
    ["daemon"],
    registry=None,
)

PROCESS_METRICS = (REQUESTS, REQUEST_SECONDS, DAEMON_PASS_SECONDS, DAEMON_ITEMS, DAEMON_FAILURES)

LINK_WINDOW_HOURS = 1.0
"""The link metrics cover the transfers that ended in the last hour."""

_SYSTEM = Principal("root", admin=True)


class CatalogCollector(Collector):
    """Gauges read from the catalog at each scrape (a few grouped counts)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def collect(self) -> Iterator[Metric]:
        with self.lake.read() as conn:
            found = catalog_gauges(conn)
        yield _labelled("lacus_requests", "Transfer requests per state", "state", found.requests)
        yield _labelled("lacus_rules", "Replication rules per state", "state", found.rules)
        yield _labelled(
            "lacus_rse_files", "Replicas registered on each RSE", "rse", found.rse_files
        )
        yield _labelled(
            "lacus_rse_used_bytes", "Bytes registered on each RSE", "rse", found.rse_bytes
        )
        yield _labelled(
            "lacus_rse_total_bytes",
            "Capacity of each RSE, where known",
            "rse",
            found.rse_total_bytes,
        )
        yield _labelled(
            "lacus_catalog_rows",
            "Rows per catalog table (PostgreSQL: the planner's estimate)",
            "table",
            found.table_rows,
        )
        last = GaugeMetricFamily("lacus_events_last_id", "Id of the newest event in the outbox")
        last.add_metric([], found.last_event_id)
        yield last
        yield from _integrity(found)
        yield from self._links()
        yield from self._backlogs()

    def _links(self) -> Iterator[Metric]:
        matrix = transfers.transfer_matrix(self.lake, _SYSTEM, hours=LINK_WINDOW_HOURS)
        labels = ["source", "destination"]
        attempts = GaugeMetricFamily(
            "lacus_link_transfers_last_hour",
            "Transfer attempts that ended in the last hour, per link and outcome",
            labels=[*labels, "outcome"],
        )
        moved = GaugeMetricFamily(
            "lacus_link_bytes_last_hour", "Bytes moved in the last hour, per link", labels=labels
        )
        seconds = GaugeMetricFamily(
            "lacus_link_mean_seconds_last_hour",
            "Mean seconds of the successful transfers of the last hour, per link",
            labels=labels,
        )
        for cell in matrix["cells"]:
            link = [cell["source"] or "", cell["destination"] or ""]
            attempts.add_metric([*link, "done"], cell["done"])
            attempts.add_metric([*link, "failed"], cell["failed"])
            moved.add_metric(link, cell["bytes"] or 0)
            if cell.get("mean_seconds") is not None:
                seconds.add_metric(link, cell["mean_seconds"])
        yield from (attempts, moved, seconds)

    def _backlogs(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "lacus_event_backlog",
            "Events not yet delivered to each broker destination",
            labels=["destination", "kind"],
        )
        for status in event_destinations.destination_status(self.lake):
            backlog.add_metric([status.name, status.kind], status.backlog)
        yield backlog


def _integrity(found: CatalogGauges) -> Iterator[Metric]:
    """Replicas in doubt and dark files per RSE, files lost, the last audit and scrub of each
    RSE: a few series per RSE, never one per file."""
    doubted = GaugeMetricFamily(
        "lacus_replicas_doubted",
        "Replicas suspicious, bad, unavailable or lost now, per RSE",
        labels=["rse", "state"],
    )
    dark = GaugeMetricFamily(
        "lacus_dark_files",
        "Dark files (unknown to the catalog) in quarantine, per RSE",
        labels=["rse"],
    )
    for rse, counts in sorted(found.doubted.items()):
        for state in DOUBTED:
            doubted.add_metric([rse, state], counts[state])
        dark.add_metric([rse], counts["quarantined"])
    lost = GaugeMetricFamily("lacus_files_lost", "Files with no good copy left")
    lost.add_metric([], found.lost_files)
    finished = GaugeMetricFamily(
        "lacus_audit_last_finished_timestamp_seconds",
        "When the last audit or scrub round of each RSE that finished ended (Unix time)",
        labels=["rse", "kind"],
    )
    for (rse, kind), when in sorted(found.last_finished.items()):
        finished.add_metric([rse, kind], when.replace(tzinfo=UTC).timestamp())
    last_found = GaugeMetricFamily(
        "lacus_audit_last_found",
        "What the last audit (dark, lost) or scrub round (bad) of each RSE found, so far if "
        "it still runs",
        labels=["rse", "kind", "what"],
    )
    aborted = GaugeMetricFamily(
        "lacus_audit_aborted",
        "1 when the last audit of the RSE was aborted (it found too much to act on), else 0",
        labels=["rse"],
    )
    audited: dict[str, bool] = {}
    for run in found.last_runs:
        for what in FOUND.get(run.kind, ()):
            last_found.add_metric([run.rse, run.kind, what], run.found[what])
        if run.kind == AUDIT:
            audited[run.rse] = run.state == "aborted"
    for rse in sorted(found.doubted):
        aborted.add_metric([rse], 1 if audited.get(rse) else 0)
    yield from (doubted, dark, lost, finished, last_found, aborted)


def _labelled(name: str, documentation: str, label: str, values: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def registry(lake: Lake) -> CollectorRegistry:
    """This process's counters, its resource use (memory, CPU) and ``lake``'s catalog gauges."""
    found = CollectorRegistry()  # no describing by collecting: that would query the catalog
    for metric in PROCESS_METRICS:
        found.register(metric)
    ProcessCollector(registry=found)
    found.register(CatalogCollector(lake))
    return found
