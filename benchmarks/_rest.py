"""Helpers of the REST benchmarks: a fresh lake served by ``lacus serve``, concurrent clients,
the server's resident memory sampled from ``/proc``."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from _util import throwaway_postgres

MIB = 1024 * 1024


@contextmanager
def database(kind: str) -> Iterator[str | None]:
    """``None`` for SQLite (the lake's own file), else a throwaway PostgreSQL database's URL,
    created and dropped as tests/conftest.py does."""
    if kind == "sqlite":
        yield None
        return
    with throwaway_postgres() as url:
        yield url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    pid: int
    token: str


@contextmanager
def served_lake(directory: Path, database_url: str | None) -> Iterator[Served]:
    """A fresh lake (``init_lake``: root and three RSEs) in ``directory``, served by a
    ``lacus serve`` subprocess on a free loopback port; root's token."""
    from lacus.service import init_lake

    _, password = init_lake(directory, database_url=database_url)
    port = free_port()
    lacus = Path(sys.executable).parent / "lacus"
    env = {key: value for key, value in os.environ.items() if key != "LACUS_DATABASE_URL"}
    process = subprocess.Popen(
        [str(lacus), "serve", "--lake", str(directory), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"lacus serve exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/ping").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("lacus serve did not start within 30 s") from None
                time.sleep(0.05)
        login = httpx.get(
            f"{url}/auth/userpass",
            headers={"X-Rucio-Username": "root", "X-Rucio-Password": password},
        )
        login.raise_for_status()
        yield Served(url=url, pid=process.pid, token=login.headers["X-Rucio-Auth-Token"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss(pid: int, field: str = "VmRSS") -> int:
    """``field`` (VmRSS: resident now; VmHWM: peak so far) of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


class RSSSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread; ``peak`` is the largest."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))


def concurrently(
    clients: int, work: Callable[[httpx.Client, int], None], *, url: str, token: str
) -> float:
    """Run ``work(http, index)`` in ``clients`` threads at once, each with its own keep-alive
    ``httpx.Client``; return the wall time from the common start to the last one done."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def run(index: int) -> None:
        with httpx.Client(
            base_url=url, headers={"X-Rucio-Auth-Token": token}, timeout=300.0
        ) as http:
            barrier.wait()
            try:
                work(http, index)
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine_note() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}"
