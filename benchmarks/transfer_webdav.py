"""One large file replicated WebDAV -> WebDAV (Apache httpd, HTTPS on loopback) by a rule, against
``curl`` GET piped into ``curl`` PUT of the same file.

    .venv/bin/python benchmarks/transfer_webdav.py [--size 1GiB] [--repeat 3]
        [--backend sqlite|postgresql|both] [--plain] [--profile DIR]

One Apache httpd with mod_dav (the test suite's server, ``tests/servers/apache.py``) serves two
collections, ``/src`` and ``/dst``, each an RSE (scheme ``davs``, the server's test CA in the
protocol's ``extended_attributes``; ``--plain``: scheme ``dav``, plain HTTP). The file sits in
``/src`` and is registered there with its size and adler32. Timed, in a child process per run
on a fresh catalog (SQLite or a throwaway PostgreSQL database): ``add_rule`` on DEST_DAV, the
evaluator, then the conveyor until it has nothing left to do; the rule must then be ``ok``.
Apache offers no third-party copy and no digests, so the conveyor streams the file through
itself (``copy_verified``: GET from ``/src``, adler32 summed on the way, PUT to a hidden name in
``/dst``), has the stored bytes checked, then MOVEs the file to its name and registers it.

Baselines, same run: ``curl | curl`` (GET piped into a chunked PUT, nothing verified) and
``curl | curl + GET`` (the same, then the stored file read back once with curl: what verifying a
copy on a server without digests costs with curl). Target: Lacus >= 0.8 x ``curl | curl``.

The source is in the page cache for every run (a network benchmark): before each run every
dirty page is flushed and the source read; anonymous memory as large as the file is touched and
freed (see ``_transfer.recycle_anonymous_memory``). Contenders alternate, each round in another
order. ``--profile DIR`` runs the timed part of the first Lacus run of each backend under
``py-spy record`` (raw collapsed stacks of the busy threads, in DIR) and prints the busy time
of each kind of thread and its hottest frames. The last line is JSON.
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
    profile_first_runs,
    register_files,
    report,
    show_size,
    stored_path,
    summarize_profile,
    timed_replication,
)
from _util import (
    Figure,
    child_answer,
    machine_note,
    print_figure,
    ratio,
)

REPO = Path(__file__).resolve().parent.parent
NAME = "large.h5"
TARGET = 0.8


def curl(*args: str) -> str:
    return "curl -sS --fail --http1.1 " + " ".join(args)


# -- children -------------------------------------------------------------------------------------


def child_curl(args: argparse.Namespace) -> None:
    server = json.loads(args.server)
    root = Path(server["root"])
    source = stored_path(root / "src", NAME)
    tls = f"--cacert {server['ca']}" if server["scheme"] == "https" else ""
    src_url = f"{server['url']}/src/{source.relative_to(root / 'src')}"
    dst_url = f"{server['url']}/dst/curl/{NAME}"
    script = f"set -o pipefail; {curl(tls, src_url)} | {curl(tls, '-T -', dst_url)} > /dev/null"
    if args.child == "curl+get":
        script += f"; {curl(tls, '-o /dev/null', dst_url)}"
    prepare_cache("warm", source, args.size_bytes)
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    seconds = time.perf_counter() - start
    copy = root / "dst/curl" / NAME
    if copy.stat().st_size != args.size_bytes:
        raise RuntimeError(f"curl stored {copy.stat().st_size} bytes")
    copy.unlink()
    child_answer(seconds, peak_rss=0)


def child_lacus(args: argparse.Namespace) -> None:
    server = json.loads(args.server)
    root = Path(server["root"])
    scheme = "davs" if server["scheme"] == "https" else "dav"
    options = {"verify": server["ca"]} if scheme == "davs" else {}
    with fresh_lake(Path(args.workdir), args.child.split("-", 1)[1]) as lake:
        for rse, prefix in (("SOURCE_DAV", "/src"), ("DEST_DAV", "/dst")):
            add_rse(
                lake, rse, scheme=scheme, hostname="127.0.0.1", port=server["port"],
                prefix=prefix, options=options,
            )  # fmt: skip
        sums = json.loads(args.sums)
        register_files(lake, "SOURCE_DAV", [{"scope": SCOPE, "name": NAME, **sums}])
        prepare_cache("warm", stored_path(root / "src", NAME), args.size_bytes)
        timing = timed_replication(lake, NAME, "DEST_DAV", profile=args.profile)
        copy = stored_path(root / "dst", NAME)
        if copy.stat().st_size != args.size_bytes or timing["replicas"] != 2:
            raise RuntimeError(
                f"copy of {copy.stat().st_size} bytes, {timing['replicas']} replicas"
            )
        copy.unlink()
    child_answer(timing.pop("seconds"), **timing)


# -- parent ---------------------------------------------------------------------------------------


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="file size, e.g. 1GiB, 256MiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--plain", action="store_true", help="plain HTTP (dav://), not HTTPS")
    parser.add_argument("--profile", help="py-spy the conveyor; write its samples here")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--sums", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size_bytes = parse_size(args.size)
    if args.child in ("curl", "curl+get"):
        child_curl(args)
        return
    if args.child:
        child_lacus(args)
        return

    size = args.size_bytes
    backends = chosen_backends(args.backend)
    workdir = Path(tempfile.mkdtemp(prefix="lacus-bench-webdav-", dir=args.dir))
    workdir.chmod(0o755)  # Apache's workers (www-data) reach their files through it
    server = None
    try:
        server = start_apache(workdir)
        source = stored_path(server.root_dir / "src", NAME)
        sums = make_source(source, size, md5=False)
        sums.pop("md5")
        owner = server.root_dir.stat()
        for path in [server.root_dir / "src", *(server.root_dir / "src").rglob("*")]:
            os.chown(path, owner.st_uid, owner.st_gid)
        for sub in ("dst", "dst/curl"):
            (server.root_dir / sub).mkdir()
            os.chown(server.root_dir / sub, owner.st_uid, owner.st_gid)
        base = server.http_url if args.plain else server.base_url
        described = {
            "root": str(server.root_dir),
            "ca": server.ca_path,
            "url": base,
            "scheme": "http" if args.plain else "https",
            "port": server.http_port if args.plain else server.https_port,
        }
        print(
            f"python {sys.version.split()[0]}, {machine_note()}; {show_size(size)} over "
            f"{'HTTP' if args.plain else 'HTTPS'} on loopback (Apache, one server, /src -> /dst), "
            f"{args.repeat} run(s) each",
            flush=True,
        )
        labels = {"curl": "curl | curl (baseline)", "curl+get": "curl | curl + GET read-back"}
        labels.update(lacus_labels(backends))
        runs = alternate(
            os.path.abspath(__file__),
            list(labels),
            args.repeat,
            [
                "--workdir", str(workdir), "--size", str(size), "--server", json.dumps(described),
                "--sums", json.dumps(sums),
            ],
            show=lambda run: f"{size / run.seconds / 1e6:8.0f} MB/s",
            extra=profile_first_runs(args.profile, backends),
        )  # fmt: skip
        figures = {mode: Figure(label, size, runs[mode]) for mode, label in labels.items()}
        plain, verified = figures["curl"], figures["curl+get"]
        print(f"\n{show_size(size)}, median of {args.repeat}:")
        print_figure(plain)
        print_figure(verified, plain)
        results: dict[str, Any] = {"curl": plain.as_dict(), "curl_get": verified.as_dict()}
        for backend in backends:
            figure = figures[f"lacus-{backend}"]
            found = figure.runs
            rss = peak_rss_mb(found)
            print_figure(figure, plain, target=TARGET)
            conveyor = median_of(found, "conveyor_s")
            print(
                f"{'':<34} = {ratio(figure, verified):.2f} x curl | curl + GET; conveyor "
                f"{conveyor:.2f} s; peak RSS of the timed part {rss:.0f} MB",
                flush=True,
            )
            results[backend] = {
                **figure.as_dict(),
                "ratio_curl": round(ratio(figure, plain), 3),
                "ratio_curl_best": round(ratio(figure, plain, best=True), 3),
                "ratio_curl_get": round(ratio(figure, verified), 3),
                "conveyor_s": conveyor,
                "run_peak_rss_mb": round(rss, 1),
            }
            if args.profile:
                summarize_profile(
                    Path(args.profile) / f"transfer_webdav-{backend}.txt",
                    found[0].seconds,
                )
        report("transfer_webdav", results, bytes=size, scheme=described["scheme"], target=TARGET)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
