"""The scrubber reading a POSIX RSE whole, against ``cat`` and a raw checksum pass of its files.

    .venv/bin/python benchmarks/scrub_throughput.py [--variant large|small|both]
        [--large 200x16MiB] [--small 5000x64KiB] [--backend sqlite|postgresql|both]
        [--cache cold|warm] [--repeat 3] [--dir /tmp]

Measured: ``lacus.daemons.base.run_once(lake, DAEMONS["scrubber"])`` with
``scrub_mb_per_second=0`` (no limit): one complete scrub round of an RSE, each replica read whole
through the POSIX backend (``storage.check_stored``: size, adler32 and, when the catalog has one,
md5, hashed in helper threads beside the reads), ``verified_at`` recorded, the run's counts
written. Target: >= 0.8 x the raw pass with the same checksums.

The files (``large``: 200 x 16 MiB, ``small``: 5,000 x 64 KiB; random bytes) are written once at
their deterministic paths under one directory, and registered in a catalog per backend (SQLite
file; PostgreSQL throwaway database) on two RSEs sharing that directory as their prefix:
``ALPHA_DISK`` with adler32 and md5, as ``lacus upload`` records them (the scrubber then checks
md5 too), and ``SCRUB_ADLER`` with adler32 only; PostgreSQL's catalog is then ANALYZEd (as
autovacuum would). Contenders, each in its own child process:

* ``cat`` (baseline: the I/O ceiling): ``cat FILES > /dev/null``, one process for all the files;
* ``adler32`` (baseline): one thread reads each file in 4 MiB chunks (``CHUNK_SIZE``) and sums
  them with zlib-ng's ``adler32``, as ``lacus.checksums`` does;
* ``adler32+md5`` (baseline): the same, summing md5 too (``hashlib``), one after the other;
* ``scrubber adler32 (BACKEND)``: the scrubber's round of ``SCRUB_ADLER``;
* ``scrubber adler32+md5 (BACKEND)``: the scrubber's round of ``ALPHA_DISK``.

Before every contender (not timed): every replica unverified and only the contender's RSE due
(``integrity_work``), every dirty page flushed, then ``cold`` (default, as transfer_large.py):
the page cache dropped (root only), so every contender reads the disk; or ``warm``: every file
read once into the page cache; then anonymous memory as large as the files is touched and freed
(``_transfer.recycle_anonymous_memory``). Contenders alternate, each round in another order;
median of ``--repeat``. Each scrubber run is checked: every replica verified, none bad, the
bytes verified are the files' bytes. The last line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from _transfer import alternate, chosen_backends, parse_size, recycle_anonymous_memory, show_size
from _util import (
    MB,
    Figure,
    Run,
    child_answer,
    drop_page_cache,
    machine_note,
    print_figure,
    read_through,
    throwaway_postgres,
)

SCOPE = "bench"
MD5_RSE = "ALPHA_DISK"
ADLER_RSE = "SCRUB_ADLER"
TARGET = 0.8
RAW_CHUNK = 4 * 1024 * 1024  # lacus.checksums.CHUNK_SIZE
FAR = "2999-01-01 00:00:00"


def name_of(index: int) -> str:
    return f"scrub_{index:06d}.dat"


# -- the files and the catalogs (not timed) -----------------------------------------------------


def write_files(root: Path, count: int, size: int) -> list[dict[str, Any]]:
    """Random files at their deterministic paths under ``root``; their specs with checksums."""
    from lacus.checksums import checksum_chunks
    from lacus.naming import deterministic_path

    specs = []
    for index in range(count):
        name = name_of(index)
        path = deterministic_path(SCOPE, name)
        data = os.urandom(size)
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        sums = checksum_chunks([data])
        specs.append(
            {"scope": SCOPE, "name": name, "bytes": size, "adler32": sums.adler32, "md5": sums.md5}
        )
    return specs


def open_lake(url: str, lake_dir: Path) -> Any:
    from lacus.service import Lake, Settings

    return Lake(Settings(lake_dir=lake_dir, database_url=url, scrub_mb_per_second=0))


def build_catalog(url: str, lake_dir: Path, root: Path, specs: list[dict[str, Any]]) -> None:
    """Seed the catalog; register the files on ALPHA_DISK (with md5) and SCRUB_ADLER (without),
    both RSEs with ``root`` as their prefix."""
    from sqlalchemy import update

    from lacus.core import replicas, rses, scopes
    from lacus.db import upgrade
    from lacus.db.tables import rse_protocols
    from lacus.service.lake import ROOT, seed_catalog
    from lacus.types import ProtocolInfo

    lake = open_lake(url, lake_dir)
    try:
        upgrade(lake.engine)
        with lake.write() as conn:
            seed_catalog(conn, secrets.token_urlsafe(12), lake_dir)
            scopes.add_scope(conn, SCOPE, account=ROOT)
            alpha = rses.get_rse_id(conn, MD5_RSE)
            conn.execute(
                update(rse_protocols)
                .where(rse_protocols.c.rse_id == alpha)
                .values(prefix=str(root))
            )
            adler = rses.add_rse(conn, ADLER_RSE)
            rses.add_protocol(
                conn,
                adler,
                ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(root), impl="posix"),
            )
            replicas.add_replicas(conn, alpha, specs, account=ROOT, deterministic=True)  # type: ignore[arg-type]
            without_md5 = [{**spec, "md5": None} for spec in specs]
            replicas.add_replicas(conn, adler, without_md5, account=ROOT, deterministic=True)  # type: ignore[arg-type]
        if lake.engine.dialect.name == "postgresql":
            # what autovacuum does soon after (it is off on the test server) and the service
            # after a registration of >= 5,000 files: without statistics PostgreSQL found
            # each replica the scrubber marks verified through the (rse_id, state) index,
            # reading every replica of the RSE each time (6 ms per file at 5,000 files)
            with lake.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
    finally:
        lake.close()


def reset(url: str, lake_dir: Path, rse: str) -> None:
    """Every replica unverified; only ``rse`` due for a scrub (a new round)."""
    from sqlalchemy import delete, insert, select, update

    from lacus.db.tables import audits, integrity_work, replicas, rses

    lake = open_lake(url, lake_dir)
    try:
        with lake.write() as conn:
            conn.execute(update(replicas).values(verified_at=None))
            conn.execute(delete(integrity_work).where(integrity_work.c.kind == "scrub"))
            conn.execute(delete(audits).where(audits.c.kind == "scrub"))
            for rse_id, name in conn.execute(select(rses.c.id, rses.c.rse)):
                conn.execute(
                    insert(integrity_work).values(
                        rse_id=rse_id,
                        kind="scrub",
                        next_at=None if name == rse else _far(),
                    )
                )
    finally:
        lake.close()


def _far() -> Any:
    from datetime import datetime

    return datetime.fromisoformat(FAR)


def prepare(cache: str, files: list[str], size: int) -> None:
    """Before a contender: flush, then drop the page cache (cold) or read every file (warm);
    then recycle memory as large as the files."""
    if cache == "cold":
        if not drop_page_cache():
            raise RuntimeError("cannot drop the page cache here (not root?): use --cache warm")
    else:
        os.sync()
        for path in files:
            read_through(path)
    recycle_anonymous_memory(max(size, 64 * 1024 * 1024))


# -- the contenders (children) -------------------------------------------------------------------


def raw_pass(files: list[str], *, md5: bool) -> float:
    from lacus.checksums import adler32

    start = time.perf_counter()
    for path in files:
        value = 1
        digest = hashlib.md5(usedforsecurity=False) if md5 else None
        with open(path, "rb", buffering=0) as stream:
            while chunk := stream.read(RAW_CHUNK):
                value = adler32(chunk, value)
                if digest is not None:
                    digest.update(chunk)
    return time.perf_counter() - start


def scrub(url: str, lake_dir: Path, rse: str, count: int, size: int) -> float:
    from sqlalchemy import func, select

    from lacus.daemons import DAEMONS
    from lacus.daemons.base import run_once
    from lacus.db.tables import audits, replicas, rses

    lake = open_lake(url, lake_dir)
    try:
        with lake.read() as conn:  # connect before the clock starts
            rse_id = conn.execute(select(rses.c.id).where(rses.c.rse == rse)).scalar_one()
        start = time.perf_counter()
        run_once(lake, DAEMONS["scrubber"])
        seconds = time.perf_counter() - start
        with lake.read() as conn:
            run = conn.execute(
                select(audits).where(audits.c.kind == "scrub", audits.c.rse_id == rse_id)
            ).one()
            unverified = conn.execute(
                select(func.count()).where(
                    replicas.c.rse_id == rse_id, replicas.c.verified_at.is_(None)
                )
            ).scalar_one()
    finally:
        lake.close()
    found = (run.state, run.files, run.bad, run.bytes_verified, unverified)
    want = ("finished", count, 0, count * size, 0)
    if found != want:
        raise RuntimeError(
            f"the scrub of {rse}: (state, files, bad, bytes, unverified) = {found}, not {want}"
        )
    return seconds


def child(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = json.loads(Path(args.work).read_text())
    files, size, count = work["files"], work["size"], len(work["files"])
    if args.child == "cat":
        import subprocess

        start = time.perf_counter()
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
        child_answer(time.perf_counter() - start)
    elif args.child in ("adler32", "adler32+md5"):
        child_answer(raw_pass(files, md5=args.child == "adler32+md5"))
    else:  # scrubber-<rse>-<backend>
        _, rse, backend = args.child.split(":")
        url = work["urls"][backend]
        child_answer(scrub(url, Path(work["lake_dirs"][backend]), rse, count, size))


# -- the parent ----------------------------------------------------------------------------------


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'catalog.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def parse_files(text: str) -> tuple[int, int]:
    """``200x16MiB`` → (200, 16 MiB in bytes)."""
    count, _, size = text.partition("x")
    return int(count), parse_size(size)


def measure(args: argparse.Namespace, variant: str, backends: list[str]) -> dict[str, Any]:
    count, size = parse_files(args.large if variant == "large" else args.small)
    total = count * size
    workdir = Path(tempfile.mkdtemp(prefix=f"lacus-bench-scrub-{variant}-", dir=args.dir))
    try:
        with ExitStack() as stack:
            root = workdir / "storage"
            start = time.perf_counter()
            specs = write_files(root, count, size)
            os.sync()
            print(
                f"{variant}: {count} files x {show_size(size)} = {total / MB:,.0f} MB written "
                f"in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
            from lacus.naming import deterministic_path

            files = [str(root / deterministic_path(SCOPE, spec["name"])) for spec in specs]
            urls, lake_dirs = {}, {}
            for backend in backends:
                lake_dir = workdir / f"lake-{backend}"
                lake_dir.mkdir()
                urls[backend] = stack.enter_context(database(backend, lake_dir))
                lake_dirs[backend] = str(lake_dir)
                build_catalog(urls[backend], lake_dir, root, specs)
            work = workdir / "work.json"
            work.write_text(
                json.dumps({"files": files, "size": size, "urls": urls, "lake_dirs": lake_dirs})
            )
            modes = ["cat", "adler32", "adler32+md5"]
            for backend in backends:
                modes += [f"scrubber:{ADLER_RSE}:{backend}", f"scrubber:{MD5_RSE}:{backend}"]

            def before(mode: str, _round: int) -> list[str]:
                if mode.startswith("scrubber:"):
                    _, rse, backend = mode.split(":")
                    reset(urls[backend], Path(lake_dirs[backend]), rse)
                prepare(args.cache, files, total)
                return ["--work", str(work)]

            runs = alternate(
                os.path.abspath(__file__),
                modes,
                args.repeat,
                [],
                show=lambda run: (
                    f"{total / run.seconds / MB:8.0f} MB/s  peak RSS {run.peak_rss / MB:5.0f} MB"
                ),
                extra=before,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(variant, count, size, runs, backends)


def report(
    variant: str, count: int, size: int, runs: dict[str, list[Run]], backends: list[str]
) -> dict[str, Any]:
    total = count * size
    figures = {mode: Figure(label(mode), total, found) for mode, found in runs.items()}
    print(f"{variant}: {count} files x {show_size(size)}")
    for mode in ("cat", "adler32", "adler32+md5"):
        print_figure(figures[mode])
    result: dict[str, Any] = {
        "files": count,
        "size": size,
        **{mode: figures[mode].as_dict() for mode in ("cat", "adler32", "adler32+md5")},
    }
    for backend in backends:
        for rse, raw in ((ADLER_RSE, "adler32"), (MD5_RSE, "adler32+md5")):
            figure = figures[f"scrubber:{rse}:{backend}"]
            print_figure(figure, figures[raw], TARGET)
            print_figure(figure, figures["cat"])
            result[f"scrubber {raw} ({backend})"] = {
                **figure.as_dict(),
                f"ratio_to_raw_{raw}": round(figure.median / figures[raw].median, 3),
                "ratio_to_cat": round(figure.median / figures["cat"].median, 3),
            }
    return result


def label(mode: str) -> str:
    if mode.startswith("scrubber:"):
        _, rse, backend = mode.split(":")
        sums = "adler32" if rse == ADLER_RSE else "adler32+md5"
        return f"scrubber {sums} ({backend})"
    return {"cat": "cat > /dev/null", "adler32": "raw adler32", "adler32+md5": "raw adler32+md5"}[
        mode
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["large", "small", "both"], default="both")
    parser.add_argument("--large", default="200x16MiB", help="COUNTxSIZE of the large variant")
    parser.add_argument("--small", default="5000x64KiB", help="COUNTxSIZE of the small variant")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--cache", choices=["cold", "warm"], default="cold")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the files and SQLite catalogs go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.cache == "cold" and not drop_page_cache():
        raise SystemExit("cannot drop the page cache here (not root?): use --cache warm")
    backends = chosen_backends(args.backend)
    variants = ["large", "small"] if args.variant == "both" else [args.variant]
    print(
        f"python {sys.version.split()[0]}, {machine_note()}; {args.cache} page cache, "
        f"{args.repeat} run(s) each (median); MB = 10^6 bytes",
        flush=True,
    )
    results = {variant: measure(args, variant, backends) for variant in variants}
    print(f"after: {machine_note()}")
    print(
        json.dumps(
            {
                "benchmark": "scrub_throughput",
                "cache": args.cache,
                "repeat": args.repeat,
                "target": TARGET,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
