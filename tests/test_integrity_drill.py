"""The integrity drill, on the real storage servers: 2,000 files with two copies each on POSIX,
WebDAV (Apache) and S3 (SeaweedFS); 5 % of the replicas damaged at random (bytes flipped,
truncated, deleted), 3 files whose only copy is damaged, dark files and a stale part file. One
auditor and one scrubber pass must find 100 % of it; the necromancer and the conveyor repair
every repairable replica with verified bytes, report the 3 lost (stuck rules with the reason),
quarantine the dark files without deleting them, and touch nothing else. A second test audits
while uploads and deletions run: no false positive."""

from __future__ import annotations

import io
import random
import secrets
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from lacus.checksums import Checksums
from lacus.core import rses
from lacus.core.locks import EPOCH
from lacus.db.tables import quarantine, replicas
from lacus.errors import ChecksumMismatch, StorageFileNotFound
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.service.replicas import backend_for_rse
from lacus.storage import StorageBackend, check_stored
from tests.rule_helpers import add_rule, event_types, make_dataset, rse_prefix, rule, settle
from tests.servers.apache import ApacheServer
from tests.servers.seaweedfs import SeaweedFS
from tests.test_transfer_protocols import add_network_rse

SCOPE = "drill"
PAIRS = {
    "p": ("ALPHA_DISK", "WEB_DISK"),
    "q": ("WEB_DISK", "S3_DISK"),
    "r": ("S3_DISK", "ALPHA_DISK"),
}


@pytest.fixture
def drill_lake(lake: Lake, apache_server: ApacheServer, seaweedfs_server: SeaweedFS) -> Lake:
    run = secrets.token_hex(4)
    add_network_rse(lake, "WEB_DISK", "dav", "127.0.0.1", apache_server.http_port, f"/drill-{run}")
    add_network_rse(
        lake, "S3_DISK", "s3", seaweedfs_server.host, seaweedfs_server.port,
        f"{seaweedfs_server.bucket}/drill-{run}", access_key=seaweedfs_server.access_key,
        secret_key=seaweedfs_server.secret_key, secure=False,
    )  # fmt: skip
    return lake


def backend(lake: Lake, rse: str) -> StorageBackend:
    with lake.read() as conn:
        return backend_for_rse(rses.get_rse(conn, rse))


def all_replicas(lake: Lake) -> dict[tuple[str, str], Any]:
    names = {}
    with lake.read() as conn:
        for info in rses.list_rses(conn):
            names[info["id"]] = info["rse"]
        return {
            (row.name, names[row.rse_id]): row
            for row in conn.execute(select(replicas).where(replicas.c.scope == SCOPE))
        }


def damage(store: StorageBackend, path: str, how: str, data: bytes) -> None:
    if how == "delete":
        store.delete(path)
        return
    changed = bytearray(data)
    if how == "flip":
        changed[len(changed) // 3] ^= 0x55
    else:
        del changed[len(changed) // 2 :]
    store.put(path, io.BytesIO(bytes(changed)), overwrite=True)


def right(store: StorageBackend, path: str, data: bytes) -> bool:
    import zlib

    expected = Checksums(bytes=len(data), adler32=f"{zlib.adler32(data):08x}", md5=None)
    try:
        check_stored(store, path, expected=expected)
    except (ChecksumMismatch, StorageFileNotFound):
        return False
    return True


def build(lake: Lake, per_pair: int) -> dict[str, bytes]:
    """Files of each pair uploaded to the first RSE, copied by a rule to the second."""
    data: dict[str, bytes] = {}
    for key, (first, second) in PAIRS.items():
        names = [f"{key}{i:04d}" for i in range(per_pair)]
        if first == "ALPHA_DISK":
            data.update(make_dataset(lake, SCOPE, f"ds_{key}", names, size=700))
        else:  # a rule brings them to the network RSE first, then the rule under test
            data.update(make_dataset(lake, SCOPE, f"ds_{key}", names, size=700))
            add_rule(lake, SCOPE, f"ds_{key}", first)
            settle(lake)
            with lake.write() as conn:  # the POSIX staging copies go: two copies, not three
                alpha = rses.get_rse_id(conn, "ALPHA_DISK")
                conn.execute(
                    update(replicas)
                    .where(replicas.c.rse_id == alpha, replicas.c.name.in_(names))
                    .values(tombstone=EPOCH)
                )
        add_rule(lake, SCOPE, f"ds_{key}", f"{first}|{second}", copies=2)
    settle(lake)
    return data


def test_the_drill(drill_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = drill_lake
    data = build(lake, 667)  # 2,001 files, 4,002 replicas
    lonely = make_dataset(lake, SCOPE, "lonely", ["solo0", "solo1", "solo2"], size=900)
    add_rule(lake, SCOPE, "lonely", "ALPHA_DISK")
    settle(lake)
    before = all_replicas(lake)
    assert len(before) == 4005
    assert {r.state for r in before.values()} == {"available"}
    stores = {rse: backend(lake, rse) for rse in ("ALPHA_DISK", "WEB_DISK", "S3_DISK")}
    try:
        _drill(lake, monkeypatch, data, lonely, stores)
    finally:
        for store in stores.values():
            getattr(store, "close", lambda: None)()


def _drill(
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    data: dict[str, bytes],
    lonely: dict[str, bytes],
    stores: dict[str, StorageBackend],
) -> None:
    before = all_replicas(lake)
    rng = random.Random(15)
    victims: dict[tuple[str, str], str] = {}
    files = sorted(data)
    for name in rng.sample(files, 200):  # one copy of 200 files: 5 % of the replicas
        rse = rng.choice(PAIRS[name[0]])
        how = rng.choice(["flip", "truncate", "delete"])
        damage(stores[rse], deterministic_path(SCOPE, name), how, data[name])
        victims[(name, rse)] = how
    for name, how in zip(sorted(lonely), ["flip", "truncate", "delete"], strict=True):
        damage(stores["ALPHA_DISK"], deterministic_path(SCOPE, name), how, lonely[name])
    dark = {"ALPHA_DISK": "stray/a.dat", "WEB_DISK": "stray/w.dat", "S3_DISK": "stray/s.dat"}
    for rse, path in dark.items():
        stores[rse].put(path, io.BytesIO(b"dark bytes"))
    alpha = rse_prefix(lake, "ALPHA_DISK")
    part = alpha / deterministic_path(SCOPE, "p0001")
    part = part.with_name(".p0001.lacus-part-00aa11bb22cc")
    part.write_bytes(b"a killed upload's part")
    time.sleep(1.1)
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 1)
    monkeypatch.setattr(lake.settings, "audit_max_fraction", 0.1)
    monkeypatch.setattr(lake.settings, "scrub_mb_per_second", 0)

    settle(lake, "auditor")
    settle(lake, "scrubber")
    found = all_replicas(lake)
    declared = {key for key, row in found.items() if row.state != "available"}
    expected = set(victims) | {(name, "ALPHA_DISK") for name in lonely}
    missed = {key: victims.get(key) for key in expected - declared}
    with lake.read() as conn:
        from lacus.db.tables import audits as audit_rows

        runs = [
            (r.rse_id, r.kind, r.state, r.files, r.bad, r.lost, r.detail)
            for r in conn.execute(select(audit_rows))
        ]
    assert not missed, (missed, runs)
    assert declared == expected  # 100 % of the damage, nothing else

    settle(lake, "necromancer", "conveyor", "repairer", "evaluator", "reaper", "dark-reaper")
    after = all_replicas(lake)
    for (name, rse), how in victims.items():
        assert after[(name, rse)].state == "available", (name, rse, how)
        assert right(stores[rse], deterministic_path(SCOPE, name), data[name]), (name, rse)
    for name in lonely:
        row = after[(name, "ALPHA_DISK")]
        assert row.state == "lost"
        assert "no good copy" in row.state_reason
    lost_rule = rule(lake, next(r for r in _rules(lake) if r[1] == "lonely")[0])
    assert lost_rule["state"] == "stuck"
    assert "FileLost" in lost_rule["error"]
    assert sorted(e["name"] for e in event_types(lake, "replica.lost")) == sorted(lonely)
    with lake.read() as conn:
        quarantined = {(row.rse_id, row.path) for row in conn.execute(select(quarantine))}
    assert len(quarantined) == 4
    for rse, path in dark.items():
        assert stores[rse].stat(path).bytes == 10  # quarantined, not deleted before its age
    assert part.exists()
    untouched = set(before) - set(victims) - {(n, "ALPHA_DISK") for n in lonely}
    for key in untouched:
        assert after[key].state == "available"
        assert after[key].created_at == before[key].created_at
    for name in rng.sample(files, 50):
        for rse in PAIRS[name[0]]:
            assert right(stores[rse], deterministic_path(SCOPE, name), data[name])
    for info in _rules(lake):
        if info[1] != "lonely":
            assert rule(lake, info[0])["state"] == "ok"


def _rules(lake: Lake) -> list[tuple[str, str]]:
    from lacus.db.tables import rules

    with lake.read() as conn:
        return [(r.id, r.name) for r in conn.execute(select(rules.c.id, rules.c.name))]


def test_an_audit_during_uploads_and_deletions_reports_nothing(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dataset(lake, SCOPE, "base", [f"b{i:04d}" for i in range(1500)], size=200)
    add_rule(lake, SCOPE, "base", "ALPHA_DISK")
    settle(lake)
    monkeypatch.setattr(lake.settings, "audit_grace_seconds", 1)
    monkeypatch.setattr(lake.settings, "audit_max_fraction", 1.0)
    time.sleep(1.1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        from tests.rule_helpers import put_files

        i = 0
        try:
            while not stop.is_set():
                put_files(lake, "ALPHA_DISK", SCOPE, [f"new{i:05d}"], size=100)
                with lake.write() as conn:  # an older file goes: the reaper deletes it
                    alpha = rses.get_rse_id(conn, "ALPHA_DISK")
                    conn.execute(
                        update(replicas)
                        .where(replicas.c.rse_id == alpha, replicas.c.name == f"new{i - 3:05d}")
                        .values(tombstone=EPOCH)
                    )
                settle(lake, "reaper")
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(3):
            with lake.write() as conn:
                from lacus.db.tables import integrity_work

                conn.execute(update(integrity_work).values(next_at=None))
            settle(lake, "auditor")
    finally:
        stop.set()
        worker.join()
    assert not errors
    states = {row.state for row in all_replicas(lake).values()}
    assert states <= {"available", "being_deleted"}
    with lake.read() as conn:
        assert list(conn.execute(select(quarantine))) == []
    audits_done = event_types(lake, "audit.finished")
    assert len(audits_done) >= 3 * 3
    assert all(e["dark"] == 0 and e["lost"] == 0 for e in audits_done)
