"""A real XRootD server (``root://``) that also speaks HTTPS/WebDAV (XrdHttp) with HTTP-TPC.

Session fixtures:

``xrootd_server``
    One ``xrootd`` process on two free ports, both answering before the fixture returns:

    * ``root://127.0.0.1:<root_port>//<prefix>`` — the XRootD protocol; anonymous, writable;
      server-side checksums ``adler32`` and ``md5`` (``xrdfs query checksum /p``, md5 with
      ``/p?cks.type=md5``); files opened with POSC (persist on successful close) are removed
      at once when their writer goes away without closing them, or when the server restarts
      after a crash (``ofs.persist manual hold 0``); root-to-root third-party copy
      (``ofs.tpc``: the destination server runs ``xrdcp --server`` to pull);
    * ``https://127.0.0.1:<http_port>/<prefix>`` — XrdHttp over TLS with a throwaway CA
      (``ca_path``, a PEM file; the server certificate names ``localhost`` and ``127.0.0.1``):
      GET/PUT/DELETE/MKCOL/PROPFIND/MOVE, ``Want-Digest: adler32`` (or ``md5``) answered with a
      ``Digest:`` header, and HTTP-TPC pulls (``COPY`` with a ``Source:`` header, handled by
      libXrdHttpTPC; the server trusts the same CA, so it can pull from itself or from another
      server of this fixture). Found by trying (XrdHttp 5.5): a PUT makes the parent
      directories, a COPY does not (MKCOL them first; MKCOL of an existing one answers 405); the
      md5 ``Digest:`` is base64 (RFC 3230), adler32 is hex; a write or DELETE refused in the
      read-only area answers 500 (not 403) with "file path marked read/only" in the body.

    Logical paths are rooted at ``export_dir`` (``oss.localroot``): ``root_url("rse1")`` and
    ``http_url("rse1")`` are the directory ``export_dir / "rse1"``. Everything under
    ``readonly_prefix`` is exported ``notwritable``: writes and deletes there are refused
    (``readonly/virgo/file`` holds ``b"kept"``). Files the tests put into ``export_dir``
    directly should go through ``write_file`` so the server (running unprivileged) may delete
    them. ``stop()`` stops the process, ``kill()`` SIGKILLs it (a crash), ``start()`` starts it
    again on the same ports; tests that stop it must start it again (``finally``).

``second_xrootd_server``
    Another, independent instance of the same kind (for copies between two servers), whose
    only server-side checksum is adler32 (``digests``): asked for md5 it answers its adler32.

The server listens on all interfaces (XRootD 5 has no directive to bind one address) but
accepts connections from this host only (``xrd.allow host localhost``). As root, it runs as
the unprivileged ``daemon`` user (``-R daemon``; XRootD refuses to run as root) in a directory
of its own under the system temporary directory. When ``xrootd`` is not installed the tests
that need it call ``require_component`` (``scripts/services.sh`` installs it).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
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

import pytest

__all__ = ["XRootDServer", "second_xrootd_server", "xrootd_server"]

HOST = "127.0.0.1"
READONLY_PREFIX = "readonly"
_RUN_AS = "daemon"  # XRootD refuses to run as root; any unprivileged account will do
_START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lacus test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class XRootDServer:
    """One ``xrootd`` process serving ``root://`` and ``https://`` from ``export_dir``."""

    host = HOST
    readonly_prefix = READONLY_PREFIX

    def __init__(
        self, name: str = "xrootd", *, digests: tuple[str, ...] = ("adler32", "md5")
    ) -> None:
        self.binary = shutil.which("xrootd")
        if self.binary is None:
            raise RuntimeError("the xrootd program is not installed (scripts/services.sh)")
        self.name = name
        self.digests = digests
        self.base = Path(tempfile.mkdtemp(prefix=f"lacus-{name}-"))
        self.base.chmod(0o755)  # the server runs as another user
        self.export_dir = self.base / "export"
        self.log_path = self.base / "xrootd.log"
        self.root_port = _free_port()
        self.http_port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = _RUN_AS if os.geteuid() == 0 else None
        for sub in ("export", f"export/{READONLY_PREFIX}/virgo", "admin", "run"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.export_dir / READONLY_PREFIX / "virgo/file").write_bytes(b"kept")
        self.ca_path: Path | None
        self.ca_path, cert_path, key_path = _write_certificates(self.base)
        self.config_path = self.base / "xrootd.cfg"
        self.config_path.write_text(self._config(cert_path, key_path))
        self._chown(self.base)

    def _config(self, cert_path: Path, key_path: Path) -> str:
        return "\n".join(
            [
                "all.role server",
                f"xrd.port {self.root_port}",
                "xrd.allow host localhost",  # it listens on every interface: serve only this host
                f"all.adminpath {self.base / 'admin'}",
                f"all.pidpath {self.base / 'run'}",
                f"oss.localroot {self.export_dir}",
                "all.export /",
                f"all.export /{READONLY_PREFIX} notwritable",
                f"xrootd.chksum max 8 {' '.join(self.digests)}",
                # files opened with POSC vanish as soon as their writer disconnects (or at restart)
                "ofs.persist manual hold 0",
                # root -> root third-party copy: the destination server pulls with xrdcp
                f"ofs.tpc autorm xfr 8 pgm {shutil.which('xrdcp') or '/usr/bin/xrdcp'} --server",
                f"xrd.protocol XrdHttp:{self.http_port} libXrdHttp.so",
                f"xrd.tls {cert_path} {key_path}",
                f"xrd.tlsca certfile {self.ca_path}",
                "http.exthandler xrdtpc libXrdHttpTPC.so",
                "http.desthttps yes",
                "",
            ]
        )

    def _chown(self, path: Path) -> None:
        if self._run_as is None:
            return
        account = pwd.getpwnam(self._run_as)
        os.chown(path, account.pw_uid, account.pw_gid)
        for directory, subdirectories, files in os.walk(path):
            for name in subdirectories + files:
                os.chown(os.path.join(directory, name), account.pw_uid, account.pw_gid)

    # -- what tests use --------------------------------------------------------------------

    def root_url(self, prefix: str = "") -> str:
        """``root://127.0.0.1:PORT//prefix`` (the path is absolute in the server's namespace)."""
        return f"root://{self.host}:{self.root_port}//{prefix.strip('/')}"

    def http_url(self, prefix: str = "") -> str:
        """``https://127.0.0.1:PORT/prefix`` (verify with ``ca_path``)."""
        return f"https://{self.host}:{self.http_port}/{prefix.strip('/')}"

    def write_file(self, path: str, data: bytes) -> Path:
        """Put ``data`` at ``export_dir / path`` behind the server's back, owned as it expects."""
        full = self.export_dir / path
        missing = [p for p in [full.parent, *full.parent.parents] if not p.exists()]
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        for made in [full, *missing]:
            self._chown(made)
        return full

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again, on the same ports); return once both ports answer.

        Right after a kill, its ports may still be held for a moment (a child it ran still
        exiting): a start that fails then is tried again, up to three times."""
        for attempt in range(3):
            try:
                self._start_once()
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(1.0)

    def _start_once(self) -> None:
        if self.running:
            return
        command = [str(self.binary), "-c", str(self.config_path), "-l", f"={self.log_path}"]
        if self._run_as is not None:
            command += ["-R", self._run_as]
        self._process = subprocess.Popen(
            command,
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() also ends the xrdcp it ran
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not (_answers(self.root_port) and _answers(self.http_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"xrootd did not start: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the files stay."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "no log written"
        return " | ".join(text.strip().splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"XRootDServer({self.root_url()}, {self.http_url()})"


def _started(name: str, **options: tuple[str, ...]) -> Iterator[XRootDServer]:
    from tests.conftest import require_component

    try:
        server = XRootDServer(name, **options)
    except (RuntimeError, OSError) as exc:
        require_component("xrootd", str(exc))
        raise AssertionError("unreachable") from exc
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        server.close()
        require_component("xrootd", str(exc)[:1000])
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def xrootd_server() -> Iterator[XRootDServer]:
    """A running XRootD server with HTTPS, for the whole session (see the module docstring)."""
    yield from _started("xrootd")


@pytest.fixture(scope="session")
def second_xrootd_server() -> Iterator[XRootDServer]:
    """Another running XRootD server, independent of ``xrootd_server``; adler32 only, no md5."""
    yield from _started("xrootd2", digests=("adler32",))
