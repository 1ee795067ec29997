"""Rules moving files between real storage servers through every protocol Lacus speaks:
POSIX → WebDAV over HTTPS (Apache) → WebDAV (Apache) → XRootD's HTTP (third-party copy)
→ XRootD root:// → S3 (SeaweedFS) → POSIX. Each hop is a rule whose source is forced to the
previous RSE; every replica must end verified, with the bytes the user uploaded."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import pytest
from sqlalchemy import insert

from lacus.core import rses
from lacus.db.tables import distances
from lacus.naming import deterministic_path
from lacus.service.lake import Lake
from lacus.types import ProtocolInfo
from tests.rule_helpers import add_rule, event_types, make_dataset, rse_prefix, rule, settle
from tests.servers.apache import ApacheServer
from tests.servers.seaweedfs import SeaweedFS
from tests.servers.xrootd import XRootDServer


def add_network_rse(
    lake: Lake, name: str, scheme: str, host: str, port: int, prefix: str, **options: Any
) -> None:
    with lake.write() as conn:
        rse_id = rses.add_rse(conn, name, attributes={"site": name, "net": "true"})
        rses.add_protocol(
            conn,
            rse_id,
            ProtocolInfo(
                scheme=scheme,
                hostname=host,
                port=port,
                prefix=prefix,
                impl=scheme,
                extended_attributes=options or None,
            ),
        )


@pytest.fixture
def network_rses(
    lake: Lake,
    apache_server: ApacheServer,
    xrootd_server: XRootDServer,
    seaweedfs_server: SeaweedFS,
) -> Lake:
    run = secrets.token_hex(4)  # the servers live for the session: a fresh prefix per test
    add_network_rse(
        lake, "WEBS_DISK", "davs", "127.0.0.1", apache_server.https_port, f"/lake-{run}/s",
        verify=apache_server.ca_path,
    )  # fmt: skip
    # Plain HTTP for the RSE XRootD pulls from: the XRootD test server trusts only its own CA.
    add_network_rse(lake, "WEB_DISK", "dav", "127.0.0.1", apache_server.http_port, f"/lake-{run}/p")
    add_network_rse(
        lake, "XHTTP_DISK", "davs", xrootd_server.host, xrootd_server.http_port,
        f"/lake-{run}/http", verify=str(xrootd_server.ca_path), tpc=True,
    )  # fmt: skip
    add_network_rse(
        lake, "XROOT_DISK", "root", xrootd_server.host, xrootd_server.root_port,
        f"//lake-{run}/root",
    )  # fmt: skip
    add_network_rse(
        lake, "S3_DISK", "s3", seaweedfs_server.host, seaweedfs_server.port,
        f"{seaweedfs_server.bucket}/lake-{run}", access_key=seaweedfs_server.access_key,
        secret_key=seaweedfs_server.secret_key, secure=False,
    )  # fmt: skip
    return lake


def test_a_file_travels_through_every_protocol(network_rses: Lake) -> None:
    lake = network_rses
    data = make_dataset(lake, "data", "ds", ["chunk_0", "chunk_1"], size=3 * 1024 * 1024 + 5)
    chain = [
        "ALPHA_DISK", "WEBS_DISK", "WEB_DISK", "XHTTP_DISK", "XROOT_DISK", "S3_DISK", "BETA_DISK",
    ]  # fmt: skip
    for source, dest in itertools.pairwise(chain):
        rule_id = add_rule(lake, "data", "ds", dest, source_replica_expression=source)
        settle(lake, "evaluator", "conveyor")
        assert rule(lake, rule_id)["state"] == "ok", f"{source} -> {dest}"
    beta = rse_prefix(lake, "BETA_DISK")
    for name, content in data.items():
        assert (beta / deterministic_path("data", name)).read_bytes() == content
    methods = {(e["source_rse_id"], e["dest_rse_id"]): e["method"] for e in done_events(lake)}
    ids = rse_ids(lake)
    assert methods[(ids["WEB_DISK"], ids["XHTTP_DISK"])] == "tpc"  # XRootD pulled from Apache
    assert methods[(ids["ALPHA_DISK"], ids["WEBS_DISK"])] == "stream"
    assert methods[(ids["S3_DISK"], ids["BETA_DISK"])] == "stream"


def test_multi_hop_through_a_network_rse(network_rses: Lake) -> None:
    lake = network_rses
    data = make_dataset(lake, "data", "ds", ["a"], size=100_000)
    with lake.write() as conn:
        rses.set_attribute(conn, rses.get_rse_id(conn, "S3_DISK"), "available_for_multihop", "true")
        ids = {info["rse"]: info["id"] for info in rses.list_rses(conn)}
        conn.execute(
            insert(distances),
            [
                {"src_rse_id": ids["ALPHA_DISK"], "dest_rse_id": ids["S3_DISK"], "distance": 1},
                {"src_rse_id": ids["S3_DISK"], "dest_rse_id": ids["XROOT_DISK"], "distance": 1},
            ],
        )
    rule_id = add_rule(lake, "data", "ds", "XROOT_DISK")
    settle(lake, "evaluator", "conveyor")
    assert rule(lake, rule_id)["state"] == "ok"
    (event,) = done_events(lake)
    assert event["method"].startswith("multihop via S3_DISK")
    with lake.read() as conn:
        info = rses.get_rse(conn, "S3_DISK")
    assert info["files"] == 0  # the hop copy was never a replica, and it is gone
    from lacus.service.replicas import backend_for_rse

    assert list(backend_for_rse(info).list()) == []
    assert len(data["a"]) == 100_000


def done_events(lake: Lake) -> list[dict[str, Any]]:
    return event_types(lake, "transfer.done")


def rse_ids(lake: Lake) -> dict[str, int]:
    with lake.read() as conn:
        return {info["rse"]: info["id"] for info in rses.list_rses(conn)}
