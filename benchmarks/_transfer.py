"""Shared by the transfer benchmarks: a catalog with source replicas, one rule, the daemons until
the rule is ``ok``, and fair conditions for the contenders (page cache, free memory, sizes)."""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _util import (
    POSTGRES_URL,
    Run,
    drop_page_cache,
    machine_note,
    own_peak_rss,
    postgres_reachable,
    python_child,
    read_through,
    run_child,
)
from rule_large import fresh_database, reset_peak_rss

SCOPE = "bench"
BLOCK = 64 * 1024 * 1024
PROFILE_RATE = 100  # py-spy samples per second of each thread on a CPU
BACKENDS = ("sqlite", "postgresql")
ROOT_PASSWORD = "bench-password"
_SIZE_RE = re.compile(r"^\s*([0-9.]+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``4GiB``, ``256MiB``, ``1G``, ``1000`` → bytes (binary units, like ``dd``'s ``M``)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (e.g. 4GiB, 256MiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


def show_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


def recycle_anonymous_memory(size: int, chunk: int = 64 * 1024 * 1024) -> None:
    """Touch and free ``size`` bytes of anonymous memory in this process, without any disk I/O.

    A virtual machine hands idle free memory back to its host (free page reporting); the next
    write into such memory costs several times more (see ``_util.recycle_memory``). Run right
    before each contender, so that every one of them writes into recently used memory.
    """
    block = b"\x5a" * chunk
    area = mmap.mmap(-1, size)
    try:
        for start in range(0, size, chunk):
            area[start : start + min(chunk, size - start)] = block[: min(chunk, size - start)]
    finally:
        area.close()


def prepare_cache(cache: str, source: Path | None, size: int) -> None:
    """Before a contender: flush every dirty page (the previous contender's writes reach the disk
    now, not during this one), then ``cold``: drop the page cache, or ``warm``: read the source
    into it; then recycle memory as large as the copy."""
    if cache == "cold":
        if not drop_page_cache():
            raise RuntimeError("cannot drop the page cache here (not root?): use --cache warm")
    else:
        os.sync()
        if source is not None:
            read_through(str(source))
    recycle_anonymous_memory(max(size, 64 * 1024 * 1024))


# -- the parent: contenders in child processes ---------------------------------------------------


def chosen_backends(choice: str) -> list[str]:
    """``sqlite``, ``postgresql`` or both; PostgreSQL left out (and said so) when unreachable."""
    backends = list(BACKENDS) if choice == "both" else [choice]
    if "postgresql" in backends and (why := postgres_reachable()) is not None:
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: skipped ({why})")
        backends.remove("postgresql")
    return backends


def alternate(
    script: str,
    modes: list[str],
    repeat: int,
    arguments: list[str],
    *,
    show: Callable[[Run], str],
    extra: Callable[[str, int], list[str]] = lambda mode, round_: [],
) -> dict[str, list[Run]]:
    """Run ``script --child MODE *arguments`` for every mode, ``repeat`` rounds, each round in
    another order, rotated and every other round reversed, so that each contender follows
    different ones (drifts of the machine, and what a run leaves to the next, such as a large
    file being deleted, hit every contender alike); print each run."""
    runs: dict[str, list[Run]] = {mode: [] for mode in modes}
    for round_ in range(repeat):
        shift = (round_ // 2) % len(modes)
        order = modes[shift:] + modes[:shift]
        for mode in reversed(order) if round_ % 2 else order:
            argv = python_child(script, "--child", mode, *arguments, *extra(mode, round_))
            run = run_child(argv)
            runs[mode].append(run)
            print(f"  {mode:<18} {show(run)}", flush=True)
    return runs


def lacus_labels(backends: list[str], label: str = "lacus rule, conveyor") -> dict[str, str]:
    """Contender → label of the Lacus runs, one per catalog backend."""
    return {f"lacus-{backend}": f"{label} ({backend})" for backend in backends}


def median_of(runs: list[Run], key: str) -> float:
    """The median of a figure the children answered (``conveyor_s``...)."""
    return statistics.median(float(run.answer[key]) for run in runs)  # type: ignore[arg-type]


def peak_rss_mb(runs: list[Run]) -> float:
    """The largest peak RSS of ``runs``, in MB: of their timed part where they measured it."""
    return max(int(run.answer.get("run_peak_rss") or run.peak_rss) for run in runs) / 1e6  # type: ignore[call-overload]


def report(benchmark: str, results: dict[str, Any], **fields: Any) -> None:
    """The load after the runs, then the JSON line: ``benchmark``, ``fields``, ``results``."""
    print(f"afterwards: {machine_note()}")
    print(json.dumps({"benchmark": benchmark, **fields, "results": results}))


def make_source(path: Path, size: int, md5: bool) -> dict[str, Any]:
    """Random-looking bytes (a random block, each copy with its own prefix), summed as written."""
    from lacus.checksums import ChecksumAccumulator

    path.parent.mkdir(parents=True, exist_ok=True)
    sums = ChecksumAccumulator(md5=md5)
    block = bytearray(os.urandom(BLOCK))
    with path.open("wb") as stream:
        for index, start in enumerate(range(0, size, BLOCK)):
            block[:8] = index.to_bytes(8, "little")
            part = memoryview(block)[: min(BLOCK, size - start)]
            sums.update(part)
            stream.write(part)
        os.fsync(stream.fileno())
    found = sums.result()
    return {"bytes": found.bytes, "adler32": found.adler32, "md5": found.md5}


def profile_first_runs(
    directory: str | None, backends: list[str]
) -> Callable[[str, int], list[str]]:
    """For ``alternate``: ``--profile DIR`` on the first Lacus run of each backend."""
    return lambda mode, round_: (
        ["--profile", directory]
        if directory and round_ == 0 and mode in {f"lacus-{b}" for b in backends}
        else []
    )


# -- the catalog ------------------------------------------------------------------------------


@contextmanager
def fresh_lake(workdir: Path, backend: str, **settings: Any) -> Iterator[Any]:
    """A new lake (see ``open_lake``) in a temporary directory of ``workdir``, on a new SQLite
    file or throwaway PostgreSQL database; everything dropped afterwards."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the database
    lake_dir = Path(tempfile.mkdtemp(prefix="lake-", dir=workdir))
    try:
        with fresh_database(backend, lake_dir) as url:
            lake = open_lake(lake_dir, url, **settings)
            try:
                yield lake
            finally:
                lake.close()
    finally:
        shutil.rmtree(lake_dir, ignore_errors=True)


def open_lake(workdir: Path, url: str, **settings: Any) -> Any:
    """A new lake (schema, root account, scope ``bench``) on ``url``, daemons not embedded."""
    from lacus.core import scopes
    from lacus.db import upgrade
    from lacus.service import Lake, Settings
    from lacus.service.lake import ROOT, seed_catalog

    lake = Lake(Settings(lake_dir=workdir, database_url=url, embedded_daemons=False, **settings))
    upgrade(lake.engine)
    with lake.write() as conn:
        seed_catalog(conn, ROOT_PASSWORD, None)
        scopes.add_scope(conn, SCOPE, account=ROOT)
    return lake


def add_rse(
    lake: Any,
    name: str,
    *,
    scheme: str = "file",
    prefix: str,
    hostname: str = "",
    port: int = 0,
    options: dict[str, Any] | None = None,
) -> int:
    """An RSE with one protocol; ``options`` are the backend's (``extended_attributes``)."""
    from lacus.core import rses
    from lacus.types import ProtocolInfo

    impl = "posix" if scheme == "file" else scheme
    protocol = ProtocolInfo(scheme=scheme, hostname=hostname, port=port, prefix=prefix, impl=impl)
    if options:
        protocol["extended_attributes"] = options
    with lake.write() as conn:
        rse_id = rses.add_rse(conn, name)
        rses.add_protocol(conn, rse_id, protocol)
    return int(rse_id)


def register_files(
    lake: Any, rse: str, specs: list[dict[str, Any]], *, dataset: str | None = None
) -> None:
    """Available replicas of ``specs`` on ``rse`` (deterministic paths), attached to
    ``dataset`` when given, in transactions of 5,000 files."""
    from lacus.core.dids import add_collection, attach_new_files
    from lacus.core.replicas import register_replicas
    from lacus.core.rses import get_rse_id
    from lacus.service.lake import ROOT
    from lacus.types import DIDType

    with lake.write() as conn:
        rse_id = get_rse_id(conn, rse)
        if dataset is not None:
            add_collection(conn, SCOPE, dataset, DIDType.DATASET, account=ROOT)
    for start in range(0, len(specs), 5000):
        part = specs[start : start + 5000]
        with lake.write() as conn:
            register_replicas(conn, rse_id, part, account=ROOT, deterministic=True)  # type: ignore[arg-type]
            if dataset is not None:
                attach_new_files(
                    conn, SCOPE, dataset, [((s["scope"], s["name"]), s["bytes"]) for s in part]
                )
    if lake.engine.dialect.name == "postgresql":  # what the service does after bulk registrations
        with lake.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


def stored_path(rse_prefix: Path, name: str) -> Path:
    """Where a file of scope ``bench`` lives on a deterministic POSIX RSE."""
    from lacus.naming import deterministic_path

    return rse_prefix / deterministic_path(SCOPE, name)


def replicate(lake: Any, name: str, expression: str) -> dict[str, Any]:
    """Add a rule for ``bench:name`` on ``expression``; run the evaluator, then the conveyor,
    until nothing is left to do. Raise unless the rule is ``ok``. Returns the timings."""
    from sqlalchemy import select

    from lacus.daemons import DAEMONS
    from lacus.daemons.base import run_once
    from lacus.db.tables import requests
    from lacus.service import rules as service_rules
    from lacus.service.lake import Principal
    from lacus.types import RuleSpec

    root = Principal("root", admin=True)
    start = time.perf_counter()
    (rule_id,) = service_rules.add_rules(
        lake, root, [RuleSpec(scope=SCOPE, name=name, rse_expression=expression)]
    )
    added = time.perf_counter()
    run_once(lake, DAEMONS["evaluator"])
    evaluated = time.perf_counter()
    handled = run_once(lake, DAEMONS["conveyor"])
    end = time.perf_counter()
    state = service_rules.get_rule(lake, root, rule_id)["state"]
    if state != "ok":
        with lake.read() as conn:
            errors = {row.last_error for row in conn.execute(select(requests.c.last_error))}
        raise RuntimeError(f"rule {rule_id} is {state} after the conveyor: {errors}")
    return {
        "seconds": end - start,
        "add_rule_s": round(added - start, 4),
        "evaluate_s": round(evaluated - added, 4),
        "conveyor_s": round(end - evaluated, 4),
        "requests_handled": handled,
    }


def timed_replication(
    lake: Any, name: str, expression: str, *, profile: str | None = None
) -> dict[str, Any]:
    """``replicate`` with the peak RSS of what it runs (VmHWM reset first) and, with
    ``profile``, under py-spy; also checks every replica is ``available``."""
    reset = reset_peak_rss()
    spy = start_profiler(profile, f"{Path(sys.argv[0]).stem}-{lake.engine.dialect.name}")
    try:
        timing = replicate(lake, name, expression)
    finally:
        stop_profiler(spy)
    timing["run_peak_rss"] = own_peak_rss() if reset else None
    states = replica_states(lake)
    if set(states) != {"available"}:
        raise RuntimeError(f"replicas by state after the rule is ok: {states}")
    timing["replicas"] = states["available"]
    return timing


def replica_states(lake: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from lacus.db.tables import replicas

    with lake.read() as conn:
        query = select(replicas.c.state, func.count()).group_by(replicas.c.state)
        return {state: int(count) for state, count in conn.execute(query).all()}


def start_profiler(directory: str | None, name: str) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of this process into ``directory/name.txt`` (every thread py-spy does
    not see idle, raw collapsed stacks), or None without ``directory``."""
    if not directory:
        return None
    os.makedirs(directory, exist_ok=True)
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or "py-spy"
    process = subprocess.Popen(
        [spy, "record", "--pid", str(os.getpid()), "--threads", "--rate", str(PROFILE_RATE),
         "--format", "raw", "--output", os.path.join(directory, f"{name}.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    return process


def stop_profiler(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


THREAD_KINDS = (  # thread name part -> what it does
    ("MainThread", "main thread (claims, plans, dispatches, registers)"),
    ("lacus-transfer", "transfer workers (copies)"),
    ("lacus-adler32", "checksum helpers"),
    ("lacus-md5", "checksum helpers"),
    ("lacus-read-back", "read-back helpers"),
)


def summarize_profile(path: Path, seconds: float, top: int = 8) -> None:
    """Busy seconds per kind of thread against the wall time (py-spy leaves out the samples of
    threads it sees idle; a thread in a system call, fsync or a lock wait, may count as busy),
    and the hottest frames of each: the deepest frame, with the deepest Lacus frame above it."""
    if not path.exists():
        print(f"  (no profile at {path})")
        return
    by_kind: Counter[str] = Counter()
    frames_of: dict[str, Counter[str]] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [frame.strip() for frame in stack.split(";")]
        kind = next((k for part, k in THREAD_KINDS if part in frames[0]), "other threads")
        by_kind[kind] += int(count)
        ours = [f for f in frames[1:] if "lacus/" in f]
        where = frames[-1] if not ours or ours[-1] == frames[-1] else f"{frames[-1]} in {ours[-1]}"
        frames_of.setdefault(kind, Counter())[where] += int(count)
    print(f"  py-spy ({path}): busy time by thread kind over {seconds:.1f} s of wall time")
    for kind, count in by_kind.most_common():
        print(f"  {count / PROFILE_RATE:7.1f} s  {kind}")
        for where, n in frames_of[kind].most_common(top):
            print(f"      {n / PROFILE_RATE:6.2f} s  {where[:160]}")
