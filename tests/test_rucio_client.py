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
from lacus.service.lake import Lake
from tests.conftest import ROOT_PASSWORD, RunningServer, wait_until
from tests.rule_helpers import stall_transfers

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
    # The rule engine marks the upload's rule OK asynchronously, moments after the upload.
    rules = wait_until(
        lambda: (
            "OK[1/0/0]" in (out := rucio("rule", "list", "--did", f"{scope}:f1.dat").stdout) and out
        )
    )
    assert "ALPHA_DISK" in rules


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


def test_rules_add_list_show_remove(
    rucio: Run,
    client: Client,
    scope: str,
    tmp_path: Path,
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write(tmp_path / "x.dat", 100, 5)
    rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, f"{scope}:xds", "x.dat")
    stall_transfers(lake, monkeypatch)  # BETA_DISK's copy waits
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


# -- rules, locks, subscriptions and account limits with the real rucio client ------------------
def upload_dataset(rucio: Run, scope: str, tmp_path: Path, name: str, count: int = 2) -> None:
    """Dataset ``scope:name`` holding ``count`` files of 1,000 bytes uploaded to ALPHA_DISK
    (the upload's rules are on the files; the dataset has none)."""
    files = []
    for i in range(count):
        write(tmp_path / f"{name}_{i}.dat", 1000, 100 + i)
        files.append(f"{name}_{i}.dat")
    rucio("upload", "--rse", "ALPHA_DISK", "--scope", scope, *files)
    rucio("did", "add", "--type", "dataset", f"{scope}:{name}")
    rucio("did", "content", "add", "--to-did", f"{scope}:{name}", *(f"{scope}:{f}" for f in files))


def show_fields(output: str) -> dict[str, str]:
    """``rucio rule show``'s 'Label:' + value lines as a dict."""
    fields = {}
    for line in output.splitlines():
        label, sep, value = line.partition(":")
        if sep and line[:28].rstrip().endswith(":"):
            fields[label] = value.strip()
    return fields


def test_rucio_rule_add_show_update_remove_history(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    upload_dataset(rucio, scope, tmp_path, "rds")
    added = rucio(
        "rule", "add", f"{scope}:rds", "--copies", "1", "--rses", "ALPHA_DISK",
        "--lifetime", "3600", "--grouping", "DATASET", "--activity", "User Subscriptions",
        "--comment", "t",
    )  # fmt: skip
    rule_id = added.stdout.strip().splitlines()[-1]
    rule = client.wait_for_rule(rule_id, "ok", timeout=10)
    assert rule["locks_ok_cnt"] == 2  # both files sit on ALPHA_DISK already
    shown = rucio("rule", "show", rule_id).stdout
    assert len(shown.strip().splitlines()) == 25
    fields = show_fields(shown)
    assert fields["Id"] == rule_id
    assert fields["State"] == "OK"
    assert fields["Locks OK/REPLICATING/STUCK"] == "2/0/0"
    assert fields["Comment"] == "t"
    assert fields["Activity"] == "User Subscriptions"
    assert fields["Grouping"] == "DATASET"
    assert fields["End of life"] == "None"
    examined = rucio("rule", "show", rule_id, "--examine").stdout
    assert "Status of the replication rule: This replication rule is OK" in examined
    listed = rucio("rule", "list", "--did", f"{scope}:rds").stdout
    assert rule_id in listed
    assert "OK[2/0/0]" in listed
    assert "2.000 kB" in listed
    assert rule_id in rucio("rule", "list", "--file", f"{scope}:rds_0.dat").stdout
    assert rule_id in rucio("rule", "list", "--did", f"{scope}:rds", "--traverse").stdout
    assert rule_id in rucio("rule", "list", "--account", "root", "--csv").stdout
    updated = rucio(
        "rule", "update", rule_id, "--lifetime", "7200", "--locked", "true", "--priority", "4",
        "--comment", "new",
    )  # fmt: skip
    assert "Updated Rule" in updated.stdout
    rule = client.get_rule(rule_id)
    assert (rule["locked"], rule["priority"], rule["comments"]) == (True, 4, "new")
    stuck = rucio("rule", "update", rule_id, "--stuck", check=False)
    assert stuck.returncode == 1
    assert "UnsupportedOperation" in stuck.stderr or "STUCK" in stuck.stderr
    locked = rucio("rule", "remove", rule_id, check=False)
    assert locked.returncode != 0
    assert "locked" in locked.stderr
    assert client.get_rule(rule_id)["id"] == rule_id
    rucio("rule", "update", rule_id, "--locked", "false")
    rucio("rule", "remove", rule_id)
    assert rule_id not in rucio("rule", "list", "--did", f"{scope}:rds").stdout
    history = rucio("rule", "history", f"{scope}:rds").stdout
    assert history.count("Rule insertion") == 1
    assert history.count("Rule deletion") == 1
    assert history.index("Rule insertion") < history.index("Rule deletion")
    assert "RSE expression : ALPHA_DISK" in history
    missing = rucio("rule", "show", rule_id, check=False)
    assert missing.returncode == 1
    assert "No replication rule found" in missing.stderr


def test_rucio_rule_move_replaces_the_rule_once_the_new_one_is_ok(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    upload_dataset(rucio, scope, tmp_path, "mds")
    added = rucio("rule", "add", f"{scope}:mds", "--copies", "1", "--rses", "ALPHA_DISK")
    rule_id = added.stdout.strip().splitlines()[-1]
    client.wait_for_rule(rule_id, "ok", timeout=10)

    moved = rucio("rule", "move", rule_id, "--rses", "BETA_DISK")
    child = moved.stdout.strip().splitlines()[-1]
    assert child != rule_id
    assert client.get_rule(child)["rse_expression"] == "BETA_DISK"
    client.wait_for_rule(child, "ok", timeout=30)
    wait_until(lambda: rule_id not in rucio("rule", "list", "--did", f"{scope}:mds").stdout)
    replicas = list(client.list_replicas([f"{scope}:mds"]))
    assert all("BETA_DISK" in replica["rses"] for replica in replicas)
    assert len(replicas) == 2

    again = rucio("rule", "move", child, "--rses", "BETA_DISK", check=False)
    assert again.returncode != 0
    assert "already" in again.stderr
    missing = rucio("rule", "move", rule_id, "--rses", "BETA_DISK", check=False)
    assert missing.returncode != 0
    assert "No replication rule found" in missing.stderr or rule_id in missing.stderr


def test_rucio_reduce_replication_rule_keeps_the_copies_that_are_there(
    rucio: Run, rucio_api: Any, client: Client, scope: str, tmp_path: Path
) -> None:
    upload_dataset(rucio, scope, tmp_path, "rds")
    added = rucio(
        "rule", "add", f"{scope}:rds", "--copies", "2", "--rses", "ALPHA_DISK|BETA_DISK"
    )  # fmt: skip
    rule_id = added.stdout.strip().splitlines()[-1]
    client.wait_for_rule(rule_id, "ok", timeout=30)

    kept = rucio_api.reduce_replication_rule(rule_id, 1, exclude_expression="BETA_DISK")
    reduced = client.get_rule(kept)
    assert (reduced["copies"], reduced["state"]) == (1, "OK")
    assert {lock["rse"] for lock in client.rule_locks(kept)} == {"ALPHA_DISK"}
    assert rule_id not in rucio("rule", "list", "--did", f"{scope}:rds").stdout
    with pytest.raises(Exception, match="keeps 1 copy: nothing to reduce") as refused:
        rucio_api.reduce_replication_rule(kept, 1)
    assert type(refused.value).__name__ == "RuleReplaceFailed"


def test_rucio_rule_asking_approval_is_approved_or_denied_by_an_admin(
    rucio: Run, rucio_api: Any, client: Client, scope: str, tmp_path: Path
) -> None:
    upload_dataset(rucio, scope, tmp_path, "ads")
    added = rucio(
        "rule", "add", f"{scope}:ads", "--copies", "1", "--rses", "BETA_DISK", "--ask-approval"
    )  # fmt: skip
    rule_id = added.stdout.strip().splitlines()[-1]
    assert show_fields(rucio("rule", "show", rule_id).stdout)["State"] == "WAITING_APPROVAL"
    listed = rucio("rule", "list", "--did", f"{scope}:ads").stdout
    assert "WAITING_APPROVAL[0/0/0]" in listed
    assert client.rule_locks(rule_id) == []

    assert rucio_api.approve_replication_rule(rule_id) is True
    client.wait_for_rule(rule_id, "ok", timeout=30)
    assert len(client.rule_locks(rule_id)) == 2

    second = rucio(
        "rule", "add", f"{scope}:ads", "--copies", "1", "--rses", "GAMMA_TAPE", "--ask-approval"
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    assert rucio_api.deny_replication_rule(second, reason="no tape for this") is True
    gone = rucio("rule", "show", second, check=False)
    assert gone.returncode == 1
    assert "No replication rule found" in gone.stderr
    history = client.rule_history(second)
    assert history[-1]["action"] == "denied"
    assert "no tape for this" in history[-1]["detail"]


def test_rucio_bulk_dids_attachments_metadata_and_dataset_replicas(
    rucio: Run, rucio_api: Any, client: Client, scope: str, tmp_path: Path
) -> None:
    upload_dataset(rucio, scope, tmp_path, "bds")
    new = [
        {"scope": scope, "name": "b1", "type": "DATASET", "meta": {"run": 7}},
        {"scope": scope, "name": "bc", "type": "CONTAINER"},
    ]
    assert rucio_api.add_dids(new) is True
    again = [{"scope": scope, "name": "b2", "type": "DATASET"}, new[0]]
    with pytest.raises(Exception, match="DID test:b1 exists already") as refused:
        rucio_api.add_dids(again)
    assert type(refused.value).__name__ == "DataIdentifierAlreadyExists"
    assert f"{scope}:b2" not in rucio("did", "list", f"{scope}:b*").stdout  # none of them

    attachments = [
        {"scope": scope, "name": "b1", "dids": [{"scope": scope, "name": "bds_0.dat"}]},
        {
            "scope": scope,
            "name": "bc",
            "dids": [{"scope": scope, "name": n} for n in ("b1", "bds")],
        },
    ]
    assert rucio_api.attach_dids_to_dids(attachments) is True
    assert [c["name"] for c in client.list_content(f"{scope}:b1")] == ["bds_0.dat"]
    assert sorted(c["name"] for c in client.list_content(f"{scope}:bc")) == ["b1", "bds"]

    wanted = [{"scope": scope, "name": n} for n in ("bc", "b1", "missing")]
    found = {line["name"]: line for line in rucio_api.get_metadata_bulk(wanted, plugin="ALL")}
    assert sorted(found) == ["b1", "bc"]
    assert (found["b1"]["run"], found["b1"]["did_type"]) == (7, "DATASET")
    assert (found["bc"]["length"], found["bc"]["bytes"]) == (2, 2000)  # two distinct files
    assert rucio_api.delete_metadata(scope, "b1", "run") is True
    assert "run" not in rucio_api.get_metadata(scope, "b1", plugin="JSON")

    datasets = [{"scope": scope, "name": n} for n in ("bds", "b1")]
    lines = list(rucio_api.list_dataset_replicas_bulk(datasets))
    assert sorted((line["name"], line["rse"], line["available_length"]) for line in lines) == [
        ("b1", "ALPHA_DISK", 1),
        ("bds", "ALPHA_DISK", 2),
    ]
    assert "root" in rucio("account", "list").stdout.split()
    on_alpha = {line["name"]: line for line in rucio_api.list_datasets_per_rse("ALPHA_DISK")}
    assert (on_alpha["bds"]["available_length"], on_alpha["bds"]["state"]) == (2, "AVAILABLE")
    assert (on_alpha["b1"]["available_bytes"], on_alpha["b1"]["length"]) == (1000, 1)
    assert list(rucio_api.list_datasets_per_rse("BETA_DISK")) == []
    with pytest.raises(Exception, match="RSE 'NOPE' does not exist"):
        list(rucio_api.list_datasets_per_rse("NOPE"))

    tree = [
        (line["level"], line["parent"]["name"], line["name"], line["type"])
        for line in rucio_api.scope_list(scope, "bc", recursive=True)
    ]
    assert tree == [
        (1, "bc", "b1", "DATASET"),
        (1, "bc", "bds", "DATASET"),
        (2, "b1", "bds_0.dat", "FILE"),
        (2, "bds", "bds_0.dat", "FILE"),
        (2, "bds", "bds_1.dat", "FILE"),
    ]
    assert [line["name"] for line in rucio_api.scope_list(scope, "bc")] == ["b1", "bds"]
    listed = rucio("replica", "list", "dataset", f"{scope}:bc").stdout  # a container: its datasets
    assert f"{scope}:b1" in listed
    assert f"{scope}:bds" in listed


def test_rucio_account_attributes_say_who_is_admin(rucio_api: Any) -> None:
    (attributes,) = list(rucio_api.list_account_attributes("root"))
    assert attributes == [{"key": "admin", "value": True}]
    with pytest.raises(Exception, match="Lacus keeps only 'admin'") as refused:
        rucio_api.add_account_attribute("root", "country", "ch")
    assert type(refused.value).__name__ == "UnsupportedOperation"


def test_rucio_rule_remove_by_did_and_waiting_locks(
    rucio: Run,
    rucio_api: Any,
    client: Client,
    scope: str,
    tmp_path: Path,
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While its transfers cannot run (no readable source), a rule to BETA_DISK keeps one
    REPLICATING lock per file."""
    from rucio.common.exception import InputValidationError, RuleNotFound

    upload_dataset(rucio, scope, tmp_path, "bds", count=3)
    stall_transfers(lake, monkeypatch)
    rule_id = rucio("rule", "add", f"{scope}:bds", "--copies", "1", "--rses", "BETA_DISK")
    rule_id = rule_id.stdout.strip().splitlines()[-1]
    wait_until(lambda: client.get_rule(rule_id)["locks_replicating_cnt"] == 3)
    fields = show_fields(rucio("rule", "show", rule_id).stdout)
    assert (fields["State"], fields["Locks OK/REPLICATING/STUCK"]) == ("REPLICATING", "0/3/0")
    assert "REPLICATING[0/3/0]" in rucio("rule", "list", "--did", f"{scope}:bds").stdout
    locks = list(rucio_api.list_replica_locks(rule_id))
    assert sorted(lock["name"] for lock in locks) == ["bds_0.dat", "bds_1.dat", "bds_2.dat"]
    assert {(lock["rse"], lock["state"]) for lock in locks} == {("BETA_DISK", "REPLICATING")}
    analysis = rucio_api.examine_replication_rule(rule_id)
    assert analysis["rule_error"] == "This replication rule is currently REPLICATING"
    with pytest.raises(InputValidationError, match="colour is not a valid option"):
        rucio_api.update_replication_rule(rule_id, {"colour": "blue"})
    assert rucio_api.update_replication_rule(rule_id, {"state": "SUSPENDED"})
    assert rucio_api.get_replication_rule(rule_id)["state"] == "SUSPENDED"
    assert [r["id"] for r in rucio_api.list_replication_rules({"state": "U"})] == [rule_id]
    rucio("rule", "remove", f"{scope}:bds", "--rses", "BETA_DISK")
    with pytest.raises(RuleNotFound):
        rucio_api.get_replication_rule(rule_id)
    nothing = rucio("rule", "remove", f"{scope}:bds", "--rses", "BETA_DISK", check=False)
    assert nothing.returncode != 0
    assert "No replication rule was deleted" in nothing.stderr


def test_rucio_subscription_add_list_show_update(
    rucio: Run, rucio_api: Any, client: Client, scope: str, tmp_path: Path
) -> None:
    from rucio.common.exception import InvalidObject

    added = rucio(
        "subscription", "add", "s1",
        "--filter", f'{{"scope": ["{scope}"], "pattern": "sub_.*"}}',
        "--rule", '[{"copies": 1, "rse_expression": "ALPHA_DISK", "lifetime": 3600, '
                  '"activity": "User Subscriptions"}]',
        "--comment", "c", "--lifetime", "10", "--priority", "2",
    ).stdout  # fmt: skip
    assert "Subscription added" in added
    subscription_id = added.split()[-1]
    listed = rucio("subscription", "list").stdout
    assert "root: s1 ACTIVE" in listed
    assert "priority: 2" in listed
    assert f'filter: {{"scope": ["{scope}"], "pattern": "sub_.*"}}' in listed
    assert '"rse_expression": "ALPHA_DISK"' in listed
    assert "comments: c" in listed
    shown = rucio("subscription", "show", "s1", "--account", "root", "--long").stdout
    assert f"id: {subscription_id}" in shown
    duplicate = rucio(
        "subscription", "add", "s1", "--filter", "{}", "--rule",
        '[{"copies": 1, "rse_expression": "ALPHA_DISK"}]',
        check=False,
    )  # fmt: skip
    assert "SubscriptionDuplicate" in duplicate.stderr or "already" in duplicate.stderr
    upload_dataset(rucio, scope, tmp_path, "sub_1", count=1)
    (rule,) = wait_until(lambda: client.subscription_rules("s1"))
    assert (rule["name"], rule["subscription_id"]) == ("sub_1", subscription_id)
    assert rule["id"] in rucio("rule", "list", "--subscription", "s1").stdout
    rucio(
        "subscription", "update", "s1", "--filter", f'{{"scope": ["{scope}"]}}',
        "--rule", '[{"copies": 2, "rse_expression": "qos=DISK"}]', "--comment", "c2",
    )  # fmt: skip
    (changed,) = client.list_subscriptions(account="root")
    assert changed["filter"] == {"scope": [scope]}
    assert changed["replication_rules"] == [{"copies": 2, "rse_expression": "qos=DISK"}]
    assert (changed["comments"], changed["state"]) == ("c2", "ACTIVE")
    (by_api,) = rucio_api.list_subscriptions(name="s1")
    assert by_api["id"] == subscription_id
    assert list(rucio_api.list_subscriptions(name="nothing")) == []
    with pytest.raises(InvalidObject):
        rucio_api.add_subscription(
            "s2", "root", {"pattern": "("}, [{"copies": 1, "rse_expression": "ALPHA_DISK"}],
            None, None, False, False,
        )  # fmt: skip


def test_rucio_account_limits_and_a_rule_beyond_the_quota(
    rucio: Run, rucio_api: Any, client: Client, scope: str, tmp_path: Path
) -> None:
    client.add_account("eve", password="eve-password")
    upload_dataset(rucio, scope, tmp_path, "qds")  # 2,000 bytes
    set_local = rucio("account", "limit", "set", "eve", "--rse", "ALPHA_DISK", "--bytes", "10GB")
    assert "Set account limit for account eve on RSE ALPHA_DISK: 10.000 GB" in set_local.stdout
    rucio("account", "limit", "set", "eve", "--rse", "qos=DISK", "--bytes", "1000",
          "--locality", "global")  # fmt: skip
    rucio("account", "limit", "set", "eve", "--rse", "BETA_DISK", "--bytes", "infinity")
    limits = rucio("account", "limit", "list", "eve").stdout
    assert "ALPHA_DISK" in limits
    assert "10.000 GB" in limits
    assert "qos=DISK" in limits
    assert "1.000 kB" in limits
    assert "| Inf " in limits  # BETA_DISK: no limit
    assert rucio_api.get_local_account_limit("eve", "ALPHA_DISK") == {"ALPHA_DISK": 10**10}
    assert rucio_api.get_local_account_limits("eve")["BETA_DISK"] == float("inf")
    assert rucio_api.get_global_account_limit("eve", "qos=DISK") == {"qos=DISK": 1000}
    beyond = rucio(
        "rule", "add", f"{scope}:qds", "--copies", "1", "--rses", "ALPHA_DISK",
        "--account", "eve", check=False,
    )  # fmt: skip
    assert beyond.returncode == 1
    assert "InsufficientAccountLimit" in beyond.stderr or "not enough quota" in beyond.stderr
    assert client.list_rules(account="eve") == []
    rucio("account", "limit", "unset", "eve", "--rse", "qos=DISK", "--locality", "global")
    unset = rucio("account", "limit", "unset", "eve", "--rse", "BETA_DISK").stdout
    assert "Deleted account limit for account eve and RSE BETA_DISK" in unset
    rule_id = rucio(
        "rule", "add", f"{scope}:qds", "--copies", "1", "--rses", "ALPHA_DISK", "--account", "eve"
    ).stdout.split()[-1]  # fmt: skip
    client.wait_for_rule(rule_id, "ok", timeout=10)
    (usage,) = rucio_api.get_local_account_usage("eve", "ALPHA_DISK")
    assert (usage["bytes"], usage["files"], usage["bytes_limit"]) == (2000, 2, 10**10)
    assert usage["bytes_remaining"] == 10**10 - 2000
    assert "qos=DISK" not in rucio("account", "limit", "list", "eve").stdout


def test_rucio_rse_distance_set_show_update_unset(rucio: Run, client: Client) -> None:
    shown = rucio("rse", "distance", "show", "ALPHA_DISK", "BETA_DISK").stdout
    assert "No distance set from ALPHA_DISK to BETA_DISK" in shown
    rucio("rse", "distance", "set", "ALPHA_DISK", "BETA_DISK", "--distance", "4")
    assert client.get_distance("ALPHA_DISK", "BETA_DISK")["distance"] == 4  # type: ignore[index]
    rucio("rse", "distance", "set", "ALPHA_DISK", "BETA_DISK", "--distance", "2", "--bidirectional")
    assert client.get_distance("ALPHA_DISK", "BETA_DISK")["distance"] == 2  # type: ignore[index]
    assert client.get_distance("BETA_DISK", "ALPHA_DISK")["distance"] == 2  # type: ignore[index]
    shown = rucio("rse", "distance", "show", "BETA_DISK", "ALPHA_DISK").stdout
    assert "BETA_DISK" in shown
    assert "2" in shown
    rucio("rse", "distance", "unset", "ALPHA_DISK", "BETA_DISK", "--bidirectional")
    assert client.list_distances() == []
    refused = rucio("rse", "distance", "show", "ALPHA_DISK", "NOWHERE", check=False)
    assert refused.returncode != 0
    assert "NOWHERE" in refused.stderr + refused.stdout


def test_rucio_upload_with_a_pfn_to_a_non_deterministic_rse(
    rucio: Run, client: Client, scope: str, tmp_path: Path
) -> None:
    where = tmp_path / "free"
    client.add_rse("FREE_DISK", prefix=str(where), deterministic=False)
    where.mkdir()
    data = write(tmp_path / "chosen.dat", 3000, 7)
    pfn = f"file://{where}/runs/2026/chosen-name.dat"
    result = rucio(
        "upload", "--rse", "FREE_DISK", "--scope", scope, "--pfn", pfn, "chosen.dat", check=False
    )
    assert "Successfully uploaded" in result.stderr + result.stdout, result.stderr[-1500:]
    assert (where / "runs/2026/chosen-name.dat").read_bytes() == data
    (replica,) = client.list_replicas([f"{scope}:chosen.dat"])
    assert replica["rses"]["FREE_DISK"]["path"] == "runs/2026/chosen-name.dat"
    assert replica["rses"]["FREE_DISK"]["pfn"] == pfn
    rucio("download", "--dir", str(tmp_path / "out"), f"{scope}:chosen.dat")
    assert (tmp_path / "out" / scope / "chosen.dat").read_bytes() == data
