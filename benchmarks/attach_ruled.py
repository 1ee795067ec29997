"""Attaching one new file to a dataset that a rule covers, as a stream ingests it: milliseconds
per attach, the evaluator's work on it included, for a dataset of 10,000 files against one of 10.

    .venv/bin/python benchmarks/attach_ruled.py [--files 10000] [--attaches 50]
        [--repeat 3] [--backend sqlite|postgresql|both]

In a child process per run, on a fresh catalog (SQLite file or throwaway PostgreSQL database):
two datasets on SOURCE_DISK, ``large`` (``--files`` files) and ``small`` (10 files), each with
a rule to DEST_DISK, evaluated (one lock and one transfer request per file). Then, timed,
``--attaches`` times for each dataset in turn: one transaction registers a new file on
SOURCE_DISK and attaches it (what an ingestor does per chunk), then the evaluator runs until it
has nothing left to do. Afterwards every attached file must hold its lock and its request, and
the locks of the files from before must be untouched.

Baseline: the same attach into the 10-file dataset, in the same run. An attach whose cost does
not grow with the dataset has a ratio near 1; before the evaluator looked at the attached files
only, it re-read the whole rule (issue 5/6: a chunk attached every 20 ms to a ruled dataset).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from _transfer import (
    BACKENDS,
    SCOPE,
    add_rse,
    alternate,
    chosen_backends,
    fresh_lake,
    register_files,
)
from _util import child_answer, machine_note

SMALL = 10


def specs(prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    found = []
    for index in range(start, start + count):
        data = f"{prefix}-{index}".encode()
        found.append(
            {
                "scope": SCOPE,
                "name": f"{prefix}_{index:07d}",
                "bytes": len(data),
                "adler32": f"{zlib.adler32(data):08x}",
            }
        )
    return found


def add_rule(lake: Any, dataset: str) -> str:
    from lacus.service import rules as service_rules
    from lacus.service.lake import Principal
    from lacus.types import RuleSpec

    root = Principal("root", admin=True)
    (rule_id,) = service_rules.add_rules(
        lake, root, [RuleSpec(scope=SCOPE, name=dataset, rse_expression="DEST_DISK")]
    )
    return str(rule_id)


def evaluate(lake: Any) -> None:
    from lacus.daemons import DAEMONS
    from lacus.daemons.base import run_once

    run_once(lake, DAEMONS["evaluator"])


def attach_one(lake: Any, source_id: int, dataset: str, spec: dict[str, Any]) -> None:
    """One transaction: the new file's replica on SOURCE_DISK, attached to ``dataset``."""
    from lacus.core.dids import attach_new_files
    from lacus.core.replicas import register_replicas
    from lacus.service.lake import ROOT

    with lake.write() as conn:
        register_replicas(conn, source_id, [spec], account=ROOT, deterministic=True)  # type: ignore[list-item]
        attach_new_files(conn, SCOPE, dataset, [((SCOPE, spec["name"]), spec["bytes"])])


def lock_rows(lake: Any, rule_id: str) -> dict[str, tuple[str, Any]]:
    """name → (state, updated_at) of the rule's locks."""
    from sqlalchemy import select

    from lacus.db.tables import locks

    with lake.read() as conn:
        rows = conn.execute(
            select(locks.c.name, locks.c.state, locks.c.updated_at).where(
                locks.c.rule_id == rule_id
            )
        )
        return {row.name: (row.state, row.updated_at) for row in rows}


def requested(lake: Any) -> set[str]:
    from sqlalchemy import select

    from lacus.db.tables import requests

    with lake.read() as conn:
        return set(conn.execute(select(requests.c.name)).scalars())


def child(args: argparse.Namespace) -> None:
    from lacus.core.rses import get_rse_id

    workdir = Path(args.workdir)
    backend = args.child.split("-", 1)[1]
    with fresh_lake(workdir, backend) as lake:
        add_rse(lake, "SOURCE_DISK", prefix=str(workdir / "source"))
        add_rse(lake, "DEST_DISK", prefix=str(workdir / "dest"))
        with lake.read() as conn:
            source_id = get_rse_id(conn, "SOURCE_DISK")
        sizes = {"large": args.files, "small": SMALL}
        rules = {}
        for dataset, count in sizes.items():
            register_files(lake, "SOURCE_DISK", specs(dataset, 0, count), dataset=dataset)
            rules[dataset] = add_rule(lake, dataset)
        evaluate(lake)
        before = {dataset: lock_rows(lake, rule) for dataset, rule in rules.items()}
        timings: dict[str, list[float]] = {dataset: [] for dataset in sizes}
        attach_ms: dict[str, list[float]] = {dataset: [] for dataset in sizes}
        for index in range(args.attaches):
            for dataset, count in sizes.items():
                (spec,) = specs(dataset, count + index, 1)
                start = time.perf_counter()
                attach_one(lake, source_id, dataset, spec)
                attached = time.perf_counter()
                evaluate(lake)
                end = time.perf_counter()
                timings[dataset].append((end - start) * 1000)
                attach_ms[dataset].append((attached - start) * 1000)
        waiting = requested(lake)
        for dataset, rule_id in rules.items():
            after = lock_rows(lake, rule_id)
            new = set(after) - set(before[dataset])
            expected = {spec["name"] for spec in specs(dataset, sizes[dataset], args.attaches)}
            if new != expected or any(after[name][0] != "replicating" for name in new):
                raise RuntimeError(f"{dataset}: the attached files are not all locked")
            if not expected <= waiting:
                raise RuntimeError(f"{dataset}: attached files without a transfer request")
            if any(after[name] != lock for name, lock in before[dataset].items()):
                raise RuntimeError(f"{dataset}: locks of files attached before were changed")
    child_answer(
        sum(timings["large"]) / 1000,
        large_ms=statistics.median(timings["large"]),
        small_ms=statistics.median(timings["small"]),
        large_attach_ms=statistics.median(attach_ms["large"]),
        small_attach_ms=statistics.median(attach_ms["small"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--attaches", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    backends = chosen_backends(args.backend)
    print(
        f"python {sys.version.split()[0]}, {machine_note()}; {args.attaches} attaches of one file "
        f"to a ruled dataset of {args.files:,} files and to one of {SMALL}, {args.repeat} run(s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="lacus-bench-attach-") as workdir:
        runs = alternate(
            str(Path(__file__).resolve()),
            [f"lacus-{backend}" for backend in backends],
            args.repeat,
            ["--workdir", workdir, "--files", str(args.files), "--attaches", str(args.attaches)],
            show=lambda run: (
                f"{run.answer['large_ms']:7.1f} ms per attach to {args.files:,} files, "
                f"{run.answer['small_ms']:6.1f} ms to {SMALL}"
            ),
        )
    results: dict[str, Any] = {}
    for backend in backends:
        found = runs[f"lacus-{backend}"]
        large, small = (
            statistics.median(float(run.answer[key]) for run in found)
            for key in ("large_ms", "small_ms")
        )
        attach_large = statistics.median(float(run.answer["large_attach_ms"]) for run in found)
        print(
            f"{backend:<11} attach + evaluation: {large:.1f} ms ({args.files:,} files; the attach "
            f"transaction alone {attach_large:.1f} ms) vs {small:.1f} ms ({SMALL} files) = "
            f"{large / small:.2f} x"
        )
        results[backend] = {
            "large_ms": round(large, 2),
            "small_ms": round(small, 2),
            "large_attach_ms": round(attach_large, 2),
            "ratio": round(large / small, 3),
        }
    print(f"afterwards: {machine_note()}")
    print(
        json.dumps(
            {
                "benchmark": "attach_ruled",
                "files": args.files,
                "attaches": args.attaches,
                "repeat": args.repeat,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
