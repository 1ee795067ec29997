"""Integrity over time on real storage: damage made behind the lake's back is found (scrubber,
auditor), repaired from a good copy (necromancer + conveyor), or reported lost loudly; dark
files are quarantined, never deleted young; an audit that would act on too much does nothing."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from sqlalchemy import select

from lacus.core import audits, integrity, rses
from lacus.core.integrity import Declaration
from lacus.db.tables import locks, quarantine, replica_declarations, replicas
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.types import ReplicaState
from tests.rule_helpers import add_rule, event_types, make_dataset, rse_prefix, rule, settle

SCOPE = "virgo"


def replica_state(lake: Lake, rse: str, name: str) -> Any:
    with lake.read() as conn:
        return conn.execute(
            select(replicas).where(
                replicas.c.rse_id == rses.get_rse_id(conn, rse),
                replicas.c.scope == SCOPE,
                replicas.c.name == name,
            )
        ).first()


def stored(lake: Lake, rse: str, name: str) -> Any:
    return rse_prefix(lake, rse) / deterministic_path(SCOPE, name)


def flip(path: Any) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def two_copies(lake: Lake, names: list[str]) -> tuple[dict[str, bytes], str]:
    data = make_dataset(lake, SCOPE, "ds", names, rse="ALPHA_DISK", size=2000)
    rule_id = add_rule(lake, SCOPE, "ds", "ALPHA_DISK|BETA_DISK", copies=2)
    settle(lake)
    assert rule(lake, rule_id)["state"] == "ok"
    return data, rule_id


def run(lake: Lake, *daemons: str) -> None:
    settle(lake, *daemons)


def test_scrubber_finds_flipped_truncated_and_deleted_bytes_and_they_are_repaired(
    lake: Lake,
) -> None:
    data, rule_id = two_copies(lake, ["a", "b", "c", "d"])
    flip(stored(lake, "BETA_DISK", "a"))
    stored(lake, "BETA_DISK", "b").write_bytes(data["b"][:100])
    os.unlink(stored(lake, "ALPHA_DISK", "c"))
    run(lake, "scrubber")
    for rse, name in (("BETA_DISK", "a"), ("BETA_DISK", "b"), ("ALPHA_DISK", "c")):
        row = replica_state(lake, rse, name)
        assert row.state == "bad", (rse, name)
        assert row.state_reason.startswith("scrub:")
    assert replica_state(lake, "ALPHA_DISK", "d").verified_at is not None
    assert rule(lake, rule_id)["state"] != "ok"  # never OK on a bad copy
    run(lake, "necromancer", "conveyor", "repairer")
    for rse, name in (("BETA_DISK", "a"), ("BETA_DISK", "b"), ("ALPHA_DISK", "c")):
        assert replica_state(lake, rse, name).state == "available"
        assert stored(lake, rse, name).read_bytes() == data[name]
    assert rule(lake, rule_id)["state"] == "ok"
    types = [e["type"] for e in event_types(lake)]
    assert types.count("replica.bad") == 3
    assert types.count("replica.repaired") == 3
    with lake.read() as conn:
        history = list(conn.execute(select(replica_declarations.c.state)).scalars())
    assert sorted(history) == ["bad"] * 3 + ["repaired"] * 3


def test_a_file_whose_only_copy_is_corrupt_is_lost_loudly_and_its_bytes_kept(lake: Lake) -> None:
    data = make_dataset(lake, SCOPE, "ds", ["only"], rse="ALPHA_DISK", size=500)
    rule_id = add_rule(lake, SCOPE, "ds", "ALPHA_DISK")
    settle(lake)
    flip(stored(lake, "ALPHA_DISK", "only"))
    run(lake, "scrubber")
    run(lake, "necromancer", "repairer", "reaper")
    row = replica_state(lake, "ALPHA_DISK", "only")
    assert row.state == "lost"
    assert "no good copy" in row.state_reason
    assert stored(lake, "ALPHA_DISK", "only").exists()  # never delete the last copy
    info = rule(lake, rule_id)
    assert info["state"] == "stuck"
    assert "FileLost" in (info["error"] or "")
    assert [e["name"] for e in event_types(lake, "replica.lost")] == ["only"]
    assert data  # the bytes differ now, but are not deleted


def test_suspicious_reports_are_read_back(lake: Lake) -> None:
    two_copies(lake, ["good", "bad"])
    flip(stored(lake, "BETA_DISK", "bad"))
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        integrity.declare(
            conn,
            [Declaration(SCOPE, n, beta, "download mismatch") for n in ("good", "bad")],
            ReplicaState.SUSPICIOUS,
            account="root",
        )
        held = conn.execute(select(locks.c.state).where(locks.c.rse_id == beta)).scalars()
        assert set(held) == {"replicating"}
    assert replica_state(lake, "BETA_DISK", "good").state == "suspicious"
    run(lake, "necromancer")
    good = replica_state(lake, "BETA_DISK", "good")
    assert good.state == "available"
    assert good.verified_at is not None
    assert good.suspicious_reports is None
    run(lake, "necromancer", "conveyor")
    assert replica_state(lake, "BETA_DISK", "bad").state == "available"
    assert [e["name"] for e in event_types(lake, "replica.repaired")] == ["bad"]


def test_enough_suspicious_reports_make_a_replica_bad_without_reading(lake: Lake) -> None:
    two_copies(lake, ["x"])
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        for n in range(3):
            integrity.declare(
                conn, [Declaration(SCOPE, "x", beta, f"report {n}")], ReplicaState.SUSPICIOUS,
                account="root", suspicious_limit=3,
            )  # fmt: skip
    row = replica_state(lake, "BETA_DISK", "x")
    assert row.state == "bad"
    assert "3 times" in row.state_reason


def test_unavailable_until_it_expires(lake: Lake) -> None:
    _, rule_id = two_copies(lake, ["u"])
    with lake.write() as conn:
        beta = rses.get_rse_id(conn, "BETA_DISK")
        integrity.declare(
            conn, [Declaration(SCOPE, "u", beta, "disk server down")], ReplicaState.UNAVAILABLE,
            account="root", expires_at=audits.grace_cutoff(-0.5),
        )  # fmt: skip
    assert rule(lake, rule_id)["state"] == "replicating"
    time.sleep(0.6)
    run(lake, "necromancer")
    assert replica_state(lake, "BETA_DISK", "u").state == "available"
    assert rule(lake, rule_id)["state"] == "ok"


def test_auditor_finds_lost_and_dark_files_and_quarantines_without_deleting(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, rule_id = two_copies(lake, [f"f{i}" for i in range(10)])
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 0)
    monkeypatch.setattr(lake.settings, "audit_max_fraction", 0.5)
    os.unlink(stored(lake, "BETA_DISK", "f3"))
    stored(lake, "BETA_DISK", "f4").write_bytes(b"short")
    beta = rse_prefix(lake, "BETA_DISK")
    (beta / "stray").mkdir()
    (beta / "stray" / "junk.dat").write_bytes(b"j" * 10)
    part = stored(lake, "BETA_DISK", "f5").parent / ".f5.lacus-part-0123456789ab"
    part.write_bytes(b"half")
    time.sleep(0.05)
    run(lake, "auditor")
    assert replica_state(lake, "BETA_DISK", "f3").state == "bad"
    assert "missing" in replica_state(lake, "BETA_DISK", "f3").state_reason
    assert replica_state(lake, "BETA_DISK", "f4").state == "bad"
    with lake.read() as conn:
        dark = {row.path: row for row in conn.execute(select(quarantine))}
        (last,) = [r for r in audits.last_runs(conn) if r.rse == "BETA_DISK"]
    assert set(dark) == {"stray/junk.dat", str(part.relative_to(beta))}
    assert (last.state, last.lost, last.dark, last.files) == ("finished", 2, 2, 10)
    run(lake, "dark-reaper")
    assert (beta / "stray" / "junk.dat").exists()
    assert part.exists()
    monkeypatch.setattr(lake.settings, "dark_min_age_days", 0)
    run(lake, "dark-reaper")
    assert not (beta / "stray" / "junk.dat").exists()
    assert not part.exists()
    run(lake, "necromancer", "conveyor")
    assert stored(lake, "BETA_DISK", "f3").read_bytes() == data["f3"]
    assert rule(lake, rule_id)["state"] == "ok"


def test_an_audit_of_an_empty_directory_takes_no_action(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_copies(lake, [f"g{i}" for i in range(5)])
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 0)
    beta = rse_prefix(lake, "BETA_DISK")
    beta.rename(beta.with_name("moved-away"))
    beta.mkdir()
    run(lake, "auditor")
    assert {replica_state(lake, "BETA_DISK", f"g{i}").state for i in range(5)} == {"available"}
    (aborted,) = event_types(lake, "audit.aborted")
    assert aborted["rse"] == "BETA_DISK"
    assert aborted["lost"] == 5
