# %% [markdown]
# # The lake from a notebook
#
# Lacus as a file system (`lacus://scope/name`, through fsspec) for pandas and h5py, and
# `Client.make_available` to bring a dataset next to the computation. Cells in the percent
# format: open it in Jupyter (jupytext), VS Code or Spyder, or run it as a script. CI runs it
# against a test lake (tests/test_notebook_example.py); docs/notebook.md explains each step.
#
# Settings: `LACUS_URL`, `LACUS_ACCOUNT`, `LACUS_PASSWORD` (or `lacus login`), `LACUS_RSE`
# (the RSE this notebook writes to and reads from first; `make demo`'s lake has ALPHA_DISK),
# `LACUS_EXAMPLE_TARGET` (where `make_available` brings the data; BETA_DISK).

# %%
import os
import tempfile
import time
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pandas as pd

from lacus.client import Client

client = Client()
SCOPE = os.environ.get("LACUS_EXAMPLE_SCOPE", "lofar")
HOME_RSE = os.environ.setdefault("LACUS_RSE", "ALPHA_DISK")
TARGET_RSE = os.environ.get("LACUS_EXAMPLE_TARGET", "BETA_DISK")
RUN = os.environ.get("LACUS_EXAMPLE_RUN") or time.strftime("%Y%m%dT%H%M%S")

if SCOPE not in {scope["scope"] for scope in client.list_scopes()}:
    client.add_scope(SCOPE)
fs = fsspec.filesystem("lacus")  # the same settings as Client(); rse= from LACUS_RSE
obs = f"{SCOPE}/obs-{RUN}"  # a dataset: a directory of files

# %% [markdown]
# ## Write: pandas and `fs.put` upload, verify and register the files
# A file written to `lacus://` is kept in a local temporary file and uploaded when it is
# closed; nothing reaches the lake if the cell fails half-way.

# %%
spectrum = pd.DataFrame(
    {"frequency_mhz": np.linspace(120.0, 180.0, 61), "flux_jy": np.linspace(1.0, 4.0, 61) ** 2}
)
spectrum.to_csv(f"lacus://{obs}/spectrum.csv", index=False)

with tempfile.TemporaryDirectory() as scratch:
    local_cube = Path(scratch) / "cube.h5"
    with h5py.File(local_cube, "w") as h5:
        h5.create_dataset("image", data=np.arange(256 * 256, dtype="float32").reshape(256, 256))
        h5["image"].attrs["telescope"] = "LOFAR"
    fs.put(str(local_cube), f"lacus://{obs}/cube.h5")

# %% [markdown]
# ## Look around: `ls`, `info`, `glob`

# %%
for entry in fs.ls(obs, detail=True):
    print(f"{entry['name']:60} {entry['size']:>10} bytes  adler32 {entry['adler32']}")
print(fs.glob(f"lacus://{SCOPE}/obs-*/*.csv")[-3:])
info = fs.info(f"{obs}/cube.h5")
print(info["did"], info["size"], info["md5"])

# %% [markdown]
# ## Read: pandas and h5py straight from the lake
# h5py reads only the parts of the file it needs (range reads on the closest replica).

# %%
back = pd.read_csv(f"lacus://{obs}/spectrum.csv")
print(back.describe().loc[["mean", "max"]])
pd.testing.assert_frame_equal(back, spectrum)

with fs.open(f"{obs}/cube.h5") as remote, h5py.File(remote, "r") as h5:
    row = h5["image"][100, :8]
    print(h5["image"].attrs["telescope"], row)
assert row.tolist() == list(range(100 * 256, 100 * 256 + 8))

# %% [markdown]
# ## Bring the dataset next to the computation: `make_available`
# A rule for a day on the target RSE; the call returns when its `rule.ok` event arrives
# (no polling), with the local path of each file (or its URL on a remote storage).

# %%
paths = client.make_available(f"{SCOPE}:obs-{RUN}", rse=TARGET_RSE, lifetime=86400, timeout=600)
assert isinstance(paths, dict)
for did, path in sorted(paths.items()):
    print(did, "->", path)
cube_path = paths[f"{SCOPE}:cube.h5"]
if os.path.exists(cube_path):  # a POSIX RSE on this machine: plain files
    with h5py.File(cube_path, "r") as h5:
        assert h5["image"][255, 255] == 256 * 256 - 1
print("done")
