"""Shared fixtures: a real catalog on SQLite and on PostgreSQL, a real HTTP server per backend.

Every test that takes ``lake``, ``server`` or ``client`` runs twice: once on SQLite, once on the
PostgreSQL server at ``LACUS_TEST_POSTGRES_URL`` (default 127.0.0.1:5432). When PostgreSQL is not
reachable those runs are skipped locally and FAIL in CI (``CI=true``).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from lacus.client import Client
from lacus.db import transaction, upgrade
from lacus.db.tables import ALL_TABLES
from lacus.server import create_app
from lacus.service import Lake, Settings
from lacus.service.lake import seed_catalog
from tests.rule_helpers import INTEGRITY_CHECKS

pytest_plugins = ["tests.servers.apache", "tests.servers.xrootd", "tests.servers.seaweedfs"]

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "LACUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ROOT_PASSWORD = "root-password-for-tests"


def require_component(name: str, reason: str) -> None:
    """A missing component fails the test in CI and skips it on a developer's machine."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: components are mandatory)")
    pytest.skip(message)


def _postgres_database(name: str) -> Iterator[str]:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        admin.dispose()
        require_component("PostgreSQL", f"{POSTGRES_URL}: {exc.__class__.__name__}: {exc}"[:300])
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
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


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database per backend for the whole session."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'catalog.db'}"
    else:
        yield from _postgres_database(f"lacus_test_{os.getpid()}_{secrets.token_hex(4)}")


@pytest.fixture(scope="session")
def session_lake(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    settings = Settings(
        lake_dir=tmp_path_factory.mktemp("lake"),
        database_url=database_url,
        embedded_daemons_skipped=list(INTEGRITY_CHECKS),  # tests run them where they want them
    )
    lake = Lake(settings)
    upgrade(lake.engine)
    yield lake
    lake.close()


def reset_catalog(lake: Lake, rse_root: Path) -> None:
    """Empty every table and seed root and the three demo RSEs (under ``rse_root``).

    The server's embedded daemons keep reading these tables: on PostgreSQL a TRUNCATE may then
    lose a deadlock against one of them, and is simply tried again."""
    for attempt in range(10):
        try:
            _reset_catalog(lake, rse_root)
            return
        except OperationalError as exc:
            if "deadlock" not in str(exc) or attempt == 9:
                raise
            time.sleep(0.05)


def _reset_catalog(lake: Lake, rse_root: Path) -> None:
    with transaction(lake.engine) as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(table.name for table in ALL_TABLES)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in ALL_TABLES:
                conn.execute(table.delete())
        seed_catalog(conn, ROOT_PASSWORD, rse_root)
    lake.forget_kept()  # accounts, RSEs (new ids and prefixes) and scopes were made again
    lake.event_log.reset()  # the outbox's ids start again


@pytest.fixture
def lake(session_lake: Lake, tmp_path: Path) -> Lake:
    """The catalog, emptied and seeded for this test: root, ALPHA_DISK, BETA_DISK, GAMMA_TAPE.

    The session server's embedded daemons (if it runs) are paused: a test without the server
    runs the daemons it needs itself (``tests.rule_helpers.settle``); ``server`` resumes them."""
    session_lake.pause_daemons()
    reset_catalog(session_lake, tmp_path)
    return session_lake


@dataclass
class RunningServer:
    url: str
    lake: Lake


@pytest.fixture(scope="session")
def session_server(session_lake: Lake) -> Iterator[RunningServer]:
    """A real uvicorn server on a loopback port, serving the session's lake."""
    app = create_app(session_lake.settings, lake=session_lake)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield RunningServer(url=f"http://127.0.0.1:{port}", lake=session_lake)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def server(session_server: RunningServer, lake: Lake) -> RunningServer:
    """The running server, with a freshly seeded catalog and its daemons running."""
    lake.resume_daemons()
    return session_server


@pytest.fixture
def client(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Client]:
    """A root client of the test server; also exported as LACUS_* for CLI tests."""
    monkeypatch.setenv("LACUS_URL", server.url)
    monkeypatch.setenv("LACUS_ACCOUNT", "root")
    monkeypatch.setenv("LACUS_PASSWORD", ROOT_PASSWORD)
    monkeypatch.delenv("LACUS_TOKEN", raising=False)
    monkeypatch.setenv("LACUS_CONFIG", str(tmp_path / "client.json"))
    with Client(server.url, account="root", password=ROOT_PASSWORD) as lacus:
        yield lacus


@dataclass
class CLIResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(client: Client, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``lacus ARGS`` in-process against the test server as root."""
    from lacus.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CLIResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err)

    return run


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``
    seconds, showing its last value. For what the embedded daemons do asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last value: {value!r}")
        time.sleep(interval)


@pytest.fixture
def cli_reuses_token(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI commands reuse root's token instead of logging in with the password every time."""
    if "cli" in request.fixturenames:
        client: Client = request.getfixturevalue("client")
        monkeypatch.setenv("LACUS_TOKEN", client.token())
        monkeypatch.delenv("LACUS_PASSWORD")
