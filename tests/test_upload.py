"""Uploads through ``lacus.Client``: bytes on storage, entries in the catalog, nothing half-done.

Every expectation is computed here, independently of Lacus: checksums with ``zlib``/``hashlib``,
storage paths with Rucio's hash layout (``scope/ab/cd/name`` from md5 of ``scope:name``).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest

from lacus.client import Client
from lacus.errors import (
    AccessDenied,
    AlreadyExists,
    DIDAlreadyExists,
    FileAlreadyOnStorage,
    InvalidName,
    LocalFileError,
    RSENotFound,
    ScopeNotFound,
    StorageFull,
)
from tests.conftest import RunningServer
from tests.storage.test_posix import tiny_tmpfs  # noqa: F401 - a real 1 MiB file system

SCOPE = "virgo"
KiB = 1024
MiB = 1024 * KiB


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def hash_path(scope: str, name: str) -> str:
    """Rucio's hash layout; scopes starting "user"/"group" become directories (user/jdoe)."""
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    directory = scope.replace(".", "/") if scope.startswith(("user", "group")) else scope
    return f"{directory}/{digest[:2]}/{digest[2:4]}/{name}"


def prefix(tmp_path: Path, rse: str) -> Path:
    """Where the test lake keeps the files of one of its seeded RSEs."""
    return tmp_path / "rses" / rse


def files_under(root: Path) -> list[str]:
    """Every file below ``root``, hidden (part) files included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def names(items: list[dict[str, object]]) -> list[str]:
    return sorted(f"{item['scope']}:{item['name']}" for item in items)


def all_dids(client: Client, scope: str = SCOPE) -> list[str]:
    return names(list(client.list_dids(f"{scope}:*")))


@pytest.fixture
def scope(client: Client) -> str:
    client.add_scope(SCOPE)
    return SCOPE


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """The local directory files are uploaded from."""
    directory = tmp_path / "local"
    directory.mkdir()
    return directory


# -- single files -------------------------------------------------------------------------------


def test_single_file_lands_at_its_hash_path_and_is_registered(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    data = os.urandom(300 * KiB + 7)
    local = write(src / "chunk_001.h5", data)

    results = client.upload([local], rse="ALPHA_DISK", scope=scope, dataset="run1")

    relative = hash_path(scope, "chunk_001.h5")
    alpha = prefix(tmp_path, "ALPHA_DISK")
    assert (alpha / relative).read_bytes() == data
    assert files_under(alpha) == [relative]
    assert [(r["did"], r["path"], r["bytes"], r["adler32"], r["md5"]) for r in results] == [
        (f"{scope}:chunk_001.h5", relative, len(data), adler32(data), md5(data))
    ]

    did = client.get_did(f"{scope}:chunk_001.h5")
    assert (did["type"], did["bytes"], did["adler32"], did["md5"]) == (
        "file",
        len(data),
        adler32(data),
        md5(data),
    )
    [replica] = client.list_replicas([f"{scope}:chunk_001.h5"])
    assert (replica["bytes"], replica["adler32"], replica["md5"]) == (
        len(data),
        adler32(data),
        md5(data),
    )
    assert list(replica["rses"]) == ["ALPHA_DISK"]
    location = replica["rses"]["ALPHA_DISK"]
    assert location["state"] == "available"
    assert location["path"] == relative
    assert location["pfn"] == f"file://{alpha}/{relative}"

    dataset = client.get_did(f"{scope}:run1")
    assert (dataset["type"], dataset["length"], dataset["bytes"]) == ("dataset", 1, len(data))
    assert names(client.list_content(f"{scope}:run1")) == [f"{scope}:chunk_001.h5"]


def test_files_join_an_existing_dataset(client: Client, scope: str, src: Path) -> None:
    client.add_dataset(f"{scope}:run2", meta={"detector": "H1"})
    first, second = b"first file" * 100, b"second"
    client.upload([write(src / "a.dat", first)], rse="ALPHA_DISK", scope=scope, dataset="run2")
    client.upload([write(src / "b.dat", second)], rse="ALPHA_DISK", scope=scope, dataset="run2")

    dataset = client.get_did(f"{scope}:run2")
    assert (dataset["length"], dataset["bytes"]) == (2, len(first) + len(second))
    assert names(client.list_content(f"{scope}:run2")) == [f"{scope}:a.dat", f"{scope}:b.dat"]
    assert client.get_metadata(f"{scope}:run2") == {"detector": "H1"}


def test_several_files_with_metadata(client: Client, scope: str, src: Path, tmp_path: Path) -> None:
    contents = {f"part_{i}.bin": os.urandom(1000 * i + 1) for i in range(6)}
    paths = [write(src / name, data) for name, data in contents.items()]

    client.upload(paths, rse="BETA_DISK", scope=scope, meta={"run": 7, "kind": "raw"})

    beta = prefix(tmp_path, "BETA_DISK")
    assert files_under(beta) == sorted(hash_path(scope, name) for name in contents)
    for name, data in contents.items():
        assert (beta / hash_path(scope, name)).read_bytes() == data
        assert client.get_did(f"{scope}:{name}")["adler32"] == adler32(data)
        assert client.get_metadata(f"{scope}:{name}") == {"kind": "raw", "run": 7}
    assert [d["name"] for d in client.list_dids(f"{scope}:*", filters=["run>6"])] == sorted(
        contents
    )


def test_md5_off_leaves_md5_null(client: Client, scope: str, src: Path) -> None:
    data = b"no md5 for me" * 1000
    [result] = client.upload([write(src / "f.dat", data)], rse="ALPHA_DISK", scope=scope, md5=False)

    assert result["md5"] is None
    did = client.get_did(f"{scope}:f.dat")
    assert (did["adler32"], did["md5"]) == (adler32(data), None)
    [replica] = client.list_replicas([f"{scope}:f.dat"])
    assert replica["md5"] is None


# -- directory trees ----------------------------------------------------------------------------


def test_a_folder_of_files_becomes_a_dataset(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    contents = {"x1.fits": os.urandom(5000), "x2.fits": os.urandom(7000), "x3.fits": b""}
    for name, data in contents.items():
        write(src / "obs1" / name, data)

    client.upload([src / "obs1"], rse="ALPHA_DISK", scope=scope)

    dataset = client.get_did(f"{scope}:obs1")
    assert (dataset["type"], dataset["length"]) == ("dataset", 3)
    assert dataset["bytes"] == sum(len(data) for data in contents.values())
    assert names(client.list_content(f"{scope}:obs1")) == [f"{scope}:{n}" for n in contents]
    alpha = prefix(tmp_path, "ALPHA_DISK")
    for name, data in contents.items():
        assert (alpha / hash_path(scope, name)).read_bytes() == data
        assert client.get_did(f"{scope}:{name}")["md5"] == md5(data)


def test_nested_folders_become_containers_of_datasets(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    tree = {
        "sky/night/n1": os.urandom(1000),
        "sky/night/n2": os.urandom(2000),
        "sky/day/morning/m1": os.urandom(4000),
        "sky/day/evening/e1": os.urandom(8000),
    }
    for relative, data in tree.items():
        write(src / relative, data)
    (src / "sky/day/noon").mkdir()

    client.upload([src / "sky"], rse="ALPHA_DISK", scope=scope)

    def content(name: str) -> list[tuple[str, str]]:
        return sorted((c["name"], c["type"]) for c in client.list_content(f"{scope}:{name}"))

    assert content("sky") == [("sky.day", "container"), ("sky.night", "dataset")]
    assert content("sky.day") == [
        ("sky.day.evening", "dataset"),
        ("sky.day.morning", "dataset"),
        ("sky.day.noon", "dataset"),
    ]
    assert content("sky.night") == [("n1", "file"), ("n2", "file")]
    assert content("sky.day.morning") == [("m1", "file")]
    assert content("sky.day.noon") == []

    sky = client.get_did(f"{scope}:sky")
    assert (sky["type"], sky["length"], sky["bytes"]) == ("container", 4, 15000)
    day = client.get_did(f"{scope}:sky.day")
    assert (day["type"], day["length"], day["bytes"]) == ("container", 2, 12000)
    assert sorted(f["name"] for f in client.list_files(f"{scope}:sky")) == ["e1", "m1", "n1", "n2"]
    alpha = prefix(tmp_path, "ALPHA_DISK")
    for relative, data in tree.items():
        name = relative.rsplit("/", 1)[1]
        assert (alpha / hash_path(scope, name)).read_bytes() == data


def test_a_folder_with_files_and_sub_folders(client: Client, scope: str, src: Path) -> None:
    write(src / "mix/top1", b"top one")
    write(src / "mix/top2", b"top two!")
    write(src / "mix/sub/inner", b"inner file")

    client.upload([src / "mix"], rse="ALPHA_DISK", scope=scope)

    assert names(client.list_content(f"{scope}:mix")) == [
        f"{scope}:mix.files",
        f"{scope}:mix.sub",
    ]
    assert names(client.list_content(f"{scope}:mix.files")) == [
        f"{scope}:top1",
        f"{scope}:top2",
    ]
    assert names(client.list_content(f"{scope}:mix.sub")) == [f"{scope}:inner"]
    mix = client.get_did(f"{scope}:mix")
    assert (mix["type"], mix["length"], mix["bytes"]) == ("container", 3, 7 + 8 + 10)


def test_an_empty_folder_becomes_an_empty_dataset(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    (src / "nothing_yet").mkdir()

    assert client.upload([src / "nothing_yet"], rse="ALPHA_DISK", scope=scope) == []

    dataset = client.get_did(f"{scope}:nothing_yet")
    assert (dataset["type"], dataset["length"], dataset["bytes"], dataset["open"]) == (
        "dataset",
        0,
        0,
        True,
    )
    assert files_under(prefix(tmp_path, "ALPHA_DISK")) == []


# -- failures leave nothing half-done ---------------------------------------------------------


def test_full_storage_raises_storage_full_and_leaves_nothing(
    client: Client,
    scope: str,
    src: Path,
    tiny_tmpfs: Path,  # noqa: F811
) -> None:
    client.add_rse("TINY_DISK", prefix=str(tiny_tmpfs / "rse"))
    small = write(src / "small.dat", b"fits easily")
    big = write(src / "big.dat", os.urandom(2 * MiB))

    with pytest.raises(StorageFull):
        client.upload([small, big], rse="TINY_DISK", scope=scope, dataset="full")

    assert all_dids(client) == []
    assert files_under(tiny_tmpfs) == []
    assert client.get_rse("TINY_DISK")["files"] == 0
    # the space is free again: the same small file now uploads
    client.upload([small], rse="TINY_DISK", scope=scope)
    assert files_under(tiny_tmpfs) == [f"rse/{hash_path(scope, 'small.dat')}"]


def test_a_missing_local_file_fails_before_anything_is_written(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    good = [write(src / f"good{i}", os.urandom(100)) for i in range(3)]

    with pytest.raises(LocalFileError, match=r"missing\.dat"):
        client.upload([*good, src / "missing.dat"], rse="ALPHA_DISK", scope=scope, dataset="d")

    assert files_under(prefix(tmp_path, "ALPHA_DISK")) == []
    assert all_dids(client) == []


def test_a_dangling_link_in_a_folder_is_an_error_not_a_silent_skip(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    write(src / "obs/a", b"a")
    (src / "obs/b").symlink_to(src / "gone")

    with pytest.raises(LocalFileError, match="obs/b"):
        client.upload([src / "obs"], rse="ALPHA_DISK", scope=scope)

    assert files_under(prefix(tmp_path, "ALPHA_DISK")) == []
    assert all_dids(client) == []


def test_same_name_different_content_on_another_rse_is_refused_and_cleaned_up(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    original = os.urandom(5000)
    client.upload([write(src / "first/same.dat", original)], rse="ALPHA_DISK", scope=scope)
    other = os.urandom(5000)
    paths = [
        write(src / "second/new1.dat", b"new one"),
        write(src / "second/same.dat", other),
        write(src / "second/new2.dat", b"new two"),
    ]

    with pytest.raises(DIDAlreadyExists, match=r"same\.dat"):
        client.upload(paths, rse="BETA_DISK", scope=scope, dataset="second")

    assert files_under(prefix(tmp_path, "BETA_DISK")) == []
    assert all_dids(client) == [f"{scope}:same.dat"]
    assert client.get_did(f"{scope}:same.dat")["adler32"] == adler32(original)
    assert (prefix(tmp_path, "ALPHA_DISK") / hash_path(scope, "same.dat")).read_bytes() == original


def test_same_name_different_content_on_the_same_rse_keeps_the_original(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    original = os.urandom(5000)
    client.upload([write(src / "first/same.dat", original)], rse="ALPHA_DISK", scope=scope)

    with pytest.raises(AlreadyExists):
        client.upload(
            [write(src / "second/fresh.dat", b"fresh"), write(src / "second/same.dat", b"other")],
            rse="ALPHA_DISK",
            scope=scope,
        )

    alpha = prefix(tmp_path, "ALPHA_DISK")
    assert files_under(alpha) == [hash_path(scope, "same.dat")]
    assert (alpha / hash_path(scope, "same.dat")).read_bytes() == original
    assert all_dids(client) == [f"{scope}:same.dat"]
    assert client.get_did(f"{scope}:same.dat")["adler32"] == adler32(original)


def test_a_conflict_deep_in_a_tree_leaves_nothing_of_the_tree(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    original = os.urandom(3000)
    client.upload([write(src / "old/clash", original)], rse="ALPHA_DISK", scope=scope)
    write(src / "tree/a/fine1", b"fine one")
    write(src / "tree/a/fine2", b"fine two")
    write(src / "tree/b/clash", b"different content")

    with pytest.raises(DIDAlreadyExists, match="clash"):
        client.upload([src / "tree"], rse="BETA_DISK", scope=scope)

    assert files_under(prefix(tmp_path, "BETA_DISK")) == []
    assert all_dids(client) == [f"{scope}:clash"]
    assert client.get_rse("BETA_DISK")["files"] == 0


def test_the_same_file_on_the_same_rse_twice_is_refused(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    data = os.urandom(2000)
    local = write(src / "twice.dat", data)
    client.upload([local], rse="ALPHA_DISK", scope=scope)

    with pytest.raises(FileAlreadyOnStorage):
        client.upload([local], rse="ALPHA_DISK", scope=scope)

    alpha = prefix(tmp_path, "ALPHA_DISK")
    assert (alpha / hash_path(scope, "twice.dat")).read_bytes() == data
    [replica] = client.list_replicas([f"{scope}:twice.dat"])
    assert list(replica["rses"]) == ["ALPHA_DISK"]


def test_invalid_names_fail_before_anything_is_written(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    good = write(src / "good.dat", b"good")
    write(src / "tree/ok", b"ok")
    for bad in ("bad name!", "-starts-with-dash", "semi;colon"):
        with pytest.raises(InvalidName, match="invalid name"):
            client.upload([good, write(src / bad, b"bad")], rse="ALPHA_DISK", scope=scope)
        inside = write(src / "tree" / bad, b"bad")
        with pytest.raises(InvalidName, match="invalid name"):
            client.upload([src / "tree"], rse="ALPHA_DISK", scope=scope)
        inside.unlink()
    with pytest.raises(InvalidName, match="invalid name"):
        client.upload([good], rse="ALPHA_DISK", scope=scope, dataset="bad name")

    assert files_under(prefix(tmp_path, "ALPHA_DISK")) == []
    assert all_dids(client) == []


def test_unknown_rse_or_scope(client: Client, scope: str, src: Path, tmp_path: Path) -> None:
    local = write(src / "f.dat", b"data")

    with pytest.raises(RSENotFound, match="NOWHERE_DISK"):
        client.upload([local], rse="NOWHERE_DISK", scope=scope)
    with pytest.raises(ScopeNotFound, match="nosuchscope"):
        client.upload([local], rse="ALPHA_DISK", scope="nosuchscope", dataset="d")

    assert files_under(prefix(tmp_path, "ALPHA_DISK")) == []
    assert all_dids(client) == []


def test_the_same_file_on_a_second_rse_adds_a_second_replica(
    client: Client, scope: str, src: Path, tmp_path: Path
) -> None:
    data = os.urandom(10_000)
    local = write(src / "twin.dat", data)

    client.upload([local], rse="ALPHA_DISK", scope=scope, dataset="pair")
    client.upload([local], rse="BETA_DISK", scope=scope, dataset="pair")

    [replica] = client.list_replicas([f"{scope}:twin.dat"])
    assert sorted(replica["rses"]) == ["ALPHA_DISK", "BETA_DISK"]
    assert {location["state"] for location in replica["rses"].values()} == {"available"}
    for rse in ("ALPHA_DISK", "BETA_DISK"):
        assert (prefix(tmp_path, rse) / hash_path(scope, "twin.dat")).read_bytes() == data
        info = client.get_rse(rse)
        assert (info["files"], info["used_bytes"]) == (1, len(data))
    dataset = client.get_did(f"{scope}:pair")
    assert (dataset["length"], dataset["bytes"]) == (1, len(data))


def test_a_user_cannot_upload_into_roots_scope(
    client: Client, server: RunningServer, scope: str, src: Path, tmp_path: Path
) -> None:
    client.add_account("jdoe", password="jdoe-password-123")
    with Client(server.url, account="jdoe", password="jdoe-password-123") as jdoe:
        with pytest.raises(AccessDenied, match="jdoe"):
            jdoe.upload(
                [write(src / "a", b"a" * 100), write(src / "b", b"b" * 100)],
                rse="ALPHA_DISK",
                scope=scope,
            )
        jdoe.add_scope("user.jdoe")
        jdoe.upload([src / "a"], rse="ALPHA_DISK", scope="user.jdoe")

    assert all_dids(client) == []
    # a user scope is a directory tree: user.jdoe -> user/jdoe
    assert files_under(prefix(tmp_path, "ALPHA_DISK")) == [hash_path("user.jdoe", "a")]
    assert hash_path("user.jdoe", "a").startswith("user/jdoe/")
