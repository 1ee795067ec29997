"""Reading one large lake file through ``lacus://`` (fsspec) against ``lacus download`` of it.

    .venv/bin/python benchmarks/fsspec_read.py [--size-mib 256] [--repeat 3] [--no-webdav]

A fresh lake (SQLite) served by ``lacus serve``; one file of random bytes uploaded to ALPHA_DISK
(POSIX, a directory of this machine) and, unless ``--no-webdav``, to a WebDAV RSE on the test
suite's Apache httpd (HTTPS on loopback, ``tests/servers/apache.py``). For each RSE, timed in a
child process per run (a client with root's token, the file system preferring that RSE):

- ``lacus download`` (baseline): ``Client.download`` to a local directory, adler32 checked
  before the file takes its name;
- ``fsspec read``: ``fs.open(path, block_size=8 MiB)`` read to its end 8 MiB at a time (range
  reads on the storage, summed as they come, checked by the read that ends the file); the
  bytes are thrown away;
- ``fsspec cat_file``: the whole file in memory, checked before it is returned;
- ``fsspec get``: a verified copy to a local file (what ``download`` does, through fsspec).

The source is in the page cache for every run (POSIX: read once before each run; WebDAV: read
by the run before, on a machine with memory to spare); local
copies go to a directory emptied between runs, and every run starts right after writing and
deleting a scratch file as large as the source (``recycle_memory``: without it, whichever
contender follows ``cat_file``'s 0.5 GB of freed memory writes at half speed). Contenders
alternate. Reported: MB/s (10**6),
median and best, peak RSS of the child, and each contender over ``lacus download`` of the same
RSE. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _rest import Served, served_lake
from _util import (
    Figure,
    child_answer,
    machine_note,
    print_figure,
    python_child,
    ratio,
    read_through,
    recycle_memory,
    run_child,
)

from lacus.client import Client

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
BLOCK = 8 * MIB
CONTENDERS = ["lacus download", "fsspec read", "fsspec cat_file", "fsspec get"]


def child(mode: str, url: str, token: str, rse: str, out: str) -> None:
    """One timed read in this process."""
    from lacus.client import Client
    from lacus.client.fs import LacusFileSystem

    client = Client(url, token=token)
    fs = LacusFileSystem(client=client, rse=rse, cache_dir=Path(out) / "cache")
    fs.info("bench/large.bin")  # connection and catalog look-ups outside the timing
    start = time.perf_counter()
    if mode == "lacus download":
        client.download(["bench:large.bin"], out, rse=rse)
    elif mode == "fsspec read":
        with fs.open("lacus://bench/large.bin", block_size=BLOCK) as stream:
            while stream.read(BLOCK):
                pass
    elif mode == "fsspec cat_file":
        data = fs.cat_file("lacus://bench/large.bin")
        del data
    else:
        fs.get_file("lacus://bench/large.bin", str(Path(out) / "large.bin"))
    child_answer(time.perf_counter() - start)


def start_apache(workdir: Path) -> Any:
    sys.path.insert(0, str(REPO))
    from tests.servers.apache import ApacheServer  # the test suite's server, not a copy

    binary = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin:/sbin")
    if binary is None:
        raise SystemExit("apache2 is not installed (bash scripts/services.sh installs it)")
    directory = workdir / "apache"
    directory.mkdir()
    server = ApacheServer(directory, binary)
    server.start()
    return server


def add_webdav_rse(client: Client, apache: Any) -> None:
    client.add_rse(
        "WEB_DISK",
        scheme="davs",
        hostname="127.0.0.1",
        port=apache.https_port,
        prefix="/bench",
        options={"verify": apache.ca_path},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-webdav", action="store_true")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "URL", "TOKEN", "RSE", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    size = args.size_mib * MIB
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="lacus-bench-fsspec-") as scratch:
        workdir = Path(scratch)
        workdir.chmod(0o755)  # Apache's workers (www-data) reach their files through it
        with served_lake(workdir / "lake", None) as served:
            client = Client(served.url, token=served.token)
            client.add_scope("bench")
            source = workdir / "large.bin"
            with source.open("wb") as out:
                for _ in range(size // MIB):
                    out.write(os.urandom(MIB))
            rses = ["ALPHA_DISK"] if args.no_webdav else ["ALPHA_DISK", "WEB_DISK"]
            apache = None if args.no_webdav else start_apache(workdir)
            try:
                if apache is not None:
                    add_webdav_rse(client, apache)
                client.upload([source], rse="ALPHA_DISK", scope="bench")
                source.unlink()
                if apache is not None:
                    (rule_id,) = client.add_rule("bench:large.bin", "WEB_DISK")
                    client.wait_for_rule(rule_id, timeout=600)
                replicas = next(client.list_replicas(["bench:large.bin"]))["rses"]
                print(f"{args.size_mib} MiB, {machine_note()}", flush=True)
                for rse in rses:
                    results[rse] = measure(served, rse, replicas[rse], size, args, workdir)
            finally:
                if apache is not None:
                    apache.stop()
    print(json.dumps({"size_mib": args.size_mib, "results": results}))


def measure(
    served: Served,
    rse: str,
    replica: dict[str, str],
    size: int,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, object]:
    figures = {mode: Figure(f"{rse}: {mode}", size) for mode in CONTENDERS}
    local = replica["pfn"].removeprefix("file://")
    out = workdir / "out"
    for round_ in range(args.repeat):
        order = CONTENDERS[round_ % len(CONTENDERS) :] + CONTENDERS[: round_ % len(CONTENDERS)]
        for mode in order:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if rse == "ALPHA_DISK":
                read_through(local)
            recycle_memory(str(out), size)
            argv = python_child(__file__, "--child", mode, served.url, served.token, rse, str(out))
            figures[mode].runs.append(run_child(argv))
    baseline = figures["lacus download"]
    print_figure(baseline)
    for mode in CONTENDERS[1:]:
        print_figure(figures[mode], baseline)
    return {
        mode: {**figure.as_dict(), "vs_download": round(ratio(figure, baseline), 2)}
        for mode, figure in figures.items()
    }


if __name__ == "__main__":
    main()
