"""Helpers shared by the benchmarks: child processes with their peak RSS, page cache, reporting."""

from __future__ import annotations

import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

MB = 1_000_000  # throughput is reported in MB/s (10**6 bytes per second), like cp and dd


@dataclass
class Run:
    """One run of a child process: its wall time, peak resident memory and JSON answer."""

    seconds: float
    peak_rss: int  # bytes
    answer: dict[str, object] = field(default_factory=dict)


def run_child(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` to completion; return wall time, peak RSS and its last stdout JSON line.

    A child that ends with ``child_answer`` reports its own timing (no start-up cost) and its own
    peak RSS. For any other command the peak RSS comes from ``wait4``, an upper bound: Linux keeps
    across ``exec`` the peak of the memory the child started with, i.e. of this process (vfork).
    """
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}")
    lines = output.decode().strip().splitlines()
    answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if isinstance(answer.get("seconds"), float):
        seconds = answer["seconds"]
    peak_rss = answer.get("peak_rss")
    if not isinstance(peak_rss, int):
        peak_rss = usage.ru_maxrss * 1024
    return Run(seconds=seconds, peak_rss=peak_rss, answer=answer)


def python_child(*args: str) -> list[str]:
    """The command line running this interpreter with ``args``."""
    return [sys.executable, *args]


def child_answer(seconds: float, **extra: object) -> None:
    """Print the JSON line ``run_child`` reads back, with this process's peak RSS (call it last)."""
    print(json.dumps({"seconds": seconds, "peak_rss": own_peak_rss(), **extra}), flush=True)


def own_peak_rss() -> int:
    """Peak RSS in bytes of this process since it started (VmHWM: nothing inherited before exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine_note() -> str:
    """CPUs and load average: other work on the machine skews every figure."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}"


def drop_page_cache() -> bool:
    """Flush dirty pages and drop the page cache; False when not permitted (not root, container)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("3\n")
    except OSError:
        return False
    return True


def recycle_memory(directory: str, size: int, chunk: int = 16 * 1024 * 1024) -> None:
    """Write and delete ``size`` bytes of scratch file in ``directory``, just before a contender.

    A virtual machine may hand idle free memory back to its host (free page reporting); the next
    write into such memory costs several times more (seen here: 1 GiB to the page cache in 0.9 s
    right after a delete, 4-6 s after 5 s idle). Running every contender right after this gives all
    the same, recently used memory, as on a machine that is writing continuously.
    """
    block = bytes(chunk)
    path = os.path.join(directory, ".recycle-memory")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for start in range(0, size, chunk):
            os.write(fd, block[: min(chunk, size - start)])
    finally:
        os.close(fd)
        os.unlink(path)


def read_through(path: str, chunk: int = 16 * 1024 * 1024) -> None:
    """Read a file once so that it sits in the page cache."""
    with open(path, "rb", buffering=0) as stream:
        while stream.read(chunk):
            pass


@dataclass
class Figure:
    """Throughput of one contender over several runs."""

    label: str
    size: int
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.size / run.seconds / MB for run in self.runs)

    @property
    def best(self) -> float:
        return max(self.size / run.seconds / MB for run in self.runs)

    @property
    def peak_rss_mb(self) -> float:
        return max(run.peak_rss for run in self.runs) / MB

    def as_dict(self) -> dict[str, float]:
        return {
            "mb_s_median": round(self.median, 1),
            "mb_s_best": round(self.best, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "runs": len(self.runs),
        }


def print_figure(
    figure: Figure, baseline: Figure | None = None, target: float | None = None
) -> None:
    """One aligned line: median and best MB/s, peak RSS, and the ratio to ``baseline``."""
    line = (
        f"{figure.label:<34} {figure.median:8.0f} MB/s (best {figure.best:6.0f})"
        f"  peak RSS {figure.peak_rss_mb:6.1f} MB"
    )
    if baseline is not None:
        median, best = ratio(figure, baseline), ratio(figure, baseline, best=True)
        line += f"  = {median:.2f} x {baseline.label} (best/best {best:.2f})"
        if target is not None:
            line += f" target >= {target}: {'ok' if median >= target else 'MISSED'}"
    print(line, flush=True)


def ratio(figure: Figure, baseline: Figure, *, best: bool = False) -> float:
    """Median (or best) throughput of ``figure`` over that of ``baseline``."""
    if best:
        return figure.best / baseline.best
    return figure.median / baseline.median


POSTGRES_URL = os.environ.get(
    "LACUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped when the block ends."""
    from sqlalchemy import create_engine, text

    name = f"lacus_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return f"{exc.__class__.__name__}: {exc}"[:200]
    finally:
        engine.dispose()
    return None
