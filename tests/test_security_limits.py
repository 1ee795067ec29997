"""Slow and hostile clients against a real ``lacus serve`` process (issue 16, "Limits"), and the
modes of what a lake writes on its POSIX RSEs.

The server runs in a process of its own, as an operator starts it, with short timeouts: a
slowloris client (headers a byte at a time), a connection that sends nothing and a body that
stops arriving are cut within the timeout; one address cannot hold more than its share of
connections; 1,000 half-open connections are cut and the server answers normally afterwards; its
memory comes back near its idle level after a burst of large hostile requests (read from
``/proc/PID/status``, waited for rather than sampled once).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import resource
import select
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from lacus.client import Client
from lacus.service import init_lake, load_settings
from lacus.service.settings import write_settings
from tests.conftest import RunningServer, wait_until

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
PER_CLIENT = 16
SLACK = 3.0  # seconds a cut may come after its timeout on a busy machine
PASSWORD = "root-password-of-the-limits-tests"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc and binds 127.0.0.x addresses"
)


@dataclass
class Served:
    url: str
    port: int
    pid: int
    token: str

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``lacus serve`` on a new SQLite lake (the limits are the HTTP server's, not the
    catalog's), with short timeouts and room for 1,000 half-open connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 2500:
        pytest.skip(f"the open files limit ({hard}) is too low for 1,000 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))  # the server's too
    directory = tmp_path_factory.mktemp("limits") / "lake"
    settings, _ = init_lake(directory, root_password=PASSWORD)
    write_settings(
        settings.model_copy(
            update={
                "server_header_timeout_seconds": HEADER_TIMEOUT,
                "server_body_timeout_seconds": BODY_TIMEOUT,
                "server_max_connections_per_client": PER_CLIENT,
                "server_max_connections": 1500,
            }
        )
    )
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "LACUS_DATABASE_URL"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "lacus"), "serve", "--lake", str(directory),
         "--port", str(port), "--no-daemons"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"lacus serve did not start: {process.communicate()[1][-2000:]!r}")
        time.sleep(0.1)
    token = httpx.get(
        f"{url}/auth/userpass", headers={"X-Rucio-Username": "root", "X-Rucio-Password": PASSWORD}
    ).headers["X-Rucio-Auth-Token"]
    created = httpx.post(f"{url}/accounts/root/scopes/virgo", headers={"X-Rucio-Auth-Token": token})
    assert created.status_code == 201, created.headers.get("ExceptionMessage")
    try:
        yield Served(url=url, port=port, pid=process.pid, token=token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def connect(served: Served, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", served.port))
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (what it sent before is read and dropped)."""
    poller = select.poll()  # not select(): a test process may hold descriptors above 1023
    poller.register(sock, select.POLLIN)
    try:
        while poller.poll(0):
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def wait_closed(sock: socket.socket, timeout: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent before."""
    started = time.monotonic()
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout} s")
    return time.monotonic() - started, received


def ping(served: Served, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as http:
        return http.get(f"{served.url}/ping")


# -- timeouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("after_a_request", [False, True], ids=["new", "kept-alive"])
def test_a_slowloris_client_is_cut_within_the_header_timeout(
    served: Served, after_a_request: bool
) -> None:
    """Headers sent a byte at a time, on a new connection or on one kept alive after a first
    request (where uvicorn's keep-alive timer stops at the first byte)."""
    request = b"GET /ping HTTP/1.1\r\nHost: lacus\r\n" + b"X-Padding: slowly\r\n" * 50 + b"\r\n"
    sock = connect(served)
    if after_a_request:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: lacus\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    started = time.monotonic()
    sent = 0
    try:
        for byte in request:  # one byte every 0.1 s: the whole head would take ~55 s
            if closed_by_server(sock):
                break
            try:
                sock.send(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                break
            sent += 1
            time.sleep(0.1)
        cut_after = time.monotonic() - started
    finally:
        sock.close()
    print(f"slowloris cut after {cut_after:.2f} s, {sent} of {len(request)} bytes sent")
    assert sent < len(request)
    assert HEADER_TIMEOUT - 0.5 <= cut_after <= HEADER_TIMEOUT + SLACK


def test_a_connection_that_sends_nothing_is_cut(served: Served) -> None:
    with connect(served) as sock:
        elapsed, received = wait_closed(sock, HEADER_TIMEOUT + SLACK + 5)
    print(f"silent connection cut after {elapsed:.2f} s")
    assert received == b""
    assert HEADER_TIMEOUT - 0.5 <= elapsed <= HEADER_TIMEOUT + SLACK


def test_a_body_that_stops_arriving_is_answered_408_and_cut(served: Served) -> None:
    head = (
        "POST /dids/virgo/slow HTTP/1.1\r\nHost: lacus\r\nContent-Type: application/json\r\n"
        f"X-Rucio-Auth-Token: {served.token}\r\nContent-Length: 1000\r\n\r\n"
    )
    with connect(served) as sock:
        sock.sendall(head.encode() + b'{"type": "data')
        elapsed, received = wait_closed(sock, BODY_TIMEOUT + SLACK + 5)
    print(f"stalled body cut after {elapsed:.2f} s")
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", received[:300]
    assert b"the request body stopped arriving" in rest
    assert b"connection: close" in rest.lower()
    assert BODY_TIMEOUT - 0.5 <= elapsed <= BODY_TIMEOUT + SLACK
    found = httpx.get(f"{served.url}/dids/virgo/slow", headers={"X-Rucio-Auth-Token": served.token})
    assert found.status_code == 404


def test_headers_beyond_the_size_limit_are_answered_431(served: Served) -> None:
    with connect(served) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: lacus\r\nX-Big: " + b"x" * 200_000)
        _, received = wait_closed(sock, HEADER_TIMEOUT + SLACK + 5)
    assert received.startswith(b"HTTP/1.1 431 "), received[:300]
    assert b"larger than 65536 bytes" in received


def test_a_slow_legitimate_upload_of_a_large_body_is_not_cut(served: Served) -> None:
    """Pauses shorter than the body timeout are fine, however long the body takes."""
    body = orjson.dumps({"type": "dataset", "meta": {"note": "x" * 3000}})

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 600):
            time.sleep(BODY_TIMEOUT / 3)
            yield body[start : start + 600]

    response = httpx.post(
        f"{served.url}/dids/virgo/patient",
        content=pieces(),
        headers={"X-Rucio-Auth-Token": served.token, "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 201, response.headers.get("ExceptionMessage")


# -- connections per client -----------------------------------------------------------------------


def test_one_address_holds_at_most_its_share_of_connections(served: Served) -> None:
    headers = {"X-Rucio-Auth-Token": served.token}
    with contextlib.ExitStack() as held:
        for _ in range(PER_CLIENT):  # event streams: long-lived and legitimate
            http = held.enter_context(httpx.Client(base_url=served.url, headers=headers))
            assert held.enter_context(http.stream("GET", "/events")).status_code == 200
        refused = ping(served)
        assert refused.status_code == 503
        assert refused.headers["ExceptionClass"] == "ServiceUnavailable"
        message = refused.headers["ExceptionMessage"]
        assert f"127.0.0.1 holds {PER_CLIENT} connections" in message
        assert f"at most {PER_CLIENT} at once" in message
        assert refused.json()["ExceptionMessage"] == message
        assert ping(served, source="127.0.0.2").status_code == 200  # another address
    deadline = time.monotonic() + 10
    while ping(served).status_code != 200:  # the server notices the closed streams
        assert time.monotonic() < deadline, "the address stayed at its cap after closing"
        time.sleep(0.1)


def test_the_server_answers_normally_after_a_thousand_half_open_connections(
    served: Served,
) -> None:
    idle = served.rss_mib()
    sockets = []
    try:
        for index in range(1000):  # spread over addresses, each within its cap
            sock = connect(served, source=f"127.0.1.{index % 100 + 1}")
            sock.sendall(b"POST /dids/virgo/x/meta HTTP/1.1\r\nHost: lacus\r\nContent-Le")
            sockets.append(sock)
        assert ping(served, source="127.0.0.3").status_code == 200  # still answering
        during = served.rss_mib()
        deadline = time.monotonic() + HEADER_TIMEOUT + SLACK + 5
        while not all(closed_by_server(sock) for sock in sockets):
            assert time.monotonic() < deadline, "half-open connections were left open"
            time.sleep(0.2)
    finally:
        for sock in sockets:
            sock.close()
    print(f"RSS idle {idle:.0f} MiB, with 1,000 half-open connections {during:.0f} MiB")
    for _ in range(20):
        assert ping(served).status_code == 200


# -- memory ---------------------------------------------------------------------------------------


def test_memory_returns_near_idle_after_a_burst_of_large_hostile_requests(
    served: Served,
) -> None:
    headers = {"X-Rucio-Auth-Token": served.token, "Content-Type": "application/json"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=120) as http:
        assert http.post("/dids/virgo/target", json={"type": "dataset"}).status_code == 201
        for _ in range(50):  # warm: the idle level of a server that has answered requests
            http.get("/dids/virgo/target")
        time.sleep(1.5)
        idle = served.rss_mib()
        body = orjson.dumps({"meta": {f"key{i:07d}": "v" * 30 for i in range(400_000)}})

        def hostile(_: int) -> int:
            return http.post("/dids/virgo/target/meta", content=body).status_code

        peak = idle
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(hostile, index) for index in range(8)]
            while not all(answer.done() for answer in answers):
                peak = max(peak, served.rss_mib())
                time.sleep(0.05)
        assert [answer.result() for answer in answers] == [400] * 8
        assert http.get("/dids/virgo/target/meta", params={"plugin": "JSON"}).json() == {}
        # Waited for, not sampled once: the memory goes back a second after the last request.
        deadline = time.monotonic() + 20
        while (after := served.rss_mib()) > idle * 1.1 and time.monotonic() < deadline:
            time.sleep(0.25)
    print(
        f"RSS idle {idle:.0f} MiB, at most {peak:.0f} MiB during the burst, then {after:.0f} MiB "
        f"({len(body) / 1e6:.0f} MB bodies, 8 requests, 4 at once)"
    )
    assert after <= idle * 1.3


# -- files on POSIX RSEs --------------------------------------------------------------------------


def test_a_new_lake_and_its_rses_are_not_world_readable(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        settings, _ = init_lake(tmp_path / "lake", root_password=PASSWORD)
    finally:
        os.umask(previous)
    assert load_settings(settings.lake_dir).lake_dir == settings.lake_dir
    modes = {
        str(path.relative_to(tmp_path)): stat.S_IMODE(path.stat().st_mode)
        for path in [tmp_path / "lake", *sorted((tmp_path / "lake").rglob("*"))]
        if path.is_dir()
    }
    assert modes == {
        "lake": 0o750,
        "lake/rses": 0o750,
        "lake/rses/ALPHA_DISK": 0o750,
        "lake/rses/BETA_DISK": 0o750,
        "lake/rses/GAMMA_TAPE": 0o750,
    }


def test_uploaded_and_replicated_files_are_not_world_readable(
    client: Client, server: RunningServer, tmp_path: Path
) -> None:
    """An upload (the client writes to ALPHA_DISK) and a copy by the rule engine (the server
    writes to BETA_DISK) both give 0640 files in 0750 directories, whatever the source's mode."""
    client.add_scope("virgo")
    source = tmp_path / "chunk.dat"
    source.write_bytes(b"bytes nobody else may read")
    source.chmod(0o644)
    client.upload([source], rse="ALPHA_DISK", scope="virgo", dataset="ds")
    client.add_rule("virgo:ds", "BETA_DISK")
    rse_root = tmp_path / "rses"  # where the lake fixture seeds the demo RSEs

    def stored() -> list[Path]:
        return sorted(path for path in rse_root.rglob("chunk.dat") if path.is_file())

    wait_until(lambda: len(stored()) == 2, timeout=30)
    assert [path.relative_to(rse_root).parts[0] for path in stored()] == [
        "ALPHA_DISK",
        "BETA_DISK",
    ]
    modes = {path: stat.S_IMODE(path.lstat().st_mode) for path in rse_root.rglob("*")}
    assert {modes[path] for path in stored()} == {0o640}, modes
    assert {mode for path, mode in modes.items() if path.is_dir()} == {0o750}, modes
