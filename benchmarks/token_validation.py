"""Requests per second of an authenticated request, against the same server's unauthenticated one.

    .venv/bin/python benchmarks/token_validation.py [--requests 4000] [--clients 8] [--repeat 3]

A fresh lake (``lacus.service.init_lake`` in a temporary directory, SQLite) is served by a real
``lacus serve`` subprocess on loopback; a local OIDC issuer (``http.server`` in a thread of this
process) publishes an RSA key as a JWKS, and the lake trusts it through ``lake.json``. ``--clients``
threads, each with its own keep-alive ``httpx.Client``, share ``--requests`` requests per case:

* ``ping``           — ``GET /ping``, no authentication: the baseline;
* ``userpass``       — ``GET /accounts/whoami`` with one opaque token from ``/auth/userpass``;
* ``jwt``            — the same with one RS256 JWT of the local issuer;
* ``jwt, no reuse``  — every request a different JWT, so every one is verified in full (signature,
  claims, account lookup): what validation costs when the token cache cannot help.

The token cache is on (the lake's defaults). Cases alternate, ``--repeat`` times, after a warm-up
round of 400 requests per case; the median is reported with its ratio to ``ping``. ``whoami`` reads
the account from the catalog, so even a free token check would not reach 1.00 x ping. The last
line is JSON. Before the server starts, ``authenticate`` is also timed in-process (microseconds
per call: a token-cache hit, an opaque token checked in full, a new JWT checked in full).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from _util import machine_note
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ACCOUNT = "alice"
PASSWORD = "alice-password"
AUDIENCE = "lacus"
KID = "bench-1"
CASES = ("ping", "userpass", "jwt", "jwt, no reuse")
DEADLINE = 600.0  # seconds for the whole run
WARM_UP = 400  # requests per case before the measured runs


class Issuer:
    """A local OIDC issuer: its JWKS over HTTP, tokens signed with its RSA key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = {**RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": KID}
        body = json.dumps({"keys": [jwk]}).encode()
        self.hits = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def sign(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": str(uuid.uuid4()),
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "preferred_username": ACCOUNT,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def make_lake(directory: Path, issuer: Issuer) -> None:
    """A fresh lake trusting ``issuer``, with the account ``alice``."""
    from lacus.service import Lake, Principal, init_lake
    from lacus.service.accounts import add_account
    from lacus.service.settings import OIDCIssuer, write_settings

    settings, _ = init_lake(directory, with_rses=False)
    settings.oidc_issuers = [
        OIDCIssuer(issuer=issuer.url, jwks_url=f"{issuer.url}/jwks.json", audience=AUDIENCE)
    ]
    write_settings(settings)
    lake = Lake(settings)
    try:
        add_account(lake, Principal("root", admin=True), ACCOUNT, password=PASSWORD)
    finally:
        lake.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """``lacus serve`` on ``port``, once it answers ``/ping``."""
    lacus = Path(sys.executable).parent / "lacus"
    env = {key: value for key, value in os.environ.items() if key != "LACUS_DATABASE_URL"}
    process = subprocess.Popen(
        [str(lacus), "serve", "--lake", str(directory), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lacus serve exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError("lacus serve did not start within 30 s")


def measure(
    url: str,
    path: str,
    tokens: Callable[[int], str | None],
    requests: int,
    clients: int,
    deadline: float,
) -> float:
    """Requests per second of ``requests`` GETs of ``path`` spread over ``clients`` threads."""
    share = requests // clients
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def work(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=30.0) as http:
            barrier.wait()
            for index in range(share):
                token = tokens(worker * share + index)
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = http.get(path, headers=headers)
                if response.status_code != 200:
                    errors.append(
                        f"{response.status_code} {response.headers.get('ExceptionMessage')}"
                    )
                    return

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError(f"{path}: not done within {DEADLINE} s")
    return share * clients / seconds


def per_call(directory: Path, issuer: Issuer, calls: int = 1000) -> dict[str, float]:
    """Microseconds per ``authenticate`` in this process: a cache hit, and full checks."""
    from lacus.service import Lake, load_settings
    from lacus.service.auth import authenticate, login_userpass

    lake = Lake(load_settings(directory))
    try:
        opaque, _ = login_userpass(lake, ACCOUNT, ACCOUNT, PASSWORD)
        tokens = [issuer.sign() for _ in range(calls)]
        authenticate(lake, tokens[0])  # fetch the JWKS

        def timed(call: Callable[[int], object]) -> float:
            start = time.perf_counter()
            for index in range(calls):
                call(index)
            return round((time.perf_counter() - start) / calls * 1e6, 1)

        def userpass_uncached(_: int) -> None:
            lake.reset_auth_caches()
            authenticate(lake, opaque)

        return {
            "cache hit": timed(lambda _: authenticate(lake, opaque)),
            "userpass, full": timed(userpass_uncached),
            "jwt, full": timed(lambda index: authenticate(lake, tokens[index])),
        }
    finally:
        lake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per case and run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per case")
    args = parser.parse_args()

    issuer = Issuer()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lacus-bench-tokens-") as temp:
        directory = Path(temp) / "lake"
        make_lake(directory, issuer)
        microseconds = per_call(directory, issuer)
        issuer.hits = 0
        port = free_port()
        process = serve(directory, port)
        url = f"http://127.0.0.1:{port}"
        try:
            login = httpx.get(
                f"{url}/auth/userpass",
                headers={
                    "X-Rucio-Account": ACCOUNT,
                    "X-Rucio-Username": ACCOUNT,
                    "X-Rucio-Password": PASSWORD,
                },
            )
            login.raise_for_status()
            opaque = login.headers["X-Rucio-Auth-Token"]
            one_jwt = issuer.sign()
            total = WARM_UP + args.repeat * args.requests
            fresh = [issuer.sign() for _ in range(total)]  # signed before the clock starts
            cases: dict[str, tuple[str, Callable[[int], str | None]]] = {
                "ping": ("/ping", lambda _: None),
                "userpass": ("/accounts/whoami", lambda _: opaque),
                "jwt": ("/accounts/whoami", lambda _: one_jwt),
            }
            figures: dict[str, list[float]] = {case: [] for case in CASES}
            for run in range(args.repeat + 1):  # run 0 warms up
                for case in CASES:
                    if case == "jwt, no reuse":
                        offset = 0 if run == 0 else WARM_UP + (run - 1) * args.requests
                        path, tokens = "/accounts/whoami", lambda i, o=offset: fresh[o + i]
                    else:
                        path, tokens = cases[case]
                    count = args.requests if run else WARM_UP
                    rate = measure(url, path, tokens, count, args.clients, started + DEADLINE)
                    if run:
                        figures[case].append(rate)
        finally:
            process.terminate()
            process.wait(timeout=10)
            issuer.close()

    medians = {case: statistics.median(rates) for case, rates in figures.items()}
    baseline = medians["ping"]
    print(f"{machine_note()}; {args.clients} clients, {args.requests} requests per case and run")
    for case in CASES:
        line = f"{case:<16} {medians[case]:8.0f} req/s (best {max(figures[case]):6.0f})"
        if case != "ping":
            line += f"  = {medians[case] / baseline:.2f} x ping"
        print(line)
    print(f"JWKS fetched {issuer.hits} time(s) by the server")
    print(
        "authenticate() in-process, us per call: "
        + ", ".join(f"{case} {value}" for case, value in microseconds.items())
    )
    print(
        json.dumps(
            {
                "requests": args.requests,
                "clients": args.clients,
                "repeat": args.repeat,
                "req_s": {case: round(rate) for case, rate in medians.items()},
                "ratio_to_ping": {
                    case: round(rate / baseline, 3) for case, rate in medians.items()
                },
                "jwks_fetches": issuer.hits,
                "authenticate_us": microseconds,
            }
        )
    )


if __name__ == "__main__":
    main()
