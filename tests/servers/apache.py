"""A real Apache httpd with mod_dav over HTTPS (and plain HTTP), on loopback ports in a temp dir.

``apache_server`` starts it the first time a test asks and stops it at the end of the session.
Its document root holds:

- anything else: read-write WebDAV (a test takes a fresh sub-directory: ``backend("rse-x")``);
- ``readonly/``: reads and PROPFIND only, every write refused with 403;
- ``tokened/``: read-write for requests bearing ``Authorization: Bearer <TOKEN>``, 403 otherwise;
- ``corrupting/``: read-write, but GET answers with every ``lacus`` turned into ``LACUS`` (a
  storage that hands back other bytes than it was given).

The TLS certificate is issued by a throwaway CA made with ``trustme`` (``ca_path``). Run as root,
Apache's workers run as ``www-data``, so the server's directory lives outside pytest's private
temp dir and belongs to that user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_component

TOKEN = "lacus-test-token-0123456789"
MODULES_DIR = Path("/usr/lib/apache2/modules")
MODULES = [
    ("mpm_prefork_module", "mod_mpm_prefork.so"),  # a worker ends at once on SIGTERM
    ("authz_core_module", "mod_authz_core.so"),
    ("dav_module", "mod_dav.so"),
    ("dav_fs_module", "mod_dav_fs.so"),
    ("ssl_module", "mod_ssl.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("headers_module", "mod_headers.so"),
    ("substitute_module", "mod_substitute.so"),
]

CONFIG = """\
ServerRoot "{dir}"
PidFile "{dir}/httpd.pid"
ErrorLog "{dir}/error.log"
LogLevel warn
{load_modules}
{user}
ServerName 127.0.0.1
Listen 127.0.0.1:{https_port} https
Listen 127.0.0.1:{http_port} http
Timeout 30
KeepAlive On
MaxKeepAliveRequests 0
LimitRequestBody 0
StartServers 4
MinSpareServers 2
MaxSpareServers 8
MaxRequestWorkers 32
DavLockDB "{dir}/lock/davlock"
SSLSessionCache "shmcb:{dir}/ssl_scache(512000)"
DocumentRoot "{root}"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}">
    Dav On
    Options None
    AllowOverride None
    Require all granted
</Directory>
<Directory "{root}/readonly">
    <LimitExcept GET HEAD OPTIONS PROPFIND>
        Require all denied
    </LimitExcept>
</Directory>
<Directory "{root}/tokened">
    Require expr "%{{HTTP:Authorization}} == 'Bearer {token}'"
</Directory>
<Directory "{root}/corrupting">
    <If "%{{REQUEST_METHOD}} == 'GET'">
        SetOutputFilter SUBSTITUTE
        Substitute "s/lacus/LACUS/n"
    </If>
</Directory>
<VirtualHost 127.0.0.1:{https_port}>
    SSLEngine on
    SSLCertificateFile "{dir}/server.pem"
    SSLCertificateKeyFile "{dir}/server.key"
</VirtualHost>
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _worker_user() -> tuple[str, str, int, int]:
    """Who Apache's workers run as: www-data when started as root, else the current user."""
    if os.geteuid() != 0:
        user = pwd.getpwuid(os.geteuid())
        return user.pw_name, grp.getgrgid(os.getegid()).gr_name, user.pw_uid, os.getegid()
    for name in ("www-data", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            return name, grp.getgrgid(user.pw_gid).gr_name, user.pw_uid, user.pw_gid
    raise RuntimeError("no unprivileged user (www-data, nobody) for Apache's workers")


class ApacheServer:
    """One Apache httpd; ``stop()`` and ``start()`` keep its ports and files."""

    def __init__(self, directory: Path, binary: str = "apache2") -> None:
        import trustme

        self.binary = binary
        self.dir = directory
        self.root_dir = directory / "htdocs"
        self.https_port = _free_port()
        self.http_port = _free_port()
        self.base_url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.ca_path = str(directory / "ca.pem")
        self.token = TOKEN
        self._process: subprocess.Popen[bytes] | None = None

        ca = trustme.CA()
        ca.cert_pem.write_to_path(self.ca_path)
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(directory / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
        for pem in cert.cert_chain_pems[1:]:
            with open(directory / "server.pem", "ab") as out:
                out.write(pem.bytes())

        user, group, uid, gid = _worker_user()
        for sub in ("htdocs", "htdocs/readonly/rse/virgo", "htdocs/tokened", "htdocs/corrupting"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (self.root_dir / "readonly/rse/virgo/kept").write_bytes(b"kept")
        (directory / "lock").mkdir()
        for path in [directory / "lock", *self.root_dir.rglob("*"), self.root_dir]:
            os.chown(path, uid, gid)
        directory.chmod(0o755)

        load = "\n".join(f"LoadModule {name} {MODULES_DIR / so}" for name, so in MODULES)
        user_lines = f"User {user}\nGroup {group}" if os.geteuid() == 0 else ""
        self.conf = directory / "httpd.conf"
        self.conf.write_text(
            CONFIG.format(
                dir=directory,
                root=self.root_dir,
                load_modules=load,
                user=user_lines,
                https_port=self.https_port,
                http_port=self.http_port,
                token=TOKEN,
            )
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start Apache and return once it answers on both ports."""
        if self.running:
            return
        log = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 - kept open by the child
        self._process = subprocess.Popen(
            [self.binary, "-f", str(self.conf), "-DFOREGROUND"],
            stdout=log,
            stderr=log,
            env={**os.environ, "APACHE_RUN_DIR": str(self.dir), "APACHE_LOCK_DIR": str(self.dir)},
            start_new_session=True,  # its own process group: stop() signals every worker at once
        )
        log.close()
        deadline = time.monotonic() + 20
        while not (_answers(self.https_port) and _answers(self.http_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Apache did not start: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop Apache at once (requests in flight are cut) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # SIGTERM to the parent alone waits for workers busy with a request (up to ~10 s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deadline = time.monotonic() + 10
        while _answers(self.https_port) or _answers(self.http_port):
            if time.monotonic() > deadline:
                raise RuntimeError("Apache's ports still answer after it stopped")
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.dir / name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def backend(self, prefix_subdir: str, *, plain: bool = False, **options: Any) -> Any:
        """A WebDAV backend on ``/<prefix_subdir>`` of this server (HTTPS unless ``plain``)."""
        from lacus.storage.webdav import WebDAVBackend

        if not plain:
            options.setdefault("verify", self.ca_path)
        base = self.http_url if plain else self.base_url
        return WebDAVBackend(f"{base}/{prefix_subdir.strip('/')}", **options)


@pytest.fixture(scope="session")
def apache_server() -> Iterator[ApacheServer]:
    """A running Apache httpd with mod_dav (see the module docstring for its locations)."""
    binary = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin:/sbin")
    if binary is None:
        require_component("Apache httpd", "apache2 is not installed (bash scripts/services.sh)")
    missing = [so for _, so in MODULES if not (MODULES_DIR / so).exists()]
    if missing:
        require_component("Apache httpd", f"modules missing in {MODULES_DIR}: {missing}")
    directory = Path(tempfile.mkdtemp(prefix="lacus-apache-"))
    server = ApacheServer(directory, binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
