"""Requests per second of ``GET /dids/{scope}/{name}`` with 8 concurrent clients, against /ping.

    .venv/bin/python benchmarks/rest_get_did.py [--requests 5000] [--clients 8] [--repeat 3]
        [--database sqlite|postgresql]

A fresh lake (``lacus.service.init_lake`` in a temporary directory; SQLite, or a throwaway
PostgreSQL database on 127.0.0.1:5432 with ``--database postgresql``) is served by a real
``lacus serve`` subprocess (one uvicorn worker) on a free loopback port. Over REST the benchmark
creates the scope ``bench``, a dataset of 10 files and a container holding it. ``--clients``
threads, each with its own keep-alive ``httpx.Client``, share ``--requests`` requests per case:

* ``ping``           — ``GET /ping``: no token, no database; the baseline of the same run;
* ``auth/validate``  — ``GET /auth/validate`` with root's token: token check plus one read;
* ``did (file)``     — ``GET /dids/bench/file0005`` with the token: token check, one DID read;
* ``did (dataset)``  — ``GET /dids/bench/dataset``;
* ``did (container)``— ``GET /dids/bench/container``: its size is summed over the files below.

Cases alternate, ``--repeat`` times, after a warm-up of 500 requests per case; the median is
reported with its ratio to ``ping``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import httpx
from _rest import concurrently, database, machine_note, median, served_lake

CASES = {
    "ping": "/ping",
    "auth/validate": "/auth/validate",
    "did (file)": "/dids/bench/file0005",
    "did (dataset)": "/dids/bench/dataset",
    "did (container)": "/dids/bench/container",
}
WARM_UP = 500


def seed(url: str, token: str) -> None:
    files = []
    for index in range(10):
        name = f"file{index:04d}"
        files.append(
            {
                "scope": "bench",
                "name": name,
                "bytes": 1000 + index,
                "adler32": f"{zlib.adler32(name.encode()) & 0xFFFFFFFF:08x}",
            }
        )
    with httpx.Client(base_url=url, headers={"X-Rucio-Auth-Token": token}) as http:
        for method, path, body in [
            ("POST", "/accounts/root/scopes/bench", None),
            (
                "POST",
                "/replicas",
                {
                    "rse": "ALPHA_DISK",
                    "files": files,
                    "dataset": {"scope": "bench", "name": "dataset"},
                },
            ),
            ("POST", "/dids/bench/container", {"type": "container"}),
            (
                "POST",
                "/dids/bench/container/dids",
                {"dids": [{"scope": "bench", "name": "dataset"}]},
            ),
        ]:
            response = http.request(method, path, json=body)
            if response.status_code != 201:
                raise RuntimeError(f"{method} {path}: {response.headers.get('ExceptionMessage')}")


def requests_per_second(url: str, token: str, case: str, requests: int, clients: int) -> float:
    path = CASES[case]
    share = requests // clients

    def work(http: httpx.Client, _index: int) -> None:
        for _ in range(share):  # every client sends the token; /ping ignores it
            response = http.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    seconds = concurrently(clients, work, url=url, token=token)
    return share * clients / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per case and run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per case")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()

    started = time.monotonic()
    rates: dict[str, list[float]] = {case: [] for case in CASES}
    with (
        tempfile.TemporaryDirectory(prefix="lacus-bench-rest-") as temp,
        database(args.database) as database_url,
        served_lake(Path(temp) / "lake", database_url) as server,
    ):
        seed(server.url, server.token)
        for case in CASES:
            requests_per_second(server.url, server.token, case, WARM_UP, args.clients)
        for _ in range(args.repeat):
            for case in CASES:
                rates[case].append(
                    requests_per_second(server.url, server.token, case, args.requests, args.clients)
                )
    baseline = median(rates["ping"])
    print(
        f"REST GET, {args.clients} clients (threads, one httpx.Client each), "
        f"{args.requests} requests per run, median of {args.repeat}, {args.database}; "
        f"{machine_note()}"
    )
    result: dict[str, object] = {
        "benchmark": "rest_get_did",
        "database": args.database,
        "clients": args.clients,
        "requests": args.requests,
        "repeat": args.repeat,
    }
    for case, values in rates.items():
        rate = median(values)
        print(
            f"  {case:<16} {rate:8.0f} req/s  (runs: {', '.join(f'{v:.0f}' for v in values)})"
            f"  = {rate / baseline:.2f} x ping"
        )
        result[case] = {"rps": round(rate, 1), "ratio_to_ping": round(rate / baseline, 3)}
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
