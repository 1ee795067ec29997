"""One rule over a large dataset: from ``add_rule`` to every lock and transfer request written.

    .venv/bin/python benchmarks/rule_large.py [--files 100000] [--backend both] [--repeat 1]
        [--quick] [--profile DIR]

The catalog: a dataset of ``--files`` files, each with an available replica on SOURCE_DISK only
(attribute tier=0), and five empty RSEs T1_DISK_1..5 with tier=1. The rule asks for 2 copies on
``tier=1`` with grouping NONE (each file placed on its own, so copies spread over the 5 RSEs):
2 x files locks (all ``replicating``) and 2 x files transfer requests.

Contenders, each in its own child process on a fresh, identically built database (SQLite file,
or a throwaway PostgreSQL database), alternated ``--repeat`` times:

* ``lacus`` — timed: ``core.rules.add_rule`` (its own transaction), then the evaluator daemon run
  until its queue is empty (``run_once``: claim, then ``evaluate_rule`` in one transaction).
  Then checked: locks == requests == 2 x files, every file on 2 distinct RSEs, every target RSE
  within 10% of its even share, one ``evaluated`` history entry.
* ``raw`` — the same numbers of lock and request rows (same columns, same indexes, the rule row
  present for the foreign key) with one plain DBAPI ``executemany`` per table in one transaction;
  the tuples are built before the clock starts. The database's own ceiling.

Target: lacus files/s >= 0.30 x raw files/s. Peak RSS is the child's VmHWM, reset just before
the timed part (``/proc/self/clear_refs``), so it is the evaluation's own peak; the whole child's
peak (catalog building included) is shown too. ``--profile DIR`` writes cProfile stats of the
timed part and prints the SQL statements by time spent. The last line is JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
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
    throwaway_postgres,
)

SCOPE = "bench"
DATASET = "big_dataset"
SOURCE = "SOURCE_DISK"
TARGETS = [f"T1_DISK_{index}" for index in range(1, 6)]
EXPRESSION = "tier=1"
COPIES = 2
TARGET = 0.30
BACKENDS = ("sqlite", "postgresql")
REGISTER_BATCH = 10_000


# -- shared with rules_many.py ----------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database; dropped (PostgreSQL) when the block ends."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'catalog.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def reset_peak_rss() -> bool:
    """Start VmHWM afresh (Linux >= 4.0): the peak from here on is what follows."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as control:
            control.write("5\n")
    except OSError:
        return False
    return True


def add_target_rses(
    conn: Any, lake_dir: Path, names: list[str], attributes: dict[str, str]
) -> None:
    """POSIX RSEs with ``attributes``, as ``seed_catalog`` makes them."""
    from lacus.core import rses
    from lacus.types import ProtocolInfo

    for name in names:
        prefix = lake_dir / "rses" / name
        rse_id = rses.add_rse(conn, name, attributes=attributes)
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(prefix), impl="posix"),
        )


def file_specs(prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "scope": SCOPE,
            "name": f"{prefix}_{index:07d}.raw",
            "bytes": 1_000_000 + index,
            "adler32": f"{(index * 2654435761) & 0xFFFFFFFF:08x}",
            "md5": f"{index:032x}",
        }
        for index in range(start, start + count)
    ]


def analyze(lake: Any) -> None:
    """What the service layer does after bulk registrations (autovacuum is off on this server)."""
    if lake.engine.dialect.name == "postgresql":
        with lake.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


class QueryTimer:
    """Wall time per SQL statement (normalised), from SQLAlchemy's cursor events."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, _conn: Any, _cursor: Any, statement: str, _params: Any, *_: Any) -> None:
        seconds = time.perf_counter() - self._started.pop()
        key = re.sub(r"\s+", " ", statement)
        key = re.sub(r"\(\s*(%s|\?|%\(\w+\)s)(, (%s|\?|%\(\w+\)s))*\s*\)", "(…)", key)
        key = re.sub(r"__\[POSTCOMPILE_\w+\]", "…", key)
        entry = self.spent[key[:160]]
        entry[0] += seconds
        entry[1] += 1

    def report(self, total: float, top: int = 15) -> None:
        rows = sorted(self.spent.items(), key=lambda item: -item[1][0])
        in_sql = sum(entry[0] for _, entry in rows)
        print(
            f"SQL: {in_sql:.2f} s of {total:.2f} s timed ({in_sql / total:.0%}) in "
            f"{sum(int(entry[1]) for _, entry in rows)} statements; top {top}:",
            file=sys.stderr,
        )
        for key, (seconds, count) in rows[:top]:
            print(
                f"  {seconds:8.3f} s {seconds / total:6.1%} {int(count):7d}x  {key}",
                file=sys.stderr,
            )


def print_profile(profiler: cProfile.Profile, path: str, lines: int = 30) -> None:
    profiler.dump_stats(path)
    stats = pstats.Stats(path, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)


# -- child: one measurement on a fresh database -----------------------------------------------


def build_catalog(lake: Any, lake_dir: Path, files: int) -> None:
    """Root, the scope, SOURCE_DISK (tier=0) with every file, T1_DISK_1..5 (tier=1), the
    dataset holding the files."""
    from lacus.core import scopes
    from lacus.core.dids import add_collection, attach_new_files
    from lacus.core.replicas import register_replicas
    from lacus.core.rses import get_rse_id
    from lacus.service.lake import ROOT, seed_catalog
    from lacus.types import DIDType

    with lake.write() as conn:
        seed_catalog(conn, secrets.token_urlsafe(12), lake_dir)
        scopes.add_scope(conn, SCOPE, account=ROOT)
        add_target_rses(conn, lake_dir, [SOURCE], {"tier": "0"})
        add_target_rses(conn, lake_dir, TARGETS, {"tier": "1"})
        add_collection(conn, SCOPE, DATASET, DIDType.DATASET, account=ROOT)
        source_id = get_rse_id(conn, SOURCE)
    for start in range(0, files, REGISTER_BATCH):
        specs = file_specs("file", start, min(REGISTER_BATCH, files - start))
        with lake.write() as conn:
            register_replicas(conn, source_id, specs, account=ROOT, deterministic=True)  # type: ignore[arg-type]
            attach_new_files(
                conn, SCOPE, DATASET, [((s["scope"], s["name"]), s["bytes"]) for s in specs]
            )
    analyze(lake)


def rule_spec() -> Any:
    from lacus.types import RuleGrouping, RuleSpec

    return RuleSpec(
        scope=SCOPE,
        name=DATASET,
        rse_expression=EXPRESSION,
        copies=COPIES,
        grouping=RuleGrouping.NONE,
    )


def child(mode: str, backend: str, files: int, profile: str | None) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the database
    from lacus.db import upgrade
    from lacus.service import Lake, Settings

    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-rule-large-"))
    try:
        with fresh_database(backend, workdir) as url:
            lake = Lake(Settings(lake_dir=workdir, database_url=url))
            try:
                upgrade(lake.engine)
                build_catalog(lake, workdir, files)
                build_peak = own_peak_rss()
                reset = reset_peak_rss()
                if mode == "lacus":
                    seconds, extra = time_lacus(lake, profile)
                    extra.update(verify(lake, files))
                else:
                    seconds, extra = time_raw(lake, files)
                    extra.update(count_rows(lake))
                    if extra["locks"] != COPIES * files or extra["requests"] != COPIES * files:
                        raise RuntimeError(f"raw: {extra}")
                run_peak = own_peak_rss()
            finally:
                lake.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    child_answer(
        seconds,
        run_peak_rss=run_peak if reset else None,
        build_peak_rss=build_peak,
        **extra,
    )


def time_lacus(lake: Any, profile: str | None) -> tuple[float, dict[str, Any]]:
    from lacus.core.rules import add_rule
    from lacus.daemons import DAEMONS
    from lacus.daemons.base import run_once
    from lacus.service.lake import ROOT

    timer = QueryTimer(lake.engine) if profile else None
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    with lake.write() as conn:
        add_rule(conn, rule_spec(), account=ROOT)
    added = time.perf_counter()
    evaluated = run_once(lake, DAEMONS["evaluator"])
    if profiler is not None:
        profiler.disable()
    end = time.perf_counter()
    if evaluated != 1:
        raise RuntimeError(f"the evaluator processed {evaluated} items, expected 1")
    if profiler is not None and timer is not None and profile is not None:
        os.makedirs(profile, exist_ok=True)
        print_profile(
            profiler, os.path.join(profile, f"rule-large-{lake.engine.dialect.name}.pstats")
        )
        timer.report(end - start)
    return end - start, {"add_rule_s": round(added - start, 4), "evaluate_s": round(end - added, 4)}


def count_rows(lake: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from lacus.db.tables import locks, requests

    with lake.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (locks, requests)
        }


def locks_without_request(conn: Any) -> int:
    """Replicating locks with no transfer request for their file and RSE (should be none)."""
    from sqlalchemy import func, select

    from lacus.db.tables import locks, requests

    return int(
        conn.execute(
            select(func.count())
            .select_from(locks)
            .outerjoin(
                requests,
                (requests.c.scope == locks.c.scope)
                & (requests.c.name == locks.c.name)
                & (requests.c.dest_rse_id == locks.c.rse_id),
            )
            .where(requests.c.id.is_(None))
        ).scalar_one()
    )


def verify(lake: Any, files: int) -> dict[str, Any]:
    """Raise unless the rule's locks and requests are exactly what it asks for."""
    from sqlalchemy import func, select

    from lacus.db.tables import locks, rses, rule_history, rules

    found: dict[str, Any] = count_rows(lake)
    problems = []
    with lake.read() as conn:
        rule = conn.execute(select(rules)).one()
        per_file = select(
            locks.c.scope, locks.c.name, func.count(func.distinct(locks.c.rse_id)).label("n")
        )
        per_file = per_file.group_by(locks.c.scope, locks.c.name).subquery()
        shapes = dict(conn.execute(select(per_file.c.n, func.count()).group_by(per_file.c.n)).all())
        spread = dict(
            conn.execute(
                select(rses.c.rse, func.count())
                .join(locks, locks.c.rse_id == rses.c.id)
                .group_by(rses.c.rse)
            ).all()
        )
        unmatched = locks_without_request(conn)
        evaluated = conn.execute(
            select(func.count()).where(rule_history.c.action == "evaluated")
        ).scalar_one()
    if found["locks"] != COPIES * files:
        problems.append(f"{found['locks']} locks, expected {COPIES * files}")
    if found["requests"] != COPIES * files:
        problems.append(f"{found['requests']} requests, expected {COPIES * files}")
    if shapes != {COPIES: files}:
        problems.append(f"files by number of distinct RSEs: {shapes}, expected {{2: {files}}}")
    even = COPIES * files / len(TARGETS)
    if set(spread) != set(TARGETS) or any(abs(n - even) > 0.1 * even for n in spread.values()):
        problems.append(f"locks per RSE {spread}: not within 10% of {even:.0f} each")
    if unmatched:
        problems.append(f"{unmatched} locks without their transfer request")
    if evaluated != 1:
        problems.append(f"{evaluated} 'evaluated' history entries, expected 1")
    if rule.state != "replicating" or rule.error:
        problems.append(f"rule state {rule.state}, error {rule.error}")
    if problems:
        raise RuntimeError("lacus: " + "; ".join(problems))
    found["locks_per_rse"] = dict(sorted(spread.items()))
    return found


def raw_sql(sqlite: bool, table: str, columns: tuple[str, ...]) -> str:
    mark = "?" if sqlite else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


LOCK_COLUMNS = (
    "rule_id", "scope", "name", "rse_id", "account", "bytes", "state", "created_at", "updated_at",
)  # fmt: skip
REQUEST_COLUMNS = (
    "scope", "name", "dest_rse_id", "rule_id", "state", "activity", "priority", "bytes",
    "adler32", "md5", "source_replica_expression", "attempts", "created_at", "updated_at",
)  # fmt: skip


def raw_rows(
    sqlite: bool,
    placements: list[tuple[str, list[dict[str, Any]], list[int]]],
    account: str,
    *,
    per_file: bool,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Lock and request tuples as the evaluator writes them, from (rule id, files, RSE ids):
    two RSEs in turn per file (``per_file``, grouping NONE) or per rule (grouping DATASET)."""
    from lacus.core.clock import utcnow

    now: Any = utcnow()
    if sqlite:  # what SQLAlchemy's DateTime stores on SQLite
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    lock_rows, request_rows = [], []
    turn = 0
    for rule_id, specs, rse_ids in placements:
        for s in specs:
            pair = (rse_ids[turn % len(rse_ids)], rse_ids[(turn + 1) % len(rse_ids)])
            turn += per_file
            for rse_id in pair:
                lock_rows.append(
                    (rule_id, s["scope"], s["name"], rse_id, account, s["bytes"], "replicating",
                     now, now)
                )  # fmt: skip
                request_rows.append(
                    (s["scope"], s["name"], rse_id, rule_id, "queued", None, 3, s["bytes"],
                     s["adler32"], s["md5"], None, 0, now, now)
                )  # fmt: skip
        turn += not per_file
    return lock_rows, request_rows


def raw_insert(lake: Any, lock_rows: list[Any], request_rows: list[Any], *, per: int = 0) -> float:
    """Time one ``executemany`` per table (``per``: commit every ``per`` rows instead of once)."""
    sqlite = lake.engine.dialect.name == "sqlite"
    lock_sql = raw_sql(sqlite, "locks", LOCK_COLUMNS)
    request_sql = raw_sql(sqlite, "requests", REQUEST_COLUMNS)
    step = per or max(len(lock_rows), 1)
    raw = lake.engine.raw_connection()
    try:
        cursor = raw.cursor()
        start = time.perf_counter()
        for first in range(0, len(lock_rows), step):
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(lock_sql, lock_rows[first : first + step])
            cursor.executemany(request_sql, request_rows[first : first + step])
            raw.commit()
        seconds = time.perf_counter() - start
        cursor.close()
    finally:
        raw.close()
    return seconds


def time_raw(lake: Any, files: int) -> tuple[float, dict[str, Any]]:
    from sqlalchemy import delete, select

    from lacus.core.rules import add_rule
    from lacus.db.tables import evaluations, rses
    from lacus.service.lake import ROOT

    with lake.write() as conn:  # the rule row the locks refer to; not evaluated
        rule_id = add_rule(conn, rule_spec(), account=ROOT)
        conn.execute(delete(evaluations))
        rse_ids = list(
            conn.execute(
                select(rses.c.id).where(rses.c.rse.in_(TARGETS)).order_by(rses.c.id)
            ).scalars()
        )
    sqlite = lake.engine.dialect.name == "sqlite"
    placements = [(rule_id, file_specs("file", 0, files), rse_ids)]
    lock_rows, request_rows = raw_rows(sqlite, placements, ROOT, per_file=True)
    return raw_insert(lake, lock_rows, request_rows), {}


# -- parent: alternate the contenders, report ---------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 files (unless --files)")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", help="write cProfile stats of the lacus runs here")
    parser.add_argument("--child", choices=["lacus", "raw"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick and "--files" not in sys.argv:
        args.files = 10_000
    if args.child:
        child(args.child, args.backend, args.files, args.profile)
        return

    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    if "postgresql" in backends and (why := postgres_reachable()) is not None:
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: skipped ({why})")
        backends.remove("postgresql")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"1 rule, {args.files:,} files x {COPIES} copies over {EXPRESSION} ({len(TARGETS)} RSEs): "
        f"{COPIES * args.files:,} locks + {COPIES * args.files:,} requests; "
        f"{args.repeat} run(s) each (median)",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        runs: dict[str, list[Any]] = {"raw": [], "lacus": []}
        for _ in range(args.repeat):
            for mode in ("raw", "lacus"):  # alternated: drifts hit both alike
                argv = python_child(
                    os.path.abspath(__file__), "--child", mode, "--backend", backend,
                    "--files", str(args.files),
                )  # fmt: skip
                if args.profile and mode == "lacus":
                    argv += ["--profile", args.profile]
                runs[mode].append(run_child(argv))
        rate = {
            mode: statistics.median(args.files / run.seconds for run in found)
            for mode, found in runs.items()
        }
        rss = {
            mode: max((run.answer.get("run_peak_rss") or run.peak_rss) for run in found) / 1e6
            for mode, found in runs.items()
        }
        whole = {
            mode: max(max(run.peak_rss, int(run.answer["build_peak_rss"])) for run in found) / 1e6
            for mode, found in runs.items()
        }
        share = rate["lacus"] / rate["raw"]
        last = runs["lacus"][-1].answer
        add_s = statistics.median(float(run.answer["add_rule_s"]) for run in runs["lacus"])
        eval_s = statistics.median(float(run.answer["evaluate_s"]) for run in runs["lacus"])
        print(
            f"{backend:<11} raw executemany {rate['raw']:9,.0f} files/s "
            f"({args.files / rate['raw']:6.2f} s)  peak RSS {rss['raw']:5.0f} MB"
        )
        print(
            f"{backend:<11} lacus rule      {rate['lacus']:9,.0f} files/s "
            f"({args.files / rate['lacus']:6.2f} s: add_rule {add_s:.3f} s + evaluator "
            f"{eval_s:.2f} s)  peak RSS {rss['lacus']:5.0f} MB"
            f" (whole child {whole['lacus']:.0f} MB)"
            f"  = {share:.2f} x raw (target >= {TARGET}: {'ok' if share >= TARGET else 'MISSED'})",
            flush=True,
        )
        print(f"{'':<11} verified: {last['locks']:,} locks, {last['requests']:,} requests, "
              f"2 distinct RSEs per file, per RSE {last['locks_per_rse']}")  # fmt: skip
        results[backend] = {
            "lacus_files_s": round(rate["lacus"]),
            "raw_files_s": round(rate["raw"]),
            "ratio": round(share, 3),
            "add_rule_s": add_s,
            "evaluate_s": eval_s,
            "lacus_peak_rss_mb": round(rss["lacus"]),
            "lacus_child_peak_rss_mb": round(whole["lacus"]),
            "raw_peak_rss_mb": round(rss["raw"]),
        }
    print(
        json.dumps(
            {
                "benchmark": "rule_large",
                "files": args.files,
                "copies": COPIES,
                "repeat": args.repeat,
                "target": TARGET,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
