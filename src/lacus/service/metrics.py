"""Prometheus metrics: what this process counts (requests, daemon passes) and what the catalog
holds (queues, rules, RSE usage, links, event backlogs), read when scraped.

The counters live in this module (one set per process); ``registry(lake)`` gathers them with the
catalog's gauges for one lake. Metric names and meanings are listed in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from lacus.core.gauges import catalog_gauges
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
