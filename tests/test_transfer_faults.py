"""The transfer engine against real storage servers that fail, on both catalogs:

1. a destination server (XRootD root://, Apache WebDAV) dies while it receives a large file, a
   source server while it sends one: the attempt fails with a readable error, nothing is
   registered, no partial file stays, an outage never makes a replica bad, the retry completes;
2. the network corrupts the bytes on their way to the storage or back (a proxy flips one), or
   the server dies as a complete temporary file is read back: caught, retried, never
   registered, and the temporary file is removed by the retry;
3. a source replica lost or corrupted on its server: declared bad, the next source used;
4. a conveyor process SIGKILLed as its first copies are registered while others are in flight
   (PostgreSQL): after its leases run out another conveyor finishes, every file once, no
   temporary file left at the destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from lacus.core import dids, replicas, rses
from lacus.daemons import conveyor
from lacus.daemons.base import worker_id
from lacus.db.tables import replicas as replicas_table
from lacus.db.tables import requests, transfers
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.service.settings import write_settings
from lacus.storage import PosixBackend, RemovesTemporaries
from lacus.storage._base import is_part_name
from lacus.storage.webdav import WebDAVBackend
from lacus.storage.xrootd import XRootDBackend
from lacus.types import ProtocolInfo
from tests import test_daemon_processes
from tests.conftest import wait_until
from tests.rule_helpers import (
    add_rule,
    event_types,
    make_dataset,
    request_rows,
    rse_prefix,
    rule,
    settle,
)
from tests.servers.apache import ApacheServer
from tests.servers.xrootd import XRootDServer
from tests.storage.conformance import read_all
from tests.test_daemon_processes import daemon_process, scalar
from tests.test_transfer_engine import link

MiB = 1024 * 1024


# -- helpers ----------------------------------------------------------------------------------


@dataclass
class Storage:
    """A place on a real storage server an RSE writes to, and where its files are on disk."""

    scheme: str
    port: int
    prefix: str
    disk: Path  # the server's directory behind ``prefix``
    options: dict[str, Any]
    stop: Callable[[], None]
    start: Callable[[], None]
    backend: type = object  # the class of the backend Lacus opens on it


def xrootd_storage(server: XRootDServer, prefix: str) -> Storage:
    return Storage(
        "root", server.root_port, prefix, server.export_dir / prefix, {"timeout": 10},
        server.kill, server.start, XRootDBackend,
    )  # fmt: skip


def apache_storage(server: ApacheServer, prefix: str) -> Storage:
    return Storage(
        "davs", server.https_port, prefix, server.root_dir / prefix,
        {"verify": server.ca_path, "timeout": 10}, server.stop, server.start, WebDAVBackend,
    )  # fmt: skip


def add_rse(lake: Lake, name: str, storage: Storage, **attributes: str) -> None:
    with lake.write() as conn:
        rse_id = rses.add_rse(conn, name, attributes={"site": name, **attributes})
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(
                scheme=storage.scheme,
                hostname="127.0.0.1",
                port=storage.port,
                prefix=storage.prefix,
                impl=storage.scheme,
                extended_attributes=storage.options,
            ),
        )


def pattern(size: int, seed: bytes = b"") -> Iterator[bytes]:
    """``size`` bytes in blocks of at most 1 MiB, no two blocks alike."""
    block = hashlib.shake_256(b"lacus-faults" + seed).digest(MiB)
    for index, start in enumerate(range(0, size, MiB)):
        yield (index.to_bytes(8, "big") + block[8:])[: min(MiB, size - start)]


def put_file(
    lake: Lake, rse: str, scope: str, name: str, blocks: Iterator[bytes], disk: Path | None = None
) -> str:
    """Write a file of ``rse`` from ``blocks`` (on the disk behind it: ``disk``, else the POSIX
    RSE's directory) and register it there; its md5."""
    path = (disk or rse_prefix(lake, rse)) / deterministic_path(scope, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    adler, md5, size = 1, hashlib.md5(usedforsecurity=False), 0
    with path.open("wb") as out:
        for block in blocks:
            out.write(block)
            adler = zlib.adler32(block, adler)
            md5.update(block)
            size += len(block)
    spec = {"scope": scope, "name": name, "bytes": size, "adler32": f"{adler:08x}"}
    with lake.write() as conn:
        replicas.add_replicas(
            conn, rses.get_rse_id(conn, rse), [{**spec, "md5": md5.hexdigest()}],  # type: ignore[list-item]
            account="root", deterministic=True,
        )  # fmt: skip
    return md5.hexdigest()


def dataset_with(
    lake: Lake,
    name: str,
    blocks: Iterator[bytes],
    rse: str = "ALPHA_DISK",
    disk: Path | None = None,
) -> str:
    """The dataset ``data:ds`` holding one file ``data:name`` on ``rse``; the file's md5."""
    make_dataset(lake, "data", "ds", [])
    md5 = put_file(lake, rse, "data", name, blocks, disk)
    with lake.write() as conn:
        dids.attach(conn, "data", "ds", [("data", name)])
    return md5


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while block := stream.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def files_on_disk(directory: Path) -> list[str]:
    """Every file below ``directory`` as the server's disk has it, hidden ones included."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir())


def temporaries(directory: Path) -> list[str]:
    """Files below ``directory`` that are no one's final name (Lacus's or the server's own)."""
    return [f for f in files_on_disk(directory) if f.rsplit("/", 1)[-1].startswith(".")]


def sources_of(lake: Lake, name: str) -> list[tuple[str, str | None, str | None]]:
    """(state, source RSE, error) of every attempt to copy ``name``, oldest first."""
    with lake.read() as conn:
        names = {info["id"]: info["rse"] for info in rses.list_rses(conn)}
        rows = conn.execute(
            select(transfers).where(transfers.c.name == name).order_by(transfers.c.id)
        )
        return [(row.state, names.get(row.source_rse_id), row.error) for row in rows]


def attempts(lake: Lake, name: str) -> list[tuple[str, str | None]]:
    """(state, error) of every attempt to copy ``name``, oldest first."""
    return [(state, error) for state, _, error in sources_of(lake, name)]


def replica_states(lake: Lake, name: str) -> dict[str, str]:
    with lake.read() as conn:
        names = {info["id"]: info["rse"] for info in rses.list_rses(conn)}
        rows = conn.execute(select(replicas_table).where(replicas_table.c.name == name))
        return {names[row.rse_id]: row.state for row in rows}


def one_pass(lake: Lake) -> int:
    """One pass of a conveyor (a failed attempt is then retried by a later pass)."""
    return conveyor.conveyor_pass(lake, worker_id("conveyor", "faults"))


@pytest.fixture
def quick_retries(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 5)
    return lake


# -- 1. a server dies while it sends or receives a large file -----------------------------------


@pytest.fixture(params=["root", "davs"])
def network_storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """A fresh place on a real server (XRootD: killed; Apache: stopped), running again after."""
    prefix = f"faults-{secrets.token_hex(4)}"
    if request.param == "root":
        server: Any = request.getfixturevalue("xrootd_server")
        storage = xrootd_storage(server, prefix)
    else:
        server = request.getfixturevalue("apache_server")
        storage = apache_storage(server, prefix)
    try:
        yield storage
    finally:
        storage.start()


def test_destination_killed_mid_transfer_then_the_retry_completes(
    quick_retries: Lake, network_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, destination = quick_retries, network_storage
    size = 96 * MiB
    add_rse(lake, "FAR_DISK", destination)
    md5 = dataset_with(lake, "big", pattern(size))
    rule_id = add_rule(lake, "data", "ds", "FAR_DISK")
    settle(lake, "evaluator")

    # The conveyor reads its source: a third of the way in, once the server has part of the file
    # on its disk, the destination server dies.
    partial: list[tuple[str, int]] = []
    real_get = PosixBackend.get

    def get_then_kill(self: PosixBackend, path: str, **kwargs: Any) -> Iterator[bytes]:
        sent = 0
        for chunk in real_get(self, path, **kwargs):
            if not partial and sent >= size // 3:
                partial.extend(wait_until(lambda: growing(destination.disk), timeout=30))
                destination.stop()
            sent += len(chunk)
            yield chunk

    monkeypatch.setattr(PosixBackend, "get", get_then_kill)
    one_pass(lake)
    assert partial, "the copy never reached the point where the server dies"
    monkeypatch.setattr(PosixBackend, "get", real_get)

    assert_one_readable_failure(lake, "big", destination.scheme)
    assert replica_states(lake, "big") == {"ALPHA_DISK": "available"}
    (request,) = request_rows(lake)
    assert request.state == "queued"

    destination.start()
    assert temporaries(destination.disk) == [], "a partial file survived the restart"
    assert files_on_disk(destination.disk) == []

    settle(lake, "conveyor")
    assert [state for state, _ in attempts(lake, "big")] == ["failed", "done"]
    assert replica_states(lake, "big") == {"ALPHA_DISK": "available", "FAR_DISK": "available"}
    final = deterministic_path("data", "big")
    assert files_on_disk(destination.disk) == [final]
    assert md5_of(destination.disk / final) == md5
    assert request_rows(lake) == []
    assert rule(lake, rule_id)["state"] == "ok"


def test_source_killed_mid_transfer_is_not_declared_bad_and_the_retry_completes(
    quick_retries: Lake, network_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, source = quick_retries, network_storage
    size = 96 * MiB
    add_rse(lake, "NET_DISK", source)
    md5 = dataset_with(lake, "big", pattern(size), rse="NET_DISK", disk=source.disk)
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")

    # A third of the way through the file, the source server dies.
    stopped: list[bool] = []
    real_get = source.backend.get  # type: ignore[attr-defined]

    def get_then_kill(self: Any, path: str, **kwargs: Any) -> Iterator[bytes]:
        chunks = real_get(self, path, **kwargs)  # a missing file fails here, at once

        def hooked() -> Iterator[bytes]:
            received = 0
            with contextlib.closing(chunks):
                for chunk in chunks:
                    received += len(chunk)
                    if not stopped and received >= size // 3:
                        stopped.append(True)
                        source.stop()
                    yield chunk

        return hooked()

    monkeypatch.setattr(source.backend, "get", get_then_kill)
    one_pass(lake)
    assert stopped, "the copy never reached the point where the server dies"
    monkeypatch.setattr(source.backend, "get", real_get)

    assert_one_readable_failure(lake, "big", source.scheme)
    # a storage that does not answer has not lost the file: the replica stays a source
    assert replica_states(lake, "big") == {"NET_DISK": "available"}
    assert event_types(lake, "replica.bad") == []
    beta = rse_prefix(lake, "BETA_DISK")
    assert files_on_disk(beta) == []

    source.start()
    settle(lake, "conveyor")
    assert [state for state, _ in attempts(lake, "big")] == ["failed", "done"]
    assert replica_states(lake, "big") == {"NET_DISK": "available", "BETA_DISK": "available"}
    final = deterministic_path("data", "big")
    assert files_on_disk(beta) == [final]
    assert md5_of(beta / final) == md5
    assert rule(lake, rule_id)["state"] == "ok"


def assert_one_readable_failure(lake: Lake, name: str, *words: str) -> None:
    """One attempt to copy ``name``: failed, with a one-line error saying ``words``."""
    ((state, error),) = attempts(lake, name)
    assert state == "failed"
    assert error is not None
    assert "\n" not in error
    assert all(word in error for word in words), error


def growing(directory: Path, at_least: int = 4 * MiB) -> list[tuple[str, int]]:
    """Hidden files below ``directory`` holding at least ``at_least`` bytes (a partial upload)."""
    found = []
    for name in temporaries(directory):
        try:
            size = (directory / name).stat().st_size
        except FileNotFoundError:
            continue
        if size >= at_least:
            found.append((name, size))
    return found


# -- 2. bytes corrupted between the conveyor and the destination ------------------------------


class FaultyProxy:
    """A TCP proxy on a loopback port in front of the plain HTTP server on ``target_port``, with
    a fault of the network or of the server:

    * ``marker``: one byte of each of the first ``times`` occurrences of ``marker`` it carries
      ``upstream`` (client to server: the storage keeps wrong bytes), else downstream (the
      storage's answer is wrong), is flipped. A tail of a read that could be the start of
      ``marker`` is held back until the next read, so a marker cut in two is found too;
    * ``trigger`` and ``action``: the first time a request matching ``trigger`` goes upstream,
      ``action`` runs (stopping the server, say) before the request is forwarded.
    """

    def __init__(
        self,
        target_port: int,
        *,
        marker: bytes = b"",
        upstream: bool = False,
        times: int = 1,
        trigger: bytes = b"",
        action: Callable[[], None] = lambda: None,
    ) -> None:
        self.target_port = target_port
        self.marker = marker
        self.upstream = upstream
        self.remaining = times if marker else 0
        self.flipped = 0
        self.trigger = re.compile(trigger) if trigger else None
        self.action = action
        self.triggered = False
        self.acted = threading.Event()  # set once ``action`` has returned (or failed)
        self.action_error: BaseException | None = None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server is down: so is the connection
                client.close()
                continue
            self._sockets += [client, server]
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, upstream), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        held = b""
        try:
            while data := source.recv(256 * 1024):
                trigger = self.trigger if upstream and not self.triggered else None
                if trigger is not None and trigger.search(data):
                    self.triggered = True
                    try:
                        self.action()
                    except BaseException as exc:  # noqa: BLE001 - the test shows it
                        self.action_error = exc
                    finally:
                        self.acted.set()
                if self.marker and upstream == self.upstream:
                    data, held = self._corrupt(held + data)
                sink.sendall(data)
            sink.sendall(held)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # one side is gone: so is the other (shutdown wakes its pump)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _corrupt(self, data: bytes) -> tuple[bytes, bytes]:
        with self._lock:
            if self.remaining <= 0:
                return data, b""
            buffer = bytearray(data)
            start = 0
            while self.remaining > 0 and (found := buffer.find(self.marker, start)) >= 0:
                buffer[found + len(self.marker) // 2] ^= 0x01
                self.remaining -= 1
                self.flipped += 1
                start = found + len(self.marker)
            keep = 0
            if self.remaining > 0:  # a marker may begin at the end of this read
                for length in range(min(len(self.marker) - 1, len(buffer)), 0, -1):
                    if buffer.endswith(self.marker[:length]):
                        keep = length
                        break
            cut = len(buffer) - keep
            return bytes(buffer[:cut]), bytes(buffer[cut:])


MARKER = b"<<lacus: flip a byte of me>>"


@pytest.mark.parametrize("where", ["on the way in", "on the way back"])
def test_corrupted_bytes_are_caught_retried_and_never_registered(
    quick_retries: Lake, apache_server: ApacheServer, where: str
) -> None:
    lake = quick_retries
    plain_port = int(apache_server.http_url.rsplit(":", 1)[1])
    proxy = FaultyProxy(plain_port, marker=MARKER, upstream=where == "on the way in")
    prefix = f"faults-{secrets.token_hex(4)}"
    disk = apache_server.root_dir / prefix
    add_rse(lake, "FAR_DISK", Storage("dav", proxy.port, prefix, disk, {"timeout": 10},
                                      proxy.close, lambda: None))  # fmt: skip
    data = bytearray(b"".join(pattern(3 * MiB)))
    data[MiB + 12345 : MiB + 12345 + len(MARKER)] = MARKER
    md5 = dataset_with(lake, "file", iter([bytes(data)]))
    rule_id = add_rule(lake, "data", "ds", "FAR_DISK")
    settle(lake, "evaluator")
    try:
        one_pass(lake)
        assert proxy.flipped == 1, "the bytes never went through the proxy"
        assert_one_readable_failure(lake, "file", "adler32")
        assert replica_states(lake, "file") == {"ALPHA_DISK": "available"}
        assert files_on_disk(disk) == []  # the temporary file is gone too

        settle(lake, "conveyor")  # the network is clean again: the retry succeeds
    finally:
        proxy.close()
    assert [state for state, _ in attempts(lake, "file")] == ["failed", "done"]
    assert replica_states(lake, "file") == {"ALPHA_DISK": "available", "FAR_DISK": "available"}
    final = deterministic_path("data", "file")
    assert files_on_disk(disk) == [final]
    assert md5_of(disk / final) == md5
    assert rule(lake, rule_id)["state"] == "ok"


def test_a_temporary_file_left_by_a_server_dying_before_the_move_is_removed_by_the_retry(
    quick_retries: Lake, apache_server: ApacheServer
) -> None:
    """The whole file reached the server under its temporary name; the server dies as the
    conveyor reads it back, so nobody can delete it then. The retry removes it."""
    lake = quick_retries
    plain_port = int(apache_server.http_url.rsplit(":", 1)[1])
    proxy = FaultyProxy(
        plain_port, trigger=rb"^GET [^ ]*/\.file\.lacus-part-", action=apache_server.stop
    )
    prefix = f"faults-{secrets.token_hex(4)}"
    disk = apache_server.root_dir / prefix
    add_rse(lake, "FAR_DISK", Storage("dav", proxy.port, prefix, disk, {"timeout": 10},
                                      proxy.close, lambda: None))  # fmt: skip
    md5 = dataset_with(lake, "file", pattern(3 * MiB))
    rule_id = add_rule(lake, "data", "ds", "FAR_DISK")
    settle(lake, "evaluator")
    try:
        try:
            one_pass(lake)
        finally:
            if proxy.triggered:  # the conveyor may give up before the server is quite gone
                proxy.acted.wait(timeout=60)
            apache_server.start()
        assert proxy.triggered, "the file was never read back"
        assert proxy.action_error is None, proxy.action_error
        assert_one_readable_failure(lake, "file", "dav://")
        assert replica_states(lake, "file") == {"ALPHA_DISK": "available"}
        (left,) = temporaries(disk)
        assert is_part_name(left.rsplit("/", 1)[-1])

        settle(lake, "conveyor")
    finally:
        proxy.close()
    assert [state for state, _ in attempts(lake, "file")] == ["failed", "done"]
    final = deterministic_path("data", "file")
    assert files_on_disk(disk) == [final]
    assert md5_of(disk / final) == md5
    assert rule(lake, rule_id)["state"] == "ok"


# -- 3. a source whose file is gone from its server ---------------------------------------------


@pytest.fixture(params=["root to posix", "davs to posix", "root to root"])
def lost_source(request: pytest.FixtureRequest) -> tuple[Storage, Storage | None]:
    """Where the lost copy is, and the destination (None: POSIX BETA_DISK)."""
    prefix = f"faults-{secrets.token_hex(4)}"
    source_kind, _, dest_kind = request.param.split()
    if source_kind == "root":
        source = xrootd_storage(request.getfixturevalue("xrootd_server"), prefix)
    else:
        source = apache_storage(request.getfixturevalue("apache_server"), prefix)
    dest = None
    if dest_kind == "root":  # both ends on XRootD: a third-party copy is tried first
        dest = xrootd_storage(request.getfixturevalue("second_xrootd_server"), prefix)
    return source, dest


@pytest.mark.parametrize(("damage", "reason"), [("missing", "missing"), ("corrupt", "adler32")])
def test_a_source_lost_on_its_server_is_declared_bad_and_another_used(
    lake: Lake, lost_source: tuple[Storage, Storage | None], damage: str, reason: str
) -> None:
    source, dest = lost_source
    add_rse(lake, "NET_DISK", source)
    destination = "BETA_DISK"
    if dest is not None:
        add_rse(lake, destination := "FAR_DISK", dest)
    data = b"".join(pattern(2 * MiB, seed=b"lost"))
    md5 = dataset_with(lake, "file", iter([data]))
    put_file(lake, "NET_DISK", "data", "file", iter([data]), disk=source.disk)
    link(lake, "NET_DISK", destination, 1)  # the damaged copy is the closest: tried first
    link(lake, "ALPHA_DISK", destination, 5)
    path = deterministic_path("data", "file")
    if damage == "missing":  # lost on the server, behind the catalog's back
        (source.disk / path).unlink()
    else:  # same size, one bit changed
        (source.disk / path).write_bytes(data[:MiB] + bytes([data[MiB] ^ 0x10]) + data[MiB + 1 :])

    rule_id = add_rule(lake, "data", "ds", destination)
    # missing: declared bad at once; corrupt: reported suspicious, read back, then bad
    settle(lake, "evaluator", "conveyor", "necromancer")

    assert rule(lake, rule_id)["state"] == "ok"
    assert replica_states(lake, "file") == {
        "ALPHA_DISK": "available",
        "NET_DISK": "bad",
        destination: "available",
    }
    (bad,) = event_types(lake, "replica.bad")
    assert bad["rse"] == "NET_DISK"
    assert reason in bad["reason"]
    assert [(state, rse) for state, rse, _ in sources_of(lake, "file")] == [("done", "ALPHA_DISK")]
    target = (dest.disk if dest is not None else rse_prefix(lake, "BETA_DISK")) / path
    assert md5_of(target) == md5
    assert temporaries(target.parent) == []


# -- 4. a conveyor process SIGKILLed half-way -------------------------------------------------


def conveyor_process(lake: Lake, *extra: str) -> subprocess.Popen[str]:
    return daemon_process(lake, "conveyor", *extra)


def with_threads(lake: Lake, threads: int) -> None:
    """Daemon processes started from now on run ``threads`` copies at a time."""
    lake.settings.transfer_threads = threads
    write_settings(lake.settings)


pg_lake = test_daemon_processes.pg_lake  # a lake on PostgreSQL whose daemon processes lease 2 s


@pytest.fixture(params=["posix", "root", "davs"])
def many_files_destination(request: pytest.FixtureRequest, pg_lake: Lake) -> tuple[str, Path]:
    """The RSE the files go to, and its directory on disk."""
    if request.param == "posix":
        return "BETA_DISK", rse_prefix(pg_lake, "BETA_DISK")
    prefix = f"faults-{secrets.token_hex(4)}"
    if request.param == "root":
        storage = xrootd_storage(request.getfixturevalue("xrootd_server"), prefix)
    else:
        storage = apache_storage(request.getfixturevalue("apache_server"), prefix)
    add_rse(pg_lake, "FAR_DISK", storage)
    return "FAR_DISK", storage.disk


@dataclass
class Stall:
    """A WebDAV RSE behind a proxy that holds the GET of the file ``name`` until ``release``."""

    name: str
    release: threading.Event
    storage: Storage
    proxy: FaultyProxy


@pytest.fixture
def stall(apache_server: ApacheServer) -> Iterator[Stall]:
    name = "stuck-in-flight"
    release = threading.Event()
    proxy = FaultyProxy(
        int(apache_server.http_url.rsplit(":", 1)[1]),
        trigger=rb"^GET [^ ]*/" + re.escape(name.encode()) + rb" ",
        action=lambda: release.wait(timeout=600),
    )
    prefix = f"faults-{secrets.token_hex(4)}"
    disk = apache_server.root_dir / prefix
    try:
        storage = Storage(
            "dav", proxy.port, prefix, disk, {"timeout": 600}, proxy.close, lambda: None
        )
        yield Stall(name, release, storage, proxy)
    finally:
        release.set()
        proxy.close()


def test_a_killed_conveyor_loses_nothing_and_duplicates_nothing(
    pg_lake: Lake, many_files_destination: tuple[str, Path], stall: Stall
) -> None:
    """The victim is killed as soon as its first registration is visible and one of its copies
    is surely in flight, whatever the size of its batches: that file's only source is behind a
    proxy that holds its GET until the victim is dead. Its other thread copies the rest and is
    often cut short mid-copy."""
    lake = pg_lake
    destination, disk = many_files_destination
    total = 300
    names = [f"f{i:03d}" for i in range(total - 1)]
    data = make_dataset(lake, "data", "ds", names, size=64 * 1024)
    add_rse(lake, "STALL_DAV", stall.storage)
    stuck = stall.name
    data[stuck] = b"".join(pattern(64 * 1024, seed=b"stuck"))
    put_file(lake, "STALL_DAV", "data", stuck, iter([data[stuck]]), stall.storage.disk)
    with lake.write() as conn:
        dids.attach(conn, "data", "ds", [("data", stuck)])
    names.append(stuck)
    rule_id = add_rule(lake, "data", "ds", destination)
    settle(lake, "evaluator")
    with lake.write() as conn:  # copied first
        conn.execute(update(requests).where(requests.c.name == stuck).values(priority=5))
        dest_id = rses.get_rse_id(conn, destination)
    registered = (
        select(func.count()).select_from(replicas_table).where(replicas_table.c.rse_id == dest_id)
    )

    with_threads(lake, 2)  # the victim's settings file says so
    victim = conveyor_process(lake)
    deadline = time.monotonic() + 120
    while scalar(lake, registered) == 0 or not stall.proxy.triggered:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the conveyor registered nothing"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    stall.release.set()
    assert 0 < scalar(lake, registered) < total
    assert replica_states(lake, stuck) == {"STALL_DAV": "available"}
    held = (
        select(func.count())
        .select_from(requests)
        .where(requests.c.claimed_by.contains(f":{victim.pid}:"))
    )
    assert scalar(lake, held) > 0, "the victim held requests when it died"
    left_by_victim = temporaries(disk)

    time.sleep(lake.settings.claim_lease_seconds + 0.5)  # its leases run out
    with_threads(lake, 16)
    heir = conveyor_process(lake, "--once")
    _out, err = heir.communicate(timeout=600)
    assert heir.returncode == 0, err

    assert rule(lake, rule_id)["state"] == "ok"
    assert request_rows(lake) == []
    with lake.read() as conn:
        rows = conn.execute(
            select(replicas_table.c.name, replicas_table.c.state).where(
                replicas_table.c.rse_id == dest_id
            )
        )
        assert sorted(rows) == [(name, "available") for name in names]
        done = conn.execute(
            select(transfers.c.name, func.count())
            .where(transfers.c.state == "done")
            .group_by(transfers.c.name)
        )
        assert {name: n for name, n in done} == dict.fromkeys(names, 1)
    assert files_on_disk(disk) == sorted(deterministic_path("data", name) for name in names), (
        f"left on the destination (by the killed conveyor: {left_by_victim})"
    )
    for name in names:
        assert (disk / deterministic_path("data", name)).read_bytes() == data[name]


# -- what the retry relies on: the temporaries of one path, on every storage ---------------------


@pytest.fixture(params=["posix", "root", "davs"])
def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """A backend on an empty place of a storage, and the directory behind it."""
    prefix = f"faults-{secrets.token_hex(4)}"
    if request.param == "posix":
        yield PosixBackend(tmp_path / prefix), tmp_path / prefix
        return
    if request.param == "root":
        server: Any = request.getfixturevalue("xrootd_server")
        yield XRootDBackend(server.root_url(prefix)), server.export_dir / prefix
        return
    server = request.getfixturevalue("apache_server")
    with server.backend(prefix) as backend:
        yield backend, server.root_dir / prefix


def test_only_the_temporaries_of_the_path_are_removed(storage_backend: tuple[Any, Path]) -> None:
    backend, disk = storage_backend
    assert isinstance(backend, RemovesTemporaries)
    backend.put("a/b/f", io.BytesIO(b"final"))
    backend.put("a/b/f.lacus-part-abc", io.BytesIO(b"a final name too"))
    left = [".f.lacus-part-0123456789ab", ".f.lacus-part-abc.lacus-part-0123", ".g.lacus-part-01"]
    for name in left:
        (disk / "a/b" / name).write_bytes(b"left by a killed writer")
    assert backend.remove_temporaries("a/b/f") == 1
    assert sorted(files_on_disk(disk / "a/b")) == sorted(["f", "f.lacus-part-abc", *left[1:]])
    assert backend.remove_temporaries("a/b/f") == 0
    assert backend.remove_temporaries("a/b/f.lacus-part-abc") == 1
    assert backend.remove_temporaries("nowhere/f") == 0
    assert read_all(backend, "a/b/f") == b"final"
