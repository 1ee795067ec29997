"""Replicas in doubt from Lacus's side, against the real server with its embedded daemons:
``lacus declare bad|suspicious|unavailable``, ``lacus audit show``, ``lacus quarantine list``,
``lacus replicas --json`` showing states and reasons, who may declare what, and readers
(``lacus download``, ``lacus://``) reporting the corrupt copies they come across."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lacus.client import Client
from lacus.client.fs import LacusFileSystem
from lacus.errors import AccessDenied, ChecksumMismatch, ReplicaNotFound, ServerUnavailable
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from tests.conftest import RunningServer, wait_until
from tests.rule_helpers import settle
from tests.test_cli import assert_one_error_line, ok, ok_json

pytestmark = pytest.mark.usefixtures("cli_reuses_token")
SCOPE = "virgo"
PASSWORD = "password-of-the-tests"
Run = Callable[..., Any]


def stored(client: Client, rse: str, scope: str, name: str) -> Path:
    prefix = Path(client.get_rse(rse)["protocols"][0]["prefix"])
    return prefix / deterministic_path(scope, name)


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def files(client: Client, tmp_path: Path) -> dict[str, bytes]:
    """``virgo``: ``a``, ``b``, ``c`` on ALPHA_DISK and BETA_DISK, in the dataset ``ds``."""
    client.add_scope(SCOPE)
    contents = {name: name.encode() * 1000 for name in ("a", "b", "c")}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    paths = [tmp_path / name for name in contents]
    client.upload(paths, rse="ALPHA_DISK", scope=SCOPE, dataset="ds")
    client.upload(paths, rse="BETA_DISK", scope=SCOPE, dataset="ds")
    return contents


def states(client: Client, name: str) -> dict[str, tuple[str, str | None]]:
    """RSE → (state, reason) of the replicas of ``virgo:name``."""
    (item,) = client.list_replicas([f"{SCOPE}:{name}"], all_states=True)
    return {rse: (loc["state"], loc["reason"]) for rse, loc in item["rses"].items()}


@pytest.fixture
def alice(
    client: Client, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Client]:
    """A second account, not an admin, owning the scope ``alice``."""
    client.add_account("alice", password=PASSWORD)
    client.add_scope("alice", account="alice")
    with monkeypatch.context() as env:
        env.delenv("LACUS_TOKEN", raising=False)  # root's, for the CLI (cli_reuses_token)
        other = Client(server.url, account="alice", password=PASSWORD)
    with other:
        assert other.whoami()["account"] == "alice"
        yield other


def as_account(monkeypatch: pytest.MonkeyPatch, account: Client) -> None:
    """The CLI runs as ``account`` from now on."""
    monkeypatch.setenv("LACUS_ACCOUNT", str(account.config.account))
    monkeypatch.setenv("LACUS_TOKEN", account.token())


# -- lacus declare, lacus replicas --json ----------------------------------------------------


def test_declare_bad_suspicious_unavailable_and_the_replicas_show_it(
    cli: Run, client: Client, files: dict[str, bytes], lake: Lake, tmp_path: Path
) -> None:
    lake.pause_daemons()  # the necromancer would act on what is declared at once
    out = ok(cli("declare", "bad", f"{SCOPE}:a", "--rse", "BETA_DISK", "--reason", "disk broke"))
    assert out.stdout.strip() == "virgo:a on BETA_DISK: bad"
    (listed,) = ok_json(cli("replicas", f"{SCOPE}:a", "--json"))
    assert listed["rses"]["BETA_DISK"]["state"] == "bad"
    assert listed["rses"]["BETA_DISK"]["reason"] == "disk broke"
    assert listed["rses"]["ALPHA_DISK"]["state"] == "available"
    assert listed["rses"]["ALPHA_DISK"]["reason"] is None
    table = ok(cli("replicas", f"{SCOPE}:a", "--all-states")).stdout
    assert "disk broke" in table
    assert "bad" in table
    assert "BETA_DISK" not in ok(cli("replicas", f"{SCOPE}:a")).stdout  # available ones only

    ok(cli("declare", "suspicious", f"{SCOPE}:b", "--rse", "ALPHA_DISK", "--reason", "odd"))
    assert states(client, "b")["ALPHA_DISK"] == ("suspicious", "odd")

    out = ok(
        cli("declare", "unavailable", f"{SCOPE}:c", "--rse", "BETA_DISK", "--reason", "downtime",
            "--for", "2h")
    )  # fmt: skip
    assert "virgo:c on BETA_DISK: unavailable until " in out.stdout
    assert states(client, "c")["BETA_DISK"] == ("unavailable", "downtime")
    ok(cli("declare", "unavailable", f"{SCOPE}:c", "--rse", "ALPHA_DISK", "--reason", "later",
           "--until", "2099-01-01T00:00:00"))  # fmt: skip
    assert states(client, "c")["ALPHA_DISK"] == ("unavailable", "later")

    # Downloads see only available replicas.
    (result,) = client.download([f"{SCOPE}:a"], tmp_path / "out")
    assert result["rse"] == "ALPHA_DISK"
    (available,) = client.list_replicas([f"{SCOPE}:a"])
    assert list(available["rses"]) == ["ALPHA_DISK"]
    history = client.replica_history(f"{SCOPE}:c")
    assert [(h["rse"], h["state"]) for h in history] == [
        ("BETA_DISK", "unavailable"),
        ("ALPHA_DISK", "unavailable"),
    ]


def test_declare_a_dataset_declares_its_files_on_the_rse(
    cli: Run, client: Client, files: dict[str, bytes], lake: Lake
) -> None:
    lake.pause_daemons()
    out = ok(cli("declare", "bad", f"{SCOPE}:ds", "--rse", "BETA_DISK", "--reason", "rack lost"))
    assert sorted(out.stdout.split("\n")[:-1]) == [f"virgo:{n} on BETA_DISK: bad" for n in "abc"]
    assert {states(client, n)["BETA_DISK"][0] for n in "abc"} == {"bad"}
    assert {states(client, n)["ALPHA_DISK"][0] for n in "abc"} == {"available"}


def test_declare_errors_are_one_line(cli: Run, files: dict[str, bytes], lake: Lake) -> None:
    lake.pause_daemons()
    did = f"{SCOPE}:a"
    ok(cli("declare", "bad", did, "--rse", "BETA_DISK", "--reason", "x"))
    assert_one_error_line(
        cli("declare", "bad", did, "--rse", "BETA_DISK", "--reason", "x"), "is bad", "cannot"
    )
    assert_one_error_line(
        cli("declare", "bad", f"{SCOPE}:nothing", "--rse", "BETA_DISK", "--reason", "x"),
        "virgo:nothing does not exist",
    )
    assert_one_error_line(
        cli("declare", "bad", did, "--rse", "NO_SUCH_RSE", "--reason", "x"), "NO_SUCH_RSE"
    )
    assert_one_error_line(
        cli("declare", "unavailable", did, "--rse", "ALPHA_DISK", "--reason", "x", "--for", "1h",
            "--until", "2099-01-01")
    )  # fmt: skip
    assert_one_error_line(
        cli("declare", "unavailable", did, "--rse", "ALPHA_DISK", "--reason", "x",
            "--until", "2001-01-01"),
        "future",
    )  # fmt: skip
    assert_one_error_line(
        cli("declare", "unavailable", did, "--rse", "ALPHA_DISK", "--reason", "x", "--for", "soon"),
        "duration",
    )  # fmt: skip
    assert_one_error_line(cli("declare", "bad", did, "--rse", "ALPHA_DISK"), "--reason")
    assert_one_error_line(cli("declare", "lost", did, "--rse", "ALPHA_DISK", "--reason", "x"))


# -- who may declare what ------------------------------------------------------------------------


def test_another_account_may_report_suspicious_but_not_declare_bad(
    cli: Run,
    client: Client,
    alice: Client,
    files: dict[str, bytes],
    lake: Lake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.add_scope("secret")
    (tmp_path / "hidden").write_bytes(b"embargoed")
    client.upload([tmp_path / "hidden"], rse="ALPHA_DISK", scope="secret")
    client.set_embargo("secret")
    lake.pause_daemons()
    as_account(monkeypatch, alice)

    ok(cli("declare", "suspicious", f"{SCOPE}:a", "--rse", "BETA_DISK", "--reason", "bad read"))
    assert states(client, "a")["BETA_DISK"] == ("suspicious", "bad read")
    assert client.replica_history(f"{SCOPE}:a")[-1]["account"] == "alice"
    for state in ("bad", "unavailable"):
        assert_one_error_line(
            cli("declare", state, f"{SCOPE}:b", "--rse", "BETA_DISK", "--reason", "mine now"),
            "'alice' may not declare",
            "scope 'virgo'",
        )
    assert states(client, "b")["BETA_DISK"] == ("available", None)
    with pytest.raises(AccessDenied):
        alice.declare_replicas("bad", [f"{SCOPE}:b"], rse="BETA_DISK", reason="x")
    # A DID alice cannot see is not found, whatever she tries.
    for state in ("suspicious", "bad"):
        assert_one_error_line(
            cli("declare", state, "secret:hidden", "--rse", "ALPHA_DISK", "--reason", "x"),
            "secret:hidden does not exist",  # DIDNotFound, as for a DID that is not there
        )
    refused = alice.report_suspicious([("secret", "hidden", "ALPHA_DISK")], reason="peek")
    assert refused == {"ALPHA_DISK": ["secret:hidden: secret:hidden not found"]}
    with pytest.raises(ReplicaNotFound):
        alice.declare_replicas("suspicious", ["virgo:a"], rse="GAMMA_TAPE", reason="x")
    # Her own scope is hers to declare.
    (tmp_path / "own").write_bytes(b"alice's")
    alice.upload([tmp_path / "own"], rse="ALPHA_DISK", scope="alice")
    ok(cli("declare", "bad", "alice:own", "--rse", "ALPHA_DISK", "--reason", "mine"))
    # The quarantine is for admins.
    assert_one_error_line(cli("quarantine", "list"), "admins only")


# -- lacus audit show, lacus quarantine list -------------------------------------------------


def test_audit_show_and_quarantine_list(
    cli: Run,
    client: Client,
    alice: Client,
    files: dict[str, bytes],
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "No audit or scrub has run yet" in ok(cli("audit", "show")).stdout
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 0)
    monkeypatch.setattr(lake.settings, "audit_max_fraction", 0.5)  # 1 dark file of 3
    alpha = stored(client, "ALPHA_DISK", SCOPE, "a").parents[3]
    (alpha / "stray").mkdir()
    (alpha / "stray" / "junk.dat").write_bytes(b"j" * 10)
    settle(lake, "auditor", "scrubber")

    report = ok_json(cli("audit", "show", "--json"))
    by_rse = {entry["rse"]: entry for entry in report}
    assert {"ALPHA_DISK", "BETA_DISK"} <= set(by_rse)
    audit = by_rse["ALPHA_DISK"]["audit"]
    assert (audit["state"], audit["dark"], audit["lost"], audit["files"]) == ("finished", 1, 0, 3)
    assert audit["started_at"]
    assert audit["finished_at"]
    scrub = by_rse["ALPHA_DISK"]["scrub"]
    assert scrub["state"] == "finished"
    assert scrub["bad"] == 0
    assert by_rse["ALPHA_DISK"]["now"]["quarantined"] == 1
    (only,) = ok_json(cli("audit", "show", "BETA_DISK", "--json"))
    assert only["rse"] == "BETA_DISK"
    assert only["now"]["quarantined"] == 0
    shown = ok(cli("audit", "show", "ALPHA_DISK")).stdout
    assert "audit" in shown
    assert "scrub" in shown
    assert "finished" in shown
    assert "quarantined" in shown
    assert_one_error_line(cli("audit", "show", "NO_SUCH_RSE"), "NO_SUCH_RSE")

    (dark,) = ok_json(cli("quarantine", "list", "--json"))
    assert (dark["rse"], dark["path"], dark["bytes"]) == ("ALPHA_DISK", "stray/junk.dat", 10)
    client.quarantine("BETA_DISK", ["virgo/left-over.dat"])
    assert "stray/junk.dat" in ok(cli("quarantine", "list", "ALPHA_DISK")).stdout
    assert [q["path"] for q in ok_json(cli("quarantine", "list", "BETA_DISK", "--json"))] == [
        "virgo/left-over.dat"
    ]

    as_account(monkeypatch, alice)  # others see the report, without the runs' details
    (seen,) = ok_json(cli("audit", "show", "ALPHA_DISK", "--json"))
    assert seen["audit"]["dark"] == 1
    assert seen["audit"]["detail"] is None


# -- readers report the corrupt copies they find -------------------------------------------------


def suspicious_reports(client: Client, did: str, rse: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in client.replica_history(did)
        if entry["rse"] == rse and entry["state"] == "suspicious"
    ]


def test_a_download_reports_a_corrupt_copy_and_the_lake_deals_with_it(
    client: Client, files: dict[str, bytes], tmp_path: Path
) -> None:
    flip_byte(stored(client, "ALPHA_DISK", SCOPE, "a"))  # ALPHA_DISK is tried first
    (result,) = client.download([f"{SCOPE}:a"], tmp_path / "out")
    assert (result["status"], result["rse"]) == ("downloaded", "BETA_DISK")
    assert (tmp_path / "out" / SCOPE / "a").read_bytes() == files["a"]
    (report,) = suspicious_reports(client, f"{SCOPE}:a", "ALPHA_DISK")
    assert report["reason"].startswith("lacus download: expected adler32 ")
    assert report["account"] == "root"
    # The necromancer reads it back, finds it bad (and what follows: no rule keeps it).
    wait_until(
        lambda: "bad" in {h["state"] for h in client.replica_history(f"{SCOPE}:a")}, timeout=20
    )


def test_whole_reads_through_lacus_fs_report_corrupt_and_short_copies(
    client: Client, files: dict[str, bytes], tmp_path: Path
) -> None:
    stored(client, "ALPHA_DISK", SCOPE, "b").write_bytes(files["b"][:100])  # too short
    flip_byte(stored(client, "ALPHA_DISK", SCOPE, "c"))
    fs = LacusFileSystem(client=client, rse="ALPHA_DISK", cache_dir=tmp_path / "cache")
    assert fs.cat_file(f"{SCOPE}/b") == files["b"]
    fs.get_file(f"{SCOPE}/c", str(tmp_path / "c"))
    assert (tmp_path / "c").read_bytes() == files["c"]
    (short,) = suspicious_reports(client, f"{SCOPE}:b", "ALPHA_DISK")
    assert short["reason"].startswith("lacus:// read: ")
    assert "100 bytes" in short["reason"]
    (flipped,) = suspicious_reports(client, f"{SCOPE}:c", "ALPHA_DISK")
    assert "adler32" in flipped["reason"]
    fs.disconnect()


def test_a_read_in_parts_reports_the_corrupt_copy_at_its_end(
    client: Client, files: dict[str, bytes], lake: Lake, tmp_path: Path
) -> None:
    big = bytes(range(256)) * 40
    (tmp_path / "big").write_bytes(big)
    client.upload([tmp_path / "big"], rse="ALPHA_DISK", scope=SCOPE)
    flip_byte(stored(client, "ALPHA_DISK", SCOPE, "big"), 5000)
    fs = LacusFileSystem(client=client, rse="ALPHA_DISK", cache_dir=tmp_path / "cache")
    with fs.open(f"{SCOPE}/big", block_size=500) as stream:
        assert stream.read(500) == big[:500]
        with pytest.raises(ChecksumMismatch, match="corrupt"):
            stream.read()
    (report,) = suspicious_reports(client, f"{SCOPE}:big", "ALPHA_DISK")
    assert report["reason"].startswith("lacus:// read: the bytes read have adler32 ")
    fs.disconnect()


def test_a_failed_report_never_fails_a_read(
    client: Client, files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ServerUnavailable("the server is away")

    monkeypatch.setattr(client, "report_suspicious", unreachable)
    flip_byte(stored(client, "ALPHA_DISK", SCOPE, "a"))
    (result,) = client.download([f"{SCOPE}:a"], tmp_path / "out")
    assert result["rse"] == "BETA_DISK"
    assert suspicious_reports(client, f"{SCOPE}:a", "ALPHA_DISK") == []


def test_each_corrupt_copy_is_reported_once_per_reader(
    client: Client, files: dict[str, bytes], lake: Lake, tmp_path: Path
) -> None:
    lake.pause_daemons()  # the replica stays suspicious: a second read is sent to it again
    flip_byte(stored(client, "ALPHA_DISK", SCOPE, "a"))
    fs = LacusFileSystem(client=client, rse="ALPHA_DISK", cache_dir=tmp_path / "cache")
    located = fs.locate(f"{SCOPE}/a")
    for _ in range(3):  # the same replicas as located once, read three times
        assert fs.reader.read_whole(located) == files["a"]
    assert len(suspicious_reports(client, f"{SCOPE}:a", "ALPHA_DISK")) == 1
    assert states(client, "a")["ALPHA_DISK"][0] == "suspicious"
    fs.disconnect()


def test_until_is_sent_as_utc(client: Client, files: dict[str, bytes], lake: Lake) -> None:
    lake.pause_daemons()
    until = datetime.now(UTC) + timedelta(hours=3)
    client.declare_replicas("unavailable", [f"{SCOPE}:a"], rse="BETA_DISK", reason="r", until=until)
    (entry,) = client.replica_history(f"{SCOPE}:a")
    assert entry["state"] == "unavailable"
    expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - until).total_seconds()) < 1
