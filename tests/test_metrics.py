"""``GET /metrics``: Prometheus text a scraper parses, with what a user did in it and what the
integrity daemons found; every metric is documented; the Grafana dashboard uses only metrics that
exist."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lacus.client import Client
from lacus.naming import deterministic_path
from lacus.service import Lake
from lacus.service.integrity import declare
from lacus.types import ReplicaState
from tests.conftest import RunningServer
from tests.rule_helpers import ROOT, add_rule, make_dataset, put_files, rse_prefix, settle

DOCS = Path(__file__).parent.parent / "docs"
DASHBOARD = DOCS / "grafana" / "lacus.json"

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


def family(name: str) -> str:
    """The metric a sample belongs to (a counter's ``_total``, a histogram's ``_bucket``...)."""
    return re.sub(r"_(total|created|bucket|count|sum)$", "", name)


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


def test_metrics_show_replicas_in_doubt_dark_and_lost_files_and_audits(
    server: RunningServer, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """virgo:only, corrupt on ALPHA_DISK (its one copy), is found bad by the scrubber and lost;
    BETA_DISK's audit finds a dark file; GAMMA_TAPE's, both its files gone, is aborted."""
    lake.pause_daemons()  # the integrity daemons run here, one after the other
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 0)
    monkeypatch.setattr(lake.settings, "audit_max_fraction", 0.5)
    make_dataset(lake, "virgo", "ds", ["only"], rse="ALPHA_DISK", size=500)
    add_rule(lake, "virgo", "ds", "ALPHA_DISK")
    put_files(lake, "BETA_DISK", "virgo", ["b0", "b1", "b2"])
    put_files(lake, "GAMMA_TAPE", "virgo", ["g0", "g1"])
    settle(lake)
    started = time.time()
    only = rse_prefix(lake, "ALPHA_DISK") / deterministic_path("virgo", "only")
    only.write_bytes(b"X" + only.read_bytes()[1:])
    settle(lake, "scrubber")
    settle(lake, "necromancer", "repairer")
    for name in ("g0", "g1"):
        os.unlink(rse_prefix(lake, "GAMMA_TAPE") / deterministic_path("virgo", name))
    (rse_prefix(lake, "BETA_DISK") / "stray.dat").write_bytes(b"dark")
    time.sleep(0.05)
    settle(lake, "auditor")
    declare(lake, ROOT, ReplicaState.SUSPICIOUS, replicas_given=[("virgo", "b0", "BETA_DISK")],
            reason="download failed")  # fmt: skip

    _, samples = scrape(server.url)

    assert value(samples, "lacus_files_lost") == 1
    doubted = {
        (rse, state): value(samples, "lacus_replicas_doubted", rse=rse, state=state)
        for rse in ("ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE")
        for state in ("suspicious", "bad", "unavailable", "lost")
        if ("lacus_replicas_doubted", frozenset({("rse", rse), ("state", state)})) in samples
    }
    assert len(doubted) == 12  # every RSE and state, zeros too: an alert sees a 0, not nothing
    assert {key for key, count in doubted.items() if count} == {
        ("ALPHA_DISK", "lost"),
        ("BETA_DISK", "suspicious"),
    }
    assert value(samples, "lacus_dark_files", rse="BETA_DISK") == 1
    assert ("lacus_dark_files", frozenset({("rse", "GAMMA_TAPE")})) in samples
    found = "lacus_audit_last_found"
    assert value(samples, found, rse="ALPHA_DISK", kind="scrub", what="bad") == 1
    assert value(samples, found, rse="BETA_DISK", kind="audit", what="dark") == 1
    assert value(samples, found, rse="GAMMA_TAPE", kind="audit", what="lost") == 2
    assert value(samples, "lacus_audit_aborted", rse="GAMMA_TAPE") == 1
    assert ("lacus_audit_aborted", frozenset({("rse", "BETA_DISK")})) in samples
    assert value(samples, "lacus_audit_aborted", rse="BETA_DISK") == 0
    finished = "lacus_audit_last_finished_timestamp_seconds"
    for rse, kind in (("BETA_DISK", "audit"), ("ALPHA_DISK", "scrub"), ("GAMMA_TAPE", "scrub")):
        assert started - 1 <= value(samples, finished, rse=rse, kind=kind) <= time.time() + 1
    # An aborted audit is not a finished one: its RSE was never audited to the end.
    assert (finished, frozenset({("rse", "GAMMA_TAPE"), ("kind", "audit")})) not in samples


def test_every_metric_is_documented(client: Client, server: RunningServer) -> None:
    """docs/metrics.md names every metric Lacus serves, and no metric it does not serve."""
    names, _ = scrape(server.url)
    text = (DOCS / "metrics.md").read_text()
    families = {family(name) for name in names if name.startswith("lacus_")}
    undocumented = sorted(name for name in families if f"`{name}" not in text)
    assert not undocumented, undocumented
    documented = {family(name) for name in re.findall(r"`(lacus_[a-z_]+)", text)}
    assert documented <= families, sorted(documented - families)


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
