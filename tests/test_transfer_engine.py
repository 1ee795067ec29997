"""The transfer engine on both catalogs: sources ranked by distance and past failures, bad
sources declared and skipped, multi-hop through an intermediate RSE, link limits and
priorities, deletion at source, a rule deleted while its copy runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from lacus.core import rses
from lacus.daemons import DAEMONS, conveyor
from lacus.daemons.base import run_once
from lacus.db.tables import distances, replicas, rse_protocols, transfers
from lacus.naming import deterministic_path
from lacus.service import rules as service_rules
from lacus.service.lake import Lake
from lacus.storage import verified
from lacus.types import ProtocolInfo
from tests.rule_helpers import (
    ROOT,
    add_rule,
    event_types,
    make_dataset,
    put_files,
    request_rows,
    rse_names,
    rse_prefix,
    settle,
)


def rule_state(lake: Lake, rule_id: str) -> str:
    return str(service_rules.get_rule(lake, ROOT, rule_id)["state"])


def add_posix_rse(lake: Lake, name: str, root: Path, **attributes: str) -> None:
    with lake.write() as conn:
        rse_id = rses.add_rse(conn, name, attributes={"site": name, **attributes})
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(root / name), impl="posix"),
        )


def link(lake: Lake, source: str, dest: str, distance: int, max_active: int | None = None) -> None:
    with lake.write() as conn:
        conn.execute(
            insert(distances).values(
                src_rse_id=rses.get_rse_id(conn, source),
                dest_rse_id=rses.get_rse_id(conn, dest),
                distance=distance,
                max_active=max_active,
            )
        )


def history(lake: Lake) -> list[tuple[str, str | None, str, str]]:
    """(file, source RSE, destination RSE, state) of every attempt, oldest first."""
    names = rse_names(lake)
    with lake.read() as conn:
        rows = conn.execute(select(transfers).order_by(transfers.c.id))
        return [
            (row.name, names.get(row.source_rse_id), names[row.dest_rse_id], row.state)
            for row in rows
        ]


def replica_states(lake: Lake, name: str) -> dict[str, str]:
    names = rse_names(lake)
    with lake.read() as conn:
        rows = conn.execute(select(replicas).where(replicas.c.name == name))
        return {names[row.rse_id]: row.state for row in rows}


def test_the_closest_source_is_used(lake: Lake, tmp_path: Path) -> None:
    add_posix_rse(lake, "DELTA_DISK", tmp_path)
    make_dataset(lake, "data", "ds", ["a", "b"])
    put_files(lake, "DELTA_DISK", "data", ["a", "b"])
    link(lake, "ALPHA_DISK", "BETA_DISK", 9)
    link(lake, "DELTA_DISK", "BETA_DISK", 1)
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule_state(lake, rule_id) == "ok"
    assert sorted(history(lake)) == [
        ("a", "DELTA_DISK", "BETA_DISK", "done"),
        ("b", "DELTA_DISK", "BETA_DISK", "done"),
    ]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_bad_source_is_declared_and_the_next_one_used(
    lake: Lake, tmp_path: Path, damage: str
) -> None:
    add_posix_rse(lake, "DELTA_DISK", tmp_path)
    data = make_dataset(lake, "data", "ds", ["a"])
    put_files(lake, "DELTA_DISK", "data", ["a"])
    link(lake, "ALPHA_DISK", "BETA_DISK", 1)  # ALPHA first: its copy is the damaged one
    link(lake, "DELTA_DISK", "BETA_DISK", 5)
    broken = rse_prefix(lake, "ALPHA_DISK") / deterministic_path("data", "a")
    if damage == "missing":
        broken.unlink()
    else:
        broken.write_bytes(bytes(len(data["a"])))
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    # missing: declared bad at once; corrupt: reported suspicious, read back, then bad
    settle(lake, "evaluator", "conveyor", "necromancer")
    assert rule_state(lake, rule_id) == "ok"
    target = rse_prefix(lake, "BETA_DISK") / deterministic_path("data", "a")
    assert target.read_bytes() == data["a"]
    assert history(lake) == [("a", "DELTA_DISK", "BETA_DISK", "done")]
    assert replica_states(lake, "a") == {
        "ALPHA_DISK": "bad",
        "BETA_DISK": "available",
        "DELTA_DISK": "available",
    }
    (bad,) = event_types(lake, "replica.bad")
    assert bad["rse"] == "ALPHA_DISK"
    assert ("missing" if damage == "missing" else "adler32") in bad["reason"]


def test_a_bad_replica_a_rule_keeps_is_brought_back(lake: Lake) -> None:
    data = make_dataset(lake, "data", "ds", ["a"])
    put_files(lake, "BETA_DISK", "data", ["a"])
    keep_alpha = add_rule(lake, "data", "ds", "ALPHA_DISK")
    keep_gamma = add_rule(lake, "data", "ds", "GAMMA_TAPE")
    settle(lake, "evaluator")
    # The copy on ALPHA (kept by a rule) is damaged; the copy to GAMMA reads it first and finds it.
    link(lake, "ALPHA_DISK", "GAMMA_TAPE", 1)
    link(lake, "BETA_DISK", "GAMMA_TAPE", 5)
    link(lake, "BETA_DISK", "ALPHA_DISK", 5)
    (rse_prefix(lake, "ALPHA_DISK") / deterministic_path("data", "a")).unlink()
    settle(lake, "conveyor", "necromancer")  # the necromancer asks for the copy back
    assert rule_state(lake, keep_gamma) == "ok"
    assert rule_state(lake, keep_alpha) == "ok"  # repaired: copied back from BETA
    assert (rse_prefix(lake, "ALPHA_DISK") / deterministic_path("data", "a")).read_bytes() == (
        data["a"]
    )
    assert replica_states(lake, "a") == dict.fromkeys(
        ["ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"], "available"
    )


def test_multi_hop_through_an_intermediate_rse(lake: Lake, tmp_path: Path) -> None:
    add_posix_rse(lake, "HOP_DISK", tmp_path, available_for_multihop="true")
    data = make_dataset(lake, "data", "ds", ["a", "b"])
    link(lake, "ALPHA_DISK", "HOP_DISK", 1)  # ALPHA is linked to HOP only: not to BETA
    link(lake, "HOP_DISK", "BETA_DISK", 1)
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule_state(lake, rule_id) == "ok"
    for name in ("a", "b"):
        assert (rse_prefix(lake, "BETA_DISK") / deterministic_path("data", name)).read_bytes() == (
            data[name]
        )
        assert replica_states(lake, name) == {"ALPHA_DISK": "available", "BETA_DISK": "available"}
    hop_root = rse_prefix(lake, "HOP_DISK")
    assert [p for p in hop_root.rglob("*") if p.is_file()] == []  # the hop copy is cleaned
    assert {entry[1] for entry in history(lake)} == {"ALPHA_DISK"}


def test_the_sweeper_removes_scratch_copies_of_requests_that_are_gone(
    lake: Lake, tmp_path: Path
) -> None:
    add_posix_rse(lake, "HOP_DISK", tmp_path, available_for_multihop="true")
    make_dataset(lake, "data", "ds", ["a"])
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")  # its request waits for the conveyor
    (request,) = request_rows(lake)
    hop_root = rse_prefix(lake, "HOP_DISK") / conveyor.HOP_DIR
    path = deterministic_path("data", "a")
    alive = hop_root / str(request.id) / path  # a worker copying right now
    orphans = [hop_root / str(request.id + 1000) / path, hop_root / "999999" / "x" / "b"]
    for scratch in (alive, *orphans):  # what killed workers left
        scratch.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_bytes(b"scratch")
    elsewhere = rse_prefix(lake, "ALPHA_DISK") / conveyor.HOP_DIR / "999999" / "c"
    elsewhere.parent.mkdir(parents=True)  # not a multi-hop RSE: never looked at
    elsewhere.write_bytes(b"not ours")

    assert DAEMONS["hop-sweeper"].work(lake, "test") == 2
    assert alive.read_bytes() == b"scratch"
    assert not any(p.exists() for p in orphans)
    assert elsewhere.exists()
    assert DAEMONS["hop-sweeper"].work(lake, "test") == 0
    with lake.read() as conn:  # the next look waits for hop_sweep_seconds
        assert DAEMONS["hop-sweeper"].pending is not None
        assert not DAEMONS["hop-sweeper"].pending(conn)


def test_without_a_link_the_request_says_so(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["a"])
    link(lake, "ALPHA_DISK", "GAMMA_TAPE", 1)  # ALPHA's only link; no RSE may hold a hop
    add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    (request,) = request_rows(lake)
    assert "no link from ALPHA_DISK to BETA_DISK" in request.last_error


def test_a_retry_prefers_a_source_that_has_not_failed(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_posix_rse(lake, "DELTA_DISK", tmp_path)
    make_dataset(lake, "data", "ds", ["a"])
    put_files(lake, "DELTA_DISK", "data", ["a"])
    link(lake, "ALPHA_DISK", "BETA_DISK", 1)
    link(lake, "DELTA_DISK", "BETA_DISK", 5)
    monkeypatch.setattr(lake.settings, "transfer_retry_max_seconds", 0.0)
    # ALPHA's storage is down: its only protocol is a WebDAV server nobody listens for.
    with lake.write() as conn:
        conn.execute(
            update(rse_protocols)
            .where(rse_protocols.c.rse_id == rses.get_rse_id(conn, "ALPHA_DISK"))
            .values(scheme="davs", hostname="127.0.0.1", port=1, prefix="/rse")
        )
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule_state(lake, rule_id) == "ok"
    assert [(entry[1], entry[3]) for entry in history(lake)] == [
        ("ALPHA_DISK", "failed"),
        ("DELTA_DISK", "done"),
    ]


class Recorder:
    """Wraps the real ``copy_verified``: counts copies in flight per link, keeps the order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pause: float = 0.02) -> None:
        self.real = verified.copy_verified
        self.lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.started: list[str] = []
        self.pause = pause
        monkeypatch.setattr(conveyor, "copy_verified", self)

    def __call__(self, source: Any, source_path: str, dest: Any, dest_path: str, **kw: Any) -> Any:
        key = f"{source.url.rsplit('/', 1)[-1]}->{dest.url.rsplit('/', 1)[-1]}"
        with self.lock:
            self.active[key] = self.active.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.active[key])
            self.started.append(dest_path.rsplit("/", 1)[-1])
        try:
            time.sleep(self.pause)
            return self.real(source, source_path, dest, dest_path, **kw)
        finally:
            with self.lock:
                self.active[key] -= 1


def test_links_and_rses_limit_the_copies_in_flight(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch)
    make_dataset(lake, "data", "ds", [f"f{i:02d}" for i in range(24)])
    link(lake, "ALPHA_DISK", "BETA_DISK", 1, max_active=2)
    link(lake, "ALPHA_DISK", "GAMMA_TAPE", 1)
    with lake.write() as conn:
        rses.set_attribute(conn, rses.get_rse_id(conn, "GAMMA_TAPE"), "max_active_transfers", "3")
    beta = add_rule(lake, "data", "ds", "BETA_DISK")
    gamma = add_rule(lake, "data", "ds", "GAMMA_TAPE")
    settle(lake, "evaluator", "conveyor")
    assert (rule_state(lake, beta), rule_state(lake, gamma)) == ("ok", "ok")
    assert recorder.peak["ALPHA_DISK->BETA_DISK"] == 2
    assert recorder.peak["ALPHA_DISK->GAMMA_TAPE"] == 3


def test_higher_priority_first_within_a_link(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch, pause=0.0)
    make_dataset(lake, "data", "low", [f"low{i}" for i in range(5)])
    make_dataset(lake, "data", "high", [f"high{i}" for i in range(5)])
    link(lake, "ALPHA_DISK", "BETA_DISK", 1, max_active=1)
    add_rule(lake, "data", "low", "BETA_DISK", priority=1)
    add_rule(lake, "data", "high", "BETA_DISK", priority=5)
    settle(lake, "evaluator", "conveyor")
    assert [name[:-1] for name in recorder.started] == ["high"] * 5 + ["low"] * 5


def test_deletion_at_source_once_the_rule_is_ok(lake: Lake) -> None:
    data = make_dataset(lake, "data", "ds", ["a", "b"])
    put_files(lake, "GAMMA_TAPE", "data", ["b"])  # b has a second copy elsewhere, kept
    rule_id = add_rule(
        lake, "data", "ds", "BETA_DISK", delete_source=True, source_replica_expression="ALPHA_DISK"
    )
    settle(lake)
    assert rule_state(lake, rule_id) == "ok"
    assert replica_states(lake, "a") == {"BETA_DISK": "available"}
    assert replica_states(lake, "b") == {"BETA_DISK": "available", "GAMMA_TAPE": "available"}
    alpha = rse_prefix(lake, "ALPHA_DISK")
    assert not (alpha / deterministic_path("data", "a")).exists()
    beta = rse_prefix(lake, "BETA_DISK")
    assert (beta / deterministic_path("data", "a")).read_bytes() == data["a"]


def test_deletion_at_source_keeps_replicas_another_rule_holds(lake: Lake) -> None:
    make_dataset(lake, "data", "ds", ["a"])
    add_rule(lake, "data", "ds", "ALPHA_DISK")  # the buffer copy is protected
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK", delete_source=True)
    settle(lake)
    assert rule_state(lake, rule_id) == "ok"
    assert replica_states(lake, "a") == {"ALPHA_DISK": "available", "BETA_DISK": "available"}


def test_a_rule_deleted_during_its_copy_leaves_no_bytes_and_no_replica(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dataset(lake, "data", "ds", ["a"])
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    real = verified.copy_verified

    def copy_then_lose_the_rule(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        service_rules.delete_rule(lake, ROOT, rule_id)
        return result

    monkeypatch.setattr(conveyor, "copy_verified", copy_then_lose_the_rule)
    run_once(lake, DAEMONS["conveyor"])
    assert replica_states(lake, "a") == {"ALPHA_DISK": "available"}
    beta = rse_prefix(lake, "BETA_DISK")
    assert [p for p in beta.rglob("*") if p.is_file()] == []
    assert request_rows(lake) == []


def test_a_non_deterministic_destination_records_where_the_file_went(
    lake: Lake, tmp_path: Path
) -> None:
    data = make_dataset(lake, "data", "ds", ["a"])
    with lake.write() as conn:
        rse_id = rses.add_rse(conn, "FREE_DISK", deterministic=False, attributes={"site": "F"})
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(tmp_path / "free"),
                         impl="posix"),
        )  # fmt: skip
    rule_id = add_rule(lake, "data", "ds", "FREE_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule_state(lake, rule_id) == "ok"
    with lake.read() as conn:
        (row,) = conn.execute(select(replicas).where(replicas.c.rse_id == rse_id))
    assert row.path == deterministic_path("data", "a")  # stored: the RSE cannot derive it
    assert (tmp_path / "free" / row.path).read_bytes() == data["a"]
