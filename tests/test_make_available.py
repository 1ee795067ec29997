"""``Client.make_available``: a rule, the rule.ok event waited for, and where the files are —
against the real test server and its embedded daemons (and a real WebDAV server)."""

from __future__ import annotations

import os
import secrets
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from lacus.client import Client
from lacus.client.fs import LacusFileSystem
from lacus.errors import DIDNotFound, RuleStuck
from lacus.naming import deterministic_path
from tests.servers.apache import ApacheServer

SCOPE = "lofar"


@pytest.fixture
def files(client: Client, tmp_path: Path) -> dict[str, bytes]:
    """``lofar:obs`` (a.fits, b.fits) and ``lofar:single.fits``, all on ALPHA_DISK."""
    client.add_scope(SCOPE)
    local = tmp_path / "local"
    local.mkdir()
    data = {name: os.urandom(100_000 + i) for i, name in enumerate(["a.fits", "b.fits"])}
    data["single.fits"] = os.urandom(50_000)
    for name, content in data.items():
        (local / name).write_bytes(content)
    client.upload(
        [local / "a.fits", local / "b.fits"], rse="ALPHA_DISK", scope=SCOPE, dataset="obs"
    )
    client.upload([local / "single.fits"], rse="ALPHA_DISK", scope=SCOPE)
    return data


def on_rse(tmp_path: Path, rse: str, name: str) -> str:
    return str(tmp_path / "rses" / rse / deterministic_path(SCOPE, name))


def test_a_file_is_copied_and_its_local_path_returned(
    client: Client, files: dict[str, bytes], tmp_path: Path
) -> None:
    path = client.make_available("lofar:single.fits", rse="BETA_DISK", lifetime=3600, timeout=60)
    assert path == on_rse(tmp_path, "BETA_DISK", "single.fits")
    assert Path(path).read_bytes() == files["single.fits"]
    (rule,) = client.list_rules(did="lofar:single.fits")
    assert (rule["rse_expression"], rule["state"]) == ("BETA_DISK", "OK")
    expires = datetime.fromisoformat(rule["expires_at"].replace("Z", "+00:00"))
    assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600


def test_a_dataset_maps_each_file_to_its_path(
    client: Client, files: dict[str, bytes], tmp_path: Path
) -> None:
    paths = client.make_available("lofar:obs", rse="site=BETA", lifetime=600)
    assert paths == {
        "lofar:a.fits": on_rse(tmp_path, "BETA_DISK", "a.fits"),
        "lofar:b.fits": on_rse(tmp_path, "BETA_DISK", "b.fits"),
    }
    for did, path in paths.items():
        assert Path(path).read_bytes() == files[did.partition(":")[2]]


def test_already_there_and_asked_twice(
    client: Client, files: dict[str, bytes], tmp_path: Path
) -> None:
    here = client.make_available("lofar:single.fits", rse="ALPHA_DISK", lifetime=60)
    assert here == on_rse(tmp_path, "ALPHA_DISK", "single.fits")
    assert client.list_transfers(did="lofar:single.fits") == []  # nothing was copied
    # The same request again: the account's rule is kept, its lifetime extended.
    again = client.make_available("lofar:single.fits", rse="ALPHA_DISK", lifetime=7200)
    assert again == here
    (rule,) = client.list_rules(did="lofar:single.fits")
    expires = datetime.fromisoformat(rule["expires_at"].replace("Z", "+00:00"))
    assert (expires - datetime.now(UTC)).total_seconds() > 7000


def test_a_stuck_rule_raises_with_its_error(
    client: Client, files: dict[str, bytes], tmp_path: Path
) -> None:
    """A read-only archive never receives copies: the rule is stuck at once, and says why."""
    archive = tmp_path / "archive"
    archive.mkdir()
    client.add_rse("ARCHIVE", prefix=str(archive), read_only=True)
    with pytest.raises(RuleStuck, match="read-only"):
        client.make_available("lofar:obs", rse="ARCHIVE", timeout=60)


def test_a_timeout_raises_saying_where_the_rule_is(client: Client, files: dict[str, bytes]) -> None:
    """The only replica cannot be read: the transfer retries, the rule stays replicating."""
    client.update_rse("ALPHA_DISK", availability_read=False)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="REPLICATING"):
        client.make_available("lofar:single.fits", rse="BETA_DISK", timeout=1.5)
    assert time.monotonic() - started < 30


def test_unknown_did(client: Client, files: dict[str, bytes]) -> None:
    with pytest.raises(DIDNotFound):
        client.make_available("lofar:nothing.fits", rse="BETA_DISK")


def test_a_remote_rse_gives_urls_and_fsspec_reads_there(
    client: Client,
    files: dict[str, bytes],
    apache_server: ApacheServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A WebDAV RSE (real Apache over HTTPS): the replica's URL, and lacus:// reads parts of
    the file there with range requests."""
    prefix = f"/lake-{secrets.token_hex(4)}"
    client.add_rse(
        "WEBS_DISK",
        scheme="davs",
        hostname="127.0.0.1",
        port=apache_server.https_port,
        prefix=prefix,
        options={"verify": apache_server.ca_path},
    )
    url = client.make_available("lofar:single.fits", rse="WEBS_DISK", lifetime=600, timeout=60)
    expected = f"{apache_server.base_url}{prefix}/{deterministic_path(SCOPE, 'single.fits')}"
    assert url.replace("davs://", "https://") == expected
    got = httpx.get(expected, verify=ssl.create_default_context(cafile=apache_server.ca_path))
    assert got.content == files["single.fits"]

    fs = LacusFileSystem(client=client, rse="WEBS_DISK", cache_dir=tmp_path / "cache")
    request.addfinalizer(fs.disconnect)  # its connections to the WebDAV server
    assert fs.locate("lofar/single.fits").candidates[0][0] == "WEBS_DISK"
    with fs.open("lofar/single.fits", block_size=4096) as stream:
        stream.seek(40_000)
        assert stream.read(100) == files["single.fits"][40_000:40_100]
    assert not (tmp_path / "cache").exists()  # parts, not a local copy
    assert fs.make_available("lofar/obs/a.fits") == (
        f"davs://127.0.0.1:{apache_server.https_port}{prefix}/{deterministic_path(SCOPE, 'a.fits')}"
    )
