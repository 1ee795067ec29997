"""Upload one large file to a POSIX RSE with ``write_verified``, against ``cp`` and md5 alone.

    .venv/bin/python benchmarks/upload_large.py [--size-gib 2] [--repeat 3] [--cache cold,warm]

Every contender runs in its own child process (so its peak RSS is its own), interleaved with the
others, ``--repeat`` times. ``cold`` drops the page cache before every run (root only), so the
source is read from disk by every contender; ``warm`` reads the source into the page cache first.
Every run starts right after writing and deleting a scratch file as large as the source (see
``recycle_memory``). ``write_verified`` includes the read-back of the stored file. ``cp`` and the
``no fsync`` modes do not flush to disk; the ``fsync`` modes do (file and directory). The last
line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _util import (
    Figure,
    child_answer,
    drop_page_cache,
    machine_note,
    print_figure,
    python_child,
    ratio,
    read_through,
    recycle_memory,
    run_child,
)

BLOCK = 64 * 1024 * 1024
CHUNK = 4 * 1024 * 1024
STORED = "bench/ab/cd/large.h5"
VERIFIED = {  # mode -> (md5, fsync)
    "adler32": (False, False),
    "adler32+md5": (True, False),
    "adler32 fsync": (False, True),
    "adler32+md5 fsync": (True, True),
}
RATIOS = [  # name, contender, baseline
    ("adler32_vs_cp", "adler32", "cp"),
    ("adler32_md5_vs_md5", "adler32+md5", "md5"),
    ("adler32_fsync_vs_cp", "adler32 fsync", "cp"),
    ("adler32_md5_fsync_vs_md5", "adler32+md5 fsync", "md5"),
]
LABELS = {
    "cp": "cp (baseline)",
    "md5": "md5 alone (baseline)",
    **{mode: f"write_verified {mode}" for mode in VERIFIED},
}


def make_source(path: Path, size: int) -> None:
    """Random-looking bytes, fast: one random block repeated, each copy with its own prefix."""
    block = bytearray(os.urandom(BLOCK))
    with path.open("wb") as stream:
        for index, start in enumerate(range(0, size, BLOCK)):
            block[:8] = index.to_bytes(8, "little")
            stream.write(memoryview(block)[: min(BLOCK, size - start)])


def child(mode: str, source: str, rse: str) -> None:
    """Run one contender in this process and print its timing."""
    if mode == "make-source":
        make_source(Path(source), int(rse))
        child_answer(0.0)
        return
    if mode == "md5":
        start = time.perf_counter()
        digest = hashlib.md5(usedforsecurity=False)
        with open(source, "rb", buffering=0) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
        child_answer(time.perf_counter() - start, md5=digest.hexdigest())
        return
    from lacus.storage import PosixBackend, write_verified

    md5, fsync = VERIFIED[mode]
    backend = PosixBackend(rse, fsync=fsync)
    start = time.perf_counter()
    with open(source, "rb", buffering=0) as stream:
        sums = write_verified(backend, STORED, stream, md5=md5)
    seconds = time.perf_counter() - start
    backend.delete(STORED)
    child_answer(seconds, adler32=sums.adler32, md5=sums.md5)


def measure(mode: str, source: Path, workdir: Path) -> Figure:
    """One run of ``mode``, as a one-run Figure."""
    size = source.stat().st_size
    figure = Figure(LABELS[mode], size)
    if mode == "cp":
        target = workdir / "cp-copy"
        figure.runs.append(run_child(["cp", str(source), str(target)]))
        target.unlink()
    else:
        script = os.path.abspath(__file__)
        argv = python_child(script, "--child", mode, "--source", str(source))
        figure.runs.append(run_child([*argv, "--rse", str(workdir / "rse")]))
    return figure


def bench(cache: str, source: Path, workdir: Path, repeat: int) -> dict[str, Figure]:
    size = source.stat().st_size
    figures = {mode: Figure(label, size) for mode, label in LABELS.items()}
    checksums: set[str] = set()
    modes = list(figures)
    for round_ in range(repeat):
        shift = round_ % len(modes)  # interleaved, each round in another order
        for mode in modes[shift:] + modes[:shift]:
            figure = figures[mode]
            if cache == "cold":
                drop_page_cache()
            else:
                os.sync()
                read_through(str(source))
            recycle_memory(str(workdir), size)
            run = measure(mode, source, workdir).runs[0]
            figure.runs.append(run)
            checksums.update(str(value) for key, value in run.answer.items() if key == "md5")
    if len(checksums - {"None"}) > 1:
        raise RuntimeError(f"the contenders disagree on the md5 of the source: {checksums}")
    print(f"\n{size / 2**30:.2f} GiB, {cache} page cache, {repeat} runs each (median, best):")
    cp, md5 = figures["cp"], figures["md5"]
    print_figure(cp)
    print_figure(md5)
    print_figure(figures["adler32"], cp, target=0.6)
    print_figure(figures["adler32+md5"], md5, target=0.8)
    print_figure(figures["adler32 fsync"], cp)
    print_figure(figures["adler32+md5 fsync"], md5)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", default="cold,warm", help="cold, warm or cold,warm")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument(
        "--child", choices=["make-source", "md5", *VERIFIED], help=argparse.SUPPRESS
    )
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--rse", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.source, args.rse)
        return

    caches = args.cache.split(",")
    if "cold" in caches and not drop_page_cache():
        print("cannot drop the page cache here: measuring with the source in the page cache")
        caches = ["warm"]
    size = int(args.size_gib * 2**30)
    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-", dir=args.dir))
    try:
        source = workdir / "source.bin"  # made by a child: this process stays small (see run_child)
        run_child(
            python_child(
                __file__, "--child", "make-source", "--source", str(source), "--rse", str(size)
            )
        )
        print(f"python {sys.version.split()[0]}, {machine_note()}, files in {workdir}")
        results = {}
        for cache in caches:
            figures = bench(cache, source, workdir, args.repeat)
            results[cache] = {
                "figures": {mode: figure.as_dict() for mode, figure in figures.items()},
                "ratios": {
                    name: {
                        "median": round(ratio(figures[mode], figures[base]), 3),
                        "best": round(ratio(figures[mode], figures[base], best=True), 3),
                    }
                    for name, mode, base in RATIOS
                },
            }
        print(f"afterwards: {machine_note()}")
        print(json.dumps({"benchmark": "upload_large", "bytes": size, "results": results}))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
