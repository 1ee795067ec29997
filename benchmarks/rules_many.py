"""Many small rules on PostgreSQL: 10,000 rules queued at once, evaluated by 1 and by 3 processes.

    .venv/bin/python benchmarks/rules_many.py [--rules 10000] [--files-per-rule 5] [--repeat 1]
        [--quick] [--via python|cli] [--profile DIR]

The catalog (built once, in a template database): ``--rules`` datasets of ``--files-per-rule``
files each, every file with an available replica on SOURCE_DISK (tier=0) only, five empty RSEs
T1_DISK_1..5 (tier=1). Then one rule per dataset, 2 copies on ``tier=1`` (grouping DATASET: a
dataset's files go to the same 2 RSEs), all added with ``core.rules.add_rule`` in one transaction
(timed: that is the rules/s of adding) and so queued for the evaluator.

Every contender gets its own copy of that database (``CREATE DATABASE ... TEMPLATE``):

* ``raw``         — one process inserts the lock and request rows the rules need (2 per file
  each) with one plain DBAPI ``executemany`` per table, in one transaction;
* ``raw/20``      — the same, committing every 20 rules (as the evaluator does);
* ``evaluator x1`` — one evaluator process works the queue until it is empty;
* ``evaluator x3`` — three evaluator processes started at once on the same database.

Evaluator processes (``--via python``, the default) are children that import Lacus, open their
connection, wait for a go and then call ``run_once(lake, DAEMONS["evaluator"])``; the time is from
the first start to the last end (CLOCK_MONOTONIC, shared by the processes), start-up excluded.
``--via cli`` runs ``lacus daemon evaluator --once --lake DIR`` instead (``LACUS_DATABASE_URL``
pointing at the copy), timed from spawn to exit, interpreter start-up included.

Checked after each evaluator run: the queue is empty; ``rule_history`` has exactly one
``evaluated`` entry per rule; every rule has exactly 2 x files-per-rule locks, every file of it 2
distinct RSEs, one request per lock; no rule has an error. ``--profile DIR`` adds a single
process run under cProfile with SQL statement timings (not counted). The last line is JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _util import (
    POSTGRES_URL,
    child_answer,
    own_peak_rss,
    postgres_reachable,
    python_child,
    run_child,
)
from rule_large import (
    REGISTER_BATCH,
    SCOPE,
    SOURCE,
    TARGETS,
    QueryTimer,
    add_target_rses,
    analyze,
    file_specs,
    locks_without_request,
    print_profile,
    raw_insert,
    raw_rows,
)

EXPRESSION = "tier=1"
COPIES = 2
PER_TRANSACTION = 20  # lacus.daemons.evaluator.PER_TRANSACTION


# -- databases ----------------------------------------------------------------------------------


def _admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


def _url(admin: Any, name: str) -> str:
    return str(admin.url.set(database=name).render_as_string(hide_password=False))


@contextmanager
def database(template: str | None = None) -> Iterator[str]:
    """A new database (empty, or a copy of ``template``), dropped when the block ends."""
    from sqlalchemy import text

    name = f"lacus_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _admin()
    with admin.connect() as conn:
        source = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def open_lake(url: str, lake_dir: Path) -> Any:
    from lacus.service import Lake, Settings

    return Lake(Settings(lake_dir=lake_dir, database_url=url))


# -- the template: catalog and queued rules ---------------------------------------------------


def build_template(url: str, lake_dir: Path, rules: int, per_rule: int) -> dict[str, float]:
    """Catalog of ``rules`` datasets, then one rule each (add_rule timed). Returns timings."""
    from lacus.core import scopes
    from lacus.core.clock import utcnow
    from lacus.core.replicas import register_replicas
    from lacus.core.rses import get_rse_id
    from lacus.core.rules import add_rule
    from lacus.db import upgrade
    from lacus.db.engine import insert_rows
    from lacus.db.tables import contents, dids
    from lacus.service.lake import ROOT, seed_catalog
    from lacus.types import RuleSpec

    lake = open_lake(url, lake_dir)
    try:
        upgrade(lake.engine)
        start = time.perf_counter()
        with lake.write() as conn:
            seed_catalog(conn, secrets.token_urlsafe(12), lake_dir)
            scopes.add_scope(conn, SCOPE, account=ROOT)
            add_target_rses(conn, lake_dir, [SOURCE], {"tier": "0"})
            add_target_rses(conn, lake_dir, TARGETS, {"tier": "1"})
            source_id = get_rse_id(conn, SOURCE)
        files = rules * per_rule
        for first in range(0, files, REGISTER_BATCH):
            specs = file_specs("file", first, min(REGISTER_BATCH, files - first))
            with lake.write() as conn:
                register_replicas(conn, source_id, specs, account=ROOT, deterministic=True)  # type: ignore[arg-type]
        # The datasets and their contents, as add_collection + attach_new_files leave them.
        now = utcnow()
        specs = file_specs("file", 0, files)
        dataset_rows, content_rows = [], []
        for index in range(rules):
            members = specs[index * per_rule : (index + 1) * per_rule]
            name = dataset_name(index)
            size = sum(s["bytes"] for s in members)
            dataset_rows.append(
                (SCOPE, name, "dataset", ROOT, True, size, len(members), now, now)
            )  # fmt: skip
            content_rows += [(SCOPE, name, SCOPE, s["name"], "file", now) for s in members]
        with lake.write() as conn:
            insert_rows(
                conn, dids,
                ("scope", "name", "did_type", "account", "is_open", "bytes", "length",
                 "created_at", "updated_at"),
                dataset_rows,
            )  # fmt: skip
            insert_rows(
                conn, contents,
                ("scope", "name", "child_scope", "child_name", "child_type", "created_at"),
                content_rows,
            )  # fmt: skip
        analyze(lake)
        built = time.perf_counter()
        with lake.write() as conn:
            for index in range(rules):
                spec = RuleSpec(
                    scope=SCOPE, name=dataset_name(index), rse_expression=EXPRESSION, copies=COPIES
                )
                add_rule(conn, spec, account=ROOT)
        added = time.perf_counter()
        analyze(lake)
    finally:
        lake.close()
    return {"catalog_s": built - start, "add_rules_s": added - built}


def dataset_name(index: int) -> str:
    return f"dataset_{index:06d}"


# -- contenders -----------------------------------------------------------------------------------


def raw_child(url: str, per_rule: int, per_transaction: int) -> None:
    """Insert every rule's lock and request rows raw; report the seconds."""
    from sqlalchemy import select

    from lacus.db.tables import rses, rules
    from lacus.service.lake import ROOT

    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-rules-many-"))
    lake = open_lake(url, workdir)
    try:
        with lake.read() as conn:
            ids = list(conn.execute(select(rules.c.id, rules.c.name).order_by(rules.c.name)))
            rse_ids = list(
                conn.execute(
                    select(rses.c.id).where(rses.c.rse.in_(TARGETS)).order_by(rses.c.id)
                ).scalars()
            )
        if [name for _, name in ids] != [dataset_name(index) for index in range(len(ids))]:
            raise RuntimeError("the rules are not one per dataset, in order")
        placements = [
            (rule_id, file_specs("file", index * per_rule, per_rule), rse_ids)
            for index, (rule_id, _) in enumerate(ids)
        ]
        sqlite = False
        lock_rows, request_rows = raw_rows(sqlite, placements, ROOT, per_file=False)
        per = per_transaction * per_rule * COPIES
        seconds = raw_insert(lake, lock_rows, request_rows, per=per)
        counts = count_rows(lake)
    finally:
        lake.close()
        shutil.rmtree(workdir, ignore_errors=True)
    child_answer(seconds, **counts)


def worker_child(url: str, lake_dir: str, profile: str | None) -> None:
    """An evaluator process: ready, wait for 'go' on stdin, run the queue dry, report."""
    from sqlalchemy import text

    from lacus.daemons import DAEMONS
    from lacus.daemons.base import run_once

    lake = open_lake(url, Path(lake_dir))
    try:
        with lake.read() as conn:  # connect (and warm up) before the clock starts
            conn.execute(text("SELECT 1"))
        print("ready", flush=True)
        sys.stdin.readline()
        timer = QueryTimer(lake.engine) if profile else None
        profiler = cProfile.Profile() if profile else None
        start = time.monotonic()
        if profiler is not None:
            profiler.enable()
        done = run_once(lake, DAEMONS["evaluator"])
        if profiler is not None:
            profiler.disable()
        end = time.monotonic()
        if profiler is not None and timer is not None and profile is not None:
            os.makedirs(profile, exist_ok=True)
            print_profile(profiler, os.path.join(profile, "rules-many-evaluator.pstats"))
            timer.report(end - start)
    finally:
        lake.close()
    print(
        json.dumps({"start": start, "end": end, "items": done, "peak_rss": own_peak_rss()}),
        flush=True,
    )


def run_evaluators(url: str, workers: int, via: str, profile: str | None = None) -> dict[str, Any]:
    """Start ``workers`` evaluator processes at once on ``url``; wall time, items, peak RSS."""
    lake_dir = Path(tempfile.mkdtemp(prefix="lacus-bench-rules-many-lake-"))
    try:
        if via == "cli":
            return _run_cli(url, lake_dir, workers)
        argv = python_child(os.path.abspath(__file__), "--worker", url, "--lake", str(lake_dir))
        if profile:
            argv += ["--profile", profile]
        processes = [
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("an evaluator process did not start")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        answers = []
        for process in processes:
            assert process.stdout is not None
            output = process.stdout.read()
            if process.wait() != 0:
                raise RuntimeError(f"an evaluator process exited with {process.returncode}")
            answers.append(json.loads(output.strip().splitlines()[-1]))
        return {
            "seconds": max(a["end"] for a in answers) - min(a["start"] for a in answers),
            "items": [a["items"] for a in answers],
            "busy_s": [round(a["end"] - a["start"], 2) for a in answers],
            "peak_rss": max(a["peak_rss"] for a in answers),
        }
    finally:
        shutil.rmtree(lake_dir, ignore_errors=True)


def _run_cli(url: str, lake_dir: Path, workers: int) -> dict[str, Any]:
    from lacus.service import Settings
    from lacus.service.settings import write_settings

    write_settings(Settings(lake_dir=lake_dir, database_url=url))
    lacus = os.path.join(os.path.dirname(sys.executable), "lacus")
    env = {**os.environ, "LACUS_DATABASE_URL": url}
    argv = [lacus, "daemon", "evaluator", "--once", "--lake", str(lake_dir)]
    start = time.perf_counter()
    processes = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    peak, items = 0, []
    for process in processes:
        assert process.stdout is not None
        output = process.stdout.read().decode()
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(argv)} failed")
        peak = max(peak, usage.ru_maxrss * 1024)
        items.append(int(output.split(":")[1].split()[0]) if ":" in output else -1)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "items": items, "busy_s": [], "peak_rss": peak}


def count_rows(lake: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from lacus.db.tables import evaluations, locks, requests, rule_history, rules

    with lake.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (rules, locks, requests, evaluations, rule_history)
        }


def verify(url: str, rules_n: int, per_rule: int) -> dict[str, Any]:
    """Raise unless every rule was evaluated exactly once and has exactly its locks."""
    from sqlalchemy import func, select

    from lacus.db.tables import locks, rses, rule_history, rules

    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-rules-many-"))
    lake = open_lake(url, workdir)
    problems = []
    try:
        counts = count_rows(lake)
        with lake.read() as conn:
            evaluated = (
                select(rule_history.c.rule_id, func.count().label("n"))
                .where(rule_history.c.action == "evaluated")
                .group_by(rule_history.c.rule_id)
                .subquery()
            )
            times = dict(
                conn.execute(select(evaluated.c.n, func.count()).group_by(evaluated.c.n)).all()
            )
            strangers = conn.execute(
                select(func.count())
                .select_from(evaluated)
                .where(evaluated.c.rule_id.not_in(select(rules.c.id)))
            ).scalar_one()
            per_rule_locks = (
                select(locks.c.rule_id, func.count().label("n"))
                .group_by(locks.c.rule_id)
                .subquery()
            )
            lock_shapes = dict(
                conn.execute(
                    select(per_rule_locks.c.n, func.count()).group_by(per_rule_locks.c.n)
                ).all()
            )
            per_file = (
                select(func.count(func.distinct(locks.c.rse_id)).label("n"))
                .group_by(locks.c.rule_id, locks.c.scope, locks.c.name)
                .subquery()
            )
            file_shapes = dict(
                conn.execute(select(per_file.c.n, func.count()).group_by(per_file.c.n)).all()
            )
            unmatched = locks_without_request(conn)
            states = dict(
                conn.execute(
                    select(rules.c.state, func.count())
                    .where(rules.c.error.is_(None))
                    .group_by(rules.c.state)
                ).all()
            )
            spread = dict(
                conn.execute(
                    select(rses.c.rse, func.count())
                    .join(locks, locks.c.rse_id == rses.c.id)
                    .group_by(rses.c.rse)
                    .order_by(rses.c.rse)
                ).all()
            )
    finally:
        lake.close()
        shutil.rmtree(workdir, ignore_errors=True)
    per = per_rule * COPIES
    if counts["evaluations"]:
        problems.append(f"{counts['evaluations']} items left in the queue")
    if times != {1: rules_n} or strangers:
        problems.append(
            f"rules by number of 'evaluated' entries: {times}, expected {{1: {rules_n}}}"
        )
    if lock_shapes != {per: rules_n}:
        problems.append(f"rules by number of locks: {lock_shapes}, expected {{{per}: {rules_n}}}")
    if file_shapes != {COPIES: rules_n * per_rule}:
        problems.append(f"files by number of distinct RSEs: {file_shapes}")
    if counts["locks"] != rules_n * per or counts["requests"] != rules_n * per or unmatched:
        problems.append(f"{counts}, {unmatched} locks without a request")
    if states != {"replicating": rules_n}:
        problems.append(f"rules by state (without error): {states}")
    if problems:
        raise RuntimeError("; ".join(problems))
    return {**counts, "locks_per_rse": spread}


# -- parent ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--files-per-rule", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 rules (unless --rules)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--via", choices=["python", "cli"], default="python")
    parser.add_argument("--workers", type=int, default=3, help="processes of the parallel run")
    parser.add_argument("--profile", help="also profile a 1-process run; stats written here")
    parser.add_argument("--raw-child", help=argparse.SUPPRESS)
    parser.add_argument("--per-transaction", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick and "--rules" not in sys.argv:
        args.rules = 1_000
    if args.raw_child:
        raw_child(args.raw_child, args.files_per_rule, args.per_transaction)
        return
    if args.worker:
        worker_child(args.worker, args.lake, args.profile)
        return
    if (why := postgres_reachable()) is not None:
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: nothing to measure ({why})")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the databases

    n, per_rule = args.rules, args.files_per_rule
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"PostgreSQL; {n:,} rules x {per_rule} files x {COPIES} copies over {EXPRESSION}: "
        f"{n * per_rule * COPIES:,} locks + as many requests; evaluators via {args.via}; "
        f"{args.repeat} run(s) each (median)",
        flush=True,
    )
    admin = _admin()
    lake_dir = Path(tempfile.mkdtemp(prefix="lacus-bench-rules-many-tpl-"))
    try:
        with database() as template:
            built = build_template(_url(admin, template), lake_dir, n, per_rule)
            print(
                f"catalog built in {built['catalog_s']:.1f} s; add_rule x {n:,} in one "
                f"transaction: {built['add_rules_s']:.1f} s = {n / built['add_rules_s']:,.0f} "
                "rules/s (queued)",
                flush=True,
            )
            runs: dict[str, list[dict[str, Any]]] = {}
            contenders = ["raw", "raw/20", "evaluator x1", f"evaluator x{args.workers}"]
            for _ in range(args.repeat):
                for label in contenders:
                    with database(template) as copy:
                        url = _url(admin, copy)
                        if label.startswith("raw"):
                            per = PER_TRANSACTION if label == "raw/20" else 0
                            argv = [os.path.abspath(__file__), "--raw-child", url]
                            argv += ["--files-per-rule", str(per_rule)]
                            run = run_child(python_child(*argv, "--per-transaction", str(per)))
                            result = {"seconds": run.seconds, "peak_rss": run.peak_rss}
                        else:
                            workers = int(label.rsplit("x", 1)[1])
                            result = run_evaluators(url, workers, args.via)
                            result.update(verify(url, n, per_rule))
                    runs.setdefault(label, []).append(result)
                    print(f"  {label:<13} {n / result['seconds']:8,.0f} rules/s", flush=True)
            if args.profile:
                with database(template) as copy:
                    run_evaluators(_url(admin, copy), 1, "python", args.profile)
    finally:
        admin.dispose()
        shutil.rmtree(lake_dir, ignore_errors=True)

    rate = {
        label: statistics.median(n / r["seconds"] for r in found) for label, found in runs.items()
    }
    raw = rate["raw"]
    one = rate["evaluator x1"]
    print(f"{'contender':<14} {'rules/s':>9} {'seconds':>8} {'x raw':>6} {'peak RSS':>9}  notes")
    results: dict[str, Any] = {"add_rule_rules_s": round(n / built["add_rules_s"])}
    for label, found in runs.items():
        last = found[-1]
        note = ""
        if label.startswith("evaluator"):
            note = f"items per process {last['items']}, busy {last['busy_s']} s"
            if label != "evaluator x1":
                note = f"speed-up {rate[label] / one:.2f} x 1 process; " + note
        print(
            f"{label:<14} {rate[label]:9,.0f} {n / rate[label]:8.2f} {rate[label] / raw:6.3f} "
            f"{max(r['peak_rss'] for r in found) / 1e6:6.0f} MB  {note}"
        )
        results[label] = {
            "rules_s": round(rate[label]),
            "ratio_to_raw": round(rate[label] / raw, 4),
            "peak_rss_mb": round(max(r["peak_rss"] for r in found) / 1e6),
        }
    parallel = f"evaluator x{args.workers}"
    print(
        f"speed-up of {args.workers} processes over 1: {rate[parallel] / one:.2f}; verified "
        f"every run: one 'evaluated' entry per rule, {per_rule * COPIES} locks per rule, "
        f"2 distinct RSEs per file, a request per lock; locks per RSE "
        f"{runs[parallel][-1]['locks_per_rse']}"
    )
    print(
        json.dumps(
            {
                "benchmark": "rules_many",
                "rules": n,
                "files_per_rule": per_rule,
                "via": args.via,
                "repeat": args.repeat,
                "speed_up": round(rate[parallel] / one, 3),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
