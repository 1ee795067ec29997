"""RSE kinds: read-only archives (registered, read, locked by rules, never written to or copied
to) and non-deterministic RSEs (paths chosen by the uploader, kept by the catalog)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lacus.client import Client
from lacus.core import dids, evaluation, rses
from lacus.errors import InvalidInput, RSEReadOnly
from lacus.service.lake import Lake
from lacus.types import ProtocolInfo
from tests.conftest import CLIResult, RunningServer
from tests.rule_helpers import (
    add_rule,
    lock_rows,
    make_dataset,
    put_files,
    request_rows,
    rule,
    settle,
)

Run = Callable[..., CLIResult]
pytestmark = pytest.mark.usefixtures("cli_reuses_token")


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


def ok(result: CLIResult) -> CLIResult:
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return result


def one_error(result: CLIResult, *fragments: str) -> None:
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- read-only RSEs ------------------------------------------------------------------------------


def test_a_read_only_archive_is_registered_and_read_but_never_written(
    cli: Run, client: Client, server: RunningServer, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    ok(cli("rse", "add", "ARCHIVE", "--prefix", str(archive), "--read-only", "--no-deterministic"))
    info = json.loads(ok(cli("rse", "info", "ARCHIVE", "--json")).stdout)
    assert (info["read_only"], info["deterministic"]) == (True, False)
    assert "read-only" in ok(cli("rse", "info", "ARCHIVE")).stdout
    client.add_scope("old")

    # The archive's own files, registered where they are.
    data = b"observation of 1998"
    (archive / "tapes/1998").mkdir(parents=True)
    (archive / "tapes/1998/obs.fits").write_bytes(data)
    client.add_replicas(
        "ARCHIVE",
        [
            {
                "scope": "old",
                "name": "obs.fits",
                "bytes": len(data),
                "adler32": adler32(data),
                "path": "tapes/1998/obs.fits",
            }
        ],
        dataset="old:y1998",
    )
    (replica,) = client.list_replicas(["old:y1998"])
    assert replica["rses"]["ARCHIVE"]["path"] == "tapes/1998/obs.fits"
    assert replica["rses"]["ARCHIVE"]["pfn"] == f"file://{archive}/tapes/1998/obs.fits"
    (fetched,) = client.download(["old:obs.fits"], tmp_path / "out")
    assert fetched["status"] == "downloaded"
    assert (tmp_path / "out/old/obs.fits").read_bytes() == data

    # Uploads are refused before a byte moves, by the Lacus client and by the server (Rucio's
    # upload announces its replicas as copying first).
    local = tmp_path / "new.dat"
    local.write_bytes(b"new data")
    one_error(
        cli("upload", str(local), "--rse", "ARCHIVE", "--scope", "old"), "ARCHIVE", "read-only"
    )
    with pytest.raises(RSEReadOnly, match="read-only"):
        client.upload([local], rse="ARCHIVE", scope="old")
    announced = httpx.post(
        f"{server.url}/replicas",
        headers={"X-Rucio-Auth-Token": client.token()},
        json={
            "rse": "ARCHIVE",
            "files": [
                {"scope": "old", "name": "new.dat", "bytes": 8, "adler32": adler32(b"new data"),
                 "path": "new.dat", "state": "C"}
            ],
        },
    )  # fmt: skip
    assert (announced.status_code, announced.headers["ExceptionClass"]) == (403, "RSEWriteBlocked")
    assert files_under(archive) == ["tapes/1998/obs.fits"]
    assert [r["name"] for r in client.list_replicas(["old:y1998"])] == ["obs.fits"]

    # The flag can be changed (admins), by the CLI and by Rucio's PUT /rses/{rse}.
    assert "read-only False" in ok(cli("rse", "update", "ARCHIVE", "--no-read-only")).stdout
    assert client.get_rse("ARCHIVE")["read_only"] is False
    assert client.update_rse("ARCHIVE", read_only=True)["read_only"] is True
    updated = json.loads(
        ok(cli("rse", "update", "ARCHIVE", "--no-write", "--total-bytes", "100", "--json")).stdout
    )
    assert (updated["availability_write"], updated["total_bytes"]) == (False, 100)
    assert updated["read_only"] is True


def add_archive(lake: Lake, tmp_path: Path) -> None:
    prefix = tmp_path / "archive"
    prefix.mkdir()
    with lake.write() as conn:
        found = rses.add_rse(conn, "ARCHIVE", read_only=True, attributes={"kind": "archive"})
        rses.add_protocol(
            conn,
            found,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(prefix), impl="posix"),
        )


def archive_requests(lake: Lake) -> list[Any]:
    with lake.read() as conn:
        archive = rses.get_rse_id(conn, "ARCHIVE")
    return [row for row in request_rows(lake) if row.dest_rse_id == archive]


def test_rules_lock_what_an_archive_holds_and_never_copy_to_it(lake: Lake, tmp_path: Path) -> None:
    add_archive(lake, tmp_path)
    make_dataset(lake, "data", "held", ["h0", "h1"], rse="ARCHIVE")
    kept = add_rule(lake, "data", "held", "ARCHIVE")
    settle(lake, "evaluator")
    assert rule(lake, kept)["state"] == "ok"
    assert {row.state for row in lock_rows(lake, kept)} == {"ok"}

    # A dataset the archive does not hold: the rule cannot lock it there, and says why.
    make_dataset(lake, "data", "fresh", ["f0", "f1"])  # on ALPHA_DISK
    refused = add_rule(lake, "data", "fresh", "ARCHIVE")
    settle(lake, "evaluator")
    found = rule(lake, refused)
    assert found["state"] == "stuck"
    assert "read-only" in found["error"]
    assert lock_rows(lake, refused) == []

    # Where another RSE of the expression can take the copies, they go there.
    elsewhere = add_rule(lake, "data", "fresh", "kind=archive|BETA_DISK")
    settle(lake, "evaluator")
    assert rule(lake, elsewhere)["state"] == "replicating"
    assert archive_requests(lake) == []
    assert len(request_rows(lake)) == 2


def test_files_missing_on_an_archive_make_the_rule_stuck_until_registered_there(
    lake: Lake, tmp_path: Path
) -> None:
    add_archive(lake, tmp_path)
    make_dataset(lake, "data", "part", ["p0", "p1"], rse="ARCHIVE")
    rule_id = add_rule(lake, "data", "part", "ARCHIVE")
    settle(lake, "evaluator")
    assert rule(lake, rule_id)["state"] == "ok"
    # A file attached later, not on the archive: its lock there cannot be made.
    make_dataset(lake, "data", "other", ["p2"])  # p2 on ALPHA_DISK
    with lake.write() as conn:
        dids.attach(conn, "data", "part", [("data", "p2")])
    settle(lake, "evaluator")
    found = rule(lake, rule_id)
    assert found["state"] == "stuck"
    assert "ARCHIVE is read-only" in found["error"]
    assert "data:p2" in found["error"]
    assert len(lock_rows(lake, rule_id)) == 2
    assert archive_requests(lake) == []

    # The archive's copy of it, registered: the rule is whole again.
    put_files(lake, "ARCHIVE", "data", ["p2"])
    with lake.write() as conn:
        evaluation.evaluate_rule(conn, rule_id)
    found = rule(lake, rule_id)
    assert (found["state"], found["error"]) == ("ok", None)
    assert {row.state for row in lock_rows(lake, rule_id)} == {"ok"}
    assert len(lock_rows(lake, rule_id)) == 3


# -- non-deterministic RSEs ----------------------------------------------------------------------


def test_uploads_to_a_non_deterministic_rse_keep_the_path_given(
    cli: Run, client: Client, tmp_path: Path
) -> None:
    where = tmp_path / "nondet"
    ok(cli("rse", "add", "FREE_DISK", "--prefix", str(where), "--no-deterministic"))
    ok(cli("scope", "add", "virgo"))
    local = tmp_path / "run7.h5"
    local.write_bytes(b"strain data")
    chosen = "runs/2026/07/run7-final.h5"
    result = json.loads(
        ok(
            cli(
                "upload", str(local), "--rse", "FREE_DISK", "--scope", "virgo",
                "--path", chosen, "--json",
            )
        ).stdout
    )  # fmt: skip
    assert result[0]["path"] == chosen
    assert files_under(where) == [chosen]
    (replica,) = json.loads(ok(cli("replicas", "virgo:run7.h5", "--json")).stdout)
    assert replica["rses"]["FREE_DISK"]["path"] == chosen
    assert replica["rses"]["FREE_DISK"]["pfn"] == f"file://{where}/{chosen}"
    ok(cli("download", "virgo:run7.h5", "--dir", str(tmp_path / "out")))
    assert (tmp_path / "out/virgo/run7.h5").read_bytes() == b"strain data"

    # Without a path: scope/name.
    other = tmp_path / "other.h5"
    other.write_bytes(b"more")
    client.upload([other], rse="FREE_DISK", scope="virgo")
    assert files_under(where) == [chosen, "virgo/other.h5"]

    # A path is for one file, relative, and only where paths are chosen.
    one_error(
        cli("upload", str(local), "--rse", "ALPHA_DISK", "--scope", "virgo", "--path", "x/y"),
        "deterministic",
    )
    with pytest.raises(InvalidInput, match="one file"):
        client.upload([local, other], rse="FREE_DISK", scope="virgo", path="two/files")
    for bad in ("../escape", "/absolute", "a//b", "a/./b"):
        with pytest.raises(InvalidInput, match="invalid path"):
            client.upload([local], rse="FREE_DISK", scope="virgo", path=bad)
    assert files_under(where) == [chosen, "virgo/other.h5"]
