"""What permission and visibility checks cost on the hot paths: a non-admin account against root.

    .venv/bin/python benchmarks/permission_cost.py [--files 10000] [--batch 1000] [--gets 2000]
        [--repeat 5] [--backend sqlite|postgresql|both] [--cases CASE,...]

Target (issue 16): registering 10,000 files, listing the replicas of a 10,000-file dataset and
``GET /dids/{scope}/{name}`` take a non-admin account at most 10 % longer than root, in the same
run, on both backends.

Per backend a fresh lake (``lacus.service.init_lake`` in a temporary directory; SQLite, or a
throwaway PostgreSQL database) is served by a real ``lacus serve`` subprocess (one uvicorn worker)
on a free loopback port (``_rest.served_lake``). Root registers the dataset ``bench:dataset`` of
``--files`` files on ALPHA_DISK (``rest_list_replicas.register``: registration only) and, so that
the visibility conditions have something to hide, an embargoed dataset ``bench:secret`` of 1,000
files (alice must get 404 for it: checked). Root creates the account ``alice`` (not an admin, logged
in with a password) and her scope ``alice``. Root and alice each keep one keep-alive connection.
Then ``--repeat`` rounds of the cases (``--cases``, default all four); each case's work is cut in
slices and root and alice alternate slice by slice (who goes first swaps every slice and round), so
that the load of this shared machine, which changes from second to second, hits both alike:

* ``register copying``   — ``--files`` new files with their replicas on ALPHA_DISK, a
  ``POST /replicas`` of ``--batch`` files per slice, registered ``copying``: for both accounts the
  same work but the permission checks (the fair comparison). Root into ``bench``, alice into
  ``alice``;
* ``register available`` — the same, registered ``available``, each file's bytes written at its
  deterministic path on ALPHA_DISK beforehand (not timed) for both accounts. Root's registration
  trusts the sizes; alice's (not an admin) is checked against the storage, one ``stat`` per
  file (``service.replicas._require_on_storage``): this case shows what that check costs;
* ``list replicas``      — ``POST /replicas/list`` of ``bench:dataset``, the NDJSON answer
  streamed and parsed (``rest_list_replicas.list_once``), 3 times a round (one per slice);
* ``GET did``            — ``--gets`` sequential ``GET /dids/bench/fileNNNNNN`` over the dataset's
  files in turn, 100 per slice.

Reported per case: each account's median over the rounds of its wall time (summed over its
slices) and of the server process's CPU time meanwhile (``/proc``: its embedded daemons' threads
included, PostgreSQL's own work not), and the ratios alice / root (target: wall <= 1.10). The
load before and after each backend. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _rest import Served, database, machine_note, median, served_lake
from _transfer import chosen_backends
from rest_list_replicas import RSE, SCOPE, list_once
from rest_list_replicas import register as register_dataset

from lacus.client import Client
from lacus.naming import deterministic_path

TARGET = 1.10
USER = "alice"  # the non-admin account, owner of the scope of the same name
SECRET_FILES = 1_000
FILE_BYTES = 16
GET_SLICE = 100  # GETs per slice
LIST_SLICES = 3  # listings per account and round
CASES = ("register copying", "register available", "list replicas", "GET did")


def login(url: str, account: str, password: str) -> str:
    response = httpx.get(
        f"{url}/auth/userpass",
        headers={"X-Rucio-Username": account, "X-Rucio-Password": password},
    )
    response.raise_for_status()
    return response.headers["X-Rucio-Auth-Token"]


def file_specs(scope: str, prefix: str, count: int, *, size: int) -> list[dict[str, Any]]:
    """``count`` files ``scope:prefix_NNNNNN`` with fake checksums."""
    specs = []
    for index in range(count):
        name = f"{prefix}_{index:06d}"
        specs.append(
            {
                "scope": scope,
                "name": name,
                "bytes": size,
                "adler32": f"{zlib.adler32(name.encode()) & 0xFFFFFFFF:08x}",
                "md5": f"{index:032x}",
            }
        )
    return specs


def seed(server: Served, files: int) -> str:
    """The dataset to list, root's embargoed dataset, alice and her scope; alice's token."""
    register_dataset(server.url, server.token, files)
    password = secrets.token_urlsafe(16)
    with Client(server.url, token=server.token) as root:
        secret = file_specs(SCOPE, "secret", SECRET_FILES, size=FILE_BYTES)
        root.add_replicas(RSE, secret, dataset=f"{SCOPE}:secret")
        root.set_embargo(f"{SCOPE}:secret")
        root.add_account(USER, password=password)
        root.add_scope(USER, account=USER)
    return login(server.url, USER, password)


def write_bytes(rse_prefix: Path, specs: list[dict[str, Any]]) -> None:
    """Each file's bytes at its deterministic path on the RSE (the size is all that is checked)."""
    data = b"x" * FILE_BYTES
    for spec in specs:
        target = rse_prefix / deterministic_path(spec["scope"], spec["name"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timed:
    """Wall and server CPU seconds of one account in one case, added up over its slices."""

    wall: float = 0.0
    cpu: float = 0.0


def register_slice(http: httpx.Client, specs: list[dict[str, Any]]) -> None:
    response = http.post("/replicas", json={"rse": RSE, "files": specs})
    if response.status_code != 201:
        raise RuntimeError(f"POST /replicas: {response.status_code} {response.text[:300]}")


def get_slice(http: httpx.Client, paths: list[str]) -> None:
    for path in paths:
        response = http.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")


@dataclass
class Bench:
    """One served lake with root and alice, each with a keep-alive connection; a case's work
    is cut in slices, root and alice alternating slice by slice (who goes first swaps every
    slice), so a change of the machine's load hits both alike."""

    server: Served
    http: dict[str, httpx.Client]  # account → its connection
    rse_prefix: Path  # ALPHA_DISK's directory
    args: argparse.Namespace

    def run(self, case: str, round_: int) -> dict[str, Timed]:
        """Both accounts' time for one round of ``case``."""
        slices = {account: self._slices(case, account, round_) for account in self.http}
        timed = {account: Timed() for account in self.http}
        count = len(slices["root"])
        for index in range(count):
            order = ["root", USER] if (round_ + index) % 2 == 0 else [USER, "root"]
            for account in order:
                work = slices[account][index]
                cpu = server_cpu(self.server.pid)
                start = time.perf_counter()
                work()
                timed[account].wall += time.perf_counter() - start
                timed[account].cpu += server_cpu(self.server.pid) - cpu
        return timed

    def _slices(self, case: str, account: str, round_: int) -> list[Callable[[], None]]:
        http, args = self.http[account], self.args
        scope = SCOPE if account == "root" else USER
        if case.startswith("register"):
            available = case == "register available"
            prefix = f"{'a' if available else 'c'}{round_}"  # new files every round
            specs = file_specs(scope, prefix, args.files, size=FILE_BYTES)
            if available:
                write_bytes(self.rse_prefix, specs)  # not timed
            else:
                specs = [{**spec, "state": "C"} for spec in specs]
            parts = [
                specs[first : first + args.batch] for first in range(0, args.files, args.batch)
            ]
            return [partial(register_slice, http, part) for part in parts]
        if case == "list replicas":
            return [partial(list_once, http, args.files)] * LIST_SLICES
        paths = [f"/dids/{SCOPE}/file{index % args.files:06d}" for index in range(args.gets)]
        step = GET_SLICE
        return [
            partial(get_slice, http, paths[first : first + step])
            for first in range(0, len(paths), step)
        ]


def measure(backend: str, args: argparse.Namespace) -> dict[str, dict[str, list[Timed]]]:
    """Every case's rounds per account on one backend: {case: {"root": [...], USER: [...]}}."""
    runs: dict[str, dict[str, list[Timed]]] = {case: {"root": [], USER: []} for case in args.cases}
    with (
        tempfile.TemporaryDirectory(prefix="lacus-bench-perm-") as temp,
        database(backend) as database_url,
        served_lake(Path(temp) / "lake", database_url) as server,
        ExitStack() as stack,
    ):
        user_token = seed(server, args.files)
        http = {
            account: stack.enter_context(
                httpx.Client(
                    base_url=server.url, headers={"X-Rucio-Auth-Token": token}, timeout=300.0
                )
            )
            for account, token in (("root", server.token), (USER, user_token))
        }
        # the embargo hides root's dataset from alice: it answers as a missing one
        if (status := http[USER].get(f"/dids/{SCOPE}/secret").status_code) != 404:
            raise RuntimeError(f"alice sees the embargoed dataset: {status}")
        bench = Bench(server, http, Path(temp, "lake", "rses", RSE), args)
        for account in http:  # warm-up, not timed
            list_once(http[account], args.files)
            get_slice(http[account], [f"/dids/{SCOPE}/file{i:06d}" for i in range(200)])
        for round_ in range(args.repeat):
            for case in args.cases:
                timed = bench.run(case, round_)
                line = "  ".join(
                    f"{account} {t.wall:7.3f} s (server CPU {t.cpu:6.2f} s)"
                    for account, t in timed.items()
                )
                print(
                    f"  {backend} round {round_ + 1} {case:<18} {line}  "
                    f"(load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
                for account, found in timed.items():
                    runs[case][account].append(found)
    return runs


def report(runs: dict[str, dict[str, list[Timed]]]) -> dict[str, Any]:
    """Per case: each account's median wall and server CPU seconds, and alice / root."""
    result: dict[str, Any] = {}
    for case, by_account in runs.items():
        wall = {account: median([t.wall for t in found]) for account, found in by_account.items()}
        cpu = {account: median([t.cpu for t in found]) for account, found in by_account.items()}
        share = wall[USER] / wall["root"]
        cpu_share = cpu[USER] / cpu["root"] if cpu["root"] else float("nan")
        verdict = "ok" if share <= TARGET else "MISSED"
        print(
            f"  {case:<18} root {wall['root']:7.3f} s  {USER} {wall[USER]:7.3f} s  "
            f"= {share:.2f} x root (target <= {TARGET}: {verdict});  server CPU root "
            f"{cpu['root']:6.2f} s, {USER} {cpu[USER]:6.2f} s = {cpu_share:.2f} x",
            flush=True,
        )
        result[case] = {
            "root_s": round(wall["root"], 4),
            f"{USER}_s": round(wall[USER], 4),
            "ratio": round(share, 3),
            "root_cpu_s": round(cpu["root"], 3),
            f"{USER}_cpu_s": round(cpu[USER], 3),
            "cpu_ratio": round(cpu_share, 3),
            "root_runs": [round(t.wall, 4) for t in by_account["root"]],
            f"{USER}_runs": [round(t.wall, 4) for t in by_account[USER]],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="files registered and listed")
    parser.add_argument("--batch", type=int, default=1_000, help="files per registration call")
    parser.add_argument("--gets", type=int, default=2_000, help="sequential GETs per run")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}"
    )
    args = parser.parse_args()
    args.cases = [case.strip() for case in args.cases.split(",")]
    if unknown := set(args.cases) - set(CASES):
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the server

    started = time.monotonic()
    results: dict[str, Any] = {}
    for backend in chosen_backends(args.backend):
        print(f"{backend}: before, {machine_note()}", flush=True)
        runs = measure(backend, args)
        print(
            f"{backend}: {args.files} files (calls of {args.batch}), {args.gets} GETs, "
            f"median of {args.repeat}, root vs {USER} (not an admin); after, {machine_note()}"
        )
        results[backend] = report(runs)
    print(
        json.dumps(
            {
                "benchmark": "permission_cost",
                "files": args.files,
                "batch": args.batch,
                "gets": args.gets,
                "repeat": args.repeat,
                "target": TARGET,
                "results": results,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
