"""Declaring replicas in doubt with the official Rucio client (rucio-clients 41.5.1), unmodified:
its Python API (``declare_bad_file_replicas``, ``declare_suspicious_file_replicas``,
``list_suspicious_replicas``, ``add_bad_pfns``, ``quarantine_replicas``...) and its CLIs
(``rucio replica state ...``, ``rucio-admin replicas ...``), each checked against the state of
the replicas in Lacus afterwards.

The lake's daemons are paused once the files are in place: the necromancer would otherwise read
suspicious replicas back, replace bad ones and reap them while the test looks at them.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from rucio.common.exception import RSENotFound, RucioException
from sqlalchemy import select

from lacus.client import Client
from lacus.db.tables import replicas
from lacus.service.lake import Lake
from tests.conftest import RunningServer, wait_until
from tests.test_rucio_client import (  # noqa: F401 - fixtures
    RUCIO,
    Run,
    rucio,
    rucio_api,
    rucio_cfg,
)

SCOPE = "virgo"
PASSWORD = "password-of-the-tests"


@pytest.fixture
def rucio_admin(rucio_cfg: Path, tmp_path: Path) -> Run:  # noqa: F811 - a fixture
    """Run the real ``rucio-admin`` (the legacy admin CLI of 41.5.1)."""
    program = RUCIO.parent / "rucio-admin"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RUCIO_CONFIG": str(rucio_cfg), "TMPDIR": str(tmp_path)}
        result = subprocess.run(
            [str(program), *args], capture_output=True, text=True, env=env, cwd=tmp_path,
            timeout=120,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, f"rucio-admin {' '.join(args)}: {result.stderr[-1500:]}"
        return result

    return run


@pytest.fixture
def files(client: Client, lake: Lake, tmp_path: Path) -> dict[str, dict[str, str]]:
    """``virgo``: ``a`` and ``b`` on ALPHA_DISK and BETA_DISK, ``solo`` on ALPHA_DISK only;
    their PFNs per RSE. The daemons are paused afterwards."""
    client.add_scope(SCOPE)
    for name, rses in (("a", ["ALPHA_DISK", "BETA_DISK"]), ("b", ["ALPHA_DISK", "BETA_DISK"]),
                       ("solo", ["ALPHA_DISK"])):  # fmt: skip
        (tmp_path / name).write_bytes(name.encode() * 100)
        for rse in rses:
            client.upload([tmp_path / name], rse=rse, scope=SCOPE)
    lake.pause_daemons()
    return {
        item["name"]: {rse: location["pfn"] for rse, location in item["rses"].items()}
        for item in client.list_replicas([f"{SCOPE}:{n}" for n in ("a", "b", "solo")])
    }


def replica(client: Client, name: str, rse: str) -> dict[str, Any] | None:
    """The replica of ``virgo:name`` on ``rse`` as Lacus lists it (all states, with reason)."""
    (item,) = client.list_replicas([f"{SCOPE}:{name}"], all_states=True)
    found: dict[str, Any] | None = item["rses"].get(rse)
    return found


def state(client: Client, name: str, rse: str) -> str | None:
    found = replica(client, name, rse)
    return None if found is None else str(found["state"])


# -- the Python API --------------------------------------------------------------------------


def test_declare_bad_file_replicas_by_pfn_and_by_dict(
    rucio_api: Any,  # noqa: F811 - a fixture
    client: Client,
    files: dict[str, dict[str, str]],
) -> None:
    assert rucio_api.declare_bad_file_replicas([files["a"]["BETA_DISK"]], "disk broke") == {}
    declared = replica(client, "a", "BETA_DISK")
    assert declared is not None
    assert (declared["state"], declared["reason"]) == ("bad", "disk broke")
    assert state(client, "a", "ALPHA_DISK") == "available"
    by_dict = [{"scope": SCOPE, "name": "b", "rse": "ALPHA_DISK"}]
    assert rucio_api.declare_bad_file_replicas(by_dict, "lost in a fire") == {}
    assert state(client, "b", "ALPHA_DISK") == "bad"
    rse_id = client.get_rse("BETA_DISK")["id"]
    by_id = [{"scope": SCOPE, "name": "b", "rse_id": rse_id}]
    assert rucio_api.declare_bad_file_replicas(by_id, "that one too") == {}
    assert state(client, "b", "BETA_DISK") == "bad"

    # What cannot be declared is answered per RSE, as Rucio does.
    unknown = rucio_api.declare_bad_file_replicas(
        ["file:///nowhere/virgo/x", {"scope": SCOPE, "name": "nothing", "rse": "ALPHA_DISK"}],
        "gone",
    )
    assert sorted(unknown) == ["ALPHA_DISK", "unknown"]
    assert unknown["unknown"][0].startswith("file:///nowhere/virgo/x: ")
    assert "virgo:nothing" in unknown["ALPHA_DISK"][0]
    again = rucio_api.declare_bad_file_replicas([files["a"]["BETA_DISK"]], "again")
    assert "is bad" in again["BETA_DISK"][0]
    with pytest.raises(RSENotFound):
        rucio_api.declare_bad_file_replicas([{"scope": SCOPE, "name": "a", "rse_id": "999"}], "x")


def test_declare_bad_did_replicas(rucio_api: Any, client: Client, files: Any) -> None:  # noqa: F811
    refused = rucio_api.declare_bad_did_replicas(
        "BETA_DISK", [{"scope": SCOPE, "name": "a"}, {"scope": SCOPE, "name": "solo"}], "bad disk"
    )
    assert state(client, "a", "BETA_DISK") == "bad"
    assert len(refused) == 1
    assert refused[0].startswith("virgo:solo: ")


def test_suspicious_replicas_are_declared_and_listed(
    rucio_api: Any,  # noqa: F811 - a fixture
    client: Client,
    files: dict[str, dict[str, str]],
) -> None:
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
    assert rucio_api.declare_suspicious_file_replicas([files["a"]["BETA_DISK"]], "bad read") == {}
    assert rucio_api.declare_suspicious_file_replicas([files["a"]["BETA_DISK"]], "again") == {}
    assert rucio_api.declare_suspicious_file_replicas([files["b"]["ALPHA_DISK"]], "slow") == {}
    assert state(client, "a", "BETA_DISK") == "suspicious"

    (listed,) = rucio_api.list_suspicious_replicas()  # one JSON list, as Rucio answers
    by_file = {(r["name"], r["rse"]): r for r in listed}
    assert set(by_file) == {("a", "BETA_DISK"), ("b", "ALPHA_DISK")}
    assert by_file[("a", "BETA_DISK")]["cnt"] == 2
    assert by_file[("a", "BETA_DISK")]["scope"] == SCOPE
    assert by_file[("a", "BETA_DISK")]["rse_id"] == client.get_rse("BETA_DISK")["id"]
    assert by_file[("a", "BETA_DISK")]["created_at"]
    (beta,) = rucio_api.list_suspicious_replicas(rse_expression="BETA_DISK")
    assert [(r["name"], r["rse"]) for r in beta] == [("a", "BETA_DISK")]
    (twice,) = rucio_api.list_suspicious_replicas(nattempts=1)
    assert [r["name"] for r in twice] == ["a"]
    (recent,) = rucio_api.list_suspicious_replicas(
        younger_than=before.isoformat(timespec="seconds")
    )
    assert len(recent) == 2
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)
    (none,) = rucio_api.list_suspicious_replicas(younger_than=later.isoformat(timespec="seconds"))
    assert none == []

    # A third report makes it bad at once (suspicious_reports_limit), as Rucio's minos would.
    rucio_api.declare_suspicious_file_replicas([files["a"]["BETA_DISK"]], "third")
    assert state(client, "a", "BETA_DISK") == "bad"


def test_add_bad_pfns_bad_and_temporarily_unavailable(
    rucio_api: Any,  # noqa: F811 - a fixture
    client: Client,
    files: dict[str, dict[str, str]],
    lake: Lake,
) -> None:
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    assert rucio_api.add_bad_pfns(
        [files["a"]["BETA_DISK"]], "downtime", "TEMPORARY_UNAVAILABLE", until
    )
    assert state(client, "a", "BETA_DISK") == "unavailable"
    assert rucio_api.add_bad_pfns([files["b"]["BETA_DISK"]], "broken", "BAD", None)
    assert state(client, "b", "BETA_DISK") == "bad"
    history = client.replica_history(f"{SCOPE}:a")
    assert [(h["rse"], h["state"], h["reason"]) for h in history] == [
        ("BETA_DISK", "unavailable", "downtime")
    ]
    with lake.read() as conn:
        expires = conn.execute(
            select(replicas.c.state_expires_at).where(
                replicas.c.name == "a", replicas.c.state == "unavailable"
            )
        ).scalar_one()
    assert abs((expires - datetime.fromisoformat(until)).total_seconds()) < 1
    # A PFN that cannot be declared is an error (Rucio's answer has no room for refusals).
    with pytest.raises(RucioException, match="not found"):
        rucio_api.add_bad_pfns(["file:///nowhere/x"], "x", "BAD", None)


def test_bad_replicas_states(client: Client, server: RunningServer, files: Any) -> None:
    """``GET /replicas/bad/states`` (Rucio's server; its 41.5.1 client has no method for it)."""
    client.declare_replicas("bad", [f"{SCOPE}:a"], rse="BETA_DISK", reason="broken")
    client.declare_replicas("suspicious", [f"{SCOPE}:b"], rse="ALPHA_DISK", reason="odd")
    headers = {"X-Rucio-Auth-Token": client.token()}

    def lines(**params: str) -> list[Any]:
        answer = httpx.get(f"{server.url}/replicas/bad/states", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/x-json-stream"
        return [orjson.loads(line) for line in answer.content.splitlines() if line]

    (bad,) = lines(state="BAD")
    assert (bad["name"], bad["rse"], bad["state"], bad["reason"]) == (
        "a",
        "BETA_DISK",
        "BAD",
        "broken",
    )
    assert {line["state"] for line in lines()} == {"BAD", "SUSPICIOUS"}
    assert [line["name"] for line in lines(state="S", rse="ALPHA_DISK")] == ["b"]
    assert lines(state="BAD", rse="ALPHA_DISK") == []
    assert lines(list_pfns="true", state="B") == [files["a"]["BETA_DISK"]]
    assert lines(older_than="2000-01-01T00:00:00") == []
    refused = httpx.get(f"{server.url}/replicas/bad/states", params={"state": "X"}, headers=headers)
    assert refused.status_code == 400
    assert "state" in refused.headers["ExceptionMessage"]


def test_quarantine_replicas_is_for_admins(
    rucio_api: Any,  # noqa: F811 - a fixture
    client: Client,
    server: RunningServer,
    files: Any,
) -> None:
    rucio_api.quarantine_replicas([{"path": "virgo/stray.dat"}], rse="ALPHA_DISK")
    rse_id = client.get_rse("BETA_DISK")["id"]
    rucio_api.quarantine_replicas([{"path": "/virgo//other.dat", "scope": SCOPE}], rse_id=rse_id)
    listed = {(q["rse"], q["path"]) for q in client.list_quarantine()}
    assert listed == {("ALPHA_DISK", "virgo/stray.dat"), ("BETA_DISK", "virgo/other.dat")}
    assert [q["path"] for q in client.list_quarantine("BETA_DISK")] == ["virgo/other.dat"]

    known = f"virgo/{files['a']['ALPHA_DISK'].rsplit('/virgo/', 1)[1]}"
    with pytest.raises(RucioException, match="catalog knows"):
        rucio_api.quarantine_replicas([{"path": known}], rse="ALPHA_DISK")
    with pytest.raises(RucioException, match="path"):
        rucio_api.quarantine_replicas([{"path": "../../etc/passwd"}], rse="ALPHA_DISK")
    with pytest.raises(RSENotFound):
        rucio_api.quarantine_replicas([{"path": "x"}], rse="NO_SUCH_RSE")

    client.add_account("alice", password=PASSWORD)
    with Client(server.url, account="alice", password=PASSWORD) as alice:
        refused = httpx.post(
            f"{server.url}/replicas/quarantine",
            json={"rse": "ALPHA_DISK", "replicas": [{"path": "virgo/mine.dat"}]},
            headers={"X-Rucio-Auth-Token": alice.token()},
        )
    assert refused.status_code == 403
    assert refused.headers["ExceptionClass"] == "AccessDenied"  # what the rucio client raises
    assert "virgo/mine.dat" not in {q["path"] for q in client.list_quarantine()}


def test_errors_are_rucio_errors_never_server_errors(server: RunningServer, client: Client) -> None:
    headers = {"X-Rucio-Auth-Token": client.token()}
    for path, body in [
        ("/replicas/bad", {"replicas": [{"scope": SCOPE, "name": "x"}], "reason": "r"}),
        ("/replicas/bad", {"replicas": [{"scope": "no such scope!", "name": "x", "rse": "A"}]}),
        ("/replicas/bad", {"replicas": "not a list"}),
        ("/replicas/bad/pfns", {"pfns": ["file:///x"], "state": "FROZEN"}),
        ("/replicas/bad/pfns", {"pfns": ["file:///x"], "state": "LOST"}),
        ("/replicas/quarantine", {"replicas": [{"path": "x"}]}),
        ("/replicas/quarantine", {"replicas": [{"path": "x"}], "rse": "A", "rse_id": "1"}),
        ("/replicas/suspicious", {"pfns": ["x" * 5000]}),
        ("/integrity/declarations", {"state": "lost", "replicas": []}),
    ]:
        answer = httpx.post(f"{server.url}{path}", json=body, headers=headers)
        assert 400 <= answer.status_code < 500, (path, body, answer.status_code)
        assert answer.headers["ExceptionClass"], (path, body)


# -- the command lines -----------------------------------------------------------------------


def test_rucio_replica_state_update_bad_by_pfn_and_by_did(
    rucio: Run,  # noqa: F811 - a fixture
    client: Client,
    files: dict[str, dict[str, str]],
) -> None:
    rucio("replica", "state", "update", "bad", files["a"]["BETA_DISK"], "--reason", "cli bad")
    assert replica(client, "a", "BETA_DISK")["reason"] == "cli bad"  # type: ignore[index]
    assert state(client, "a", "BETA_DISK") == "bad"
    assert state(client, "a", "ALPHA_DISK") == "available"
    # A DID: every PFN of its available replicas.
    rucio("replica", "state", "update", "bad", f"{SCOPE}:solo", "--reason", "all of it")
    assert state(client, "solo", "ALPHA_DISK") == "bad"
    # What cannot be declared is printed, per RSE.
    result = rucio("replica", "state", "update", "bad", "file:///nowhere/x", "--reason", "r")
    assert "file:///nowhere/x" in result.stdout
    assert "cannot be declared" in result.stdout


def test_rucio_replica_state_update_unavailable_with_duration(
    rucio: Run,  # noqa: F811 - a fixture
    rucio_admin: Run,
    client: Client,
    files: dict[str, dict[str, str]],
    lake: Lake,
) -> None:
    rucio(
        "replica", "state", "update", "unavailable", files["a"]["BETA_DISK"],
        "--reason", "maintenance", "--duration", "3600",
    )  # fmt: skip
    assert replica(client, "a", "BETA_DISK")["reason"] == "maintenance"  # type: ignore[index]
    assert state(client, "a", "BETA_DISK") == "unavailable"
    rucio_admin(
        "replicas", "declare-temporary-unavailable", files["b"]["BETA_DISK"],
        "--reason", "short maintenance", "--duration", "1",
    )  # fmt: skip
    assert state(client, "b", "BETA_DISK") == "unavailable"
    # The necromancer makes it available again once its time is up; the other waits.
    lake.resume_daemons()
    wait_until(lambda: state(client, "b", "BETA_DISK") == "available", timeout=20)
    assert state(client, "a", "BETA_DISK") == "unavailable"


def test_rucio_replica_state_list_suspicious(
    rucio: Run,  # noqa: F811 - a fixture
    client: Client,
    files: dict[str, dict[str, str]],
) -> None:
    client.report_suspicious([(SCOPE, "a", "BETA_DISK")], reason="odd bytes")
    client.report_suspicious([(SCOPE, "a", "BETA_DISK")], reason="odd bytes again")
    listed = rucio("replica", "state", "list", "suspicious").stdout
    (line,) = [line for line in listed.splitlines() if "BETA_DISK" in line]
    assert line.split()[:2] == ["BETA_DISK", SCOPE]
    assert line.split()[-2:] == ["2", "a"]
    only_alpha = rucio("replica", "state", "list", "suspicious", "--rses", "ALPHA_DISK").stdout
    assert "BETA_DISK" not in only_alpha
    assert " a\n" not in rucio("replica", "state", "list", "suspicious", "--n-attempts", "2").stdout


def test_rucio_quarantine_commands(
    rucio: Run,  # noqa: F811 - a fixture
    rucio_admin: Run,
    client: Client,
    files: Any,
) -> None:
    # 41.5.1's ``rucio replica state update quarantine`` is hidden and not implemented (it
    # says to use the Python API): it fails before asking the server anything.
    refused = rucio(
        "replica", "state", "update", "quarantine", "virgo/x", "--rse", "ALPHA_DISK", check=False
    )
    assert refused.returncode != 0
    assert client.list_quarantine() == []
    rucio_admin("replicas", "quarantine", "--rse", "ALPHA_DISK", "virgo/dark1", "/virgo/dark2")
    paths = sorted(q["path"] for q in client.list_quarantine("ALPHA_DISK"))
    assert paths == ["virgo/dark1", "virgo/dark2"]


def test_rucio_admin_declare_bad(
    rucio_admin: Run,
    client: Client,
    files: dict[str, dict[str, str]],
) -> None:
    rucio_admin("replicas", "declare-bad", files["b"]["ALPHA_DISK"], "--reason", "admin says")
    assert state(client, "b", "ALPHA_DISK") == "bad"
    assert client.replica_history(f"{SCOPE}:b")[-1]["account"] == "root"
