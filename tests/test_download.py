"""Downloads through ``lacus.Client``: every file verified, laid out predictably, never partial."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest

from lacus.client import Client
from lacus.errors import ChecksumMismatch, DIDNotFound

SCOPE = "virgo"


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def hash_path(scope: str, name: str) -> str:
    """Rucio's hash layout (scopes without a user/group prefix)."""
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return f"{scope}/{digest[:2]}/{digest[2:4]}/{name}"


def stored(tmp_path: Path, rse: str, scope: str, name: str) -> Path:
    """The file holding ``scope:name`` on one of the test lake's RSEs."""
    return tmp_path / "rses" / rse / hash_path(scope, name)


def files_under(root: Path) -> list[str]:
    """Every file below ``root``, hidden (part) files included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0xFF]))


class Source:
    """Local files to upload, remembered by name so downloads can be compared with them."""

    def __init__(self, client: Client, root: Path) -> None:
        self.client = client
        self.root = root
        self.data: dict[str, bytes] = {}

    def file(self, relative: str, size: int) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        self.data[relative.rsplit("/", 1)[-1]] = data
        return path

    def upload(self, paths: list[Path], *, rse: str = "ALPHA_DISK", **options: object) -> None:
        self.client.upload(paths, rse=rse, scope=options.pop("scope", SCOPE), **options)  # type: ignore[arg-type]


@pytest.fixture
def source(client: Client, tmp_path: Path) -> Source:
    client.add_scope(SCOPE)
    return Source(client, tmp_path / "local")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


def test_download_one_file(client: Client, source: Source, out: Path) -> None:
    source.upload([source.file("chunk.h5", 200_000)])

    results = client.download([f"{SCOPE}:chunk.h5"], out)

    assert (out / SCOPE / "chunk.h5").read_bytes() == source.data["chunk.h5"]
    assert files_under(out) == [f"{SCOPE}/chunk.h5"]
    assert [(r["did"], r["status"], r["rse"], r["path"], r["bytes"]) for r in results] == [
        (f"{SCOPE}:chunk.h5", "downloaded", "ALPHA_DISK", str(out / SCOPE / "chunk.h5"), 200_000)
    ]


def test_download_a_dataset(client: Client, source: Source, out: Path) -> None:
    paths = [source.file(f"run/f{i}", 1000 * i + 3) for i in range(5)]
    source.upload(paths, dataset="run7")
    source.upload([source.file("elsewhere", 10)])

    results = client.download([f"{SCOPE}:run7"], out)

    assert sorted(r["status"] for r in results) == ["downloaded"] * 5
    assert files_under(out) == [f"{SCOPE}/f{i}" for i in range(5)]
    for i in range(5):
        assert (out / SCOPE / f"f{i}").read_bytes() == source.data[f"f{i}"]


def _sky(source: Source) -> None:
    """Container ``sky`` of datasets ``sky.night`` (n1, n2) and ``sky.day`` (d1)."""
    source.file("sky/night/n1", 3000)
    source.file("sky/night/n2", 4000)
    source.file("sky/day/d1", 5000)
    source.upload([source.root / "sky"])


def test_download_a_container_flat(client: Client, source: Source, out: Path) -> None:
    _sky(source)

    client.download([f"{SCOPE}:sky"], out)

    assert files_under(out) == [f"{SCOPE}/d1", f"{SCOPE}/n1", f"{SCOPE}/n2"]
    for name in ("d1", "n1", "n2"):
        assert (out / SCOPE / name).read_bytes() == source.data[name]


def test_download_with_structure_keeps_container_and_dataset_directories(
    client: Client, source: Source, out: Path
) -> None:
    _sky(source)

    client.download([f"{SCOPE}:sky"], out, structure=True)

    assert files_under(out) == [
        f"{SCOPE}/sky/sky.day/d1",
        f"{SCOPE}/sky/sky.night/n1",
        f"{SCOPE}/sky/sky.night/n2",
    ]
    for relative in files_under(out):
        assert (out / relative).read_bytes() == source.data[relative.rsplit("/", 1)[1]]

    source.upload([source.file("a", 100), source.file("b", 200)], dataset="pair")
    client.download([f"{SCOPE}:pair"], out / "datasets", structure=True)
    assert files_under(out / "datasets") == [f"{SCOPE}/pair/a", f"{SCOPE}/pair/b"]
    assert (out / "datasets" / SCOPE / "pair/b").read_bytes() == source.data["b"]


def test_download_by_wildcard(client: Client, source: Source, out: Path) -> None:
    source.upload([source.file("raw1", 100), source.file("raw2", 200), source.file("other", 300)])
    source.upload([source.file("set/inside", 400)], dataset="rset")

    results = client.download([f"{SCOPE}:r*"], out)

    assert files_under(out) == [f"{SCOPE}/inside", f"{SCOPE}/raw1", f"{SCOPE}/raw2"]
    assert sorted(r["did"] for r in results) == [
        f"{SCOPE}:inside",
        f"{SCOPE}:raw1",
        f"{SCOPE}:raw2",
    ]
    for name in ("inside", "raw1", "raw2"):
        assert (out / SCOPE / name).read_bytes() == source.data[name]
    with pytest.raises(DIDNotFound):
        client.download([f"{SCOPE}:zzz*"], out)
    with pytest.raises(DIDNotFound):
        client.download([f"{SCOPE}:nothing"], out)


def test_same_name_in_two_scopes_downloads_to_two_paths(
    client: Client, source: Source, out: Path, tmp_path: Path
) -> None:
    client.add_scope("lofar")
    virgo_data, lofar_data = os.urandom(5000), os.urandom(6000)
    for scope, data in (("virgo", virgo_data), ("lofar", lofar_data)):
        local = tmp_path / scope / "data.h5"
        local.parent.mkdir()
        local.write_bytes(data)
        client.upload([local], rse="ALPHA_DISK", scope=scope)

    results = client.download(["virgo:data.h5", "lofar:data.h5"], out)

    assert sorted(r["status"] for r in results) == ["downloaded", "downloaded"]
    assert (out / "virgo/data.h5").read_bytes() == virgo_data
    assert (out / "lofar/data.h5").read_bytes() == lofar_data


def test_a_present_file_with_the_right_checksum_is_not_rewritten(
    client: Client, source: Source, out: Path
) -> None:
    source.upload([source.file("keep.dat", 50_000)])
    client.download([f"{SCOPE}:keep.dat"], out)
    target = out / SCOPE / "keep.dat"
    before = target.stat()

    [result] = client.download([f"{SCOPE}:keep.dat"], out)

    assert (result["status"], result["rse"]) == ("present", None)
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert target.read_bytes() == source.data["keep.dat"]


def test_a_present_file_with_wrong_content_is_replaced(
    client: Client, source: Source, out: Path
) -> None:
    source.upload([source.file("same_size.dat", 20_000), source.file("shorter.dat", 20_000)])
    for name, stale in (("same_size.dat", bytes(20_000)), ("shorter.dat", b"stale")):
        (out / SCOPE).mkdir(parents=True, exist_ok=True)
        (out / SCOPE / name).write_bytes(stale)
        assert adler32(stale) != adler32(source.data[name])

    results = client.download([f"{SCOPE}:same_size.dat", f"{SCOPE}:shorter.dat"], out)

    assert [r["status"] for r in results] == ["downloaded", "downloaded"]
    for name in ("same_size.dat", "shorter.dat"):
        assert (out / SCOPE / name).read_bytes() == source.data[name]
    assert files_under(out) == [f"{SCOPE}/same_size.dat", f"{SCOPE}/shorter.dat"]


def test_a_corrupted_replica_is_skipped_for_a_good_one(
    client: Client, source: Source, out: Path, tmp_path: Path
) -> None:
    local = source.file("precious.dat", 100_000)
    source.upload([local], rse="ALPHA_DISK")
    source.upload([local], rse="BETA_DISK")
    flip_byte(stored(tmp_path, "ALPHA_DISK", SCOPE, "precious.dat"), 54_321)

    [result] = client.download([f"{SCOPE}:precious.dat"], out)

    assert (result["status"], result["rse"]) == ("downloaded", "BETA_DISK")
    assert (out / SCOPE / "precious.dat").read_bytes() == source.data["precious.dat"]
    assert files_under(out) == [f"{SCOPE}/precious.dat"]


def test_the_only_replica_corrupted_raises_and_leaves_nothing(
    client: Client, source: Source, out: Path, tmp_path: Path
) -> None:
    source.upload([source.file("broken.dat", 100_000)], rse="ALPHA_DISK")
    flip_byte(stored(tmp_path, "ALPHA_DISK", SCOPE, "broken.dat"), 0)

    with pytest.raises(ChecksumMismatch, match=adler32(source.data["broken.dat"])):
        client.download([f"{SCOPE}:broken.dat"], out)

    assert not (out / SCOPE / "broken.dat").exists()
    assert files_under(out) == []


def test_a_corrupted_replica_does_not_destroy_an_older_local_copy(
    client: Client, source: Source, out: Path, tmp_path: Path
) -> None:
    source.upload([source.file("keep_mine.dat", 10_000)])
    flip_byte(stored(tmp_path, "ALPHA_DISK", SCOPE, "keep_mine.dat"), 5)
    target = out / SCOPE / "keep_mine.dat"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"my own older copy")

    with pytest.raises(ChecksumMismatch):
        client.download([f"{SCOPE}:keep_mine.dat"], out)

    assert target.read_bytes() == b"my own older copy"
    assert files_under(out) == [f"{SCOPE}/keep_mine.dat"]
