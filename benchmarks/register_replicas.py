"""Register file replicas in bulk through the service layer, against one raw ``executemany``.

    .venv/bin/python benchmarks/register_replicas.py [--files 100000] [--backend both]
        [--batch 10000] [--repeat 1] [--profile DIR]

Target: ``lacus.service.replicas.add_replicas`` registers files at >= 50% of the rate of inserting
the same rows (file DID, replica, and since issue 6 the file's ``replica.available`` outbox row)
with one raw DBAPI ``cursor.executemany`` per table, in one transaction, on the same
kind of database (psycopg 3 pipelines its executemany).

Every measurement runs in its own child process on a fresh database (SQLite file in a temporary
directory; PostgreSQL database created and dropped, as tests/conftest.py does) migrated with
``lacus.db.upgrade`` and seeded with ``seed_catalog`` (root, three RSEs) plus the scope ``bench``.
Two variants:

* ``plain``   — each file becomes a file DID plus a replica on ALPHA_DISK;
* ``dataset`` — the same, and every file is attached to the dataset ``bench:dataset`` (created by
  the first call); the raw baseline then also inserts the dataset row and one ``contents`` row per
  file.

The service registers ``--files`` files in calls of ``--batch`` files (one transaction per call),
each file with the path an upload sends (the deterministic path, which the service checks). The
raw baseline gets its parameter tuples ready-made (not timed): it is the database's own ceiling.
Contenders alternate, ``--repeat`` times; the median is reported. The last line is JSON.
PostgreSQL comes from ``LACUS_TEST_POSTGRES_URL`` (default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from _util import (
    POSTGRES_URL,
    child_answer,
    postgres_reachable,
    python_child,
    run_child,
    throwaway_postgres,
)

SCOPE = "bench"
DATASET = "dataset"
RSE = "ALPHA_DISK"
ROOT_ACCOUNT = "root"  # lacus.service.lake.ROOT
TARGET = 0.5
BACKENDS = ("sqlite", "postgresql")
VARIANTS = ("plain", "dataset")


# -- child: one measurement on a fresh database ---------------------------------------------


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database; dropped (PostgreSQL) when the block ends."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'catalog.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def make_specs(count: int) -> list[dict[str, Any]]:
    """The files an upload registers: DID, size, adler32, md5 and the deterministic path."""
    from lacus.naming import deterministic_path

    return [
        {
            "scope": SCOPE,
            "name": f"run_{index:07d}.raw",
            "bytes": 1024 + index,
            "adler32": f"{(index * 2654435761) & 0xFFFFFFFF:08x}",
            "md5": f"{index:032x}",
            "path": deterministic_path(SCOPE, f"run_{index:07d}.raw"),
        }
        for index in range(count)
    ]


def child(
    mode: str, backend: str, variant: str, files: int, batch: int, profile: str | None
) -> None:
    """Create and seed a database, then time either the service or the raw inserts."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the database
    from lacus.core import scopes
    from lacus.db import upgrade
    from lacus.service import Lake, Settings
    from lacus.service.lake import ROOT, seed_catalog

    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-register-"))
    try:
        with fresh_database(backend, workdir) as url:
            lake = Lake(Settings(lake_dir=workdir, database_url=url))
            try:
                upgrade(lake.engine)
                with lake.write() as conn:
                    seed_catalog(conn, secrets.token_urlsafe(12), workdir)
                    scopes.add_scope(conn, SCOPE, account=ROOT)
                specs = make_specs(files)
                if mode == "service":
                    seconds = time_service(lake, specs, variant, batch, profile)
                else:
                    seconds = time_raw(lake, specs, variant)
                counts = count_rows(lake)
            finally:
                lake.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    expected = {"dids": files + (variant == "dataset"), "replicas": files}
    expected["contents"] = files if variant == "dataset" else 0
    if counts != expected:
        raise RuntimeError(f"{mode}: the catalog holds {counts}, expected {expected}")
    child_answer(seconds, **counts)


def time_service(
    lake: Any, specs: list[dict[str, Any]], variant: str, batch: int, profile: str | None
) -> float:
    from lacus.service.lake import ROOT, Principal
    from lacus.service.replicas import add_replicas

    principal = Principal(ROOT, admin=True)
    dataset = (SCOPE, DATASET) if variant == "dataset" else None
    parts = [specs[start : start + batch] for start in range(0, len(specs), batch)]
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for part in parts:
        add_replicas(lake, principal, RSE, part, dataset=dataset)  # type: ignore[arg-type]
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    if profiler is not None and profile is not None:
        os.makedirs(profile, exist_ok=True)
        out = os.path.join(profile, f"register-{lake.engine.dialect.name}-{variant}.pstats")
        profiler.dump_stats(out)
        stats = pstats.Stats(out, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    return seconds


# The columns the service sets; the others keep their defaults, in both contenders.
DID_COLUMNS = (
    "scope", "name", "did_type", "account", "is_open", "bytes", "length", "adler32", "md5",
    "created_at", "updated_at",
)  # fmt: skip
REPLICA_COLUMNS = (
    "scope", "name", "rse_id", "bytes", "adler32", "md5", "path", "state", "created_at",
    "updated_at", "accessed_at", "tombstone",
)  # fmt: skip
CONTENT_COLUMNS = ("scope", "name", "child_scope", "child_name", "child_type", "created_at")
EVENT_COLUMNS = ("event_type", "scope", "name", "payload", "created_at")


def time_raw(lake: Any, specs: list[dict[str, Any]], variant: str) -> float:
    """The same rows, one ``executemany`` per table, one transaction, on a raw DBAPI connection."""
    from sqlalchemy import select

    from lacus.core.clock import utcnow
    from lacus.db.tables import rses

    with lake.read() as conn:
        rse_id = conn.execute(select(rses.c.id).where(rses.c.rse == RSE)).scalar_one()
    sqlite = lake.engine.dialect.name == "sqlite"
    now: Any = utcnow()
    if sqlite:  # what SQLAlchemy's DateTime stores on SQLite
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    mark = "?" if sqlite else "%s"

    def sql(table: str, columns: tuple[str, ...]) -> str:
        marks = ", ".join([mark] * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    did_rows = [
        (s["scope"], s["name"], "file", ROOT_ACCOUNT, None, s["bytes"], None, s["adler32"],
         s["md5"], now, now)
        for s in specs
    ]  # fmt: skip
    replica_rows = [
        (s["scope"], s["name"], rse_id, s["bytes"], s["adler32"], s["md5"], None, "available",
         now, now, None, None)
        for s in specs
    ]  # fmt: skip
    content_rows = [(SCOPE, DATASET, s["scope"], s["name"], "file", now) for s in specs]
    # the outbox row of each file (issue 6: its replica.available event), ready-made
    event_rows = [
        ("replica.available", s["scope"], s["name"], orjson.dumps({
            "scope": s["scope"], "name": s["name"], "rse": RSE, "bytes": s["bytes"],
            "adler32": s["adler32"], "md5": s["md5"], "pfn": f"file:///lake/{s['name']}",
            "new_file": True, "created_at": str(now)}).decode(), now)
        for s in specs
    ]  # fmt: skip
    total = sum(s["bytes"] for s in specs)
    dataset_row = (SCOPE, DATASET, "dataset", ROOT_ACCOUNT, True, total, len(specs), None, None,
                   now, now)  # fmt: skip
    raw = lake.engine.raw_connection()
    try:
        cursor = raw.cursor()
        start = time.perf_counter()
        if sqlite:
            cursor.execute("BEGIN IMMEDIATE")
        cursor.executemany(sql("dids", DID_COLUMNS), did_rows)
        cursor.executemany(sql("replicas", REPLICA_COLUMNS), replica_rows)
        cursor.executemany(sql("events", EVENT_COLUMNS), event_rows)
        if variant == "dataset":
            cursor.execute(sql("dids", DID_COLUMNS), dataset_row)
            cursor.executemany(sql("contents", CONTENT_COLUMNS), content_rows)
        raw.commit()
        seconds = time.perf_counter() - start
        cursor.close()
    finally:
        raw.close()
    return seconds


def count_rows(lake: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from lacus.db.tables import contents, dids, replicas

    with lake.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (dids, replicas, contents)
        }


# -- parent: alternate the contenders, report ----------------------------------------------


def measure(mode: str, backend: str, variant: str, args: argparse.Namespace) -> tuple[float, int]:
    argv = python_child(
        os.path.abspath(__file__),
        "--child",
        mode,
        "--backend",
        backend,
        "--variant",
        variant,
        "--files",
        str(args.files),
        "--batch",
        str(args.batch),
    )
    if args.profile and mode == "service":
        argv += ["--profile", args.profile]
    run = run_child(argv)
    return run.seconds, run.peak_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--batch", type=int, default=10_000, help="files per service call")
    parser.add_argument("--variant", choices=[*VARIANTS, "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", help="write cProfile stats of the service runs here")
    parser.add_argument("--child", choices=["service", "raw"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backend, args.variant, args.files, args.batch, args.profile)
        return

    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]
    if "postgresql" in backends and (why := postgres_reachable()) is not None:
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: skipped ({why})")
        backends.remove("postgresql")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.files} files, "
        f"service calls of {args.batch} files, {args.repeat} run(s) each (median)"
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    for backend in backends:
        for variant in variants:
            runs: dict[str, list[tuple[float, int]]] = {"raw": [], "service": []}
            for _ in range(args.repeat):
                for mode in ("raw", "service"):  # alternated: drifts hit both alike
                    runs[mode].append(measure(mode, backend, variant, args))
            rate = {
                mode: statistics.median(args.files / seconds for seconds, _ in found)
                for mode, found in runs.items()
            }
            rss = {mode: max(peak for _, peak in found) / 1e6 for mode, found in runs.items()}
            share = rate["service"] / rate["raw"]
            label = f"{backend} {variant}"
            print(
                f"{label:<20} raw executemany {rate['raw']:9,.0f} files/s"
                f"  (peak RSS {rss['raw']:5.0f} MB)"
            )
            print(
                f"{label:<20} service         {rate['service']:9,.0f} files/s"
                f"  (peak RSS {rss['service']:5.0f} MB)  = {share:.2f} x raw"
                f" (target >= {TARGET}: {'ok' if share >= TARGET else 'MISSED'})",
                flush=True,
            )
            results.setdefault(backend, {})[variant] = {
                "service_files_s": round(rate["service"]),
                "raw_files_s": round(rate["raw"]),
                "ratio": round(share, 3),
                "service_peak_rss_mb": round(rss["service"]),
                "raw_peak_rss_mb": round(rss["raw"]),
            }
    print(
        json.dumps(
            {
                "benchmark": "register_replicas",
                "files": args.files,
                "batch": args.batch,
                "repeat": args.repeat,
                "target": TARGET,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
