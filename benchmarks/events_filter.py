"""One read of the event stream filtered by a container, next to the same read by a dataset.

    .venv/bin/python benchmarks/events_filter.py [--datasets 20] [--files 1000] [--repeat 20]

A fresh lake (SQLite, then a throwaway PostgreSQL database) holds a container of ``--datasets``
datasets of ``--files`` files each; then 100 files are registered into the last dataset (200
events: ``replica.available`` and ``did.attached``). Timed, in-process: one page read of those
events (``lacus.service.events.page``, what ``GET /events`` does per wake), filtered by the last
dataset (the baseline: one index probe per event) and by the container; median of ``--repeat``.
The ratio is container / dataset: a container filter that walks up from each event's DID stays
near 1 whatever the container holds; one that builds the container's tree grows with it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _rest import machine_note
from _util import throwaway_postgres

from lacus.service import dids, replicas, scopes
from lacus.service.events import event_filter, page
from lacus.service.lake import Lake, Principal, init_lake
from lacus.types import DIDType, FileSpec

ROOT = Principal("root", admin=True)
BATCH = 1000


def spec(name: str) -> FileSpec:
    return {"scope": "s", "name": name, "bytes": 1, "adler32": "00000001", "path": f"p/{name}"}


def measure(backend: str, url: str | None, datasets: int, files: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lacus-events-filter-") as tmp:
        settings, _ = init_lake(Path(tmp) / "lake", database_url=url)
        lake = Lake(settings)
        try:
            scopes.add_scope(lake, ROOT, "s", account="root")
            dids.add_collection(lake, ROOT, "s", "box", DIDType.CONTAINER)
            for index in range(datasets):
                dataset = f"ds{index}"
                dids.add_collection(lake, ROOT, "s", dataset, DIDType.DATASET)
                dids.attach(lake, ROOT, "s", "box", [("s", dataset)])
                for start in range(0, files, BATCH):
                    batch = [spec(f"f{index}_{i}") for i in range(start, min(files, start + BATCH))]
                    replicas.add_replicas(lake, ROOT, "ALPHA_DISK", batch, dataset=("s", dataset))
            lake.refresh_statistics(rows_added=datasets * files)
            last = ("s", f"ds{datasets - 1}")
            after = lake.event_log.horizon(fresh=True)
            for index in range(100):
                replicas.add_replicas(lake, ROOT, "ALPHA_DISK", [spec(f"new{index}")], dataset=last)
            lake.event_log.horizon(fresh=True)
            medians = {}
            for label, did in (("dataset", last), ("container", ("s", "box"))):
                where = event_filter(lake, ROOT, did=did)
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    found, _ = page(lake, after, where)
                    times.append(time.perf_counter() - started)
                assert len(found) == 200, (label, len(found))
                medians[label] = statistics.median(times)
            print(
                f"{backend:10} container of {datasets} x {files} files: one page of 200 events "
                f"filtered by the dataset {medians['dataset'] * 1e3:.2f} ms (baseline), by the "
                f"container {medians['container'] * 1e3:.2f} ms "
                f"(ratio {medians['container'] / medians['dataset']:.2f})",
                flush=True,
            )
        finally:
            lake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--files", type=int, default=1000, help="files per dataset")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"# events filter, {time.strftime('%Y-%m-%d %H:%M')}, {machine_note()}")
    measure("sqlite", None, args.datasets, args.files, args.repeat)
    with throwaway_postgres() as url:
        measure("postgresql", url, args.datasets, args.files, args.repeat)


if __name__ == "__main__":
    main()
