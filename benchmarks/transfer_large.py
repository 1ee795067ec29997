"""One large file replicated POSIX -> POSIX by a rule, against ``cp`` of the same file.

    .venv/bin/python benchmarks/transfer_large.py [--size 4GiB] [--repeat 2]
        [--backend sqlite|postgresql|both] [--cache cold|warm] [--md5] [--dir /tmp]

The file (random-looking bytes) sits on SOURCE_DISK, a POSIX RSE, and is registered there with
its size and adler32 (``--md5``: and its md5, so the copy computes and checks md5 too). Timed,
in a child process per run on a fresh catalog (SQLite file or a throwaway PostgreSQL database):
``add_rule`` on DEST_DISK, the evaluator, then the conveyor until it has nothing left to do; the
rule must then be ``ok`` and both replicas ``available``. The conveyor copies with
``storage.copy_verified``; between two POSIX RSEs that is ``PosixBackend.copy_from``: the kernel
copies the bytes to a hidden name (``copy_file_range``, as ``cp`` does), a helper thread reads
the new file back behind the copy and sums it (adler32, md5 with ``--md5``), the file is
fsynced (the RSE's default) and takes its name only if size and checksums equal the catalog's.

Baselines, same run, same conditions: ``cp`` (not durable: its bytes may still be in the page
cache when it returns) and ``cp + sync`` (``cp`` then ``sync FILE``, i.e. fsync: as durable as
the conveyor's copy); with ``--md5`` also ``md5sum`` of the source (md5 alone bounds any copy
that checks it). Target: Lacus >= 0.6 x ``cp`` (median MB/s); the conveyor process's peak RSS
< 200 MB (VmHWM reset after the catalog is built, so it covers add_rule, evaluator and
conveyor).

Page cache, the same for every contender: before each run every dirty page is flushed
(``sync``: the previous run's writes never overlap this one) and then ``cold`` (default) drops
the page cache, so every contender reads the source from the disk (the fair choice for a copy
of a file larger than what a busy server keeps cached), or ``warm`` reads the source into the
page cache first. Then anonymous memory as large as the file is touched and freed, so that
every contender writes into recently used memory (a VM returns idle memory to its host; see
``_util.recycle_memory``). Contenders alternate, each round in another order.

The read-back (decision recorded in RESULTS.md): the copy is read back from the page cache, not
from the disk. Once ``fsync`` has succeeded a local file system vouches that the disk holds what
the page cache holds; reading the disk again (O_DIRECT) would cost a second full read of the
file and prove only what the disk and file system already promise. Reading the page cache is
at memory speed and is what checks the bytes against the catalog: it catches a corrupted
source and anything that went wrong on the way, before the file takes its name.

Disk: the source, plus one copy at a time (deleted after each run): 2 x ``--size`` free in
``--dir``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
    make_source,
    median_of,
    parse_size,
    peak_rss_mb,
    prepare_cache,
    register_files,
    report,
    show_size,
    stored_path,
    timed_replication,
)
from _util import (
    Figure,
    child_answer,
    machine_note,
    own_peak_rss,
    print_figure,
    python_child,
    ratio,
    run_child,
)

NAME = "large.h5"
TARGET = 0.6
RSS_TARGET_MB = 200


# -- children -----------------------------------------------------------------------------------


def child_cp(args: argparse.Namespace) -> None:
    source = stored_path(Path(args.workdir) / "source", NAME)
    target = Path(args.workdir) / "cp" / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    prepare_cache(args.cache, source, args.size_bytes)
    start = time.perf_counter()
    if args.child == "md5sum":
        subprocess.run(["md5sum", str(source)], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        child_answer(seconds, peak_rss=0)
        return
    subprocess.run(["cp", str(source), str(target)], check=True)
    if args.child == "cp+sync":
        subprocess.run(["sync", str(target)], check=True)
    seconds = time.perf_counter() - start
    if target.stat().st_size != args.size_bytes:
        raise RuntimeError(f"cp wrote {target.stat().st_size} bytes")
    target.unlink()
    child_answer(seconds, peak_rss=0)  # cp's own is not measurable from here (see run_child)


def child_lacus(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    source_prefix, dest_prefix = workdir / "source", workdir / "dest"
    spec = {"scope": SCOPE, "name": NAME, **json.loads(args.sums)}
    if spec.get("md5") is None:
        del spec["md5"]
    try:
        with fresh_lake(workdir, args.child.split("-", 1)[1]) as lake:
            add_rse(lake, "SOURCE_DISK", prefix=str(source_prefix))
            add_rse(lake, "DEST_DISK", prefix=str(dest_prefix))
            register_files(lake, "SOURCE_DISK", [spec])
            build_peak = own_peak_rss()
            prepare_cache(args.cache, stored_path(source_prefix, NAME), args.size_bytes)
            timing = timed_replication(lake, NAME, "DEST_DISK")
            size = stored_path(dest_prefix, NAME).stat().st_size
            if size != args.size_bytes or timing["replicas"] != 2:
                raise RuntimeError(f"copy of {size} bytes, {timing['replicas']} replicas")
    finally:
        shutil.rmtree(dest_prefix, ignore_errors=True)
    child_answer(timing.pop("seconds"), build_peak_rss=build_peak, **timing)


# -- parent ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4GiB", help="file size, e.g. 4GiB, 256MiB")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--cache", choices=["cold", "warm"], default="cold")
    parser.add_argument("--md5", action="store_true", help="the file has an md5 in the catalog")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--sums", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size_bytes = parse_size(args.size)
    if args.child == "make-source":
        source = stored_path(Path(args.workdir) / "source", NAME)
        child_answer(0.0, **make_source(source, args.size_bytes, args.md5))
        return
    if args.child in ("cp", "cp+sync", "md5sum"):
        child_cp(args)
        return
    if args.child:
        child_lacus(args)
        return

    size = args.size_bytes
    free = shutil.disk_usage(args.dir).free
    if free < 2 * size + 2**30:
        raise SystemExit(
            f"{args.dir}: {show_size(free)} free, {show_size(2 * size + 2**30)} needed"
        )
    backends = chosen_backends(args.backend)
    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-transfer-", dir=args.dir))
    script = os.path.abspath(__file__)
    common = ["--workdir", str(workdir), "--size", str(size), "--cache", args.cache]
    try:
        made = run_child(
            python_child(script, "--child", "make-source", *common, *(["--md5"] * args.md5))
        )
        sums = {key: made.answer[key] for key in ("bytes", "adler32", "md5")}
        print(
            f"python {sys.version.split()[0]}, {machine_note()}; {show_size(size)}, "
            f"{args.cache} page cache, checksums {'adler32+md5' if args.md5 else 'adler32'}, "
            f"{args.repeat} run(s) each; files in {workdir}",
            flush=True,
        )
        labels = {"cp": "cp (baseline)", "cp+sync": "cp + sync FILE (durable baseline)"}
        if args.md5:
            labels["md5sum"] = "md5sum of the source"
        labels.update(lacus_labels(backends))
        runs = alternate(
            script,
            list(labels),
            args.repeat,
            [*common, "--sums", json.dumps(sums)],
            show=lambda run: f"{size / run.seconds / 1e6:8.0f} MB/s",
        )
        figures = {mode: Figure(label, size, runs[mode]) for mode, label in labels.items()}
        cp, durable = figures["cp"], figures["cp+sync"]
        print(f"\n{show_size(size)}, median of {args.repeat}:")
        print_figure(cp)
        print_figure(durable, cp)
        if args.md5:
            print_figure(figures["md5sum"], cp)
        results: dict[str, Any] = {
            "cp": cp.as_dict(),
            "cp_sync": durable.as_dict(),
        }
        for backend in backends:
            figure = figures[f"lacus-{backend}"]
            found = figure.runs
            rss = peak_rss_mb(found)
            print_figure(figure, cp, target=TARGET)
            conveyor, evaluate = median_of(found, "conveyor_s"), median_of(found, "evaluate_s")
            print(
                f"{'':<34} = {ratio(figure, durable):.2f} x cp + sync"
                + (f", {ratio(figure, figures['md5sum']):.2f} x md5sum" if args.md5 else "")
                + f"; conveyor {conveyor:.2f} s, "
                f"evaluator {evaluate:.3f} s; peak RSS of the timed part {rss:.0f} MB (target "
                f"< {RSS_TARGET_MB}: {'ok' if rss < RSS_TARGET_MB else 'MISSED'})",
                flush=True,
            )
            results[backend] = {
                **figure.as_dict(),
                "ratio_cp": round(ratio(figure, cp), 3),
                "ratio_cp_best": round(ratio(figure, cp, best=True), 3),
                "ratio_cp_sync": round(ratio(figure, durable), 3),
                **(
                    {"ratio_md5sum": round(ratio(figure, figures["md5sum"]), 3)} if args.md5 else {}
                ),
                "conveyor_s": conveyor,
                "evaluate_s": evaluate,
                "run_peak_rss_mb": round(rss, 1),
            }
        report("transfer_large", results, bytes=size, cache=args.cache, md5=args.md5, target=TARGET)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
