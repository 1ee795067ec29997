"""The web dashboard, in a real browser (Debian's Chromium driven by Playwright) against the real
test server on both catalogs: log in, read the overview, browse a dataset (content, replicas),
open a stuck rule (locks, why stuck), read the colour-coded transfer matrix, watch an upload's
events arrive live, see a lost file and an aborted audit flagged. Screenshots go to
test-artifacts/dashboard/. Plain HTTP tests check the HTML routes' edges: login and its cookie,
redirections, pagination, embargo, bad input (a 4xx page, never a 500), what the integrity page
shows admins and others."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lacus.client import Client
from lacus.naming import deterministic_path
from lacus.server.dashboard.charts import EDGES, latency_summary, rate_class
from lacus.service import Lake
from lacus.service.integrity import declare
from lacus.types import ReplicaState
from tests.conftest import ROOT_PASSWORD, RunningServer, require_component, wait_until
from tests.rule_helpers import ROOT, add_rule, make_dataset, put_files, rse_prefix, settle

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
PASSWORD = "a-password-for-alice"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, never a downloaded one) for the module."""
    if shutil.which(CHROMIUM) is None:
        require_component("Chromium", f"{CHROMIUM} is missing (scripts/services.sh installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_component("Playwright", "the playwright package is missing (the test extra)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: RunningServer) -> Iterator[Any]:
    """A fresh browser context (no cookie) with one page."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def shot(page: Any, lake: Lake, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{lake.engine.dialect.name}-{name}.png"), full_page=True)


def log_in(page: Any, account: str = "root", password: str = ROOT_PASSWORD) -> None:
    page.fill("input[name=account]", account)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def upload(client: Client, tmp_path: Path, scope: str, dataset: str, names: list[str]) -> None:
    paths = []
    for i, name in enumerate(names):
        (path := tmp_path / name).write_bytes(bytes([i + 1]) * (500 + i))
        paths.append(path)
    client.upload(paths, rse="ALPHA_DISK", scope=scope, dataset=dataset)


@pytest.fixture
def stuck_rule(client: Client, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """lab:ds (three files on ALPHA_DISK, run=42) with a rule to GAMMA_TAPE that is ok and a rule
    to BETA_DISK that is stuck: BETA_DISK cannot take f1.dat (a plain file sits where its
    directory must go). The evaluator and the conveyor run here, not in the server (whose
    repairer would requeue the stuck transfer at once); returns the stuck rule."""
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 2)
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    client.add_scope("lab")
    upload(client, tmp_path, "lab", "ds", ["f0.dat", "f1.dat", "f2.dat"])
    client.set_metadata("lab:ds", {"run": 42, "target": "3C196"})
    blocked = (rse_prefix(lake, "BETA_DISK") / deterministic_path("lab", "f1.dat")).parent
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_bytes(b"in the way")
    lake.pause_daemons()
    client.add_rule("lab:ds", "GAMMA_TAPE")
    (rule_id,) = client.add_rule("lab:ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    assert client.get_rule(rule_id)["state"].lower() == "stuck"
    return rule_id


@pytest.fixture
def damaged(lake: Lake, server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage made on the storage behind the lake's back and found by the real integrity daemons
    (run here, the server's paused): virgo:only, whose one copy on ALPHA_DISK is corrupt, is
    lost; BETA_DISK holds a dark file (stray/hidden-name.dat), quarantined, a replica reported
    suspicious and one declared unavailable; both files of GAMMA_TAPE are gone, so its audit
    is aborted (too much to believe) and takes no action."""
    lake.pause_daemons()
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 0)
    monkeypatch.setattr(lake.settings, "audit_max_fraction", 0.5)
    make_dataset(lake, "virgo", "ds", ["only"], rse="ALPHA_DISK", size=500)
    add_rule(lake, "virgo", "ds", "ALPHA_DISK")
    put_files(lake, "BETA_DISK", "virgo", ["b0", "b1", "b2", "b3"])
    put_files(lake, "GAMMA_TAPE", "virgo", ["g0", "g1"])
    settle(lake)
    only = rse_prefix(lake, "ALPHA_DISK") / deterministic_path("virgo", "only")
    data = bytearray(only.read_bytes())
    data[250] ^= 0xFF
    only.write_bytes(bytes(data))
    settle(lake, "scrubber")
    settle(lake, "necromancer", "repairer", "reaper")
    for name in ("g0", "g1"):
        os.unlink(rse_prefix(lake, "GAMMA_TAPE") / deterministic_path("virgo", name))
    stray = rse_prefix(lake, "BETA_DISK") / "stray" / "hidden-name.dat"
    stray.parent.mkdir()
    stray.write_bytes(b"dark")
    time.sleep(0.05)
    settle(lake, "auditor")
    for state, name in ((ReplicaState.SUSPICIOUS, "b0"), (ReplicaState.UNAVAILABLE, "b1")):
        declare(lake, ROOT, state, replicas_given=[("virgo", name, "BETA_DISK")], reason="test")


# -- in the browser ------------------------------------------------------------------------------


def test_log_in_see_the_overview_and_log_out(
    page: Any, client: Client, lake: Lake, server: RunningServer
) -> None:
    page.goto("/dashboard")
    assert "/dashboard/login" in page.url
    log_in(page, password="wrong")
    assert "cannot authenticate" in page.locator("p.error").inner_text()
    shot(page, lake, "login-refused")
    log_in(page)
    page.wait_for_url(re.compile(r"/dashboard$"))
    rses = page.locator("#rses").inner_text()
    assert all(name in rses for name in ("ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"))
    assert "root (admin)" in page.locator("header").inner_text()
    shot(page, lake, "overview")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "lacus_token"]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script of the page can read the token
    page.click("header button[type=submit]")  # log out
    page.wait_for_url(re.compile(r"/dashboard/login"))
    page.goto("/dashboard/dids")
    assert "/dashboard/login?next=%2Fdashboard%2Fdids" in page.url
    # The token is revoked, not only forgotten by the browser.
    answer = httpx.get(f"{server.url}/rses/", headers={"X-Rucio-Auth-Token": cookie["value"]})
    assert answer.status_code == 401


def test_browse_a_dataset_open_its_stuck_rule_and_the_matrix(
    page: Any, client: Client, lake: Lake, stuck_rule: str
) -> None:
    page.goto("/dashboard/dids?scope=lab&filter=run%3E40")
    log_in(page)  # back to the page asked for
    page.wait_for_url(re.compile(r"/dashboard/dids\?scope=lab"))
    results = page.locator("#did-results").inner_text()
    assert "lab:ds" in results
    assert "f0.dat" not in results
    page.click("text=lab:ds")
    page.wait_for_url(re.compile(r"/dashboard/dids/lab/ds$"))
    content = page.locator("#content")
    for name in ("f0.dat", "f1.dat", "f2.dat"):
        assert f"lab:{name}" in content.inner_text()
    f1 = content.locator("tr", has_text="lab:f1.dat").inner_text()
    assert "ALPHA_DISK: available" in f1
    assert "GAMMA_TAPE: available" in f1
    assert "BETA_DISK" not in f1
    assert "BETA_DISK: available" in content.locator("tr", has_text="lab:f0.dat").inner_text()
    summary = page.locator("#replica-summary")  # loaded after the page, by the script
    assert "2 / 3" in summary.locator("tr", has_text="BETA_DISK").inner_text()
    assert "3 / 3" in summary.locator("tr", has_text="GAMMA_TAPE").inner_text()
    assert "3C196" in page.locator("#metadata").inner_text()
    shot(page, lake, "dataset")

    page.locator("#rules tr", has_text="BETA_DISK").locator("a").click()
    page.wait_for_url(re.compile(rf"/dashboard/rules/{stuck_rule}$"))
    assert page.locator("#rule-state").inner_text() == "stuck"
    states = page.locator("#lock-states").inner_text()
    assert "2 ok" in states
    assert "1 stuck" in states
    why = page.locator("#why-stuck").inner_text()
    assert "Not a directory" in why
    assert "BETA_DISK" in why
    stuck_lock = page.locator("#locks tr", has_text="lab:f1.dat").inner_text()
    assert "stuck" in stuck_lock
    assert "failed" in stuck_lock
    assert "created" in page.locator("#history").inner_text()
    shot(page, lake, "rule-stuck")
    page.click("#lock-states >> text=stuck")
    assert page.locator("#locks tbody tr").count() == 1

    page.click("nav >> text=Matrix")
    page.wait_for_url(re.compile(r"/dashboard/matrix"))
    matrix = page.locator("#matrix")
    cells = matrix.locator("td[data-done]")
    for i in range(cells.count()):  # every link: its colour and % are its attempts'
        cell = cells.nth(i)
        done, failed = int(cell.get_attribute("data-done")), int(cell.get_attribute("data-failed"))
        assert cell.get_attribute("class") == rate_class(done, failed)
        assert cell.inner_text() == f"{round(100 * done / (done + failed), 1):g}%"
    row = matrix.locator("tr", has_text="ALPHA_DISK")
    beta = row.locator("td").nth(0)  # destinations in name order: BETA_DISK, GAMMA_TAPE
    tape = row.locator("td").nth(1)
    assert (tape.inner_text(), tape.get_attribute("class")) == ("100%", "rate-10")
    assert beta.get_attribute("data-done") == "2"
    assert int(beta.get_attribute("data-failed")) >= 1
    colour = "getComputedStyle(document.querySelector('{}')).backgroundColor"
    green = page.evaluate(colour.format("#matrix td.rate-10"))
    failing = page.evaluate(colour.format(f"#matrix td.{beta.get_attribute('class')}"))
    assert green == "rgb(27, 138, 58)"
    assert failing != green
    shot(page, lake, "matrix")

    page.click("nav >> text=Transfers")
    page.wait_for_url(re.compile(r"/dashboard/transfers"))
    assert "5 done" in page.locator("#transfer-totals").inner_text()
    assert page.locator("#attempts rect.failed").count() >= 1
    assert page.locator("#throughput rect.bar").count() >= 1
    assert "Not a directory" in page.locator("#failures").inner_text()
    shot(page, lake, "transfers")


def test_an_upload_shows_up_live_on_the_events_and_dataset_pages(
    page: Any, client: Client, lake: Lake, tmp_path: Path
) -> None:
    client.add_scope("live")
    upload(client, tmp_path, "live", "run1", ["first.dat"])
    page.goto("/dashboard/login?next=/dashboard/events")
    log_in(page)
    page.wait_for_url(re.compile(r"/dashboard/events$"))
    log = page.locator("#event-log")
    assert "live:first.dat" in log.inner_text()  # the newest events, rendered by the server
    page.locator("#stream-state", has_text="live").wait_for()
    (tmp_path / "new").mkdir()
    upload(client, tmp_path / "new", "live", "run1", ["second.dat"])
    fresh = log.locator("tr", has_text="live:second.dat").first
    fresh.wait_for()
    assert "replica.available" in fresh.inner_text()
    assert "ALPHA_DISK" in fresh.inner_text()
    shot(page, lake, "events-live")

    page.goto("/dashboard/dids/live/run1")
    assert page.locator("#content").inner_text().count("live:") == 2
    (tmp_path / "third").mkdir()
    upload(client, tmp_path / "third", "live", "run1", ["third.dat"])
    page.locator("#content tr", has_text="live:third.dat").wait_for()  # no reload: live
    assert page.locator("#did-length").inner_text() == "3"

    chunks = [
        {
            "scope": "live",
            "name": f"chunk{i:02d}.h5",
            "bytes": 8,
            "adler32": f"{i + 1:08x}",
            "meta": {"chunk_created": time.time() - lag},
        }
        for i, lag in enumerate([0.05] * 3 + [0.3] * 8 + [1.5] * 4 + [7.0])
    ]
    client.add_replicas("ALPHA_DISK", chunks, dataset="live:chunks")
    page.goto("/dashboard/ingest?scope=live&hours=1")
    assert "16" in page.locator("#latency-summary").inner_text()
    assert page.locator("#latency-histogram rect.bar").count() == len(EDGES) + 1
    shot(page, lake, "ingest")


def test_a_lost_file_and_an_aborted_audit_are_flagged_on_the_overview_and_integrity_pages(
    page: Any, lake: Lake, damaged: None
) -> None:
    page.goto("/dashboard/integrity")
    log_in(page)
    page.wait_for_url(re.compile(r"/dashboard/integrity$"))
    lost = page.locator("#lost-alert")
    assert lost.is_visible()
    assert lost.inner_text().startswith("1 file lost: no good copy left.")
    background = "getComputedStyle(document.querySelector('#lost-alert')).backgroundColor"
    assert page.evaluate(background) == "rgb(253, 236, 234)"  # red, not a plain paragraph
    aborted = page.locator("#integrity-alerts p[data-rse=GAMMA_TAPE]").inner_text()
    assert "Audit of GAMMA_TAPE aborted" in aborted
    assert "2 lost of 2 catalog replicas" in aborted  # the detail, for an admin
    assert "stray/hidden-name.dat" in page.locator("#quarantine").inner_text()
    shot(page, lake, "integrity")
    page.click("nav >> text=Overview")
    page.wait_for_url(re.compile(r"/dashboard$"))
    assert "1 file lost" in page.locator("#lost-alert").inner_text()
    assert "GAMMA_TAPE aborted" in page.locator("#integrity-alerts").inner_text()
    shot(page, lake, "overview-alerts")
    page.click("#lost-alert >> text=Which files")
    page.wait_for_url(re.compile(r"/dashboard/events\?type=replica.lost"))
    assert "virgo:only" in page.locator("#event-log").inner_text()


# -- over plain HTTP -----------------------------------------------------------------------------


@contextmanager
def logged_in(
    server: RunningServer, account: str = "root", password: str = ROOT_PASSWORD
) -> Iterator[httpx.Client]:
    """An HTTP client holding the cookie of a dashboard login."""
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        answer = http.post("/dashboard/login", data={"account": account, "password": password})
        assert answer.status_code == 303, answer.text
        yield http


def test_pages_need_a_login_and_the_cookie_only_reads(
    server: RunningServer, client: Client
) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        for path in ("/dashboard", "/dashboard/dids/lab/ds", "/dashboard/events?type=rule.ok"):
            answer = http.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/dashboard/login?next=%2Fdashboard")
        assert http.get("/dashboard/static/dashboard.css").status_code == 200
        refused = http.post("/dashboard/login", data={"account": "root", "password": "nope"})
        assert refused.status_code == 401
        assert "cannot authenticate" in refused.text
        empty = http.post("/dashboard/login", data={"account": "root"})
        assert empty.status_code == 400
        assert "give an account and a password" in empty.text
    outside = httpx.post(
        f"{server.url}/dashboard/login",
        data={"account": "root", "password": ROOT_PASSWORD},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert outside.status_code == 403
    assert "set-cookie" not in outside.headers
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        answer = http.post(
            "/dashboard/login",
            data={"account": "root", "password": ROOT_PASSWORD, "next": "https://evil.example/"},
        )
        assert answer.headers["location"] == "/dashboard"  # never away from the dashboard
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/" in cookie
        page = http.get("/dashboard")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        # The cookie authenticates the REST API's reads (EventSource), never a change.
        assert http.get("/rses/").status_code == 200
        assert http.post("/accounts/root/scopes/viacookie").status_code == 401
        assert http.get("/scopes/").status_code == 200
        assert "viacookie" not in http.get("/scopes/").text


def test_listings_are_keyset_pages(server: RunningServer, client: Client, lake: Lake) -> None:
    """Pages of 3 through a dataset's 7 files, a search's 7 files, and the 14 locks of a
    two-copy rule (page boundaries fall between the two locks of one file): each row once, in
    order, nothing left out."""
    client.add_scope("many")
    files = [
        {"scope": "many", "name": f"file{i:02d}", "bytes": 10 + i, "adler32": f"{i:08x}"}
        for i in range(7)
    ]
    client.add_replicas("ALPHA_DISK", files, dataset="many:set")
    (rule_id,) = client.add_rule("many:set", "qos=DISK", copies=2)
    wait_until(lambda: len(client.rule_locks(rule_id)) == 14, timeout=30)
    lake.pause_daemons()  # the fake files cannot be copied: the locks stay as they are
    file_link = r"/dashboard/dids/many/(file\d\d)\""
    lock_row = r"/dashboard/dids/many/(file\d\d)\">many:file\d\d</a></td>\s*<td>([A-Z_]+)</td>"
    with logged_in(server) as http:
        for first, pattern, rows in (
            ("/dashboard/dids/many/set?limit=3", file_link, 7),
            ("/dashboard/dids?scope=many&type=file&limit=3", file_link, 7),
            (f"/dashboard/rules/{rule_id}?limit=3", lock_row, 14),
        ):
            seen: list[Any] = []
            url: str | None = first
            pages = 0
            while url is not None:
                answer = http.get(url)
                assert answer.status_code == 200, answer.text
                seen += re.findall(pattern, answer.text)
                pages += 1
                found = re.search(r'rel="next" href="([^"]+)"', answer.text)
                url = found.group(1).replace("&amp;", "&") if found else None
            assert pages == -(-rows // 3)
            assert seen == sorted(set(seen))
            assert len(seen) == rows


def test_bad_input_is_a_4xx_page(server: RunningServer, client: Client) -> None:
    client.add_scope("lab")
    cases = {
        "/dashboard/dids?scope=lab&limit=0": (400, "limit"),
        "/dashboard/dids?scope=lab&limit=many": (400, "limit"),
        "/dashboard/dids?scope=bad%20scope": (400, "invalid scope"),
        "/dashboard/dids?scope=nowhere": (404, "nowhere"),
        "/dashboard/dids?scope=lab&filter=run%3E%3Dx": (400, "needs a number"),
        "/dashboard/dids?scope=lab&type=directory": (400, "type"),
        "/dashboard/dids/lab/missing": (404, "does not exist"),
        "/dashboard/dids/lab/ds?after=nocolon": (400, "scope"),
        "/dashboard/dids/lab/%00": (400, "NUL"),
        "/dashboard/rules/not-a-rule": (400, "rule_id"),
        "/dashboard/rules/0123456789abcdef0123456789abcdef": (404, "does not exist"),
        "/dashboard/rules/0123456789abcdef0123456789abcdef?state=gone": (400, "state"),
        "/dashboard/matrix?hours=-1": (400, "hours"),
        "/dashboard/transfers?hours=100000": (400, "hours"),
        "/dashboard/events?type=bogus": (400, "unknown event type"),
        "/dashboard/events?did=lab:missing": (404, "does not exist"),
        "/dashboard/events?before=0": (400, "before"),
        "/dashboard/ingest?scope=bad%20scope": (400, "invalid scope"),
    }
    with logged_in(server) as http:
        for path, (status, words) in cases.items():
            answer = http.get(path)
            assert answer.status_code == status, (path, answer.status_code, answer.text[:300])
            assert "text/html" in answer.headers["content-type"], path
            assert words in answer.text, (path, answer.text[:500])
        huge = http.post("/dashboard/login", content=b"account=" + b"x" * 10_000)
        assert huge.status_code == 400


def test_embargoed_data_stays_hidden(server: RunningServer, client: Client) -> None:
    client.add_account("alice", password=PASSWORD)
    client.add_scope("secret")
    client.add_replicas(
        "ALPHA_DISK",
        [{"scope": "secret", "name": "hidden.dat", "bytes": 3, "adler32": "00000001"}],
        dataset="secret:ds",
    )
    client.set_embargo("secret:ds")
    with logged_in(server, "alice", PASSWORD) as http:
        assert http.get("/dashboard/dids/secret/ds").status_code == 404
        assert http.get("/dashboard/dids/secret/hidden.dat").status_code == 404
        assert "hidden.dat" not in http.get("/dashboard/dids?scope=secret").text
        assert "hidden.dat" not in http.get("/dashboard/events").text
        assert "alice" in http.get("/dashboard").text
    with logged_in(server) as http:
        assert "secret:hidden.dat" in http.get("/dashboard/events").text


def table(html: str, table_id: str) -> dict[str, list[str]]:
    """A table of a page: the text of each row's first cell → the text of its other cells."""
    found = re.search(rf'<table[^>]* id="{table_id}".*?</table>', html, re.S)
    assert found is not None, table_id
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(0), re.S):
        cells = [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_integrity_page_counts_for_everyone_and_details_for_admins(
    server: RunningServer, client: Client, damaged: None
) -> None:
    client.add_account("alice", password=PASSWORD)
    lost = "<strong>1 file lost: no good copy left.</strong>"
    aborted = 'data-rse="GAMMA_TAPE"><strong>Audit of GAMMA_TAPE aborted</strong>'
    for account, password in (("root", ROOT_PASSWORD), ("alice", PASSWORD)):
        admin = account == "root"
        with logged_in(server, account, password) as http:
            page = http.get("/dashboard/integrity")
            assert page.status_code == 200, page.text
            html = page.text
            overview = http.get("/dashboard").text
        assert lost in html
        assert lost in overview
        assert aborted in html
        assert aborted in overview
        assert table(html, "doubted") == {
            "RSE": ["suspicious", "bad", "unavailable", "lost", "dark files quarantined"],
            "ALPHA_DISK": ["0", "0", "0", "1", "0"],
            "BETA_DISK": ["1", "0", "1", "0", "1"],
            "GAMMA_TAPE": ["0", "0", "0", "0", "0"],
        }
        audited = table(html, "audits")
        # state, started, finished, replicas compared, files listed, dark, lost (, detail)
        assert {rse: [row[0], *row[3:7]] for rse, row in audited.items() if rse != "RSE"} == {
            "ALPHA_DISK": ["finished", "1", "1", "0", "0"],
            "BETA_DISK": ["finished", "4", "5", "1", "0"],
            "GAMMA_TAPE": ["aborted", "2", "0", "0", "2"],
        }
        scrubbed = table(html, "scrubs")
        # state, started, finished, replicas verified, bad, bytes verified (, detail)
        assert {rse: [row[0], *row[3:6]] for rse, row in scrubbed.items() if rse != "RSE"} == {
            "ALPHA_DISK": ["finished", "1", "1", "0 B"],
            "BETA_DISK": ["finished", "4", "0", "400 B"],
            "GAMMA_TAPE": ["finished", "2", "0", "200 B"],
        }
        assert ("detail" in audited["RSE"]) is admin
        # What an audit says and what lies dark may name hidden data: admins only.
        assert ("2 lost of 2 catalog replicas" in html) is admin
        assert ("stray/hidden-name.dat" in html) is admin
        assert "2 lost of 2 catalog replicas" not in overview
        if not admin:
            assert "1 dark file quarantined; their paths are shown to admins only" in html


def test_the_ingest_page_shows_creation_to_announcement_latencies(
    server: RunningServer, client: Client
) -> None:
    client.add_scope("virgo")
    now = time.time()
    files = [
        {
            "scope": "virgo",
            "name": f"chunk{i}.h5",
            "bytes": 8,
            "adler32": f"{i + 1:08x}",
            "meta": {"chunk_created": now - lag},
        }
        for i, lag in enumerate((3.0, 3.5, 40.0, 150.0))  # margins for a slow registration
    ]
    client.add_replicas("ALPHA_DISK", files, dataset="virgo:run1")
    with logged_in(server) as http:
        page = http.get("/dashboard/ingest?scope=virgo&hours=1").text
    assert re.search(r"<dt>chunks</dt><dd>4</dd>", page)
    assert "<title>2s-5s: 2</title>" in page  # two chunks took between 2 and 5 s
    assert "<title>30s-1m: 1</title>" in page
    assert "<title>2m-5m: 1</title>" in page
    assert "<title>&lt;0.1s: 0</title>" in page


def test_latency_summary_bins_and_percentiles() -> None:
    summary = latency_summary([0.05, 0.15, 0.15, 1.5, 700.0])
    assert summary.count == 5
    assert dict(summary.bins)["<0.1s"] == 1
    assert dict(summary.bins)["0.1s-0.2s"] == 2
    assert dict(summary.bins)["≥10m"] == 1
    assert (summary.p50, summary.longest) == (0.15, 700.0)
    assert latency_summary([]).p99 is None
    assert [rate_class(0, 0), rate_class(1, 0), rate_class(61, 39), rate_class(0, 3)] == [
        "nodata",
        "rate-10",
        "rate-6",
        "rate-0",
    ]
