"""docs/notebook_example.py runs as a script against the test server, as a user would run it
(a separate Python process, settings from LACUS_* variables)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lacus.client import Client

EXAMPLE = Path(__file__).parent.parent / "docs" / "notebook_example.py"


def test_the_notebook_example_runs(client: Client, tmp_path: Path) -> None:
    env = {
        **os.environ,  # LACUS_URL, LACUS_ACCOUNT, LACUS_PASSWORD of the test server (client)
        "LACUS_RSE": "ALPHA_DISK",
        "LACUS_EXAMPLE_TARGET": "BETA_DISK",
        "LACUS_EXAMPLE_RUN": "ci",
        "LACUS_CACHE": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "lofar/obs-ci/cube.h5" in out
    assert "lofar:cube.h5 -> " + str(tmp_path / "rses" / "BETA_DISK") in out
    assert out.rstrip().endswith("done")
    # what it wrote is in the lake, with the copies it asked for
    replicas = {r["name"]: set(r["rses"]) for r in client.list_replicas(["lofar:obs-ci"])}
    assert replicas == {
        "spectrum.csv": {"ALPHA_DISK", "BETA_DISK"},
        "cube.h5": {"ALPHA_DISK", "BETA_DISK"},
    }
