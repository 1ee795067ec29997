"""The ESCAPE data-lake dress rehearsal replayed: Virgo strain chunks ingested, consumed at once.

    .venv/bin/python benchmarks/dress_rehearsal.py [--chunks 14400] [--rates 50,200]
        [--backends sqlite,postgresql] [--real-pace] [--faults] [--workers 8]
        [--source process|thread]

In the rehearsal (shared/seeds/000_4fcadf06fb719dc7.txt) EGO pushed 14,400 one-second chunks of
Virgo h(t) into the lake in real time and a consumer found them by polling the dataset: 100%
uploaded, 100% downloaded, 0 corrupted, upload latency mean 1.9 s, end-to-end median 8.2 s.
Those two figures are the baseline each run is compared with (ratio = seed / Lacus).

Each run: a fresh lake (``init_lake``: SQLite in the lake, or a throwaway PostgreSQL database)
served by a ``lacus serve`` subprocess (one uvicorn worker, daemons embedded) on loopback; a
consumer subprocess (``lacus stream consume``) following the run's dataset through ``GET
/events`` into a directory; a producer subprocess, the detector's data acquisition (``lacus
stream simulate``), making simulated Virgo chunks (4096 float64 samples, HDF5, ~39 kB) at
``--rates`` chunks/s, each stamped with its creation time and framed on a pipe; in this process,
the ``Ingestor`` reading that pipe, writing each chunk to the POSIX RSE ALPHA_DISK and
registering it in the open dataset with its creation time. ``--source thread`` makes the chunks
in this process instead (the pacing thread, sharing its GIL with the ingestion). Latencies:
upload = chunk created → registered (in the lake); end to end = chunk created → verified local
copy (the consumer's report). Every downloaded file is read again here and its adler32 compared
with the catalog's.

Backlog: the ingestor samples every second the chunks taken but not yet registered; the slope
of that backlog (least squares, chunks/s) over the run and the end-to-end median of the first
and the last tenth of the chunks say whether the lake keeps up (no growth: slope ~0, same
median). ``--real-pace`` adds 600 chunks at 1/s (10 minutes). ``--faults``: each run also kills
the server (SIGKILL) after a third of the chunks and starts it again, and kills the consumer
(SIGKILL) after two thirds and starts it again; the targets stay 100% / 100% / 0.

Targets (issue 6): 100% / 100% / 0 corrupted; end-to-end p50 <= 50 ms and p99 <= 250 ms at 50
chunks/s; >= 200 chunks/s sustained without backlog growth. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _rest import free_port, machine_note
from _util import throwaway_postgres

from lacus.client import Client
from lacus.client.stream import (
    Ingestor,
    IngestReport,
    framed_chunks,
    summarize,
    virgo_chunks,
)
from lacus.client.stream.consume import read_report
from lacus.service.lake import init_lake

SEED_UPLOAD_MEAN = 1.9  # seconds, EGO -> CERN, mean
SEED_E2E_MEDIAN = 8.2  # seconds, EGO -> CERN -> CNAF, median
SCOPE = "virgo"
DATASET = "V1_O3_REHEARSAL"
LACUS = str(Path(sys.executable).parent / "lacus")


class Server:
    """``lacus serve`` on one lake, which can be killed and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [LACUS, "serve", "--lake", str(self.directory), "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=_env())
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"lacus serve exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("lacus serve did not start within 30 s")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None


def _cpu(process: subprocess.Popen[bytes] | None) -> float:
    """CPU seconds a child process has used so far (it may have exited, not been waited for)."""
    assert process is not None
    with open(f"/proc/{process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LACUS_")}
    env.update(extra)
    return env


@contextmanager
def served(directory: Path, backend: str) -> Iterator[tuple[Server, str]]:
    """A fresh lake in ``directory`` on ``backend``, served; root's password."""
    if backend == "sqlite":
        _, password = init_lake(directory)
        server = Server(directory)
        server.start()
        try:
            yield server, password
        finally:
            server.kill()
        return
    with throwaway_postgres() as url:
        _, password = init_lake(directory, database_url=url)
        server = Server(directory)
        server.start()
        try:
            yield server, password
        finally:
            server.kill()


@dataclass
class Run:
    backend: str
    rate: float
    chunks: int
    faults: bool
    source: str = "process"


def slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, backlog) samples: chunks per second of growth."""
    if len(samples) < 3:
        return 0.0
    xs = [x for x, _ in samples]
    ys = [float(y) for _, y in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    )


def run_once(run: Run, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lacus-rehearsal-") as tmp:
        root_dir = Path(tmp)
        with served(root_dir / "lake", run.backend) as (server, password):
            return _measure(run, server, password, root_dir / "consumed", workers)


def _measure(
    run: Run, server: Server, password: str, consumed: Path, workers: int
) -> dict[str, Any]:
    root = Client(server.url, account="root", password=password)
    root.add_scope(SCOPE)
    root.add_dataset(f"{SCOPE}:{DATASET}")
    env = _env(LACUS_URL=server.url, LACUS_ACCOUNT="root", LACUS_PASSWORD=password)
    consume = [
        LACUS, "stream", "consume", f"{SCOPE}:{DATASET}", "--dir", str(consumed),
        "--count", str(run.chunks), "--json",
    ]  # fmt: skip
    consumer = subprocess.Popen(consume, env=env, stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # the consumer subscribes before the first chunk (it would catch up anyway)
    settled = [0]
    faults: list[str] = []
    writer = Client(server.url, account="root", password=password)
    ingestor = Ingestor(
        writer,
        rse="ALPHA_DISK",
        scope=SCOPE,
        dataset=DATASET,
        workers=workers,
        on_result=lambda _: settled.__setitem__(0, settled[0] + 1),
    )
    box: dict[str, IngestReport] = {}
    producer: subprocess.Popen[bytes] | None = None
    own, children = resource.getrusage(resource.RUSAGE_SELF), _children()
    serving = _cpu(server.process)
    if run.source == "process":
        simulate = [
            LACUS,
            "stream",
            "simulate",
            "--count",
            str(run.chunks),
            "--rate",
            str(run.rate),
        ]
        producer = subprocess.Popen(simulate, stdout=subprocess.PIPE, env=_env())
        assert producer.stdout is not None
        source, pace = framed_chunks(producer.stdout), None  # paced by the producer
    else:
        source, pace = virgo_chunks(count=run.chunks), run.rate
    thread = threading.Thread(
        target=lambda: box.setdefault("report", ingestor.run(source, rate=pace))
    )
    started = time.monotonic()
    thread.start()
    if run.faults:
        while settled[0] < run.chunks // 3 and thread.is_alive():
            time.sleep(0.01)
        server.kill()
        server.start()
        faults.append(f"server killed and restarted after {settled[0]} chunks")
        while len(read_report(consumed)) < 2 * run.chunks // 3 and consumer.poll() is None:
            time.sleep(0.05)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        faults.append(f"consumer killed after {len(read_report(consumed))} files, restarted")
        consumer = subprocess.Popen(consume, env=env, stdout=subprocess.DEVNULL)
    thread.join()
    producing = 0.0
    if producer is not None:
        producing = _cpu(producer)
        assert producer.stdout is not None
        producer.stdout.close()
        if producer.wait(timeout=60) != 0:
            raise RuntimeError(f"lacus stream simulate exited with {producer.returncode}")
    code = consumer.wait(timeout=600)
    wall = time.monotonic() - started
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {  # seconds per chunk: source, ingest (this process), server, consumer
        "source": producing if producer is not None else None,
        "ingest": own_after.ru_utime + own_after.ru_stime - own.ru_utime - own.ru_stime,
        "server": _cpu(server.process) - serving if not run.faults else None,
        "consumer": _children() - children - producing if not run.faults else None,
    }
    cpu = {key: (value / run.chunks if value is not None else None) for key, value in cpu.items()}
    report = box["report"]
    lines = read_report(consumed)
    catalog = {r["name"]: r["adler32"] for r in root.list_replicas([f"{SCOPE}:{DATASET}"])}
    content = len(root.list_content(f"{SCOPE}:{DATASET}"))
    root.close()
    writer.close()
    result = _figures(run, report, lines, catalog, content, consumed, code, wall, faults)
    result["cpu_ms_per_chunk"] = {k: v * 1e3 if v is not None else None for k, v in cpu.items()}
    return result


def _figures(
    run: Run,
    report: IngestReport,
    lines: list[dict[str, Any]],
    catalog: dict[str, str],
    content: int,
    consumed: Path,
    consumer_exit: int,
    wall: float,
    faults: list[str],
) -> dict[str, Any]:
    registered = [c for c in report.chunks if c.status == "registered"]
    downloaded = {line["did"]: line for line in lines if line["status"] == "downloaded"}
    corrupted_reported = sum(1 for line in lines if line["status"] == "corrupted")
    wrong = 0  # an independent check of every local copy against the catalog
    for did in downloaded:
        name = did.split(":", 1)[1]
        data = (consumed / SCOPE / name).read_bytes()
        if f"{zlib.adler32(data) & 0xFFFFFFFF:08x}" != catalog.get(name):
            wrong += 1
    upload = summarize([c.latency for c in registered if c.latency is not None])
    write = summarize([c.uploaded - c.created for c in registered if c.uploaded is not None])
    e2e_lines = sorted(
        (line for line in downloaded.values() if line["latency"] is not None),
        key=lambda line: line["created"],
    )
    e2e = summarize([line["latency"] for line in e2e_lines])
    tenth = max(1, len(e2e_lines) // 10)
    first = summarize([line["latency"] for line in e2e_lines[:tenth]])["p50"]
    last = summarize([line["latency"] for line in e2e_lines[-tenth:]])["p50"]
    ordered = sorted((c for c in registered if c.latency is not None), key=lambda c: c.created)
    up_first = summarize([c.latency for c in ordered[:tenth] if c.latency is not None])["p50"]
    up_last = summarize([c.latency for c in ordered[-tenth:] if c.latency is not None])["p50"]
    created = [c.created for c in report.chunks]
    done = [c.registered for c in registered if c.registered is not None]
    achieved = len(done) / (max(done) - min(created)) if done else 0.0
    backlog = report.backlog
    return {
        "backend": run.backend,
        "rate": run.rate,
        "chunks": run.chunks,
        "faults": faults,
        "source": run.source,
        "uploaded_pct": 100.0 * len(registered) / run.chunks,
        "in_dataset": content,
        "downloaded_pct": 100.0 * len(downloaded) / run.chunks,
        "report_lines": len(lines),
        "duplicates": len(lines) - len({line["did"] for line in lines}),
        "corrupted": corrupted_reported + wrong,
        "consumer_exit": consumer_exit,
        "upload": upload,
        "write": write,
        "e2e": e2e,
        "e2e_p50_first_tenth": first,
        "e2e_p50_last_tenth": last,
        "upload_p50_first_tenth": up_first,
        "upload_p50_last_tenth": up_last,
        "achieved_rate": achieved,
        "backlog_max": max((b for _, b in backlog), default=0),
        "backlog_slope": slope(backlog[2:]),
        "wall_seconds": wall,
        "ratio_upload_mean": SEED_UPLOAD_MEAN / upload["mean"] if upload["count"] else None,
        "ratio_e2e_median": SEED_E2E_MEDIAN / e2e["p50"] if e2e["count"] else None,
    }


def show(result: dict[str, Any]) -> None:
    up, e2e = result["upload"], result["e2e"]
    print(
        f"{result['backend']:10} {result['rate']:>5g}/s {result['chunks']:>6} chunks"
        f"{' (faults)' if result['faults'] else ''}, source in a {result['source']}: "
        f"uploaded {result['uploaded_pct']:.2f}%, downloaded {result['downloaded_pct']:.2f}%, "
        f"corrupted {result['corrupted']}, duplicates {result['duplicates']}"
    )
    print(
        f"    upload ms mean/p50/p99 {up['mean'] * 1e3:.1f}/{up['p50'] * 1e3:.1f}/"
        f"{up['p99'] * 1e3:.1f} (seed mean 1900: {result['ratio_upload_mean']:.0f} x); "
        f"end to end ms mean/p50/p99 {e2e['mean'] * 1e3:.1f}/{e2e['p50'] * 1e3:.1f}/"
        f"{e2e['p99'] * 1e3:.1f} (seed median 8200: {result['ratio_e2e_median']:.0f} x)"
    )
    write = result["write"]
    print(
        f"    of which written and verified on the RSE (created -> written) ms mean/p50/p99 "
        f"{write['mean'] * 1e3:.1f}/{write['p50'] * 1e3:.1f}/{write['p99'] * 1e3:.1f}"
    )
    print(
        f"    achieved {result['achieved_rate']:.1f} chunks/s; "
        f"backlog max {result['backlog_max']}, "
        f"slope {result['backlog_slope']:+.3f} chunks/s; e2e p50 first/last tenth "
        f"{result['e2e_p50_first_tenth'] * 1e3:.1f}/{result['e2e_p50_last_tenth'] * 1e3:.1f} ms "
        f"(upload {result['upload_p50_first_tenth'] * 1e3:.1f}/"
        f"{result['upload_p50_last_tenth'] * 1e3:.1f})"
    )
    cpu = result["cpu_ms_per_chunk"]
    print(
        "    CPU ms per chunk: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if v is not None)
    )
    for fault in result["faults"]:
        print(f"    fault: {fault}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=14_400)
    parser.add_argument("--rates", default="50,200", help="chunks per second, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--real-pace", action="store_true", help="also 600 chunks at 1/s")
    parser.add_argument("--faults", action="store_true", help="kill server and consumer once")
    parser.add_argument("--workers", type=int, default=8, help="ingest write threads")
    parser.add_argument(
        "--source",
        choices=("process", "thread"),
        default="process",
        help="make the chunks in a producer process (default) or in the ingesting process",
    )
    args = parser.parse_args()
    runs = [
        Run(backend, float(rate), args.chunks, args.faults, args.source)
        for backend in args.backends.split(",")
        for rate in args.rates.split(",")
        if rate  # --rates '' with --real-pace: the real pace alone
    ]
    if args.real_pace:
        runs += [
            Run(backend, 1.0, 600, args.faults, args.source) for backend in args.backends.split(",")
        ]
    print(f"# dress rehearsal, {time.strftime('%Y-%m-%d %H:%M')}, {machine_note()}")
    results = []
    for run in runs:
        result = run_once(run, args.workers)
        show(result)
        results.append(result)
    print(f"# after: {machine_note()}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
