"""The event stream across a server killed and restarted (``lacus serve`` processes), and
``lacus watch`` following a dataset: no event lost, none repeated."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lacus.client import Client
from lacus.service import Lake, Principal, load_settings
from lacus.service import replicas as service_replicas
from lacus.service.lake import init_lake
from tests.conftest import _postgres_database
from tests.test_cli import clean_env, free_port, lacus_program

PASSWORD = "a-root-password"
ROOT = Principal("root", admin=True)


class Served:
    """``lacus serve`` on one lake, which can be killed and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [lacus_program(), "serve", "--lake", str(self.directory), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"lacus serve exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                httpx.get(f"{self.url}/ping", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("lacus serve did not answer within 30 s")
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    def make(database_url: str | None) -> Iterator[Served]:
        init_lake(tmp_path / "lake", root_password=PASSWORD, database_url=database_url)
        server = Served(tmp_path / "lake")
        server.start()
        try:
            yield server
        finally:
            server.kill()

    if request.param == "sqlite":
        yield from make(None)
    else:
        for url in _postgres_database(f"lacus_events_{free_port()}"):
            yield from make(url)


def register(lake: Lake, names: list[str]) -> None:
    """Files registered into obs:ds straight in the catalog (while the server is down)."""
    specs = [
        {"scope": "obs", "name": name, "bytes": 3, "adler32": f"{zlib.adler32(b'abc'):08x}"}
        for name in names
    ]
    service_replicas.add_replicas(lake, ROOT, "ALPHA_DISK", specs, dataset=("obs", "ds"))  # type: ignore[arg-type]


def test_a_watcher_loses_and_repeats_nothing_across_a_killed_server(served: Served) -> None:
    lake = Lake(load_settings(served.directory))
    root = Client(served.url, account="root", password=PASSWORD)
    try:
        root.add_scope("obs")
        root.add_dataset("obs:ds")
        start = lake.event_log.horizon(fresh=True)
        seen: list[str] = []
        watcher = Client(served.url, account="root", password=PASSWORD)

        def follow() -> None:
            for event in watcher.watch("obs:ds", types=["replica.available"], after=start):
                seen.append(event.name or "")
                if len(seen) >= 15:
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        register(lake, [f"a{i}" for i in range(5)])
        deadline = time.monotonic() + 30
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        served.kill()
        register(lake, [f"b{i}" for i in range(5)])  # while nobody serves
        served.start()
        register(lake, [f"c{i}" for i in range(5)])
        thread.join(timeout=60)
        watcher.close()
    finally:
        root.close()
        lake.close()

    expected = [f"{group}{i}" for group in "abc" for i in range(5)]
    assert seen == expected


def test_lacus_watch_downloads_each_new_file_and_runs_a_command(
    served: Served, tmp_path: Path
) -> None:
    root = Client(served.url, account="root", password=PASSWORD)
    root.add_scope("obs")
    root.add_dataset("obs:ds")
    lake = Lake(load_settings(served.directory))
    start = lake.event_log.horizon(fresh=True)
    lake.close()
    sources = []
    for name in ("one.dat", "two.dat"):
        path = tmp_path / name
        path.write_bytes(name.encode() * 1000)
        sources.append(path)
    root.upload(sources[:1], rse="ALPHA_DISK", scope="obs", dataset="ds")
    root.upload(sources[1:], rse="BETA_DISK", scope="obs", dataset="ds")
    root.close()
    env = clean_env(
        LACUS_URL=served.url, LACUS_ACCOUNT="root", LACUS_PASSWORD=PASSWORD,
        LACUS_CONFIG=str(tmp_path / "client.json"),
    )  # fmt: skip
    log = tmp_path / "seen.log"
    result = subprocess.run(
        [
            lacus_program(), "watch", "obs:ds", "--download", str(tmp_path / "got"),
            "--exec", f"sh -c 'wc -c < {{}} >> {log}'", "--after", str(start),
            "--count", "2", "--timeout", "30",
        ],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "got" / "obs" / "one.dat").read_bytes() == b"one.dat" * 1000
    assert (tmp_path / "got" / "obs" / "two.dat").read_bytes() == b"two.dat" * 1000
    assert log.read_text().split() == ["7000", "7000"]
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["obs:one.dat", "ALPHA_DISK"],
        ["obs:two.dat", "BETA_DISK"],
    ]


def test_lacus_watch_reports_a_failing_command_and_exits_non_zero(
    served: Served, tmp_path: Path
) -> None:
    with Client(served.url, account="root", password=PASSWORD) as root:
        root.add_scope("obs")
        source = tmp_path / "f.dat"
        source.write_bytes(b"x" * 10)
        root.upload([source], rse="ALPHA_DISK", scope="obs", dataset="ds")
    env = clean_env(LACUS_URL=served.url, LACUS_ACCOUNT="root", LACUS_PASSWORD=PASSWORD)
    result = subprocess.run(
        [lacus_program(), "watch", "obs:ds", "--exec", "false", "--after", "0", "--count", "1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "error: 'false' exited with 1 for obs:f.dat"
    missing = subprocess.run(
        [lacus_program(), "watch", "obs:nothing", "--timeout", "1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "obs:nothing" in missing.stderr
    assert "Traceback" not in missing.stderr
