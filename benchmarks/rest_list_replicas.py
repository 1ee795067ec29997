"""Listing the replicas of a 10,000-file dataset over REST (streamed): wall time and server memory.

    .venv/bin/python benchmarks/rest_list_replicas.py [--files 10000] [--clients 4] [--repeat 3]
        [--database sqlite|postgresql]

A fresh lake (``lacus.service.init_lake`` in a temporary directory; SQLite, or a throwaway
PostgreSQL database on 127.0.0.1:5432 with ``--database postgresql``) is served by a real
``lacus serve`` subprocess (one uvicorn worker) on a free loopback port.
``lacus.Client.add_replicas`` registers ``--files`` files with fake checksums on ALPHA_DISK into
the dataset ``bench:dataset`` (registration only: no bytes), in calls of 10,000 files. Then,
``--repeat`` times each:

* ``raw SQL``    — the baseline: the same rows (file, size, checksums, replica path and state)
  read with one SQL query from the same database by this process (sqlite3 / psycopg);
* ``1 client``   — ``POST /replicas/list`` for the dataset, the NDJSON answer read line by line
  and each line parsed (httpx streaming);
* ``N clients``  — ``--clients`` threads doing the same at once (one httpx.Client each): the wall
  time until the last is done, and the server process's peak RSS while they run (VmRSS sampled
  every 10 ms from /proc, and VmHWM, the kernel's own high-water mark, after the run).

Also reported: the server's idle RSS (after registration, before any listing). Medians of the
runs; Rucio's figures for comparison: 8.6 s to list 10,000 replicas, ~600 MiB server RSS under load.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import httpx
import orjson
from _rest import (
    MIB,
    RSSSampler,
    concurrently,
    database,
    machine_note,
    median,
    rss,
    served_lake,
)

from lacus.client import Client

SCOPE, DATASET, RSE = "bench", "dataset", "ALPHA_DISK"
BATCH = 10_000
RUCIO_SECONDS = 8.6
RUCIO_RSS_MIB = 600
RAW_QUERY = """
SELECT d.scope, d.name, d.bytes, d.adler32, d.md5, r.path, r.state
FROM contents c
JOIN dids d ON d.scope = c.child_scope AND d.name = c.child_name
JOIN replicas r ON r.scope = d.scope AND r.name = d.name
WHERE c.scope = {mark} AND c.name = {mark}
ORDER BY d.scope, d.name
"""


def register(url: str, token: str, files: int) -> None:
    specs = []
    for index in range(files):
        name = f"file{index:06d}"
        specs.append(
            {
                "scope": SCOPE,
                "name": name,
                "bytes": 1_000_000 + index,
                "adler32": f"{zlib.adler32(name.encode()) & 0xFFFFFFFF:08x}",
                "md5": f"{index:032x}",
            }
        )
    with Client(url, token=token) as client:
        client.add_scope(SCOPE)
        for start in range(0, files, BATCH):
            client.add_replicas(RSE, specs[start : start + BATCH], dataset=f"{SCOPE}:{DATASET}")


def raw_sql(database_url: str, files: int) -> float:
    """Seconds to read the rows with one query, straight from the database driver."""
    if database_url.startswith("sqlite"):
        import sqlite3

        path = database_url.removeprefix("sqlite:///")
        connection = sqlite3.connect(path)
        query, close = RAW_QUERY.format(mark="?"), connection.close
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        connection = psycopg.connect(  # type: ignore[assignment]
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
        )
        query, close = RAW_QUERY.format(mark="%s"), connection.close
    try:
        start = time.perf_counter()
        rows = connection.execute(query, (SCOPE, DATASET)).fetchall()
        seconds = time.perf_counter() - start
    finally:
        close()
    if len(rows) != files:
        raise RuntimeError(f"raw SQL read {len(rows)} rows, expected {files}")
    return seconds


def list_once(http: httpx.Client, files: int) -> None:
    body = {"dids": [{"scope": SCOPE, "name": DATASET}]}
    count = 0
    with http.stream("POST", "/replicas/list", json=body) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"{response.status_code} {response.headers.get('ExceptionMessage')}")
        for line in response.iter_lines():
            if line:
                orjson.loads(line)
                count += 1
    if count != files:
        raise RuntimeError(f"listed {count} replicas, expected {files}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="files in the dataset")
    parser.add_argument("--clients", type=int, default=4, help="clients listing at once")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each case")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()

    started = time.monotonic()
    raw: list[float] = []
    single: list[float] = []
    parallel: list[float] = []
    sampled_peaks: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="lacus-bench-list-") as temp,
        database(args.database) as database_url,
        served_lake(Path(temp) / "lake", database_url) as server,
    ):
        db_url = database_url or f"sqlite:///{(Path(temp) / 'lake' / 'catalog.db').resolve()}"
        t0 = time.perf_counter()
        register(server.url, server.token, args.files)
        registration = time.perf_counter() - t0
        time.sleep(0.5)
        idle = rss(server.pid)
        for _ in range(args.repeat):
            raw.append(raw_sql(db_url, args.files))
            single.append(
                concurrently(
                    1,
                    lambda http, _i: list_once(http, args.files),
                    url=server.url,
                    token=server.token,
                )
            )
            with RSSSampler(server.pid) as sampler:
                parallel.append(
                    concurrently(
                        args.clients,
                        lambda http, _i: list_once(http, args.files),
                        url=server.url,
                        token=server.token,
                    )
                )
            sampled_peaks.append(sampler.peak)
        high_water = rss(server.pid, "VmHWM")

    one, many, baseline = median(single), median(parallel), median(raw)
    peak = max(sampled_peaks)
    print(
        f"List the replicas of a {args.files}-file dataset over REST (NDJSON, streamed), "
        f"{args.database}, median of {args.repeat}; {machine_note()}"
    )
    print(f"  registration (Client.add_replicas)  {registration:7.2f} s")
    print(f"  raw SQL, one query (baseline)       {baseline:7.3f} s")
    rucio = (
        f"; Rucio: {RUCIO_SECONDS} s = {RUCIO_SECONDS / one:.0f} x longer"
        if args.files == 10_000
        else ""
    )
    print(
        f"  1 client                            {one:7.3f} s  = {one / baseline:.1f} x raw SQL"
        f"  ({args.files / one:,.0f} replicas/s{rucio})"
    )
    print(
        f"  {args.clients} clients at once                  {many:7.3f} s  "
        f"= {many / one:.2f} x one client"
    )
    print(
        f"  server RSS: idle {idle / MIB:.0f} MiB, peak with {args.clients} clients "
        f"{peak / MIB:.0f} MiB sampled (VmHWM {high_water / MIB:.0f} MiB) "
        f"= {peak / idle:.2f} x idle (VmHWM includes the registration); "
        f"Rucio ~{RUCIO_RSS_MIB} MiB"
    )
    print(
        json.dumps(
            {
                "benchmark": "rest_list_replicas",
                "database": args.database,
                "files": args.files,
                "clients": args.clients,
                "repeat": args.repeat,
                "registration_s": round(registration, 3),
                "raw_sql_s": round(baseline, 4),
                "one_client_s": round(one, 3),
                "one_client_vs_raw_sql": round(one / baseline, 2),
                "parallel_s": round(many, 3),
                "idle_rss_mib": round(idle / MIB, 1),
                "peak_rss_mib": round(peak / MIB, 1),
                "vmhwm_mib": round(high_water / MIB, 1),
                "rucio_s": RUCIO_SECONDS,
                "rucio_rss_mib": RUCIO_RSS_MIB,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
