"""Page-load times of the web dashboard on a catalog of many files, against the JSON REST calls
for the same data.

    .venv/bin/python benchmarks/dashboard.py [--files 100000] [--repeat 20]
        [--database sqlite|postgresql]

A fresh lake (``lacus.service.init_lake`` in a temporary directory; SQLite, or a throwaway
PostgreSQL database on 127.0.0.1:5432 with ``--database postgresql``) is served by a real
``lacus serve`` subprocess (one uvicorn worker, embedded daemons) on a free loopback port.
``Client.add_replicas`` registers ``--files`` files (fake checksums, no bytes) on ALPHA_DISK into
the dataset ``bench:dataset`` through the service layer, in calls of 10,000; a rule keeps the
dataset on ALPHA_DISK (one ok lock per file, placed by the evaluator); ``--files`` rows of
transfer history over the last 24 hours are written straight into the catalog (nothing copies
fake files). With root's token in the dashboard's cookie, the benchmark times, with one
keep-alive client, ``--repeat`` sequential GETs of each page and of its baseline (median, ms):

* ``overview``            vs ``GET /rses/`` (JSON: the RSE list the overview starts from);
* ``dataset page``        (the DID, its metadata, the first 50 files with their replicas, its
  rules) vs ``GET /dids/bench/dataset`` (JSON: the DID alone);
* ``dataset page, deep``  the same page after ``bench:file<half>`` (keyset: no offset scan);
* ``replicas per RSE``    the fragment the dataset page loads afterwards (every file counted)
  vs ``GET /replicas/bench/dataset/datasets`` (NDJSON: the same aggregate);
* ``rule page``           (lock counts, first 50 locks, history) vs ``GET /rules/{id}``;
* ``matrix``              vs ``GET /transfers/matrix``;
* ``transfers``           (three plots of the last 24 h) vs ``GET /transfers/matrix?hours=24``;
* ``events``              (the newest 50 events) — no JSON baseline (the REST stream is SSE).

Also once: ``GET /dids/bench/dataset/dids`` (the whole content as NDJSON), to show what a page
that listed everything would cost. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _rest import database, machine_note, median, served_lake

from lacus.client import Client
from lacus.db import make_engine
from lacus.db.engine import insert_rows
from lacus.db.tables import transfers

SCOPE, DATASET, RSE = "bench", "dataset", "ALPHA_DISK"
BATCH = 10_000
LINKS = [
    (1, 2),
    (1, 3),
    (2, 1),
    (2, 3),
    (3, 1),
    (3, 2),
]
"""(source, destination) RSE ids of the three demo RSEs."""


def register(client: Client, files: int) -> None:
    client.add_scope(SCOPE)
    for start in range(0, files, BATCH):
        specs = [
            {
                "scope": SCOPE,
                "name": f"file{index:07d}",
                "bytes": 1_000_000 + index,
                "adler32": f"{zlib.adler32(str(index).encode()) & 0xFFFFFFFF:08x}",
            }
            for index in range(start, min(files, start + BATCH))
        ]
        client.add_replicas(RSE, specs, dataset=f"{SCOPE}:{DATASET}")
    client.set_metadata(f"{SCOPE}:{DATASET}", {"run": 42, "target": "3C196"})


def write_history(database_url: str, rows: int) -> None:
    """``rows`` transfer attempts over the last 24 hours, 90 % done (the conveyor's table)."""
    engine = make_engine(database_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    chance = random.Random(7)
    columns = (
        "request_id", "scope", "name", "source_rse_id", "dest_rse_id", "bytes", "state", "error",
        "started_at", "finished_at", "duration", "activity",
    )  # fmt: skip
    values = []
    for index in range(rows):
        source, dest = LINKS[index % len(LINKS)]
        finished = now - timedelta(seconds=chance.uniform(0, 86_000))
        duration = chance.uniform(0.05, 30)
        done = chance.random() < 0.9
        values.append(
            (
                index,
                SCOPE,
                f"file{index:07d}",
                source,
                dest,
                1_000_000,
                "done" if done else "failed",
                None if done else "connection reset",
                finished - timedelta(seconds=duration),
                finished,
                duration,
                None,
            )
        )
    with engine.begin() as conn:
        for start in range(0, rows, BATCH):
            insert_rows(conn, transfers, columns, values[start : start + BATCH])
    engine.dispose()


def timed(http: httpx.Client, path: str, repeat: int) -> tuple[float, int]:
    """Median milliseconds of ``repeat`` GETs of ``path`` (after one warm-up), answer size."""
    size = 0
    samples = []
    for attempt in range(repeat + 1):
        start = time.perf_counter()
        answer = http.get(path)
        elapsed = time.perf_counter() - start
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
        size = len(answer.content)
        if attempt:
            samples.append(elapsed * 1000)
    return median(samples), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files in the dataset")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per case")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()

    started = time.monotonic()
    results: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="lacus-bench-dashboard-") as temp,
        database(args.database) as database_url,
        served_lake(Path(temp) / "lake", database_url) as server,
    ):
        from lacus.service import load_settings

        settings = load_settings(Path(temp) / "lake")
        loading = time.monotonic()
        with Client(server.url, token=server.token) as client:
            register(client, args.files)
            (rule_id,) = client.add_rule(f"{SCOPE}:{DATASET}", RSE)
            client.wait_for_rule(rule_id, "ok", timeout=1800)
        write_history(database_url or settings.database_url, args.files)
        loaded = time.monotonic() - loading
        half = f"{SCOPE}:file{args.files // 2:07d}"
        cases = [
            ("overview", "/dashboard", "/rses/"),
            ("dataset page", f"/dashboard/dids/{SCOPE}/{DATASET}", f"/dids/{SCOPE}/{DATASET}"),
            (
                "dataset page, deep",
                f"/dashboard/dids/{SCOPE}/{DATASET}?after={half}",
                f"/dids/{SCOPE}/{DATASET}",
            ),
            (
                "replicas per RSE",
                f"/dashboard/dids/{SCOPE}/{DATASET}/replicas",
                f"/replicas/{SCOPE}/{DATASET}/datasets",
            ),
            ("rule page", f"/dashboard/rules/{rule_id}", f"/rules/{rule_id}"),
            ("matrix", "/dashboard/matrix", "/transfers/matrix"),
            ("transfers", "/dashboard/transfers", "/transfers/matrix?hours=24"),
            ("events", "/dashboard/events", None),
        ]
        with (
            httpx.Client(base_url=server.url, timeout=600, follow_redirects=False) as page,
            httpx.Client(
                base_url=server.url, timeout=600, headers={"X-Rucio-Auth-Token": server.token}
            ) as rest,
        ):
            # The cookie the login form sets holds such a token (a page answering 303
            # instead of 200 would stop the benchmark: the cookie works).
            page.cookies.set("lacus_token", server.token)
            for case, path, baseline in cases:
                ms, size = timed(page, path, args.repeat)
                entry = {"ms": round(ms, 2), "bytes": size}
                if baseline is not None:
                    base_ms, base_size = timed(rest, baseline, args.repeat)
                    entry |= {
                        "baseline_ms": round(base_ms, 2),
                        "baseline_bytes": base_size,
                        "ratio": round(ms / base_ms, 2),
                    }
                results[case] = entry
            whole, whole_size = timed(rest, f"/dids/{SCOPE}/{DATASET}/dids", 1)
    print(
        f"Dashboard pages on a {args.files:,}-file dataset ({args.database}), median of "
        f"{args.repeat} GETs each, one keep-alive client; catalog loaded in {loaded:.0f} s; "
        f"{machine_note()}"
    )
    for case, entry in results.items():
        line = f"  {case:<20} {entry['ms']:8.1f} ms  {entry['bytes'] / 1000:7.1f} kB"
        if "baseline_ms" in entry:
            line += (
                f"   REST {entry['baseline_ms']:7.1f} ms  {entry['baseline_bytes'] / 1000:7.1f} kB"
                f"   = {entry['ratio']:.2f} x REST"
            )
        print(line)
    print(
        f"  whole content as NDJSON (GET /dids/{SCOPE}/{DATASET}/dids): {whole:.0f} ms, "
        f"{whole_size / 1e6:.1f} MB: what a page listing everything would start from"
    )
    summary: dict[str, object] = {
        "benchmark": "dashboard",
        "database": args.database,
        "files": args.files,
        "repeat": args.repeat,
        "cases": results,
        "whole_content_ms": round(whole, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
