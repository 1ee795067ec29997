"""``GET /metrics``: Prometheus text a scraper parses, with what a user did in it; the Grafana
dashboard uses only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lacus.client import Client
from tests.conftest import RunningServer

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana" / "lacus.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[set[str], Samples]:
    response = httpx.get(f"{url}/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_show_requests_rules_transfers_and_storage(
    client: Client, server: RunningServer, tmp_path: Path
) -> None:
    client.add_scope("obs")
    source = tmp_path / "f.dat"
    source.write_bytes(b"x" * 4096)
    client.upload([source], rse="ALPHA_DISK", scope="obs", dataset="ds")
    (rule_id,) = client.add_rule("obs:ds", "BETA_DISK")
    client.wait_for_rule(rule_id, "ok", timeout=60)
    _, before = scrape(server.url)
    client.get_did("obs:ds")
    with pytest.raises(Exception, match="does not exist"):
        client.get_did("obs:missing")

    names, samples = scrape(server.url)

    route = "/dids/{scope}/{name}"
    ok_before = value(before, "lacus_http_requests_total", method="GET", route=route, status="200")
    assert value(samples, "lacus_http_requests_total", method="GET", route=route, status="200") == (
        ok_before + 1
    )
    assert value(samples, "lacus_http_requests_total", method="GET", route=route, status="404") >= 1
    assert value(samples, "lacus_http_request_seconds_count", method="GET", route=route) >= 2
    assert value(samples, "lacus_rules", state="ok") == 1
    assert value(samples, "lacus_rse_files", rse="BETA_DISK") == 1
    assert value(samples, "lacus_rse_used_bytes", rse="BETA_DISK") == 4096
    link = {"source": "ALPHA_DISK", "destination": "BETA_DISK"}
    assert value(samples, "lacus_link_transfers_last_hour", **link, outcome="done") == 1
    assert value(samples, "lacus_link_bytes_last_hour", **link) == 4096
    assert value(samples, "lacus_daemon_pass_seconds_count", daemon="conveyor") > 0
    assert value(samples, "lacus_daemon_items_total", daemon="conveyor") >= 1
    assert value(samples, "lacus_events_last_id") > 0
    assert ("lacus_catalog_rows", frozenset({("table", "replicas")})) in samples
    assert "process_resident_memory_bytes" in names
    if server.lake.engine.dialect.name == "sqlite":  # exact counts (PostgreSQL: estimates)
        assert value(samples, "lacus_catalog_rows", table="replicas") == 2


def test_metrics_can_require_a_token(
    client: Client, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.lake.settings, "metrics_public", False)
    refused = httpx.get(f"{server.url}/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"] == "Unauthenticated"
    scrape(server.url, {"X-Rucio-Auth-Token": client.session.token})


def test_the_grafana_dashboard_uses_only_metrics_lacus_serves(
    client: Client, server: RunningServer
) -> None:
    names, _ = scrape(server.url)
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        word
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for word in re.findall(r"\b(?:lacus|process)_[a-z_]+\b", target["expr"])
    }
    assert used, "the dashboard queries no metric"
    # a labelled counter nothing incremented yet has no sample, only its family
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert families <= names, sorted(families - names)
