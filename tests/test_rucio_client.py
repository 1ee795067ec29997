"""The official Rucio client (rucio-clients 41.5.1), unmodified, against a Lacus server.

Both its CLI (through subprocess, as users run it) and its Python API (``rucio.client.Client``).
Several Rucio commands exit 0 even when they fail, so every test also checks the catalog or the
bytes on disk.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lacus.client import Client
from tests.conftest import ROOT_PASSWORD, RunningServer

RUCIO = Path(sys.executable).parent / "rucio"
Run = Callable[..., subprocess.CompletedProcess[str]]


def rucio_path(scope: str, name: str) -> str:
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return f"{scope}/{digest[:2]}/{digest[2:4]}/{name}"


@pytest.fixture
def rucio_cfg(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A rucio.cfg for the test server (userpass as root), with its own token cache."""
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text(
        "[client]\n"
        f"rucio_host = {server.url}\n"
        f"auth_host = {server.url}\n"
        "auth_type = userpass\n"
        "username = root\n"
        f"password = {ROOT_PASSWORD}\n"
        "account = root\n"
        "request_retries = 1\n"
        f"auth_token_file_path = {tmp_path / 'rucio-token'}\n"
    )
    monkeypatch.setenv("RUCIO_CONFIG", str(cfg))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return cfg


@pytest.fixture
def rucio(rucio_cfg: Path, tmp_path: Path) -> Run:
    """Run the real ``rucio`` CLI; returns the completed process."""
    if not RUCIO.exists():
        pytest.fail(f"the rucio client is not installed at {RUCIO} (make test installs it)")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RUCIO_CONFIG": str(rucio_cfg), "TMPDIR": str(tmp_path)}
        result = subprocess.run(
            [str(RUCIO), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        if check:
            assert result.returncode == 0, f"rucio {' '.join(args)}: {result.stderr[-1500:]}"
        return result

    return run


@pytest.fixture
def rucio_api(rucio_cfg: Path, server: RunningServer) -> Any:
    """``rucio.client.Client`` for the test server (explicit settings: the rucio package caches
    its configuration file for the life of the process)."""
    from rucio.client import Client as RucioClient

    return RucioClient(
        rucio_host=server.url,
        auth_host=server.url,
        account="root",
        auth_type="userpass",
        creds={"username": "root", "password": ROOT_PASSWORD},
    )


@pytest.fixture
def scope(client: Client) -> str:
    client.add_scope("test")
    return "test"


def rse_prefix(client: Client, rse: str) -> Path:
    return Path(client.get_rse(rse)["protocols"][0]["prefix"])


def write(path: Path, size: int, seed: int) -> bytes:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path.write_bytes(data[:size])
    return data[:size]


def test_ping_whoami_scopes_and_rses(rucio: Run, client: Client, scope: str) -> None:
    assert rucio("ping").stdout.strip() == client.ping()["version"]
    assert "root" in rucio("whoami").stdout
    assert scope in rucio("scope", "list").stdout
    listed = rucio("rse", "list").stdout.split()
    assert {"ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"} <= set(listed)
    shown = rucio("rse", "show", "ALPHA_DISK").stdout
    assert "qos: DISK" in shown
    assert "rucio.rse.protocols.posix.Default" in shown


def test_upload_lands_at_the_deterministic_path_and_is_registered(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    data = write(tmp_path / "f1.dat", 5000, 1)
    result = rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, "f1.dat")
    assert "Successfully uploaded" in result.stderr + result.stdout
    stored = rse_prefix(client, "ALPHA_DISK") / rucio_path(scope, "f1.dat")
    assert stored.read_bytes() == data
    did = client.get_did(f"{scope}:f1.dat")
    assert did["bytes"] == 5000
    assert did["adler32"] == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert did["md5"] == hashlib.md5(data).hexdigest()
    (replica,) = client.list_replicas([f"{scope}:f1.dat"])
    assert replica["rses"]["ALPHA_DISK"]["state"] == "available"
    rules = rucio("rule", "list", "--did", f"{scope}:f1.dat").stdout
    assert "ALPHA_DISK" in rules
    assert "OK[1/0/0]" in rules


def test_dataset_upload_content_list_and_metadata(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    write(tmp_path / "a.dat", 3000, 2)
    write(tmp_path / "b.dat", 4000, 3)
    rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, f"{scope}:ds1", "a.dat")
    rucio("did", "add", "--type", "dataset", f"{scope}:ds2")
    rucio("upload", "--rse", "BETA_DISK", "--scope", scope, "b.dat")
    rucio("did", "content", "add", "--to-did", f"{scope}:ds2", f"{scope}:b.dat", f"{scope}:a.dat")
    assert sorted(f["name"] for f in client.list_files(f"{scope}:ds2")) == ["a.dat", "b.dat"]
    assert client.get_did(f"{scope}:ds2")["bytes"] == 7000
    listed = rucio("did", "list", f"{scope}:*").stdout
    assert f"{scope}:ds1" in listed
    assert f"{scope}:ds2" in listed
    assert f"{scope}:a.dat" not in listed  # Rucio lists collections by default
    files = rucio("did", "list", f"{scope}:*", "--filter", "type=file").stdout
    assert f"{scope}:a.dat" in files
    rucio("did", "metadata", "set", f"{scope}:ds2", "--key", "run", "--value", "42")
    assert client.get_metadata(f"{scope}:ds2")["run"] in (42, "42")
    shown = rucio("did", "metadata", "list", f"{scope}:ds2", "--plugin", "ALL").stdout
    assert "run" in shown
    assert "DATASET" in shown
    duplicate = rucio("did", "add", "--type", "dataset", f"{scope}:ds2", check=False)
    assert duplicate.returncode != 0


def test_replica_list_file_and_dataset(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    write(tmp_path / "r.dat", 1234, 4)
    rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, f"{scope}:rds", "r.dat")
    pfn = f"file://{rse_prefix(client, 'ALPHA_DISK')}/{rucio_path(scope, 'r.dat')}"
    assert pfn in rucio("replica", "list", "file", f"{scope}:r.dat").stdout
    assert pfn in rucio("replica", "list", "file", f"{scope}:rds").stdout
    summary = rucio("replica", "list", "dataset", f"{scope}:rds").stdout
    assert "ALPHA_DISK" in summary
    missing = rucio("replica", "list", "file", f"{scope}:nothing", check=False)
    assert missing.returncode != 0


def test_rules_add_list_show_remove(rucio: Run, client: Client, scope: str, tmp_path: Path) -> None:
    write(tmp_path / "x.dat", 100, 5)
    rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, f"{scope}:xds", "x.dat")
    added = rucio("rule", "add", f"{scope}:xds", "--copies", "1", "--rses", "qos=DISK\\ALPHA_DISK")
    rule_id = added.stdout.strip().splitlines()[-1]
    assert uuid.UUID(rule_id)
    by_did = rucio("rule", "list", "--did", f"{scope}:xds").stdout
    assert rule_id in by_did
    assert "REPLICATING[0/1/0]" in by_did  # BETA_DISK has no copy yet
    assert rule_id in rucio("rule", "list", "--account", "root").stdout
    shown = rucio("rule", "show", rule_id).stdout
    assert "qos=DISK\\ALPHA_DISK" in shown
    assert "REPLICATING" in shown
    duplicate = rucio(
        "rule",
        "add",
        f"{scope}:xds",
        "--copies",
        "1",
        "--rses",
        "qos=DISK\\ALPHA_DISK",
        check=False,
    )
    assert duplicate.returncode != 0
    assert "DuplicateRule" in duplicate.stderr or "already" in duplicate.stderr
    rucio("rule", "remove", rule_id)
    assert rule_id not in rucio("rule", "list", "--did", f"{scope}:xds").stdout
    bad = rucio(
        "rule", "add", f"{scope}:xds", "--copies", "1", "--rses", "site=NOWHERE", check=False
    )
    assert bad.returncode != 0


def test_download_file_and_dataset_with_checksum_validation(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    one = write(tmp_path / "d1.dat", 7000, 6)
    two = write(tmp_path / "d2.dat", 9000, 7)
    rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, f"{scope}:dds", "d1.dat", "d2.dat")
    rucio("download", "--dir", "out", f"{scope}:d1.dat")
    assert (tmp_path / "out" / scope / "d1.dat").read_bytes() == one
    rucio("download", "--dir", "out", f"{scope}:dds")
    assert (tmp_path / "out" / "dds" / "d1.dat").read_bytes() == one
    assert (tmp_path / "out" / "dds" / "d2.dat").read_bytes() == two
    # Corrupt the only replica of d2: the client's checksum validation refuses it.
    stored = rse_prefix(client, "ALPHA_DISK") / rucio_path(scope, "d2.dat")
    corrupted = bytearray(stored.read_bytes())
    corrupted[100] ^= 0xFF
    stored.write_bytes(bytes(corrupted))
    result = rucio("download", "--dir", "bad", f"{scope}:dds", check=False)
    assert "Not all of the requested files have been downloaded" in result.stderr + result.stdout
    assert not (tmp_path / "bad" / "dds" / "d2.dat").exists()
    assert (tmp_path / "bad" / "dds" / "d1.dat").read_bytes() == one


def test_upload_refused_when_bytes_on_storage_do_not_match(
    rucio_api: Any, client: Client, scope: str, tmp_path: Path
) -> None:
    """A replica announced 'copying' becomes available only if the server verifies its bytes."""
    from rucio.common.exception import RucioException

    rc = rucio_api
    data = b"announced but never written correctly"
    adler = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    files = [{"scope": scope, "name": "ghost.dat", "bytes": len(data), "adler32": adler,
              "state": "C"}]  # fmt: skip
    rc.add_replicas(rse="ALPHA_DISK", files=files)
    stored = rse_prefix(client, "ALPHA_DISK") / rucio_path(scope, "ghost.dat")
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(data[:-1] + b"?")
    with pytest.raises(RucioException, match="adler32"):
        rc.update_replicas_states(
            "ALPHA_DISK", [{"scope": scope, "name": "ghost.dat", "state": "A"}]
        )
    (ghost,) = client.list_replicas([f"{scope}:ghost.dat"])
    assert ghost["rses"] == {}


def test_python_api(rucio_api: Any, client: Client, scope: str, tmp_path: Path) -> None:
    from rucio.common.exception import DataIdentifierNotFound, DuplicateRule

    rc = rucio_api
    assert rc.ping()["version"] == client.ping()["version"]
    assert rc.whoami()["account"] == "root"
    assert scope in rc.list_scopes()
    assert "BETA_DISK" in [r["rse"] for r in rc.list_rses()]
    assert [r["rse"] for r in rc.list_rses("qos=TAPE")] == ["GAMMA_TAPE"]
    assert rc.list_rse_attributes("GAMMA_TAPE")["qos"] == "TAPE"
    assert rc.get_rse("ALPHA_DISK")["deterministic"] is True
    client.upload([write(tmp_path / "p.dat", 10, 8) and tmp_path / "p.dat"], rse="ALPHA_DISK",
                  scope=scope)  # fmt: skip
    assert rc.add_dataset(scope, "pds")
    assert rc.attach_dids(scope, "pds", [{"scope": scope, "name": "p.dat"}])
    assert [d for d in rc.list_dids(scope, {"name": "p*"}, did_type="all")] == ["p.dat", "pds"]
    assert rc.set_metadata(scope, "pds", "campaign", "dac21")
    assert rc.get_metadata(scope, "pds", plugin="JSON")["campaign"] == "dac21"
    (line,) = rc.list_replicas([{"scope": scope, "name": "pds"}])
    assert list(line["rses"]) == ["ALPHA_DISK"]
    (rule_id,) = rc.add_replication_rule([{"scope": scope, "name": "pds"}], 1, "BETA_DISK")
    assert rc.get_replication_rule(rule_id)["state"] == "REPLICATING"
    assert [r["id"] for r in rc.list_replication_rules({"scope": scope, "name": "pds"})] == [
        rule_id
    ]
    with pytest.raises(DuplicateRule):
        rc.add_replication_rule([{"scope": scope, "name": "pds"}], 1, "BETA_DISK")
    assert rc.delete_replication_rule(rule_id)
    with pytest.raises(DataIdentifierNotFound):
        rc.get_metadata(scope, "nothing")


def test_expired_token_is_renewed(rucio: Run, server: RunningServer, scope: str) -> None:
    """Rucio caches its token on disk until the server answers 401; Lacus's 401 renews it."""
    rucio("whoami")
    from tests.conftest import reset_catalog  # tokens vanish with the catalog reset

    lake = server.lake
    reset_catalog(lake, Path(lake.settings.lake_dir) / "again")
    assert "root" in rucio("whoami").stdout
