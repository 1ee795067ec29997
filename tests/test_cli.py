"""The ``lacus`` command line: every command of the contract, its ``--json`` output, its errors.

Most tests run the CLI in-process against the test server (the ``cli`` fixture); the last ones run
the real ``lacus`` executable: ``init``, ``serve``, ``login`` and bad invocations.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from lacus.client import Client
from tests.conftest import CLIResult, RunningServer

Run = Callable[..., CLIResult]

SCOPE = "virgo"
CONTRACT = [
    "init",
    "serve",
    "login",
    "whoami",
    "rse add",
    "rse list",
    "rse info",
    "rse set-attr",
    "scope add",
    "scope list",
    "upload",
    "download",
    "ls",
    "files",
    "replicas",
    "dataset add",
    "container add",
    "attach",
    "detach",
    "close",
    "meta get",
    "meta set",
]


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def hash_path(scope: str, name: str) -> str:
    digest = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return f"{scope}/{digest[:2]}/{digest[2:4]}/{name}"


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def ok(result: CLIResult) -> CLIResult:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def ok_json(result: CLIResult) -> Any:
    return json.loads(ok(result).stdout)


def assert_one_error_line(result: CLIResult, *fragments: str) -> None:
    """A failure is a non-zero exit and exactly one readable line on stderr."""
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# In-process commands reuse one token instead of logging in with a password every time
# (``lacus login`` and password logins are tested with the real program below).
pytestmark = pytest.mark.usefixtures("cli_reuses_token")


@pytest.fixture
def scope(cli: Run) -> str:
    ok(cli("scope", "add", SCOPE))
    return SCOPE


@pytest.fixture
def local(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def make(relative: str, data: bytes) -> Path:
        path = tmp_path / "local" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return make


# -- RSEs and scopes ----------------------------------------------------------------------------


def test_rse_add_list_info_set_attr(cli: Run, tmp_path: Path) -> None:
    where = tmp_path / "new_rse"
    ok(
        cli(
            "rse", "add", "DELTA_DISK", "--prefix", str(where),
            "--attr", "site=DELTA", "--attr", "qos=DISK", "--total-bytes", "5000000",
        )
    )  # fmt: skip
    assert where.is_dir()

    listed = ok_json(cli("rse", "list", "--json"))
    assert [r["rse"] for r in listed] == ["ALPHA_DISK", "BETA_DISK", "DELTA_DISK", "GAMMA_TAPE"]
    delta = next(r for r in listed if r["rse"] == "DELTA_DISK")
    assert delta["attributes"] == {"qos": "DISK", "site": "DELTA"}
    assert (delta["total_bytes"], delta["used_bytes"], delta["files"]) == (5_000_000, 0, 0)

    ok(cli("rse", "set-attr", "DELTA_DISK", "country", "DE"))
    info = ok_json(cli("rse", "info", "DELTA_DISK", "--json"))
    assert info["attributes"] == {"country": "DE", "qos": "DISK", "site": "DELTA"}
    assert [(p["scheme"], p["prefix"]) for p in info["protocols"]] == [("file", str(where))]

    text = ok(cli("rse", "info", "DELTA_DISK")).stdout
    assert "attribute country = DE" in text
    assert f"file://{where}" in text
    table = ok(cli("rse", "list")).stdout
    assert all(name in table for name in ("ALPHA_DISK", "DELTA_DISK", "GAMMA_TAPE"))


def test_scope_add_list_and_whoami(cli: Run, server: RunningServer) -> None:
    ok(cli("scope", "add", "virgo"))
    ok(cli("scope", "add", "lofar", "--account", "root"))

    scopes = ok_json(cli("scope", "list", "--json"))
    assert sorted((s["scope"], s["account"]) for s in scopes) == [
        ("lofar", "root"),
        ("virgo", "root"),
    ]
    assert "lofar" in ok(cli("scope", "list")).stdout

    me = ok_json(cli("whoami", "--json"))
    assert (me["account"], me["admin"], me["server"]) == ("root", True, server.url)
    assert "root" in ok(cli("whoami")).stdout


# -- data ---------------------------------------------------------------------------------------


def test_upload_files_into_a_dataset_and_download_them(
    cli: Run, scope: str, local: Callable[[str, bytes], Path], tmp_path: Path
) -> None:
    one, two = os.urandom(3000), os.urandom(4000)
    paths = [str(local("one.dat", one)), str(local("two.dat", two))]

    results = ok_json(
        cli("upload", *paths, "--rse", "ALPHA_DISK", "--scope", scope, "--dataset", "run1",
            "--meta", "run=7", "--json")
    )  # fmt: skip

    assert sorted((r["did"], r["bytes"], r["adler32"]) for r in results) == [
        (f"{scope}:one.dat", 3000, adler32(one)),
        (f"{scope}:two.dat", 4000, adler32(two)),
    ]
    alpha = tmp_path / "rses/ALPHA_DISK"
    assert (alpha / hash_path(scope, "one.dat")).read_bytes() == one
    assert (alpha / hash_path(scope, "two.dat")).read_bytes() == two

    out = tmp_path / "out"
    downloaded = ok_json(cli("download", f"{scope}:run1", "--dir", str(out), "--json"))
    assert sorted(r["status"] for r in downloaded) == ["downloaded", "downloaded"]
    assert (out / scope / "one.dat").read_bytes() == one
    assert (out / scope / "two.dat").read_bytes() == two
    again = ok(cli("download", f"{scope}:run1", "--dir", str(out))).stdout
    assert "0 downloaded, 2 already present" in again


def test_upload_a_single_file_without_md5(
    cli: Run, client: Client, scope: str, local: Callable[[str, bytes], Path]
) -> None:
    data = b"plain" * 999
    text = ok(
        cli("upload", str(local("plain.txt", data)), "--rse", "BETA_DISK", "--scope", scope,
            "--no-md5")
    ).stdout  # fmt: skip
    assert "Uploaded 1 file(s)" in text
    assert "BETA_DISK" in text
    did = client.get_did(f"{scope}:plain.txt")
    assert (did["bytes"], did["adler32"], did["md5"]) == (len(data), adler32(data), None)


def test_upload_a_directory_and_download_with_structure(
    cli: Run, scope: str, local: Callable[[str, bytes], Path], tmp_path: Path
) -> None:
    data = {"sky/night/n1": os.urandom(100), "sky/night/n2": os.urandom(200)}
    data["sky/day/d1"] = os.urandom(300)
    for relative, content in data.items():
        local(relative, content)

    ok(cli("upload", str(tmp_path / "local/sky"), "--rse", "ALPHA_DISK", "--scope", scope))

    out = tmp_path / "out"
    ok(cli("download", f"{scope}:sky", "--dir", str(out), "--structure"))
    assert files_under(out) == [
        f"{scope}/sky/sky.day/d1",
        f"{scope}/sky/sky.night/n1",
        f"{scope}/sky/sky.night/n2",
    ]
    for relative, content in data.items():
        name = relative.rsplit("/", 1)[1]
        assert next((out / scope).rglob(name)).read_bytes() == content

    flat = tmp_path / "flat"
    results = ok_json(cli("download", f"{scope}:sky", "--dir", str(flat), "--json"))
    assert sorted(r["path"] for r in results) == [
        str(flat / scope / name) for name in ("d1", "n1", "n2")
    ]
    assert files_under(flat) == [f"{scope}/d1", f"{scope}/n1", f"{scope}/n2"]


def test_ls_with_pattern_type_and_filters(
    cli: Run, scope: str, local: Callable[[str, bytes], Path]
) -> None:
    for run in (3, 7, 12):
        ok(
            cli("upload", str(local(f"run{run}.dat", b"x" * run)), "--rse", "ALPHA_DISK",
                "--scope", scope, "--meta", f"run={run}", "--dataset", f"set{run}")
        )  # fmt: skip

    every = ok_json(cli("ls", f"{scope}:*", "--json"))
    assert sorted(d["name"] for d in every) == [
        "run12.dat", "run3.dat", "run7.dat", "set12", "set3", "set7",
    ]  # fmt: skip
    runs = ok_json(cli("ls", f"{scope}:run*", "--json"))
    assert sorted(d["name"] for d in runs) == ["run12.dat", "run3.dat", "run7.dat"]
    recent = ok_json(cli("ls", f"{scope}:*", "--filter", "run>5", "--json"))
    assert sorted(d["name"] for d in recent) == ["run12.dat", "run7.dat"]
    narrow = ok_json(cli("ls", f"{scope}:*", "-f", "run>5", "-f", "run<10", "--json"))
    assert [d["name"] for d in narrow] == ["run7.dat"]
    datasets = ok_json(cli("ls", f"{scope}:*", "--type", "dataset", "--json"))
    assert sorted((d["name"], d["type"]) for d in datasets) == [
        ("set12", "dataset"), ("set3", "dataset"), ("set7", "dataset"),
    ]  # fmt: skip
    big = ok_json(cli("ls", f"{scope}:*", "--filter", "bytes>5", "--type", "file", "--json"))
    assert sorted(d["name"] for d in big) == ["run12.dat", "run7.dat"]
    assert ok_json(cli("ls", f"{scope}:nothing*", "--json")) == []
    assert "run12.dat" in ok(cli("ls", f"{scope}:run*")).stdout


def test_collections_attach_detach_close_and_metadata(
    cli: Run, client: Client, scope: str, local: Callable[[str, bytes], Path]
) -> None:
    ok(cli("upload", str(local("f1", b"first")), str(local("f2", b"second!")),
           "--rse", "ALPHA_DISK", "--scope", scope))  # fmt: skip
    ok(cli("dataset", "add", f"{scope}:ds", "--meta", "energy=13.6"))
    ok(cli("container", "add", f"{scope}:ct", "--meta", "campaign=O4"))
    ok(cli("attach", f"{scope}:ds", f"{scope}:f1", f"{scope}:f2"))
    ok(cli("attach", f"{scope}:ct", f"{scope}:ds"))

    files = ok_json(cli("files", f"{scope}:ct", "--json"))
    assert [(f["name"], f["bytes"], f["adler32"]) for f in files] == [
        ("f1", 5, adler32(b"first")),
        ("f2", 7, adler32(b"second!")),
    ]
    assert "f2" in ok(cli("files", f"{scope}:ds")).stdout

    ok(cli("detach", f"{scope}:ds", f"{scope}:f1"))
    assert [f["name"] for f in ok_json(cli("files", f"{scope}:ct", "--json"))] == ["f2"]
    dataset = client.get_did(f"{scope}:ds")
    assert (dataset["length"], dataset["bytes"]) == (1, 7)

    ok(cli("close", f"{scope}:ds"))
    assert client.get_did(f"{scope}:ds")["open"] is False
    assert_one_error_line(cli("attach", f"{scope}:ds", f"{scope}:f1"), "closed")

    assert ok_json(cli("meta", "get", f"{scope}:ds", "--json")) == {"energy": 13.6}
    assert ok_json(cli("meta", "get", f"{scope}:ct", "--json")) == {"campaign": "O4"}
    ok(cli("meta", "set", f"{scope}:f1", "run=7", "good=true", "label=abc", "ratio=1.5"))
    assert ok_json(cli("meta", "get", f"{scope}:f1", "--json")) == {
        "good": True,
        "label": "abc",
        "ratio": 1.5,
        "run": 7,
    }
    table = ok(cli("meta", "get", f"{scope}:f1")).stdout
    assert "label" in table
    assert "abc" in table


def test_replicas(
    cli: Run, scope: str, local: Callable[[str, bytes], Path], tmp_path: Path
) -> None:
    path = str(local("twin", b"twin data"))
    ok(cli("upload", path, "--rse", "ALPHA_DISK", "--scope", scope, "--dataset", "pair"))
    ok(cli("upload", path, "--rse", "BETA_DISK", "--scope", scope, "--dataset", "pair"))

    [replica] = ok_json(cli("replicas", f"{scope}:pair", "--json"))
    assert (replica["name"], replica["bytes"], replica["adler32"]) == (
        "twin",
        9,
        adler32(b"twin data"),
    )
    assert sorted(replica["rses"]) == ["ALPHA_DISK", "BETA_DISK"]
    beta = replica["rses"]["BETA_DISK"]
    assert beta["state"] == "available"
    assert beta["pfn"] == f"file://{tmp_path}/rses/BETA_DISK/{hash_path(scope, 'twin')}"

    only_beta = ok_json(cli("replicas", f"{scope}:twin", "--rse", "BETA_DISK", "--json"))
    assert [sorted(r["rses"]) for r in only_beta] == [["BETA_DISK"]]
    assert beta["pfn"] in ok(cli("replicas", f"{scope}:twin")).stdout


# -- errors: one readable line ------------------------------------------------------------------


def test_unknown_did(cli: Run, scope: str, tmp_path: Path) -> None:
    for args in (
        ("files", f"{scope}:nothing"),
        ("files", f"{scope}:nothing", "--json"),
        ("replicas", f"{scope}:nothing", "--json"),
        ("meta", "get", f"{scope}:nothing"),
        ("close", f"{scope}:nothing"),
        ("download", f"{scope}:nothing", "--dir", str(tmp_path / "out")),
    ):
        result = cli(*args)
        assert_one_error_line(result, f"{scope}:nothing")
        assert result.stdout == "", args


def test_unreadable_local_files(
    cli: Run, scope: str, local: Callable[[str, bytes], Path], tmp_path: Path
) -> None:
    good = str(local("good", b"good"))
    missing = str(tmp_path / "local/missing.dat")
    assert_one_error_line(
        cli("upload", good, missing, "--rse", "ALPHA_DISK", "--scope", scope), "missing.dat"
    )
    local("tree/a", b"a")
    (tmp_path / "local/tree/dangling").symlink_to(tmp_path / "gone")
    assert_one_error_line(
        cli("upload", str(tmp_path / "local/tree"), "--rse", "ALPHA_DISK", "--scope", scope),
        "dangling",
    )
    assert files_under(tmp_path / "rses/ALPHA_DISK") == []


def test_bad_input(cli: Run, scope: str, local: Callable[[str, bytes], Path]) -> None:
    assert_one_error_line(cli("scope", "add", "bad scope!"), "invalid scope")
    assert [s["scope"] for s in ok_json(cli("scope", "list", "--json"))] == [scope]
    # unknown RSE
    assert_one_error_line(cli("rse", "info", "NOWHERE"), "NOWHERE")
    assert_one_error_line(cli("rse", "set-attr", "NOWHERE", "site", "X"), "NOWHERE")
    upload = cli("upload", str(local("f", b"f")), "--rse", "NOWHERE", "--scope", scope)
    assert_one_error_line(upload, "NOWHERE")
    # duplicates
    ok(cli("dataset", "add", f"{scope}:dup"))
    assert_one_error_line(cli("dataset", "add", f"{scope}:dup"), f"{scope}:dup", "exists")
    assert_one_error_line(cli("container", "add", f"{scope}:dup"), "exists")
    assert_one_error_line(cli("scope", "add", scope), "exists")
    assert_one_error_line(cli("rse", "add", "ALPHA_DISK"), "exists")
    # malformed values and invocations
    assert_one_error_line(cli("rse", "add", "lower_case"), "invalid RSE name")
    assert_one_error_line(cli("ls", "no-colon"), "scope:name")
    assert_one_error_line(cli("ls", f"{scope}:*", "--filter", "run>>5"), "invalid filter")
    assert_one_error_line(cli("ls", f"{scope}:*", "--filter", "run>five"), "needs a number")
    assert_one_error_line(cli("meta", "set", f"{scope}:x", "novalue"), "key=value")
    assert_one_error_line(cli("rse", "add", "X_DISK", "--attr", "noequals"), "key=value")
    assert_one_error_line(cli("frobnicate"), "frobnicate")
    assert_one_error_line(cli("upload", "--rse", "ALPHA_DISK"), "Missing")
    assert_one_error_line(cli("ls", "--filter"), "--filter")
    assert_one_error_line(cli("download"), "Missing argument")
    assert_one_error_line(cli("rse", "add", "X", "--total-bytes", "many"), "--total-bytes")


# -- help: every command documents itself ------------------------------------------------------


def _commands() -> list[str]:
    """Every command and sub-command the ``lacus`` program offers."""
    from lacus.cli.main import app

    found: list[str] = []

    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found.append(" ".join(path))
            return
        for name, sub in sorted(subcommands.items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_contract_command_exists() -> None:
    missing = sorted(set(CONTRACT) - set(_commands()))
    assert missing == []


@pytest.mark.parametrize("command", ["", *_commands()])
def test_help_of_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lacus.cli.main import main

    assert main([*command.split(), "--help"]) == 0
    shown = capsys.readouterr().out
    assert f"Usage: lacus {command}".rstrip() in " ".join(shown.split())
    assert len(shown.strip().splitlines()) > 3


# -- the real program -----------------------------------------------------------------------------


def lacus_program() -> str:
    found = shutil.which("lacus") or str(Path(sys.executable).parent / "lacus")
    assert Path(found).exists(), found
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user with no LACUS_* settings (and no COLUMNS from the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LACUS_")}
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def lacus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lacus_program(), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, directory: Path, password: str, url: str) -> None:
        self.directory = directory
        self.password = password
        self.url = url


@pytest.fixture(scope="module")
def served_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``lacus init`` (generated password) and ``lacus serve``, as a user would run them."""
    directory = tmp_path_factory.mktemp("cli") / "lake"
    created = lacus("init", str(directory))
    assert created.returncode == 0, created.stderr
    [line] = [ln for ln in created.stdout.splitlines() if "root password:" in ln]
    password = line.split("root password:", 1)[1].split()[0]
    assert created.stdout.count(password) == 1
    port = free_port()
    process = subprocess.Popen(
        [lacus_program(), "serve", "--lake", str(directory), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(f"lacus serve exited with {process.returncode}: {err.decode()}")
            try:
                httpx.get(f"{url}/ping", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("lacus serve did not answer within 30 s")
                time.sleep(0.1)
        yield Served(directory, password, url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_init_creates_the_lake_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    directory = tmp_path / "mylake"
    result = lacus("init", str(directory), "--root-password", "a-good-password")

    assert result.returncode == 0, result.stderr
    assert "a-good-password" not in result.stdout
    settings = json.loads((directory / "lake.json").read_text())
    assert settings["database_url"] == f"sqlite:///{directory / 'catalog.db'}"
    assert (directory / "catalog.db").stat().st_size > 0
    for rse in ("ALPHA_DISK", "BETA_DISK", "GAMMA_TAPE"):
        assert (directory / "rses" / rse).is_dir()
    before = (directory / "lake.json").read_bytes()

    again = lacus("init", str(directory), "--root-password", "second-password")

    assert again.returncode != 0
    assert again.stderr.splitlines() == [f"error: {directory} holds a lake already"]
    assert (directory / "lake.json").read_bytes() == before


def test_serve_answers_ping_with_the_version(served_lake: Served) -> None:
    from lacus._version import __version__

    response = httpx.get(f"{served_lake.url}/ping")
    assert response.status_code == 200
    assert response.json()["version"] == __version__


def test_login_saves_the_config_and_later_commands_need_no_environment(
    served_lake: Served, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    config = home / ".config/lacus/client.json"
    logged_in = lacus(
        "login", "--url", served_lake.url, "--account", "root",
        "--password", served_lake.password,
        env=clean_env(HOME=str(home), LACUS_CONFIG=str(config)),
    )  # fmt: skip
    assert logged_in.returncode == 0, logged_in.stderr
    saved = json.loads(config.read_text())
    assert (saved["url"], saved["account"]) == (served_lake.url, "root")
    assert config.stat().st_mode & 0o077 == 0

    env = clean_env(HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)
    me = lacus("whoami", "--json", env=env)
    assert me.returncode == 0, me.stderr
    assert (json.loads(me.stdout)["account"], json.loads(me.stdout)["server"]) == (
        "root",
        served_lake.url,
    )
    scope = lacus("scope", "add", "cli.scope", env=env)
    assert scope.returncode == 0, scope.stderr
    with Client(served_lake.url, account="root", password=served_lake.password) as root:
        assert [s["scope"] for s in root.list_scopes()] == ["cli.scope"]


def test_login_with_a_wrong_password_fails_and_saves_nothing(
    served_lake: Served, tmp_path: Path
) -> None:
    config = tmp_path / "client.json"
    result = lacus(
        "login", "--url", served_lake.url, "--account", "root", "--password", "wrong-password",
        env=clean_env(LACUS_CONFIG=str(config)),
    )  # fmt: skip
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert not config.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["whoami"], "no credentials"),
    ],
)
def test_bad_invocations_print_one_readable_line(
    args: list[str], fragment: str, tmp_path: Path
) -> None:
    result = lacus(*args, env=clean_env(HOME=str(tmp_path)))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert fragment in line
    assert result.stdout == ""
