"""Long uploads by a client with a token and no password (issue 16, point 8), against the real
server with short-lived tokens (its ``token_lifetime`` setting, or a JWT's ``exp``) and uploads
throttled by a slow progress callback (it runs in the reading thread, between reads).

Such a client cannot get a new token, and files are registered at the end: it must refuse
early, or keep what it finished, rather than lose everything at the end. With a password the
session logs in again, and a long upload simply finishes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lacus.client import Client
from lacus.client import upload as upload_module
from lacus.errors import Unauthenticated
from tests import test_oidc
from tests.conftest import ROOT_PASSWORD, RunningServer
from tests.test_oidc import Issuer
from tests.test_rest import login
from tests.test_upload import files_under, hash_path, prefix, write

SCOPE = "virgo"
RSE = "ALPHA_DISK"
MiB = 1024 * 1024
PASSWORD = "alice-secret-1"

issuer_server = test_oidc.issuer_server
issuer = test_oidc.issuer


@pytest.fixture
def alice(server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Account alice (with a password) owns scope virgo; no LACUS_* credentials around; the
    margin kept for registering is 2 s (30 s by default) so that tokens of seconds do."""
    for name in (
        "LACUS_URL",
        "LACUS_ACCOUNT",
        "LACUS_PASSWORD",
        "LACUS_TOKEN",
        "LACUS_UPLOAD_RATE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LACUS_CONFIG", str(tmp_path / "client.json"))
    monkeypatch.setattr(upload_module, "TOKEN_MARGIN_SECONDS", 2.0)
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        root.add_account("alice", password=PASSWORD)
        root.add_scope(SCOPE, account="alice")
    return "alice"


def token_for(server: RunningServer, monkeypatch: pytest.MonkeyPatch, seconds: int) -> str:
    """A token of alice's that the server lets live ``seconds``."""
    monkeypatch.setattr(server.lake.settings, "token_lifetime", seconds)
    return login(server.url, "alice", PASSWORD)


def throttle(mib_per_second: float, *, after: int = 0) -> Callable[[int], None]:
    """A progress callback holding the reads to ``mib_per_second`` once ``after`` bytes were read
    (by all workers together): it runs in the reading thread, between reads."""
    seen = [0]
    lock = threading.Lock()

    def progress(count: int) -> None:
        with lock:
            before, seen[0] = seen[0], seen[0] + count
            slow = max(0, seen[0] - max(before, after))
        time.sleep(slow / (mib_per_second * MiB))

    return progress


def files(src: Path, *names: str, size: int = 4 * MiB) -> list[Path]:
    return [write(src / name, bytes([index]) * size) for index, name in enumerate(names)]


def catalog(server: RunningServer) -> list[str]:
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        return sorted(f"{d['scope']}:{d['name']}" for d in root.list_dids(f"{SCOPE}:*"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    directory = tmp_path / "local"
    directory.mkdir()
    return directory


def test_an_upload_the_token_cannot_outlast_is_refused_in_its_first_seconds(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path, tmp_path: Path
) -> None:
    token = token_for(server, monkeypatch, 8)
    paths = files(src, "f1", "f2", "f3", "f4", "f5")  # 20 MiB at 2 MiB/s: 10 s, and more
    started = time.monotonic()
    with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
        bearer.upload(paths, rse=RSE, scope=SCOPE, workers=1, progress=throttle(2.0))
    assert time.monotonic() - started < 5, "refused in the first seconds, not at the end"
    message = str(caught.value)
    assert re.fullmatch(
        r"the token expires in [3-6] s; this upload needs about 1\d s \(20.0 MiB at "
        r"(1\.\d+|2) MiB/s measured\): log in with a password \(LACUS_ACCOUNT and "
        r"LACUS_PASSWORD, or 'lacus login'\) or get a longer token; nothing was uploaded",
        message,
    ), message
    assert files_under(prefix(tmp_path, RSE)) == []
    assert catalog(server) == []


def test_files_finished_before_the_token_ran_short_are_kept(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path, tmp_path: Path
) -> None:
    token = token_for(server, monkeypatch, 10)
    paths = files(src, "f1", "f2", "f3")
    slowing = throttle(0.6, after=4 * MiB)  # f1 at full speed, then the storage slows down
    with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
        bearer.upload(paths, rse=RSE, scope=SCOPE, dataset="run", workers=1, progress=slowing)
    message = str(caught.value)
    assert "this upload needs about" in message
    assert message.endswith(
        f"; kept the 1 file finished (f1); 2 not uploaded, starting with {paths[1]}"
    )
    assert catalog(server) == [f"{SCOPE}:f1", f"{SCOPE}:run"]
    assert files_under(prefix(tmp_path, RSE)) == [hash_path(SCOPE, "f1")]
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        assert [f["name"] for f in root.list_files(f"{SCOPE}:run")] == ["f1"]
        [replica] = root.list_replicas([f"{SCOPE}:f1"])
        assert replica["rses"][RSE]["state"] == "available"


def test_files_finished_by_parallel_workers_are_kept(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path, tmp_path: Path
) -> None:
    token = token_for(server, monkeypatch, 10)
    small = files(src, "s1", "s2", size=1024)
    large = files(src, "l1", size=12 * MiB)  # 12 s at 1 MiB/s
    with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
        bearer.upload(
            [*small, *large], rse=RSE, scope=SCOPE, workers=3, progress=throttle(1.0, after=4096)
        )
    assert "kept the 2 files finished (s1, s2); 1 not uploaded" in str(caught.value)
    assert catalog(server) == [f"{SCOPE}:s1", f"{SCOPE}:s2"]
    assert files_under(prefix(tmp_path, RSE)) == sorted(hash_path(SCOPE, n) for n in ("s1", "s2"))


def test_a_configured_rate_refuses_before_the_first_byte(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path, tmp_path: Path
) -> None:
    token = token_for(server, monkeypatch, 3600)
    monkeypatch.setenv("LACUS_UPLOAD_RATE", "0.001")  # MiB/s: 4 MiB take over an hour
    reads: list[int] = []
    with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
        bearer.upload(files(src, "f1"), rse=RSE, scope=SCOPE, progress=reads.append)
    assert str(caught.value).startswith(
        "the token expires in 1 h; this upload needs about 1 h 23 min (4.0 MiB at 0.001 MiB/s "
        "configured): log in with a password"
    )
    assert (reads, files_under(prefix(tmp_path, RSE)), catalog(server)) == ([], [], [])


def test_a_token_with_time_enough_uploads_as_before(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path
) -> None:
    token = token_for(server, monkeypatch, 3600)
    monkeypatch.setenv("LACUS_UPLOAD_RATE", "50")
    with Client(server.url, token=token) as bearer:
        bearer.upload(files(src, "f1", "f2"), rse=RSE, scope=SCOPE, progress=throttle(5.0))
    assert catalog(server) == [f"{SCOPE}:f1", f"{SCOPE}:f2"]


def test_a_token_too_close_to_its_end_uploads_nothing(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path, tmp_path: Path
) -> None:
    token = token_for(server, monkeypatch, 2)
    with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
        bearer.upload(files(src, "f1", size=10), rse=RSE, scope=SCOPE)
    assert re.match(r"the token expires in [0-2] s: too soon to upload: log in", str(caught.value))
    assert (files_under(prefix(tmp_path, RSE)), catalog(server)) == ([], [])


def test_a_password_client_outlasts_its_tokens(
    server: RunningServer, alice: str, monkeypatch: pytest.MonkeyPatch, src: Path
) -> None:
    monkeypatch.setattr(server.lake.settings, "token_lifetime", 3)
    paths = files(src, "f1", "f2")  # 8 MiB at 1.5 MiB/s: 5 s, longer than any token lives
    with Client(server.url, account="alice", password=PASSWORD) as client:
        client.upload(paths, rse=RSE, scope=SCOPE, workers=1, progress=throttle(1.5))
    assert catalog(server) == [f"{SCOPE}:f1", f"{SCOPE}:f2"]


def test_a_jwt_s_expiry_counts_too(
    server: RunningServer, issuer: Issuer, monkeypatch: pytest.MonkeyPatch, src: Path
) -> None:
    monkeypatch.setattr(upload_module, "TOKEN_MARGIN_SECONDS", 2.0)
    monkeypatch.setenv("LACUS_UPLOAD_RATE", "1")  # MiB/s: 4 MiB in 5 s, + 2 s to register
    with Client(server.url, account="root", password=ROOT_PASSWORD) as root:
        root.add_scope(SCOPE, account="alice")
    token = issuer.sign(preferred_username="alice", exp=int(time.time()) + 6)
    with Client(server.url, token=token) as bearer, pytest.raises(Unauthenticated) as caught:
        bearer.upload(files(src, "f1"), rse=RSE, scope=SCOPE)
    assert re.match(r"the token expires in [4-6] s; this upload needs about 7 s", str(caught.value))
    assert catalog(server) == []
