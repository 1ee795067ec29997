"""10,000 files of 1 KiB replicated POSIX -> POSIX by one rule: files/s from ``add_rule`` to the
rule ``ok``, against a durable Python copy loop and ``cp -r``.

    .venv/bin/python benchmarks/transfer_small_files.py [--files 10000] [--size 1024]
        [--repeat 3] [--backend sqlite|postgresql|both] [--profile DIR]
        [--threads N] [--link-max-active N]

The files sit on SOURCE_DISK (a POSIX RSE, Rucio's deterministic layout), registered there with
size, adler32 and md5 (as an upload registers them) and attached to one dataset. Timed, in a
child process per run on a fresh catalog (SQLite file or a throwaway PostgreSQL database):
``add_rule`` (dataset -> DEST_DISK), the evaluator (one lock and one transfer request per file),
then the conveyor until it has nothing left to do, with the default settings (16 transfer
threads, at most 8 copies at once on one link): each file copied to a hidden name, fsynced,
read back and checked against the catalog, renamed, its directory fsynced, and registered in
batches. The rule must then be ``ok`` with every replica ``available``.

Baselines, same run, in their own child processes:

* ``python durable copy`` — one thread, for each file: open the source, read, create the
  destination (its directories as needed, same layout), write, ``fsync``, close. What any copier
  that promises durability must do per file (Lacus also renames and fsyncs the directory).
* ``cp -r`` — the whole tree, no fsync.

Target: Lacus >= 500 files/s. The source files are in the page cache for every contender
(``sync`` first, so no run inherits another's dirty pages). ``--profile DIR`` runs the timed
part of the first Lacus run of each backend under ``py-spy record`` (raw collapsed stacks of
the busy threads, in DIR) and prints the busy time of each kind of thread and its hottest frames.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
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
    lacus_labels,
    median_of,
    peak_rss_mb,
    profile_first_runs,
    register_files,
    report,
    stored_path,
    summarize_profile,
    timed_replication,
)
from _util import (
    child_answer,
    machine_note,
)

DATASET = "many_small"
TARGET = 500.0


def file_name(index: int) -> str:
    return f"small_{index:06d}.dat"


def make_sources(prefix: Path, files: int, size: int) -> list[dict[str, Any]]:
    """``files`` files of ``size`` random bytes on the source RSE; their catalog entries."""
    specs = []
    for index in range(files):
        name = file_name(index)
        data = os.urandom(size)
        path = stored_path(prefix, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        specs.append(
            {
                "scope": SCOPE,
                "name": name,
                "bytes": size,
                "adler32": f"{zlib.adler32(data):08x}",
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            }
        )
    return specs


# -- children -------------------------------------------------------------------------------------


def child_python(args: argparse.Namespace) -> None:
    source = Path(args.workdir) / "source"
    target = Path(args.workdir) / "python-copy"
    names = [file_name(index) for index in range(args.files)]
    paths = [(stored_path(source, n), stored_path(target, n)) for n in names]
    os.sync()
    made: set[Path] = set()
    start = time.perf_counter()
    for src, dst in paths:
        if dst.parent not in made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        with open(src, "rb", buffering=0) as stream:
            data = stream.read()
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - start
    shutil.rmtree(target)
    child_answer(seconds)


def child_cp(args: argparse.Namespace) -> None:
    source = Path(args.workdir) / "source"
    target = Path(args.workdir) / "cp-copy"
    os.sync()
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(target)
    child_answer(seconds, peak_rss=0)


def child_lacus(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    dest = workdir / "dest"
    try:
        settings = {
            key: value
            for key, value in (
                ("transfer_threads", args.threads),
                ("transfer_link_max_active", args.link_max_active),
            )
            if value is not None
        }
        with fresh_lake(workdir, args.child.split("-", 1)[1], **settings) as lake:
            add_rse(lake, "SOURCE_DISK", prefix=str(workdir / "source"))
            add_rse(lake, "DEST_DISK", prefix=str(dest))
            specs = json.loads((workdir / "specs.json").read_text())
            register_files(lake, "SOURCE_DISK", specs, dataset=DATASET)
            os.sync()
            timing = timed_replication(lake, DATASET, "DEST_DISK", profile=args.profile)
            copied = sum(1 for _ in dest.rglob("small_*"))
            if timing["replicas"] != 2 * args.files or copied != args.files:
                raise RuntimeError(f"{timing['replicas']} replicas, {copied} files copied")
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    child_answer(timing.pop("seconds"), **timing)


# -- parent ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--profile", help="py-spy the first Lacus run per backend; files here")
    parser.add_argument("--threads", type=int, help="transfer_threads (default: the setting's)")
    parser.add_argument(
        "--link-max-active", type=int, help="transfer_link_max_active (default: the setting's)"
    )
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "python":
        child_python(args)
        return
    if args.child == "cp":
        child_cp(args)
        return
    if args.child:
        child_lacus(args)
        return

    backends = chosen_backends(args.backend)
    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-small-", dir=args.dir))
    try:
        specs = make_sources(workdir / "source", args.files, args.size)
        (workdir / "specs.json").write_text(json.dumps(specs))
        print(
            f"python {sys.version.split()[0]}, {machine_note()}; {args.files:,} files of "
            f"{args.size} B, {args.repeat} run(s) each (median)",
            flush=True,
        )
        labels = {"python": "python durable copy", "cp": "cp -r"}
        labels.update(lacus_labels(backends, "lacus rule"))
        runs = alternate(
            os.path.abspath(__file__),
            list(labels),
            args.repeat,
            [
                "--workdir",
                str(workdir),
                "--files",
                str(args.files),
                *(["--threads", str(args.threads)] if args.threads else []),
                *(["--link-max-active", str(args.link_max_active)] if args.link_max_active else []),
            ],
            show=lambda run: f"{args.files / run.seconds:8.0f} files/s",
            extra=profile_first_runs(args.profile, backends),
        )
        rate = {
            mode: statistics.median(args.files / run.seconds for run in found)
            for mode, found in runs.items()
        }
        print(f"\n{args.files:,} files, median of {args.repeat}:")
        for mode in ("python", "cp"):
            print(f"{labels[mode]:<28} {rate[mode]:8.0f} files/s")
        results: dict[str, Any] = {
            "python_files_s": round(rate["python"]),
            "cp_files_s": round(rate["cp"]),
        }
        for backend in backends:
            mode = f"lacus-{backend}"
            found = runs[mode]
            rss = peak_rss_mb(found)
            parts = {
                key: median_of(found, key) for key in ("add_rule_s", "evaluate_s", "conveyor_s")
            }
            print(
                f"{labels[mode]:<28} {rate[mode]:8.0f} files/s (best "
                f"{max(args.files / r.seconds for r in found):.0f}; add_rule "
                f"{parts['add_rule_s']:.3f} s, evaluator {parts['evaluate_s']:.2f} s, conveyor "
                f"{parts['conveyor_s']:.2f} s)  = {rate[mode] / rate['python']:.2f} x python "
                f"durable copy, {rate[mode] / rate['cp']:.2f} x cp -r; peak RSS {rss:.0f} MB"
                f"  target >= {TARGET:.0f} files/s: "
                f"{'ok' if rate[mode] >= TARGET else 'MISSED'}",
                flush=True,
            )
            if args.profile:
                summarize_profile(
                    Path(args.profile) / f"transfer_small_files-{backend}.txt",
                    found[0].seconds,
                )
            results[backend] = {
                "files_s": round(rate[mode]),
                "files_s_best": round(max(args.files / r.seconds for r in found)),
                "ratio_python": round(rate[mode] / rate["python"], 3),
                "ratio_cp": round(rate[mode] / rate["cp"], 3),
                **parts,
                "run_peak_rss_mb": round(rss, 1),
            }
        report(
            "transfer_small_files",
            results,
            files=args.files,
            size=args.size,
            repeat=args.repeat,
            target=TARGET,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
