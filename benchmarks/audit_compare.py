"""The audit's comparison of an RSE's catalog with its storage listing, at 10 million replicas.

    .venv/bin/python benchmarks/audit_compare.py [--replicas 10000000]
        [--backend sqlite|postgresql|both] [--repeat 1] [--dir /tmp] [--profile DIR]

Measured: ``lacus.core.audit_compare.compare(audits.snapshot(conn, rse_id, judged_before=...),
listing, dark_before=..., limit=...)`` end to end, as ``daemons.auditor.audit_rse`` runs it: the
first catalog snapshot (every replica of the RSE with its path computed and sorted by the
database at audit time, read through the driver's own cursor) merged with the storage's
listing. Only the listing is mocked: instead of a backend's ``scan``, ``FileStat``
objects parsed from a sorted file of ``path<TAB>size<TAB>mtime`` lines. Targets: >= 500,000
paths/s (catalog replicas compared per second, each with its listing entry) and a peak RSS of
the process <= 200 MB.

Baselines, in the same run (the floor: what reading the two streams costs with nothing done to
them): ``listing`` reads the same file into the same ``FileStat`` objects (what a storage scan
yields) and counts them; ``rows`` reads the snapshot's own batches (``audits.snapshot_batches``:
the same statement, settings and driver cursor) and counts them. The merge reads both streams in one
thread, so its floor is the *sum* of the two, and the ratio is (listing + rows) / compare: 1.0
means the snapshot and the merge cost nothing beyond reading the two streams.

The catalog is built once per backend, untimed, by raw bulk inserts (PostgreSQL ``COPY`` through
psycopg, SQLite ``executemany``) of ``dids`` and ``replicas`` rows into a catalog migrated with
``lacus.db.upgrade`` and seeded with ``seed_catalog`` (like register_replicas.py), with every
index in place (foreign keys are not checked row by row while building: the rows are consistent
by construction), then vacuumed (PostgreSQL; ANALYZE on SQLite); the snapshot's plan is
printed. N files ``bench:file_NNNNNNNNN`` on ALPHA_DISK, deterministic RSE (no stored path: the
path is the md5 layout of ``lacus.naming.deterministic_path``). The listing holds their
deterministic paths, with planted differences (seeded, spread over the whole range): 200
replicas missing and 100 with another size (lost), 25 missing replicas changed within the grace
period and 25 missing ``bad`` ones (not judged: never lost), 200 old files the catalog does not
know (dark) and 20 young ones (too young to be dark). Every run checks the exact lost and dark
candidates found against the planted ones. SQLite: a file in ``--dir``; PostgreSQL: a throwaway
database (``LACUS_TEST_POSTGRES_URL``, default postgres@127.0.0.1:5432). Each measurement runs in
its own child process (peak RSS: its VmHWM, imports included; also its own CPU time, which
does not count PostgreSQL's work in the server), contenders alternated
``--repeat`` times, median reported. ``--profile DIR``: one more compare run per backend under
cProfile (not counted), its top functions printed. The last line is JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import (
    POSTGRES_URL,
    Run,
    child_answer,
    machine_note,
    own_peak_rss,
    postgres_reachable,
    python_child,
    run_child,
    throwaway_postgres,
)

SCOPE = "bench"
RSE = "ALPHA_DISK"
BACKENDS = ("sqlite", "postgresql")
MODES = ("listing", "rows", "compare")
TARGET_RATE = 500_000  # paths/s
TARGET_RSS = 200  # MB
GRACE = 3600.0  # audit_grace_seconds' default
FRACTION = 0.01  # audit_max_fraction's default
KEPT_MIN = 10_000  # daemons.auditor.KEPT_MIN
PLANTED = {"missing": 200, "wrong_size": 100, "young": 25, "bad": 25}
DARK, YOUNG_DARK = 200, 20
BATCH = 50_000


def name_of(index: int) -> str:
    return f"file_{index:09d}"


def size_of(index: int) -> int:
    return 1_000 + (index * 7_919) % 9_000_000


# -- the plan: which replicas differ from the storage ------------------------------------------


def make_plan(replicas: int) -> dict[str, Any]:
    """The planted differences, by replica index (seeded: every run plants the same)."""
    if replicas < 2 * sum(PLANTED.values()):
        raise SystemExit(f"--replicas must be at least {2 * sum(PLANTED.values())}")
    rng = random.Random(15)
    chosen = rng.sample(range(replicas), sum(PLANTED.values()))
    plan: dict[str, Any] = {"replicas": replicas, "now": time.time()}
    start = 0
    for kind, count in PLANTED.items():
        plan[kind] = sorted(chosen[start : start + count])
        start += count
    return plan


def expected(plan: dict[str, Any]) -> dict[str, Any]:
    """What ``compare`` must find: counts, lost paths with their reason, dark paths."""
    from lacus.naming import deterministic_path

    def path_of(i: int) -> str:
        return deterministic_path(SCOPE, name_of(i))

    lost = {path_of(i): "missing on the storage" for i in plan["missing"]}
    for i in plan["wrong_size"]:
        lost[path_of(i)] = f"{size_of(i) + 1} bytes on the storage, {size_of(i)} in the catalog"
    dark = sorted(deterministic_path(SCOPE, f"dark_{k:05d}") for k in range(DARK))
    absent = len(plan["missing"]) + len(plan["young"]) + len(plan["bad"])
    return {
        "files": plan["replicas"],
        "listed": plan["replicas"] - absent + DARK + YOUNG_DARK,
        "lost": lost,
        "dark": dark,
    }


def write_listing(plan: dict[str, Any], path: Path) -> int:
    """The storage listing: sorted ``path\\tsize\\tmtime`` lines; returns how many."""
    from lacus.naming import deterministic_path

    old = plan["now"] - 2 * 86_400
    absent = set(plan["missing"]) | set(plan["young"]) | set(plan["bad"])
    wrong = set(plan["wrong_size"])
    lines = [
        f"{deterministic_path(SCOPE, name_of(i))}\t{size_of(i) + (i in wrong)}\t{old:.3f}\n"
        for i in range(plan["replicas"])
        if i not in absent
    ]
    lines += [
        f"{deterministic_path(SCOPE, f'dark_{k:05d}')}\t{k + 1}\t{old:.3f}\n" for k in range(DARK)
    ]
    young = plan["now"] - 60
    lines += [
        f"{deterministic_path(SCOPE, f'young_{k:05d}')}\t{k + 1}\t{young:.3f}\n"
        for k in range(YOUNG_DARK)
    ]
    lines.sort()  # a tab sorts before every path character: the order of the paths
    with open(path, "w", encoding="utf-8") as stream:
        for start in range(0, len(lines), BATCH):
            stream.write("".join(lines[start : start + BATCH]))
    return len(lines)


def read_listing(path: str) -> Iterator[Any]:
    """The mocked storage scan: one ``FileStat`` per line, in the file's order."""
    from lacus.storage import FileStat

    with open(path, encoding="utf-8", buffering=1 << 20) as stream:
        for line in stream:
            name, size, mtime = line.split("\t")
            yield FileStat(name, int(size), float(mtime))


# -- building the catalog ----------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'catalog.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def open_lake(url: str, workdir: Path) -> Any:
    from lacus.service import Lake, Settings

    return Lake(Settings(lake_dir=workdir, database_url=url))


def build(plan: dict[str, Any], url: str, workdir: Path) -> dict[str, Any]:
    """Migrate, seed, then bulk-insert the file DIDs and their replicas on ALPHA_DISK."""
    import secrets

    from sqlalchemy import select

    from lacus.core import scopes
    from lacus.db import upgrade
    from lacus.db.tables import rses
    from lacus.service.lake import ROOT, seed_catalog

    lake = open_lake(url, workdir)
    try:
        upgrade(lake.engine)
        with lake.write() as conn:
            seed_catalog(conn, secrets.token_urlsafe(12), workdir)
            scopes.add_scope(conn, SCOPE, account=ROOT)
        with lake.read() as conn:
            rse_id = int(conn.execute(select(rses.c.id).where(rses.c.rse == RSE)).scalar_one())
        start = time.perf_counter()
        if lake.engine.dialect.name == "sqlite":
            _build_sqlite(lake, plan, rse_id)
        else:
            _build_postgresql(lake, plan, rse_id)
        seconds = time.perf_counter() - start
        _vacuum(lake)
        explained = snapshot_plan(lake, rse_id, plan)
    finally:
        lake.close()
    return {
        "rse_id": rse_id,
        "build_seconds": round(seconds, 1),
        "plan": explained,
    }


def _vacuum(lake: Any) -> None:
    """VACUUM ANALYZE ``replicas`` on PostgreSQL (fresh statistics and visibility map after
    the COPY; autovacuum is off on the test server), ANALYZE on SQLite."""
    raw = lake.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if lake.engine.dialect.name == "sqlite":
            driver.execute("ANALYZE")
        else:
            driver.autocommit = True
            driver.execute("VACUUM ANALYZE replicas")
            driver.autocommit = False  # back in the pool: SET LOCAL needs a transaction
    finally:
        raw.close()


def _replica_state(plan: dict[str, Any]) -> dict[int, tuple[str, bool]]:
    """Index → (state, changed within the grace period) of the replicas not plainly old."""
    odd = {i: ("available", True) for i in plan["young"]}
    odd.update({i: ("bad", False) for i in plan["bad"]})
    return odd


def _rows(plan: dict[str, Any], old: str, new: str) -> Iterator[tuple[Any, ...]]:
    """(index, name, bytes, adler32, md5, state, updated_at) of every replica, in key order."""
    odd = _replica_state(plan)
    for i in range(plan["replicas"]):
        state, young = odd.get(i, ("available", False))
        yield (
            i,
            name_of(i),
            size_of(i),
            f"{i & 0xFFFFFFFF:08x}",
            f"{i:032x}",
            state,
            (new if young else old),
        )


def plan_moment(plan: dict[str, Any]) -> datetime:
    """When the plan was made, as the catalog stores times (naive UTC, like ``utcnow``)."""
    return datetime.fromtimestamp(plan["now"], UTC).replace(tzinfo=None)


def _stamps(plan: dict[str, Any]) -> tuple[str, str]:
    """updated_at of the old replicas (2 days before the plan) and of the young ones (when the
    plan was made: after ``judged_before``), as stored."""
    now = plan_moment(plan)
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's DateTime stores on SQLite; COPY reads it
    return (now - timedelta(days=2)).strftime(fmt), now.strftime(fmt)


def _build_sqlite(lake: Any, plan: dict[str, Any], rse_id: int) -> None:
    old, new = _stamps(plan)
    raw = lake.engine.raw_connection()
    try:
        cursor = raw.cursor()
        # building only (the runs use the lake's own settings): the rows are consistent by
        # construction, so no foreign key is looked up per row and nothing waits for the disk
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute("BEGIN IMMEDIATE")
        cursor.executemany(
            "INSERT INTO dids (scope, name, did_type, account, bytes, adler32, md5, created_at,"
            " updated_at) VALUES (?, ?, 'file', 'root', ?, ?, ?, ?, ?)",
            ((SCOPE, n, b, a, m, old, old) for _, n, b, a, m, _, _ in _rows(plan, old, new)),
        )
        cursor.executemany(
            "INSERT INTO replicas (scope, name, rse_id, bytes, adler32, md5, state, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (SCOPE, n, rse_id, b, a, m, s, old, u)
                for _, n, b, a, m, s, u in _rows(plan, old, new)
            ),
        )
        raw.commit()
        cursor.execute("ANALYZE")
        cursor.close()
    finally:
        raw.close()


def _build_postgresql(lake: Any, plan: dict[str, Any], rse_id: int) -> None:
    old, new = _stamps(plan)
    raw = lake.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET synchronous_commit = off")
        # no per-row foreign key triggers (this session only; the constraints stay): the rows
        # are consistent by construction, and an RI check per row made COPY 10x slower
        cursor.execute("SET session_replication_role = replica")
        with cursor.copy(
            "COPY dids (scope, name, did_type, account, bytes, adler32, md5, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            block: list[str] = []
            for _, n, b, a, m, _, _ in _rows(plan, old, new):
                block.append(f"{SCOPE}\t{n}\tfile\troot\t{b}\t{a}\t{m}\t{old}\t{old}\n")
                if len(block) == BATCH:
                    copy.write("".join(block))
                    block.clear()
            copy.write("".join(block))
        with cursor.copy(
            "COPY replicas (scope, name, rse_id, bytes, adler32, md5, state, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            block = []
            for _, n, b, a, m, s, u in _rows(plan, old, new):
                block.append(f"{SCOPE}\t{n}\t{rse_id}\t{b}\t{a}\t{m}\t{s}\t{old}\t{u}\n")
                if len(block) == BATCH:
                    copy.write("".join(block))
                    block.clear()
            copy.write("".join(block))
        raw.commit()
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor.execute("VACUUM ANALYZE dids")
        cursor.close()
        raw.driver_connection.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()


# -- the contenders (each in its own child) ----------------------------------------------------


def snapshot_params(lake: Any, rse_id: int, judged_before: datetime) -> tuple[Any, ...]:
    """The snapshot statement's parameters as its driver gets them (``audits.snapshot``)."""
    from lacus.db.tables import replicas

    dialect = lake.engine.dialect
    bind = replicas.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    return (bind(judged_before) if bind is not None else judged_before, rse_id)


def time_listing(listing: str) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    count = sum(1 for _ in read_listing(listing))
    return time.perf_counter() - start, {"listed": count}


def time_rows(lake: Any, rse_id: int, judged_before: datetime) -> tuple[float, dict[str, int]]:
    """The snapshot's own batches (same statement, settings, cursor), rows only counted."""
    from lacus.core.audits import snapshot_batches

    start = time.perf_counter()
    with lake.read() as conn:
        count = 0
        for rows in snapshot_batches(conn, rse_id, judged_before=judged_before):
            count += len(rows)
    seconds = time.perf_counter() - start
    return seconds, {"rows": count}


def snapshot_plan(lake: Any, rse_id: int, plan: dict[str, Any]) -> str:
    """How the database reads the snapshot (its plan's first lines)."""
    from lacus.core.audits import prepare_snapshot, snapshot_sql

    params = snapshot_params(lake, rse_id, plan_moment(plan) - timedelta(seconds=GRACE))
    with lake.read() as conn:
        driver: Any = prepare_snapshot(conn)
        sqlite = lake.engine.dialect.name == "sqlite"
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        rows = driver.execute(explain + snapshot_sql(conn), params).fetchall()
    lines = [str(row[-1]).strip() for row in rows]
    return "; ".join(line for line in lines if not line.startswith("Sort Key"))[:300]


def time_compare(
    lake: Any, rse_id: int, listing: str, plan: dict[str, Any], profile: str | None
) -> tuple[float, dict[str, int]]:
    from lacus.core import audits
    from lacus.core.audit_compare import compare

    judged_before = plan_moment(plan) - timedelta(seconds=GRACE)
    dark_before = plan["now"] - GRACE
    limit = int(FRACTION * plan["replicas"]) + KEPT_MIN
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    with lake.read() as conn:
        found = compare(
            audits.snapshot(conn, rse_id, judged_before=judged_before),
            read_listing(listing),
            dark_before=dark_before,
            limit=limit,
        )
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    check(found, plan)
    if profiler is not None and profile is not None:
        os.makedirs(profile, exist_ok=True)
        out = os.path.join(profile, f"audit-compare-{lake.engine.dialect.name}.pstats")
        profiler.dump_stats(out)
        stats = pstats.Stats(out, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
    return seconds, {"files": found.files, "listed": found.listed}


def check(found: Any, plan: dict[str, Any]) -> None:
    """The comparison found exactly the planted differences."""
    want = expected(plan)
    lost = {entry.path: why for entry, why in found.lost}
    dark = [stat.path for stat in found.dark]
    problems = []
    if (found.files, found.listed) != (want["files"], want["listed"]):
        problems.append(f"files, listed = {found.files}, {found.listed}")
    if lost != want["lost"] or found.lost_count != len(want["lost"]):
        problems.append(f"{found.lost_count} lost, {len(set(lost) ^ set(want['lost']))} wrong")
    if dark != want["dark"] or found.dark_count != len(want["dark"]):
        problems.append(f"{found.dark_count} dark, {len(set(dark) ^ set(want['dark']))} wrong")
    if problems:
        raise RuntimeError(f"the comparison is wrong: {'; '.join(problems)} (expected {want})")


def child(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(args.workdir)
    plan = json.loads((workdir / "plan.json").read_text())
    if args.child == "write-listing":
        start = time.perf_counter()
        lines = write_listing(plan, workdir / "listing.tsv")
        child_answer(time.perf_counter() - start, lines=lines)
        return
    from lacus.core import audits  # the snapshot's PostgreSQL settings, if given

    if args.work_mem is not None:
        audits.SNAPSHOT_WORK_MEM = args.work_mem
    if args.parallel_workers is not None:
        audits.SNAPSHOT_PARALLEL_WORKERS = args.parallel_workers
    if args.child == "build":
        answer = build(plan, args.url, workdir)
        child_answer(float(answer["build_seconds"]), **answer)
        return
    listing = str(workdir / "listing.tsv")
    import lacus.storage  # noqa: F401 - imported before any clock starts

    cpu = time.process_time()
    if args.child == "listing":
        seconds, counts = time_listing(listing)
        cpu = time.process_time() - cpu
        child_answer(seconds, start_rss=own_peak_rss(), cpu_seconds=cpu, **counts)
        return
    lake = open_lake(args.url, workdir)
    try:
        start_rss = own_peak_rss()
        cpu = time.process_time()
        if args.child == "rows":
            judged_before = plan_moment(plan) - timedelta(seconds=GRACE)
            seconds, counts = time_rows(lake, args.rse_id, judged_before)
            if counts["rows"] != plan["replicas"]:
                raise RuntimeError(f"{counts['rows']} rows streamed, not {plan['replicas']}")
        else:
            seconds, counts = time_compare(lake, args.rse_id, listing, plan, args.profile)
        cpu = time.process_time() - cpu  # (the check of the result included: it is tiny)
    finally:
        lake.close()
    child_answer(seconds, start_rss=start_rss, cpu_seconds=cpu, **counts)


# -- the parent --------------------------------------------------------------------------------


def run_mode(args: argparse.Namespace, mode: str, workdir: Path, **extra: Any) -> Run:
    argv = python_child(
        os.path.abspath(__file__), "--child", mode, "--workdir", str(workdir)
    )  # fmt: skip
    for key, value in extra.items():
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return run_child(argv)


def measure_backend(args: argparse.Namespace, backend: str, workdir: Path) -> dict[str, Any]:
    replicas = args.replicas
    with fresh_database(backend, workdir) as url:
        built = run_mode(
            args,
            "build",
            workdir,
            url=url,
            work_mem=args.work_mem,
            parallel_workers=args.parallel_workers,
        )
        rse_id = int(built.answer["rse_id"])  # type: ignore[call-overload]
        print(
            f"{backend}: catalog of {replicas:,} replicas loaded in {built.seconds:.0f} s "
            f"(COPY / executemany, indexes in place)\n  snapshot plan: {built.answer['plan']}",
            flush=True,
        )
        tuning = {"work_mem": args.work_mem, "parallel_workers": args.parallel_workers}
        runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
        for round_ in range(args.repeat):
            order = list(MODES) if round_ % 2 == 0 else list(reversed(MODES))
            for mode in order:
                run = run_mode(args, mode, workdir, url=url, rse_id=rse_id, **tuning)
                runs[mode].append(run)
                cpu = float(run.answer["cpu_seconds"])  # type: ignore[arg-type]
                print(
                    f"  {backend:<10} {mode:<8} {run.seconds:7.1f} s "
                    f"{replicas / run.seconds:10,.0f} paths/s  (this process on a CPU "
                    f"{cpu:6.1f} s)  peak RSS {run.peak_rss / 1e6:5.0f} MB (before the run "
                    f"{int(run.answer['start_rss']) / 1e6:3.0f} MB)",  # type: ignore[call-overload]
                    flush=True,
                )
        if args.profile:
            run_mode(args, "compare", workdir, url=url, rse_id=rse_id, profile=args.profile)
        if backend == "sqlite":
            database_bytes = sum(
                p.stat().st_size for p in workdir.glob("catalog.db*") if p.is_file()
            )
        else:
            database_bytes = 0
    seconds = {mode: statistics.median(r.seconds for r in found) for mode, found in runs.items()}
    cpu = {
        mode: statistics.median(float(r.answer["cpu_seconds"]) for r in found)  # type: ignore[arg-type]
        for mode, found in runs.items()
    }
    rss = {mode: max(r.peak_rss for r in found) / 1e6 for mode, found in runs.items()}
    baseline = seconds["listing"] + seconds["rows"]
    rate = replicas / seconds["compare"]
    share = baseline / seconds["compare"]
    print(
        f"{backend:<10} listing (baseline)  {seconds['listing']:7.1f} s "
        f"{replicas / seconds['listing']:10,.0f} paths/s  peak RSS {rss['listing']:4.0f} MB"
        f"  (on a CPU {cpu['listing']:.1f} s)"
    )
    print(
        f"{backend:<10} rows (baseline)     {seconds['rows']:7.1f} s "
        f"{replicas / seconds['rows']:10,.0f} paths/s  peak RSS {rss['rows']:4.0f} MB"
        f"  (on a CPU {cpu['rows']:.1f} s)"
    )
    print(
        f"{backend:<10} compare             {seconds['compare']:7.1f} s {rate:10,.0f} paths/s  "
        f"peak RSS {rss['compare']:4.0f} MB  = {share:.2f} x (listing + rows)"
        f"  target >= {TARGET_RATE:,} paths/s: {'ok' if rate >= TARGET_RATE else 'MISSED'},"
        f" RSS <= {TARGET_RSS} MB: {'ok' if rss['compare'] <= TARGET_RSS else 'MISSED'}"
        f"  (on a CPU {cpu['compare']:.1f} s: {replicas / cpu['compare']:,.0f} paths/s)",
        flush=True,
    )
    result: dict[str, Any] = {
        "build_s": round(built.seconds, 1),
        "plan": built.answer["plan"],
        "compare_s": round(seconds["compare"], 2),
        "listing_s": round(seconds["listing"], 2),
        "rows_s": round(seconds["rows"], 2),
        "cpu_s": {mode: round(value, 2) for mode, value in cpu.items()},
        "paths_s": round(rate),
        "ratio_to_listing_plus_rows": round(share, 3),
        "compare_peak_rss_mb": round(rss["compare"]),
        "listing_peak_rss_mb": round(rss["listing"]),
        "rows_peak_rss_mb": round(rss["rows"]),
    }
    if database_bytes:
        result["sqlite_bytes"] = database_bytes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=10_000_000)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the SQLite catalog and listing go")
    parser.add_argument("--profile", help="one more compare run per backend under cProfile")
    parser.add_argument(
        "--work-mem", help="PostgreSQL: the snapshot's work_mem (default audits.SNAPSHOT_WORK_MEM)"
    )
    parser.add_argument(
        "--parallel-workers",
        type=int,
        help="PostgreSQL: the snapshot's max_parallel_workers_per_gather "
        "(default audits.SNAPSHOT_PARALLEL_WORKERS)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rse-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    if "postgresql" in backends and (why := postgres_reachable()) is not None:
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: skipped ({why})")
        backends.remove("postgresql")
    print(
        f"python {sys.version.split()[0]}, {machine_note()}; {args.replicas:,} replicas, "
        f"{args.repeat} run(s) each (median)",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-audit-", dir=args.dir))
    try:
        plan = make_plan(args.replicas)
        (workdir / "plan.json").write_text(json.dumps(plan))
        written = run_mode(args, "write-listing", workdir)
        print(
            f"listing of {int(written.answer['lines']):,} lines written in "  # type: ignore[call-overload]
            f"{written.seconds:.0f} s ({(workdir / 'listing.tsv').stat().st_size / 1e6:,.0f} MB)",
            flush=True,
        )
        results = {backend: measure_backend(args, backend, workdir) for backend in backends}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"after: {machine_note()}")
    print(
        json.dumps(
            {
                "benchmark": "audit_compare",
                "replicas": args.replicas,
                "repeat": args.repeat,
                "target_paths_s": TARGET_RATE,
                "target_rss_mb": TARGET_RSS,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
