"""Upload many small files end to end through a real server, against ``cp -r`` of the same files.

    .venv/bin/python benchmarks/upload_small_files.py [--files 10000] [--size 1024] [--workers 4]
        [--repeat 3] [--profile] [--dir /tmp]

A lake made by ``lacus.service.init_lake`` (SQLite catalog, POSIX RSEs) in a temporary directory is
served by a real uvicorn server in a thread of this process (as tests/conftest.py does). A child
process runs ``lacus.Client.upload([directory], rse="ALPHA_DISK", scope=...)``: every file is
streamed to the RSE with its checksums, read back and verified, then registered over REST with
its dataset; the child times the ``upload`` call alone and checks that the dataset holds every
file. The baseline, in the same run and on the same file system, is ``cp -r`` of the directory
(files/s). Contenders alternate, ``--repeat`` times, each upload into a new scope; the median is
reported. ``os.sync()`` runs before every contender, so nobody flushes another's dirty pages.

The POSIX backend fsyncs every file and its directory by default (``PosixBackend(fsync=True)``);
the client builds its backend with ``open_backend(scheme, prefix=...)`` and has no way to pass
``fsync=False``, so uploads run with fsync on; ``cp`` does not fsync.

``--profile`` adds one upload with ``--workers 1`` under cProfile (not counted in the figures)
and prints where the time goes per file: open, write, fsync, link/rename, read-back verify, HTTP
registration. The last line is JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _util import child_answer, python_child, run_child

RSE = "ALPHA_DISK"
DATASET = "small_files"  # the directory's name: an upload makes it the dataset of its files


# -- child: one upload ---------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    from lacus.client import Client

    with Client(args.url, account="root", password=args.password) as client:
        client.add_scope(args.scope, account="root")
        profiler = cProfile.Profile() if args.profile_out else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        done = client.upload([args.source], rse=RSE, scope=args.scope, workers=args.workers)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - start
        dataset = client.get_did(f"{args.scope}:{DATASET}")
    expected = sum(1 for _ in os.scandir(args.source))
    if len(done) != expected or dataset["length"] != expected:
        raise RuntimeError(f"uploaded {len(done)}, dataset holds {dataset['length']}: {expected}")
    if profiler is not None:
        profiler.dump_stats(args.profile_out)
    child_answer(seconds, files=len(done), bytes=dataset["bytes"])


# -- parent ----------------------------------------------------------------------------------------


def make_source(directory: Path, files: int, size: int) -> None:
    directory.mkdir()
    for index in range(files):
        (directory / f"file_{index:06d}.dat").write_bytes(os.urandom(size))


class Server:
    """A real uvicorn server for one lake, on a loopback port, in a thread of this process."""

    def __init__(self, lake_dir: Path) -> None:
        import uvicorn

        from lacus.server import create_app
        from lacus.service import load_settings

        app = create_app(load_settings(lake_dir))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def upload_argv(
    args: argparse.Namespace, url: str, password: str, source: Path, scope: str, workers: int
) -> list[str]:
    return python_child(
        os.path.abspath(__file__), "--child", "--url", url, "--password", password,
        "--source", str(source), "--scope", scope, "--workers", str(workers),
    )  # fmt: skip


# Where an upload spends its time, from cProfile (main thread only: helper threads that hash or
# read back show as the main thread's wait for them). (label, functions, file suffix, callers): a
# Python function counts with its cumulative time; a built-in ("~") with its own time, from the
# given callers only. Indented labels are details of the line above, not added to the total.
PARTS: list[tuple[str, tuple[str, ...], str, tuple[str, ...]]] = [
    ("plan (scan the directory)", ("plan_upload",), "upload.py", ()),
    ("open the source file", ("<built-in method io.open>",), "~", ("_write_one",)),
    ("storage put, in all", ("_put", "put"), "posix.py", ()),
    ("  create temp file (+ mkdir)", ("_create",), "posix.py", ()),
    ("  copy: read, checksums, write", ("_copy",), "posix.py", ()),
    ("  fsync the file", ("<built-in method posix.fsync>",), "~", ("_put", "put")),
    ("  close the file", ("<built-in method posix.close>",), "~", ("_put", "put")),
    ("  link into place, unlink temp", ("_place",), "posix.py", ()),
    ("  fsync the directory", ("_fsync_directory",), "posix.py", ()),
    ("read back after put: stat", ("stat",), "posix.py", ()),
    ("read back after put: adler32", ("checksum",), "posix.py", ()),
    ("HTTP registration (+ server)", ("add_replicas",), "_client.py", ()),
]


def profile_report(path: str, files: int) -> dict[str, float]:
    table: dict[tuple[str, int, str], Any] = pstats.Stats(path).stats  # type: ignore[attr-defined]
    total = max(entry[3] for (_, _, name), entry in table.items() if name == "upload")
    print(f"\nwhere the time goes (1 worker, cProfile, {files} files, {total:.2f} s in upload):")
    report: dict[str, float] = {}
    for label, functions, suffix, callers in PARTS:
        found = [
            (filename, entry)
            for (filename, _, name), entry in table.items()
            if name in functions and filename.endswith(suffix)
        ]
        if not callers:  # the outermost of nested names (put calls _put): the largest
            seconds = max((e[2] if f == "~" else e[3] for f, e in found), default=0.0)
        else:
            seconds = sum(v[2] for _, e in found for (_, _, by), v in e[4].items() if by in callers)
        report[label] = seconds
    details = sum(v for k, v in report.items() if k.startswith("  "))
    ordered: dict[str, float] = {}
    for label, seconds in report.items():
        ordered[label] = seconds
        if label == "  fsync the directory":
            ordered["  other put work (threads...)"] = report["storage put, in all"] - details
    top = sum(v for k, v in report.items() if not k.startswith(" "))
    ordered["other (bookkeeping, threads)"] = total - top
    report = ordered
    for label, seconds in report.items():
        print(
            f"  {label:<32} {seconds:6.2f} s {seconds / files * 1e6:6.0f} us/file"
            f" {seconds / total:6.1%}"
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--workers", type=int, default=4, help="upload threads (Client.upload)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="add a profiled 1-worker upload")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--url", "--password", "--source", "--scope", "--profile-out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from lacus.service import init_lake

    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-small-", dir=args.dir))
    try:
        source = workdir / DATASET
        make_source(source, args.files, args.size)
        password = secrets.token_urlsafe(12)
        init_lake(workdir / "lake", root_password=password)
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.files} files of "
            f"{args.size} B in {workdir}; {args.workers} upload workers, fsync on (default), "
            f"SQLite catalog; {args.repeat} runs each (median)"
        )
        runs: dict[str, list[float]] = {"cp": [], "upload": []}
        peak_rss: list[int] = []
        with Server(workdir / "lake") as server:
            for index in range(args.repeat):  # alternated: drifts hit both alike
                os.sync()
                target = workdir / f"cp-{index}"
                runs["cp"].append(run_child(["cp", "-r", str(source), str(target)]).seconds)
                shutil.rmtree(target)
                os.sync()
                argv = upload_argv(
                    args, server.url, password, source, f"bench{index}", args.workers
                )
                run = run_child(argv)
                runs["upload"].append(run.seconds)
                peak_rss.append(run.peak_rss)
            if args.profile:
                os.sync()
                out = str(workdir / "upload.pstats")
                argv = upload_argv(args, server.url, password, source, "benchprofile", 1)
                profiled = run_child([*argv, "--profile-out", out])
                breakdown = profile_report(out, args.files)
                print(f"  (profiled upload: {args.files / profiled.seconds:,.0f} files/s)")
        rate = {
            name: statistics.median(args.files / s for s in found) for name, found in runs.items()
        }
        best = {name: max(args.files / s for s in found) for name, found in runs.items()}
        share = rate["upload"] / rate["cp"]
        print(f"\ncp -r (baseline)        {rate['cp']:9,.0f} files/s (best {best['cp']:,.0f})")
        print(
            f"Client.upload           {rate['upload']:9,.0f} files/s (best {best['upload']:,.0f})"
            f"  peak RSS {max(peak_rss) / 1e6:.0f} MB  = {share:.3f} x cp -r"
        )
        result: dict[str, Any] = {
            "benchmark": "upload_small_files",
            "files": args.files,
            "bytes_each": args.size,
            "workers": args.workers,
            "fsync": True,
            "repeat": args.repeat,
            "upload_files_s": round(rate["upload"]),
            "cp_files_s": round(rate["cp"]),
            "ratio": round(share, 4),
            "upload_peak_rss_mb": round(max(peak_rss) / 1e6),
        }
        if args.profile:
            result["profile_us_per_file"] = {
                label.strip(): round(seconds / args.files * 1e6)
                for label, seconds in breakdown.items()
            }
        print(json.dumps(result))
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()
