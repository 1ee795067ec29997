"""The reaper on real storage: free-space targets (least recently accessed first, until met),
what it never deletes (locked replicas, a transfer's source, bytes on read-only RSEs), and a
storage that refuses to delete."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select, update

from lacus.client import Client
from lacus.core import reaping, rses
from lacus.core import replicas as core_replicas
from lacus.core.clock import utcnow
from lacus.core.locks import EPOCH
from lacus.db.tables import replicas, requests
from lacus.naming import deterministic_path
from lacus.service import rules as service_rules
from lacus.service.lake import Lake
from lacus.types import ProtocolInfo
from tests.conftest import RunningServer
from tests.rule_helpers import (
    ROOT,
    add_rule,
    copy_and_finish,
    event_types,
    make_dataset,
    put_files,
    request_rows,
    rse_prefix,
    settle,
)
from tests.servers.xrootd import XRootDServer


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data):08x}"


def configure(lake: Lake, rse: str, *, total_bytes: int | None = None, **attributes: str) -> None:
    with lake.write() as conn:
        found = rses.get_rse_id(conn, rse)
        if total_bytes is not None:
            rses.update_rse(conn, found, total_bytes=total_bytes)
        for key, value in attributes.items():
            rses.set_attribute(conn, found, key, value)


def set_replica(lake: Lake, rse: str, name: str, **values: object) -> None:
    with lake.write() as conn:
        conn.execute(
            update(replicas)
            .where(replicas.c.rse_id == rses.get_rse_id(conn, rse), replicas.c.name == name)
            .values(**values)
        )


def names_on(lake: Lake, rse: str) -> set[str]:
    with lake.read() as conn:
        rows = conn.execute(
            select(replicas.c.name).where(replicas.c.rse_id == rses.get_rse_id(conn, rse))
        )
        return set(rows.scalars())


def on_disk(lake: Lake, rse: str, scope: str, names: list[str]) -> set[str]:
    prefix = rse_prefix(lake, rse)
    return {name for name in names if (prefix / deterministic_path(scope, name)).exists()}


def used_bytes(lake: Lake, rse: str) -> int:
    with lake.read() as conn:
        return rses.get_rse(conn, rse)["used_bytes"]


def test_space_target_deletes_least_recently_accessed_until_met(lake: Lake) -> None:
    names = [f"f{i}" for i in range(9)]
    make_dataset(lake, "data", "ds", names, size=100)  # 900 bytes on ALPHA
    now = utcnow()
    hours = timedelta(hours=1)
    # f0-f5 may go when space is needed; f6 and f7 have no tombstone; f8's is in the future.
    accessed: dict[str, datetime | None] = {
        "f0": now - 1 * hours,
        "f1": now - 6 * hours,
        "f2": None,  # never read: its creation (10 hours ago) counts
        "f3": now - 3 * hours,
        "f4": now - 2 * hours,
        "f5": now - hours / 2,
    }
    for name, when in accessed.items():
        set_replica(lake, "ALPHA_DISK", name, tombstone=now - hours, accessed_at=when)
    set_replica(lake, "ALPHA_DISK", "f2", created_at=now - 10 * hours)
    set_replica(lake, "ALPHA_DISK", "f8", tombstone=now + 24 * hours, accessed_at=now - 48 * hours)

    settle(lake, "reaper")  # no target yet: a tombstone of the past waits for space pressure
    assert len(names_on(lake, "ALPHA_DISK")) == 9

    configure(lake, "ALPHA_DISK", total_bytes=1000, min_free_bytes="350")  # free 100: 250 short
    settle(lake, "reaper")
    gone = set(names) - names_on(lake, "ALPHA_DISK")
    assert gone == {"f2", "f1", "f3"}, "the three least recently accessed: 300 bytes freed"
    assert on_disk(lake, "ALPHA_DISK", "data", names) == set(names) - gone
    assert used_bytes(lake, "ALPHA_DISK") == 600
    settle(lake, "reaper")  # the target is met: nothing more goes
    assert len(names_on(lake, "ALPHA_DISK")) == 6

    configure(lake, "ALPHA_DISK", min_free_ratio="0.9")  # 900 free wanted: only 400 reachable
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"f6", "f7", "f8"}, "no tombstone (or a future one)"
    assert on_disk(lake, "ALPHA_DISK", "data", names) == {"f6", "f7", "f8"}
    assert len(event_types(lake, "replica.deleted")) == 6


def test_replicas_still_needed_are_passed_over_page_after_page(lake: Lake) -> None:
    # 60 old replicas are the only sources of transfers to BETA: the reaper reads past them
    # (more than a page) to the two it may delete.
    needed = [f"n{i:02d}" for i in range(60)]
    make_dataset(lake, "data", "needed", needed)
    make_dataset(lake, "data", "spare", ["s0", "s1"])
    add_rule(lake, "data", "needed", "BETA_DISK")
    settle(lake, "evaluator")
    now = utcnow()
    for name in needed:
        set_replica(lake, "ALPHA_DISK", name, tombstone=EPOCH + timedelta(days=2))
        set_replica(lake, "ALPHA_DISK", name, accessed_at=now - timedelta(days=30))
    for name in ("s0", "s1"):
        set_replica(lake, "ALPHA_DISK", name, tombstone=now - timedelta(hours=1))
    configure(lake, "ALPHA_DISK", total_bytes=6200, min_free_bytes="1000")
    with lake.write() as conn:  # a small batch: pages of 50 candidates
        chosen = reaping.pick(conn, limit=5)
        assert sorted(row.name for row in chosen) == ["s0", "s1"]
        reaping.restore(conn, chosen)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set(needed)
    assert len(request_rows(lake)) == 60


def test_locked_replicas_stay_however_short_the_space(lake: Lake) -> None:
    names = [f"f{i}" for i in range(4)]
    make_dataset(lake, "data", "ds", names)
    rule_id = add_rule(lake, "data", "ds", "ALPHA_DISK")
    settle(lake, "evaluator")
    configure(lake, "ALPHA_DISK", total_bytes=400, min_free_ratio="1")
    set_replica(lake, "ALPHA_DISK", "f0", tombstone=EPOCH)
    set_replica(lake, "ALPHA_DISK", "f1", tombstone=utcnow() - timedelta(days=1))
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set(names)
    service_rules.delete_rule(lake, ROOT, rule_id)  # unlocked: tombstoned now
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set()
    assert on_disk(lake, "ALPHA_DISK", "data", names) == set()


def test_the_source_of_a_transfer_is_kept_until_the_transfer_is_gone(lake: Lake) -> None:
    # The only copy, on ALPHA, is the source BETA's transfer waits for.
    make_dataset(lake, "data", "ds", ["only"])
    rule_id = add_rule(lake, "data", "ds", "BETA_DISK")
    settle(lake, "evaluator")
    set_replica(lake, "ALPHA_DISK", "only", tombstone=EPOCH)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"only"}
    service_rules.delete_rule(lake, ROOT, rule_id)  # the request goes with its rule
    assert request_rows(lake) == []
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set()

    # Two copies, ALPHA and GAMMA; the conveyor copies from ALPHA right now: GAMMA may go, not
    # ALPHA, although another copy would survive if GAMMA stayed.
    make_dataset(lake, "data", "ds2", ["pair"])
    put_files(lake, "GAMMA_TAPE", "data", ["pair"])
    add_rule(lake, "data", "ds2", "BETA_DISK")
    settle(lake, "evaluator")
    with lake.write() as conn:
        conn.execute(
            update(requests).values(
                state="submitted",
                source_rse_id=rses.get_rse_id(conn, "ALPHA_DISK"),
                claimed_by="conveyor@test",
                lease_until=utcnow() + timedelta(minutes=5),
            )
        )
    for rse in ("ALPHA_DISK", "GAMMA_TAPE"):
        set_replica(lake, rse, "pair", tombstone=EPOCH)
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == {"pair"}
    assert names_on(lake, "GAMMA_TAPE") == set()
    (request,) = request_rows(lake)
    copy_and_finish(lake, request)  # the copy is on BETA now; the request is done
    settle(lake, "reaper")
    assert names_on(lake, "ALPHA_DISK") == set()
    assert names_on(lake, "BETA_DISK") == {"pair"}


def add_posix_rse(lake: Lake, name: str, prefix: Path, *, read_only: bool = False) -> None:
    prefix.mkdir(parents=True, exist_ok=True)
    with lake.write() as conn:
        found = rses.add_rse(conn, name, read_only=read_only)
        rses.add_protocol(
            conn,
            found,
            ProtocolInfo(scheme="file", hostname="", port=0, prefix=str(prefix), impl="posix"),
        )


def test_bytes_on_a_read_only_rse_are_never_deleted(lake: Lake, tmp_path: Path) -> None:
    add_posix_rse(lake, "ARCHIVE", tmp_path / "archive", read_only=True)
    names = ["a0", "a1", "a2"]
    make_dataset(lake, "data", "ds", names, rse="ARCHIVE")
    configure(lake, "ARCHIVE", total_bytes=300, min_free_ratio="1")
    set_replica(lake, "ARCHIVE", "a0", tombstone=EPOCH)  # purged by a rule: forgotten only
    set_replica(lake, "ARCHIVE", "a1", tombstone=utcnow() - timedelta(days=1))
    settle(lake, "reaper")
    assert names_on(lake, "ARCHIVE") == {"a1", "a2"}, "no free-space target on an archive"
    assert on_disk(lake, "ARCHIVE", "data", names) == set(names), "the archive is untouched"
    (event,) = event_types(lake, "replica.deleted")
    assert (event["name"], event["bytes_kept"]) == ("a0", True)
    configure(lake, "ARCHIVE", greedy_deletion="true")  # due now, but again forgotten only
    settle(lake, "reaper")
    assert names_on(lake, "ARCHIVE") == {"a2"}
    assert on_disk(lake, "ARCHIVE", "data", names) == set(names)


def test_a_storage_refusing_the_deletion_gets_its_replica_back(
    lake: Lake, xrootd_server: XRootDServer
) -> None:
    # The server exports ``readonly`` notwritable: it refuses every delete there.
    data = b"archived bytes"
    path = deterministic_path("data", "kept")
    xrootd_server.write_file(f"{xrootd_server.readonly_prefix}/{path}", data)
    with lake.write() as conn:
        found = rses.add_rse(conn, "XROOTD_DISK")
        rses.add_protocol(
            conn,
            found,
            ProtocolInfo(
                scheme="root",
                hostname=xrootd_server.host,
                port=xrootd_server.root_port,
                prefix=xrootd_server.readonly_prefix,
                impl="root",
                extended_attributes={"timeout": 10},
            ),
        )
    make_dataset(lake, "data", "ds", [])
    spec = {"scope": "data", "name": "kept", "bytes": len(data), "adler32": adler32(data)}
    with lake.write() as conn:
        core_replicas.add_replicas(conn, found, [spec], account="root", deterministic=True)  # type: ignore[list-item]
    set_replica(lake, "XROOTD_DISK", "kept", tombstone=EPOCH)
    settle(lake, "reaper")
    with lake.read() as conn:
        (row,) = conn.execute(select(replicas).where(replicas.c.name == "kept"))
    assert row.state == "available"
    assert row.tombstone == EPOCH, "still to delete: the next pass tries again"
    assert (xrootd_server.export_dir / xrootd_server.readonly_prefix / path).read_bytes() == data
    assert event_types(lake, "replica.deleted") == []


def test_downloads_record_when_replicas_were_last_read(
    client: Client, server: RunningServer, tmp_path: Path
) -> None:
    client.add_scope("data")
    local = tmp_path / "up.dat"
    local.write_bytes(b"read me")
    client.upload([local], rse="ALPHA_DISK", scope="data")
    lake = server.lake

    def accessed() -> datetime | None:
        with lake.read() as conn:
            return conn.execute(select(replicas.c.accessed_at)).scalar_one()

    assert accessed() is None
    client.download(["data:up.dat"], tmp_path / "out")
    first = accessed()
    assert first is not None
    assert abs(first - utcnow()) < timedelta(minutes=5)
    client.download(["data:up.dat"], tmp_path / "again")  # within a minute: not written again
    assert accessed() == first
    # Rucio's download trace (one per file, no token) does the same.
    set_replica(lake, "ALPHA_DISK", "up.dat", accessed_at=first - timedelta(hours=1))

    trace = {
        "eventType": "download",
        "clientState": "DONE",
        "scope": "data",
        "filename": "up.dat",
        "remoteSite": "ALPHA_DISK",
    }
    assert httpx.post(f"{server.url}/traces/", json=trace).status_code == 201
    latest = accessed()
    assert latest is not None
    assert latest >= first, "moved forward from an hour before"
    for junk in ([1, "x", None], {"eventType": "download"}, "nonsense", {"scope": 7}):
        assert httpx.post(f"{server.url}/traces/", json=junk).status_code == 201
