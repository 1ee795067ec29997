"""From the scrub pass that finds a damaged replica to that replica available again, verified.

    .venv/bin/python benchmarks/detection_to_repair.py [--repeat 20] [--size 1MiB]
        [--backend sqlite|postgresql|both]

A file ``bench:victim`` of ``--size`` random bytes has two copies (a rule of 2 copies on
``ALPHA_DISK|BETA_DISK``, POSIX RSEs of a fresh lake; its catalog migrated and seeded as
``lacus serve`` would). Each repetition flips bytes in the middle of the BETA_DISK copy, makes
BETA_DISK (only) due for a scrub and runs one ``scrubber_pass`` in the main thread: it reads
the copy, declares it ``bad`` and wakes the necromancer. The clock starts when that pass
returns and stops when the catalog has a new ``available`` replica of the file on BETA_DISK and
the bytes at its path are the original ones (checked by this process: polled every 5 ms, the
file compared once the row is there). Target: <= 5 s.

Contenders, alternated within each repetition:

* ``daemons in threads`` — the necromancer, conveyor and repairer run by a ``DaemonRunner``, in
  threads of this process as ``lacus serve`` runs its embedded daemons (woken by the lake's
  wake-ups, idle passes ``daemon_sleep_seconds`` = 2 s apart by default);
* ``passes in a row`` (baseline: the work itself, no waiting) — the same three daemons' passes
  called one after the other in the main thread (``run_once``) until the replica is back, while
  the runner is paused;
* ``cp + adler32`` (baseline: the bytes alone) — copying the good copy over the damaged one
  with ``shutil.copyfile`` and summing the result's adler32.

Each repetition ends with the rule ``ok`` again. One child process per backend (a SQLite file,
a throwaway PostgreSQL database); median and max reported, with the median's ratio to each
baseline. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

from _transfer import chosen_backends, parse_size, show_size
from _util import child_answer, machine_note, python_child, run_child, throwaway_postgres

SCOPE = "bench"
DATASET = "ds"
NAME = "victim"
GOOD, DAMAGED = "ALPHA_DISK", "BETA_DISK"
REPAIRING = ("necromancer", "conveyor", "repairer")
INTEGRITY_CHECKS = ("auditor", "scrubber", "dark-reaper")  # never run by the settling
TARGET = 5.0
POLL = 0.005
TIMEOUT = 60.0
MODES = ("threads", "passes", "cp")
KEYS = ("threads declared", "threads", "passes declared", "passes", "cp")
LABELS = {
    "threads declared": "daemons in threads, from decl.",
    "threads": "daemons in threads, from pass",
    "passes declared": "passes in a row, from decl.",
    "passes": "passes in a row, from pass",
    "cp": "cp + adler32 (baseline)",
}


class Bench:
    """One lake, one file with two copies, and what the repetitions need."""

    def __init__(self, url: str, workdir: Path, size: int) -> None:
        from lacus.service import Lake, Settings

        self.lake = Lake(Settings(lake_dir=workdir, database_url=url))
        self.workdir = workdir
        self.size = size
        self.data = os.urandom(size)

    def setup(self) -> None:
        from lacus.checksums import checksum_chunks
        from lacus.core import dids, replicas, rses, scopes
        from lacus.db import upgrade
        from lacus.service import rules as service_rules
        from lacus.service.lake import ROOT, Principal, seed_catalog
        from lacus.types import DIDType, RuleSpec

        upgrade(self.lake.engine)
        with self.lake.write() as conn:
            seed_catalog(conn, secrets.token_urlsafe(12), self.workdir)
            scopes.add_scope(conn, SCOPE, account=ROOT)
            dids.add_collection(conn, SCOPE, DATASET, DIDType.DATASET, account=ROOT)
            self.ids = {rse: rses.get_rse_id(conn, rse) for rse in (GOOD, DAMAGED)}
        self.good, self.damaged = self.path(GOOD), self.path(DAMAGED)
        self.good.parent.mkdir(parents=True, exist_ok=True)
        self.good.write_bytes(self.data)
        sums = checksum_chunks([self.data])
        spec = {"scope": SCOPE, "name": NAME, "bytes": self.size, "adler32": sums.adler32,
                "md5": sums.md5}  # fmt: skip
        with self.lake.write() as conn:
            replicas.add_replicas(conn, self.ids[GOOD], [spec], account=ROOT, deterministic=True)  # type: ignore[list-item]
            dids.attach(conn, SCOPE, DATASET, [(SCOPE, NAME)])
        root = Principal(ROOT, admin=True)
        two = RuleSpec(scope=SCOPE, name=DATASET, rse_expression=f"{GOOD}|{DAMAGED}", copies=2)
        (self.rule_id,) = service_rules.add_rules(self.lake, root, [two])
        self.settle()
        self.check_rest()

    def path(self, rse: str) -> Path:
        from lacus.naming import deterministic_path

        return self.workdir / "rses" / rse / deterministic_path(SCOPE, NAME)

    def settle(self) -> None:
        """Run every daemon but the integrity checks until none finds work (as the tests do)."""
        from lacus.daemons import DAEMONS
        from lacus.daemons.base import run_once

        chosen = [d for name, d in DAEMONS.items() if name not in INTEGRITY_CHECKS]
        for _ in range(50):
            if sum(run_once(self.lake, daemon) for daemon in chosen) == 0:
                return
        raise RuntimeError("the daemons never came to rest")

    def rule_state(self) -> str:
        from sqlalchemy import select

        from lacus.db.tables import rules

        with self.lake.read() as conn:
            state = conn.execute(select(rules.c.state).where(rules.c.id == self.rule_id))
            return str(state.scalar_one())

    def replica(self) -> Any:
        from sqlalchemy import select

        from lacus.db.tables import replicas

        with self.lake.read() as conn:
            return conn.execute(
                select(replicas.c.state, replicas.c.created_at).where(
                    replicas.c.scope == SCOPE,
                    replicas.c.name == NAME,
                    replicas.c.rse_id == self.ids[DAMAGED],
                )
            ).first()

    def check_rest(self) -> None:
        row = self.replica()
        if self.rule_state() != "ok" or row is None or row.state != "available":
            raise RuntimeError(f"not at rest: rule {self.rule_state()}, replica {row}")
        if self.damaged.read_bytes() != self.data:
            raise RuntimeError("the copy on BETA_DISK is not the original")

    def damage_and_scrub(self) -> tuple[Any, float]:
        """Flip bytes of the BETA_DISK copy, scrub BETA_DISK; the replica row before, and the
        POSIX time of the ``bad`` declaration the scrub made."""
        from datetime import datetime

        from sqlalchemy import delete, insert, select

        from lacus.daemons.base import worker_id
        from lacus.daemons.scrubber import scrubber_pass
        from lacus.db.tables import integrity_work, rses

        before = self.replica()
        data = bytearray(self.data)
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
        damaged_at = time.time()
        self.damaged.write_bytes(bytes(data))
        with self.lake.write() as conn:  # only BETA_DISK due: a new round
            conn.execute(delete(integrity_work).where(integrity_work.c.kind == "scrub"))
            for rse_id in conn.execute(select(rses.c.id)).scalars():
                due = None if rse_id == self.ids[DAMAGED] else datetime(2999, 1, 1)
                conn.execute(
                    insert(integrity_work).values(rse_id=rse_id, kind="scrub", next_at=due)
                )
        if scrubber_pass(self.lake, worker_id("scrubber", "bench")) != 1:
            raise RuntimeError("the scrub pass read nothing")
        declared = self.declared_at()  # (with the daemons running, the repair may be done)
        if declared < damaged_at:
            raise RuntimeError(f"the scrub did not find the damage: {self.replica()}")
        return before, declared

    def declared_at(self) -> float:
        """POSIX time of the last ``bad`` declaration of the damaged replica (its commit is a
        little later)."""
        from sqlalchemy import func, select

        from lacus.db.tables import replica_declarations as declarations

        with self.lake.read() as conn:
            when = conn.execute(
                select(func.max(declarations.c.created_at)).where(
                    declarations.c.scope == SCOPE,
                    declarations.c.name == NAME,
                    declarations.c.rse_id == self.ids[DAMAGED],
                    declarations.c.state == "bad",
                )
            ).scalar_one()
        return float(when.replace(tzinfo=UTC).timestamp())

    def repaired(self, before: Any) -> bool:
        row = self.replica()
        if row is None or row.state != "available" or row.created_at == before.created_at:
            return False
        return self.damaged.read_bytes() == self.data

    def wait_repaired(self, before: Any, start: float) -> tuple[float, float]:
        """Seconds since ``start`` (``perf_counter``) and POSIX time when the repair is seen."""
        while not self.repaired(before):
            if time.perf_counter() - start > TIMEOUT:
                raise RuntimeError(f"not repaired after {TIMEOUT:.0f} s: {self.replica()}")
            time.sleep(POLL)
        return time.perf_counter() - start, time.time()

    def repair_by_passes(self, before: Any, start: float) -> tuple[float, float]:
        from lacus.daemons import DAEMONS
        from lacus.daemons.base import run_once

        while not self.repaired(before):
            if time.perf_counter() - start > TIMEOUT:
                raise RuntimeError(f"not repaired after {TIMEOUT:.0f} s: {self.replica()}")
            if sum(run_once(self.lake, DAEMONS[name]) for name in REPAIRING) == 0:
                time.sleep(POLL)  # e.g. a copy still in a conveyor thread
        return time.perf_counter() - start, time.time()

    def raw_copy(self) -> float:
        from lacus.checksums import adler32, format_adler32

        expected = format_adler32(adler32(self.data))
        data = bytearray(self.data)
        data[len(data) // 2] ^= 0xFF
        self.damaged.write_bytes(bytes(data))
        start = time.perf_counter()
        shutil.copyfile(self.good, self.damaged)
        with open(self.damaged, "rb", buffering=0) as stream:
            value = 1
            while chunk := stream.read(4 * 1024 * 1024):
                value = adler32(chunk, value)
        seconds = time.perf_counter() - start
        if format_adler32(value) != expected:
            raise RuntimeError("the raw copy is wrong")
        return seconds


def child(backend: str, repeat: int, size: int, workdir: Path) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from lacus.daemons import DAEMONS, DaemonRunner

    with fresh_database(backend, workdir) as url:
        bench = Bench(url, workdir, size)
        try:
            bench.setup()
            runner = DaemonRunner(bench.lake, [DAEMONS[name] for name in REPAIRING])
            runner.start()
            time.sleep(3)  # every thread idle, as in a server that runs for a while
            found: dict[str, list[float]] = {mode: [] for mode in KEYS}
            try:
                for index in range(repeat):
                    order = MODES if index % 2 == 0 else tuple(reversed(MODES))
                    for mode in order:
                        one(bench, mode, found)
                    print(
                        f"  {backend:<10} #{index + 1:<3}"
                        + "".join(f"  {mode} {found[mode][-1]:.3f} s" for mode in KEYS),
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                runner.stop()
        finally:
            bench.lake.close()
    child_answer(0.0, **found)  # type: ignore[arg-type]


def one(bench: Bench, mode: str, found: dict[str, list[float]]) -> None:
    """One repetition of ``mode``, its time(s) appended to ``found``; at rest again after."""
    if mode == "cp":
        found[mode].append(bench.raw_copy())
        bench.check_rest()
        return
    if mode == "passes":
        bench.lake.pause_daemons()
    try:
        before, declared = bench.damage_and_scrub()
        start = time.perf_counter()
        wait = bench.wait_repaired if mode == "threads" else bench.repair_by_passes
        seconds, seen = wait(before, start)
        found[mode].append(seconds)
        found[f"{mode} declared"].append(seen - declared)
    finally:
        if mode == "passes":
            bench.lake.resume_daemons()
    deadline = time.perf_counter() + TIMEOUT
    while bench.rule_state() != "ok":  # the rest (locks, rule state) before the next one
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the rule is {bench.rule_state()} after the repair")
        time.sleep(POLL)
    bench.check_rest()


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new database (SQLite file or throwaway PostgreSQL), dropped at the end."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'catalog.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--size", default="1MiB", help="size of the damaged file")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = parse_size(args.size)
    if args.child:
        child(args.child, args.repeat, size, Path(args.workdir))
        return
    backends = chosen_backends(args.backend)
    print(
        f"python {sys.version.split()[0]}, {machine_note()}; a {show_size(size)} file, "
        f"{args.repeat} repetitions per backend",
        flush=True,
    )
    results: dict[str, Any] = {}
    for backend in backends:
        workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-repair-"))
        try:
            run = run_child(
                python_child(
                    os.path.abspath(__file__), "--child", backend, "--workdir", str(workdir),
                    "--repeat", str(args.repeat), "--size", args.size,
                )
            )  # fmt: skip
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        times = {key: [float(s) for s in run.answer[key]] for key in KEYS}  # type: ignore[attr-defined]
        median = {key: statistics.median(found) for key, found in times.items()}
        worst = {key: max(found) for key, found in times.items()}
        for key in KEYS:
            print(
                f"{backend:<10} {LABELS[key]:<31} median {median[key]:7.3f} s"
                f"  max {worst[key]:7.3f} s"
            )
        decl = "threads declared"
        met = "ok" if worst[decl] <= TARGET else "MISSED"
        print(
            f"{backend:<10} detection to repair: median {median[decl]:.3f} s, max "
            f"{worst[decl]:.3f} s from the bad declaration (target <= {TARGET:g} s: {met}); "
            f"= {median[decl] / median['passes declared']:.2f} x passes in a row, "
            f"{median[decl] / median['cp']:.0f} x cp + adler32; peak RSS "
            f"{run.peak_rss / 1e6:.0f} MB",
            flush=True,
        )
        results[backend] = {
            **{
                key.replace(" ", "_"): {
                    "median_s": round(median[key], 4),
                    "max_s": round(worst[key], 4),
                }
                for key in KEYS
            },
            "ratio_to_passes": round(median[decl] / median["passes declared"], 3),
            "ratio_to_cp": round(median[decl] / median["cp"], 1),
            "peak_rss_mb": round(run.peak_rss / 1e6),
        }
    print(f"after: {machine_note()}")
    print(
        json.dumps(
            {
                "benchmark": "detection_to_repair",
                "repeat": args.repeat,
                "size": size,
                "target_s": TARGET,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
