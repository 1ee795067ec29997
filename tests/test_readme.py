"""The README's tour runs as written (docs that cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT_PASSWORD, RunningServer

README = Path(__file__).resolve().parents[1] / "README.md"
_SETUP = ("make demo", ". .venv/bin/activate", "export ", "# (or once")


def tour_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## A 5-minute tour", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the tour has a shell block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    return [line for line in lines if not line.startswith(_SETUP)]


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text().split("\n## ", 1)[0]
    assert "make demo" in head
    assert "make test" in head


def test_the_tour_runs(server: RunningServer, tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(tour_commands()) + "\n"
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LACUS_URL": server.url,
        "LACUS_ACCOUNT": "root",
        "LACUS_PASSWORD": ROOT_PASSWORD,
        "LACUS_CONFIG": str(tmp_path / "client.json"),
    }
    env["TMPDIR"] = str(tmp_path)
    script = script.replace("/tmp/out", str(tmp_path / "out"))
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    downloaded = tmp_path / "out" / "lofar" / "obs42" / "obs42.raw" / "a.ms"
    assert downloaded.read_text() == "data\n"
    assert "3C196" not in result.stderr
