"""``lacus://`` through fsspec, against the real test server: what pandas, h5py and a notebook
user see (open, ls, info, glob, write, errors), and that reads are verified."""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lacus.client import Client
from lacus.client.fs import LacusFileSystem
from lacus.errors import ChecksumMismatch, InvalidInput
from lacus.naming import deterministic_path
from tests.conftest import RunningServer

SCOPE = "lofar"
MiB = 1024 * 1024
TABLE = pd.DataFrame({"frequency": [120.5, 130.25, 140.0], "flux": [1.5, 2.25, 3.0]})


def stored(tmp_path: Path, rse: str, scope: str, name: str) -> Path:
    """The file holding ``scope:name`` on one of the test lake's RSEs."""
    return tmp_path / "rses" / rse / deterministic_path(scope, name)


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture(autouse=True)
def fresh_instances() -> Iterator[None]:
    """fsspec keeps a file system per set of arguments for the process: lacus:// without
    arguments would bring the RSEs of an earlier test's lake (other directories)."""
    yield
    for instance in list(LacusFileSystem._cache.values()):
        instance.disconnect()
    LacusFileSystem.clear_instance_cache()


@pytest.fixture
def fs(client: Client, tmp_path: Path) -> LacusFileSystem:
    return LacusFileSystem(client=client, rse="ALPHA_DISK", cache_dir=tmp_path / "cache")


@pytest.fixture
def lake_files(client: Client, tmp_path: Path) -> dict[str, bytes]:
    """``lofar``: the container ``run`` of datasets ``obs_1`` (table.csv, noise.bin) and
    ``obs_2`` (beam.h5, other.csv); a file ``readme.txt`` in no collection."""
    client.add_scope(SCOPE)
    local = tmp_path / "local"
    local.mkdir()
    contents: dict[str, bytes] = {
        "table.csv": TABLE.to_csv(index=False).encode(),
        "noise.bin": os.urandom(3 * MiB + 5),
        "other.csv": b"a,b\n1,2\n",
        "readme.txt": b"LOFAR test data\n",
    }
    with h5py.File(local / "beam.h5", "w") as h5:
        h5.create_dataset("beam", data=np.arange(2 * MiB, dtype="float32").reshape(1024, -1))
        h5.attrs["telescope"] = "LOFAR"
    contents["beam.h5"] = (local / "beam.h5").read_bytes()
    for name, data in contents.items():
        if name != "beam.h5":
            (local / name).write_bytes(data)
    for dataset, names in {
        "obs_1": ["table.csv", "noise.bin"],
        "obs_2": ["beam.h5", "other.csv"],
    }.items():
        client.upload([local / n for n in names], rse="ALPHA_DISK", scope=SCOPE, dataset=dataset)
    client.upload([local / "readme.txt"], rse="ALPHA_DISK", scope=SCOPE)
    client.add_container(f"{SCOPE}:run")
    client.attach(f"{SCOPE}:run", [f"{SCOPE}:obs_1", f"{SCOPE}:obs_2"])
    return contents


def test_fsspec_open_and_pandas_read_lake_files(
    client: Client, lake_files: dict[str, bytes]
) -> None:
    """The entry point registers lacus://; the connection comes from LACUS_URL/ACCOUNT/PASSWORD."""
    with fsspec.open("lacus://lofar/readme.txt", "rb") as stream:
        assert stream.read() == lake_files["readme.txt"]
    with fsspec.open("lacus://lofar/run/obs_2/other.csv", "rt") as text:
        assert text.read() == "a,b\n1,2\n"
    pd.testing.assert_frame_equal(pd.read_csv("lacus://lofar/obs_1/table.csv"), TABLE)
    pd.testing.assert_frame_equal(pd.read_csv("lacus://lofar:table.csv"), TABLE)


def test_h5py_reads_parts_of_a_file(fs: LacusFileSystem, lake_files: dict[str, bytes]) -> None:
    with (
        fs.open("lacus://lofar/obs_2/beam.h5", "rb", block_size=256 * 1024) as stream,
        h5py.File(stream, "r") as h5,
    ):
        assert h5.attrs["telescope"] == "LOFAR"
        beam = h5["beam"]
        assert beam.shape == (1024, 2048)
        assert beam[1000, 5] == 1000 * 2048 + 5
        assert np.array_equal(beam[3], np.arange(3 * 2048, 4 * 2048, dtype="float32"))


def test_xarray_opens_a_netcdf_file(fs: LacusFileSystem, client: Client, tmp_path: Path) -> None:
    cube = xr.Dataset(
        {"flux": (("time", "freq"), np.arange(50 * 30, dtype="float64").reshape(50, 30))},
        coords={"time": np.arange(50), "freq": np.linspace(120.0, 180.0, 30)},
        attrs={"telescope": "LOFAR"},
    )
    local = tmp_path / "cube.nc"
    cube.to_netcdf(local, engine="h5netcdf")
    client.add_scope(SCOPE)
    fs.put(str(local), "lacus://lofar/cube.nc")
    with (
        fs.open("lacus://lofar/cube.nc") as remote,
        xr.open_dataset(remote, engine="h5netcdf") as back,
    ):
        xr.testing.assert_identical(back.load(), cube)


def test_random_access_and_cat(fs: LacusFileSystem, lake_files: dict[str, bytes]) -> None:
    noise = lake_files["noise.bin"]
    with fs.open("lofar/noise.bin", block_size=MiB) as stream:
        stream.seek(2 * MiB + 7)
        assert stream.read(100) == noise[2 * MiB + 7 : 2 * MiB + 107]
        stream.seek(-10, io.SEEK_END)
        assert stream.read() == noise[-10:]
        stream.seek(0)
        assert stream.read() == noise
    assert fs.cat_file("lofar/noise.bin") == noise
    assert fs.cat_file("lofar/noise.bin", start=10, end=20) == noise[10:20]
    assert fs.cat_file("lofar/noise.bin", start=-4) == noise[-4:]
    assert fs.cat(["lofar/readme.txt", "lofar/other.csv"]) == {
        "lofar/readme.txt": lake_files["readme.txt"],
        "lofar/other.csv": lake_files["other.csv"],
    }


def test_ls_and_info(fs: LacusFileSystem, lake_files: dict[str, bytes]) -> None:
    assert fs.ls("lacus://", detail=False) == [SCOPE]
    assert fs.ls("lofar", detail=False) == [
        "lofar/beam.h5", "lofar/noise.bin", "lofar/obs_1", "lofar/obs_2", "lofar/other.csv",
        "lofar/readme.txt", "lofar/run", "lofar/table.csv",
    ]  # fmt: skip
    assert fs.ls("lofar/run", detail=False) == ["lofar/run/obs_1", "lofar/run/obs_2"]
    listed = fs.ls("lacus://lofar/run/obs_1", detail=True)
    assert [entry["name"] for entry in listed] == [
        "lofar/run/obs_1/noise.bin",
        "lofar/run/obs_1/table.csv",
    ]
    noise = listed[0]
    assert noise["type"] == "file"
    assert noise["size"] == len(lake_files["noise.bin"])
    assert noise["adler32"] == f"{zlib.adler32(lake_files['noise.bin']):08x}"
    assert noise["did"] == "lofar:noise.bin"

    info = fs.info("lofar/obs_1/table.csv")
    assert (info["type"], info["size"], info["did_type"]) == (
        "file",
        len(lake_files["table.csv"]),
        "file",
    )
    assert info["md5"]
    assert fs.info("lofar/obs_1")["type"] == "directory"
    assert fs.info("lofar")["type"] == "directory"
    assert fs.isdir("lofar/run")
    assert fs.isfile("lofar/readme.txt")
    assert fs.ls("lofar/readme.txt", detail=False) == ["lofar/readme.txt"]
    assert fs.size("lofar/noise.bin") == len(lake_files["noise.bin"])
    assert fs.checksum("lofar/readme.txt") == zlib.adler32(lake_files["readme.txt"])
    assert sorted(fs.find("lofar/run")) == [
        "lofar/run/obs_1/noise.bin", "lofar/run/obs_1/table.csv",
        "lofar/run/obs_2/beam.h5", "lofar/run/obs_2/other.csv",
    ]  # fmt: skip
    assert fs.du("lofar/run/obs_2") == len(lake_files["beam.h5"]) + len(lake_files["other.csv"])


def test_glob(fs: LacusFileSystem, lake_files: dict[str, bytes]) -> None:
    assert fs.glob("lacus://lofar/obs_*") == ["lofar/obs_1", "lofar/obs_2"]
    assert fs.glob("lofar/*.csv") == ["lofar/other.csv", "lofar/table.csv"]
    assert fs.glob("lofar/obs_1/*.csv") == ["lofar/obs_1/table.csv"]
    assert fs.glob("lofar/run/obs_?/*.csv") == [
        "lofar/run/obs_1/table.csv",
        "lofar/run/obs_2/other.csv",
    ]
    assert fs.glob("lofar/run/obs_[2]/*") == [
        "lofar/run/obs_2/beam.h5",
        "lofar/run/obs_2/other.csv",
    ]
    assert fs.glob("lof*/readme.*") == ["lofar/readme.txt"]
    assert fs.glob("lofar/run/**/*.h5") == ["lofar/run/obs_2/beam.h5"]
    assert fs.glob("lofar/nothing_*") == []
    assert fs.glob("lofar/readme.txt") == ["lofar/readme.txt"]
    found = fs.glob("lofar/obs_2/*.csv", detail=True)
    assert found["lofar/obs_2/other.csv"]["size"] == len(lake_files["other.csv"])
    frames = [pd.read_csv(fs.open(path)) for path in fs.glob("lofar/run/obs_1/*.csv")]
    pd.testing.assert_frame_equal(frames[0], TABLE)


def test_write_then_read_back(
    fs: LacusFileSystem, client: Client, lake_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = os.urandom(6 * MiB + 3)
    with fs.open("lacus://lofar/obs_1/written.bin", "wb", block_size=MiB) as stream:
        for start in range(0, len(data), 1_000_000):
            stream.write(data[start : start + 1_000_000])
    assert fs.cat_file("lofar/obs_1/written.bin") == data
    did = client.get_did("lofar:written.bin")
    assert (did["bytes"], did["adler32"]) == (len(data), f"{zlib.adler32(data):08x}")
    assert stored(tmp_path, "ALPHA_DISK", SCOPE, "written.bin").read_bytes() == data
    assert "lofar/obs_1/written.bin" in fs.ls("lofar/obs_1", detail=False)

    # pandas writes through fsspec too; a new dataset is created for it
    TABLE.to_csv(
        "lacus://lofar/obs_new/copy.csv",
        index=False,
        storage_options={"client": client, "rse": "BETA_DISK"},
    )
    pd.testing.assert_frame_equal(pd.read_csv("lacus://lofar/obs_new/copy.csv"), TABLE)
    assert next(client.list_replicas(["lofar:copy.csv"]))["rses"].keys() == {"BETA_DISK"}

    # put: a local file under another name, get: a verified copy
    local = tmp_path / "local.dat"
    local.write_bytes(b"x" * 1000)
    fs.put(str(local), "lacus://lofar/obs_1/renamed.dat")
    assert fs.cat_file("lofar/renamed.dat") == b"x" * 1000
    fs.get("lacus://lofar/obs_1/noise.bin", str(tmp_path / "got.bin"))
    assert (tmp_path / "got.bin").read_bytes() == lake_files["noise.bin"]


def test_a_failed_write_leaves_nothing(
    fs: LacusFileSystem, client: Client, lake_files: dict[str, bytes], tmp_path: Path
) -> None:
    def failing_cell() -> None:
        with fs.open("lofar/obs_1/half.bin", "wb") as stream:
            stream.write(b"first part")
            raise RuntimeError("the notebook cell failed")

    with pytest.raises(RuntimeError):
        failing_cell()
    assert not fs.exists("lofar/half.bin")
    assert not stored(tmp_path, "ALPHA_DISK", SCOPE, "half.bin").exists()
    with pytest.raises(FileExistsError):
        fs.open("lofar/obs_2/readme.txt", "wb")
    with pytest.raises(InvalidInput, match="needs an RSE"):
        LacusFileSystem(client=client).open("lofar/new.txt", "wb")
    with pytest.raises(InvalidInput):
        fs.open("lofar", "wb")


def test_missing_and_hidden_files(
    fs: LacusFileSystem,
    client: Client,
    server: RunningServer,
    lake_files: dict[str, bytes],
    request: pytest.FixtureRequest,
) -> None:
    for path in ["lofar/missing.csv", "nosuchscope/x", "lofar/obs_1/other.csv", "nosuchscope"]:
        with pytest.raises(FileNotFoundError):
            fs.open(path)
        with pytest.raises(FileNotFoundError):
            fs.info(path)
        assert not fs.exists(path)
    with pytest.raises(FileNotFoundError):
        pd.read_csv("lacus://lofar/missing.csv")
    with pytest.raises(IsADirectoryError):
        fs.open("lofar/obs_1")

    client.add_account("guest", password="guest-password")
    client.set_embargo("lofar:obs_2")
    guest_client = Client(server.url, account="guest", password="guest-password")
    request.addfinalizer(guest_client.close)
    guest = LacusFileSystem(client=guest_client, cache_dir=fs.reader.cache_dir)
    assert guest.ls("lofar/run", detail=False) == ["lofar/run/obs_1"]
    assert "lofar/beam.h5" not in guest.ls("lofar", detail=False)
    assert guest.glob("lofar/*.h5") == []
    with pytest.raises(FileNotFoundError):
        guest.open("lofar/beam.h5")
    with pytest.raises(FileNotFoundError):
        guest.cat_file("lofar/obs_2/other.csv")
    assert guest.cat_file("lofar/table.csv") == lake_files["table.csv"]


def read_on(stream: Any, received: bytearray) -> None:
    """Read ``stream`` to its end, a MiB per read, into ``received``."""
    while chunk := stream.read(MiB):
        received += chunk


def second_replica(client: Client, did: str, rse: str) -> None:
    (rule_id,) = client.add_rule(did, rse)
    client.wait_for_rule(rule_id, timeout=60)


def test_reads_come_from_the_preferred_replica_and_are_verified(
    client: Client, lake_files: dict[str, bytes], tmp_path: Path
) -> None:
    """noise.bin on ALPHA_DISK (corrupted) and BETA_DISK (intact)."""
    second_replica(client, "lofar:noise.bin", "BETA_DISK")
    noise = lake_files["noise.bin"]
    flip_byte(stored(tmp_path, "ALPHA_DISK", SCOPE, "noise.bin"), 3 * MiB)

    beta = LacusFileSystem(client=client, rse="BETA_DISK", cache_dir=tmp_path / "c1")
    assert [rse for rse, _ in beta.locate("lofar/noise.bin").candidates] == [
        "BETA_DISK",
        "ALPHA_DISK",
    ]
    with beta.open("lofar/noise.bin", block_size=MiB) as stream:
        assert stream.read() == noise

    alpha = LacusFileSystem(client=client, rse="ALPHA_DISK", cache_dir=tmp_path / "c2")
    # Read in parts from the start, the corrupt replica is found out by the read that ends it.
    with alpha.open("lofar/noise.bin", block_size=MiB) as stream:
        received = bytearray(stream.read(MiB))
        assert received == noise[:MiB]
        with pytest.raises(ChecksumMismatch, match="corrupt"):
            read_on(stream, received)
        assert len(received) < len(noise)  # the corrupt byte was never returned
    # ... and reported suspicious: no reader is sent to it any more (the lake reads it back).
    first = next(h for h in client.replica_history("lofar:noise.bin") if h["rse"] == "ALPHA_DISK")
    assert first["state"] == "suspicious"
    assert "adler32" in first["reason"]
    # Whole reads are checked before they are returned: the intact replica answers.
    assert alpha.cat_file("lofar/noise.bin") == noise
    with alpha.open("lofar/noise.bin") as stream:
        assert stream.read() == noise
    alpha.get("lofar/noise.bin", str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == noise


def test_local_copy_is_verified_and_reused(
    client: Client, lake_files: dict[str, bytes], tmp_path: Path
) -> None:
    """``local_copy``: what reads go through when a storage cannot serve parts of files."""
    cache = tmp_path / "cache"
    fs = LacusFileSystem(client=client, local_copy=True, cache_dir=cache)
    second_replica(client, "lofar:noise.bin", "BETA_DISK")
    flip_byte(stored(tmp_path, "ALPHA_DISK", SCOPE, "noise.bin"), 10)
    with fs.open("lofar/noise.bin", block_size=MiB) as stream:
        stream.seek(5)
        assert stream.read(10) == lake_files["noise.bin"][5:15]
    cached = cache / deterministic_path(SCOPE, "noise.bin")
    assert cached.read_bytes() == lake_files["noise.bin"]  # from BETA_DISK: ALPHA's is corrupt
    os.utime(cached, (1, 1))
    assert fs.cat_file("lofar/noise.bin", start=0, end=5) == lake_files["noise.bin"][:5]
    assert cached.stat().st_mtime == 1  # reused, not copied again
