"""Stream ingestion and consumption (issue 6): chunks from a directory being filled, a
generator, a framed byte stream; open datasets (per run, per hour, closed when done) with their
rules; a consumer that follows the dataset's events and downloads each chunk once, verified; a
corrupted chunk caught; both sides across a killed server, the consumer across its own kill."""

from __future__ import annotations

import io
import signal
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from lacus.client import Client
from lacus.client.stream import (
    Chunk,
    ChunkStatus,
    DatasetPer,
    Ingestor,
    RuleSpec,
    directory_chunks,
    frame,
    framed_chunks,
    read_chunk,
    virgo_chunks,
)
from lacus.client.stream.consume import Consumer, read_report
from lacus.client.stream.virgo import GPS_EPOCH_UNIX, LEAP_SECONDS, chunk_name
from lacus.errors import ServerUnavailable
from lacus.naming import deterministic_path
from lacus.service import Lake
from tests.conftest import CLIResult, wait_until
from tests.rule_helpers import rse_prefix
from tests.test_cli import clean_env, lacus_program
from tests.test_events_restart import PASSWORD, Served, served  # noqa: F401 - the fixture

SCOPE = "virgo"


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def gps_before_hour(seconds: int) -> int:
    """A GPS time ``seconds`` before a full UTC hour."""
    unix = 1_700_002_800  # 2023-11-14T23:00:00Z
    return unix - seconds - GPS_EPOCH_UNIX + LEAP_SECONDS


def names_in(client: Client, did: str) -> list[str]:
    return sorted(child["name"] for child in client.list_content(did))


@pytest.fixture
def scoped(client: Client) -> Client:
    client.add_scope(SCOPE, account="root")
    return client


# -- ingestion ----------------------------------------------------------------------------------


def test_a_directory_being_filled_goes_into_one_open_dataset(
    scoped: Client, lake: Lake, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    contents = {f"chunk-{i:03d}.dat": f"payload {i}".encode() * 50 for i in range(12)}

    def write_files() -> None:  # as a data taker does: a temporary name, then a rename
        for name, data in contents.items():
            (incoming / f".{name}").write_bytes(data)
            (incoming / f".{name}").rename(incoming / name)
            time.sleep(0.01)

    writer = threading.Thread(target=write_files)
    writer.start()
    ingestor = Ingestor(scoped, rse="ALPHA_DISK", scope=SCOPE, dataset="run1", close=False)
    report = ingestor.run(directory_chunks(incoming, interval=0.01), count=len(contents))
    writer.join()

    assert [c.status for c in report.chunks] == [ChunkStatus.REGISTERED] * len(contents)
    assert names_in(scoped, f"{SCOPE}:run1") == sorted(contents)
    assert scoped.get_did(f"{SCOPE}:run1")["open"] is True  # close=False: the run goes on
    replicas = {r["name"]: r for r in scoped.list_replicas([f"{SCOPE}:run1"])}
    root = rse_prefix(lake, "ALPHA_DISK")
    for name, data in contents.items():
        assert replicas[name]["adler32"] == adler32(data)
        assert (root / deterministic_path(SCOPE, name)).read_bytes() == data
    meta = scoped.get_metadata(f"{SCOPE}:chunk-000.dat")
    assert meta["chunk_created"] == pytest.approx((incoming / "chunk-000.dat").stat().st_mtime)
    assert all(c.latency is not None and c.registered for c in report.chunks)


def test_a_generator_fills_hour_datasets_each_closed_when_its_hour_ends_with_its_rule(
    scoped: Client, lake: Lake
) -> None:
    start = gps_before_hour(3)  # 3 chunks in one hour, 4 in the next
    ingestor = Ingestor(
        scoped,
        rse="ALPHA_DISK",
        scope=SCOPE,
        dataset="V1_STRAIN",
        dataset_per=DatasetPer.HOUR,
        rule=RuleSpec("BETA_DISK", copies=1, lifetime=3600),
        close=False,  # only an hour's end closes a dataset
    )
    report = ingestor.run(virgo_chunks(start_gps=start, count=7))

    first, second = f"{SCOPE}:V1_STRAIN.20231114T22", f"{SCOPE}:V1_STRAIN.20231114T23"
    assert report.datasets == [first, second]
    assert [c.status for c in report.chunks] == [ChunkStatus.REGISTERED] * 7
    assert names_in(scoped, first) == [f"V-V1_O3_STRAIN-{start + i}-1.h5" for i in range(3)]
    assert len(names_in(scoped, second)) == 4
    assert scoped.get_did(first)["open"] is False
    assert scoped.get_did(second)["open"] is True  # its hour has not ended
    for did in (first, second):
        [rule] = scoped.list_rules(did=did)
        assert rule["rse_expression"] == "BETA_DISK"
    stored = rse_prefix(lake, "ALPHA_DISK") / deterministic_path(SCOPE, names_in(scoped, first)[1])
    gps, rate, strain = read_chunk(stored)
    assert (gps, rate, strain.shape, str(strain.dtype)) == (start + 1, 4096, (4096,), "float64")
    assert scoped.get_metadata(f"{SCOPE}:{names_in(scoped, first)[1]}")["gps_start"] == start + 1


def test_the_same_chunks_again_are_recognised_never_registered_twice(scoped: Client) -> None:
    chunks = [Chunk(name=f"c{i}", data=bytes([i]) * 1000) for i in range(5)]
    first = Ingestor(scoped, rse="ALPHA_DISK", scope=SCOPE, dataset="run", close=False)
    first.run(chunks[:3])

    again = Ingestor(scoped, rse="ALPHA_DISK", scope=SCOPE, dataset="run")
    report = again.run(chunks)

    statuses = {c.name: c.status for c in report.chunks}
    assert statuses == {
        "c0": ChunkStatus.ALREADY,
        "c1": ChunkStatus.ALREADY,
        "c2": ChunkStatus.ALREADY,
        "c3": ChunkStatus.REGISTERED,
        "c4": ChunkStatus.REGISTERED,
    }
    assert names_in(scoped, f"{SCOPE}:run") == [f"c{i}" for i in range(5)]
    assert scoped.get_did(f"{SCOPE}:run")["open"] is False
    assert report.closed == [f"{SCOPE}:run"]


def test_a_chunk_the_catalog_refuses_fails_alone_and_leaves_no_bytes(
    scoped: Client, lake: Lake
) -> None:
    other = b"other bytes"
    scoped.add_replicas(
        "BETA_DISK",
        [{"scope": SCOPE, "name": "c2", "bytes": len(other), "adler32": adler32(other)}],
    )
    chunks = [Chunk(name=f"c{i}", data=bytes([i]) * 1000) for i in range(6)]

    report = Ingestor(scoped, rse="ALPHA_DISK", scope=SCOPE, dataset="run").run(chunks)

    statuses = {c.name: c.status for c in report.chunks}
    assert statuses.pop("c2") == ChunkStatus.FAILED
    assert set(statuses.values()) == {ChunkStatus.REGISTERED}
    [failed] = [c for c in report.chunks if c.name == "c2"]
    assert failed.error is not None
    assert "exists already" in failed.error
    assert names_in(scoped, f"{SCOPE}:run") == ["c0", "c1", "c3", "c4", "c5"]
    assert not (rse_prefix(lake, "ALPHA_DISK") / deterministic_path(SCOPE, "c2")).exists()


class LosesAnswers(Client):
    """A client whose first registrations reach the server but whose answers are lost."""

    def __init__(self, *args: Any, losses: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.losses = losses

    def add_replicas(self, *args: Any, **kwargs: Any) -> None:
        super().add_replicas(*args, **kwargs)
        if self.losses:
            self.losses -= 1
            raise ServerUnavailable("the connection broke before the answer")


def test_a_registration_whose_answer_was_lost_counts_once(scoped: Client) -> None:
    url = scoped.config.url
    with LosesAnswers(url, token=scoped.token(), losses=2) as flaky:
        report = Ingestor(flaky, rse="ALPHA_DISK", scope=SCOPE, dataset="run", workers=1).run(
            Chunk(name=f"c{i}", data=bytes([i]) * 100) for i in range(4)
        )

    assert [c.status for c in report.chunks] == [ChunkStatus.REGISTERED] * 4
    assert names_in(scoped, f"{SCOPE}:run") == ["c0", "c1", "c2", "c3"]
    listed = list(scoped.list_replicas([f"{SCOPE}:run"]))
    assert sorted(r["name"] for r in listed) == ["c0", "c1", "c2", "c3"]
    assert all(list(r["rses"]) == ["ALPHA_DISK"] for r in listed)


def test_framed_standard_input_and_a_torn_stream(
    scoped: Client, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chunks = [Chunk(name=f"f{i}.bin", data=f"framed {i}\n".encode() * 20) for i in range(3)]
    stream = b"".join(frame(chunk) for chunk in chunks)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stream)))
    report = tmp_path / "ingest.jsonl"

    result: CLIResult = cli(
        "stream", "ingest", "--stdin", "--rse", "ALPHA_DISK", "--scope", SCOPE,
        "--dataset", "framed", "--report", str(report),
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "3 chunk(s) registered" in result.stdout
    assert names_in(scoped, f"{SCOPE}:framed") == ["f0.bin", "f1.bin", "f2.bin"]
    lines = report.read_text().splitlines()
    assert len(lines) == 3
    assert all('"status":"registered"' in line for line in lines)
    created = scoped.get_metadata(f"{SCOPE}:f1.bin")["chunk_created"]
    assert created == pytest.approx(chunks[1].created, abs=1e-6)

    torn = frame(Chunk(name="g0", data=b"x" * 100))[:-10]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(torn)))
    result = cli(
        "stream", "ingest", "--stdin", "--rse", "ALPHA_DISK", "--scope", SCOPE,
        "--dataset", "torn",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: record 1 (g0): the stream ended after 90 of 100 bytes"
    assert "Traceback" not in result.stderr
    assert list(scoped.list_dids(f"{SCOPE}:g*")) == []


def test_simulated_virgo_chunks_piped_into_ingest(
    scoped: Client, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = 1_300_000_000
    simulate = [lacus_program(), "stream", "simulate", "--count", "4", "--gps", str(first)]
    before = time.time()
    produced = subprocess.run(simulate, capture_output=True, env=clean_env(), check=True)

    chunks = list(framed_chunks(io.BytesIO(produced.stdout)))
    assert [c.name for c in chunks] == [chunk_name(first + i) for i in range(4)]
    for index, chunk in enumerate(chunks):
        assert chunk.data is not None
        gps, rate, strain = read_chunk(chunk.data)
        assert (gps, rate, strain.shape) == (first + index, 4096, (4096,))
        assert before <= chunk.created <= time.time()  # stamped when made, carried by the frame
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(produced.stdout)))
    result: CLIResult = cli(
        "stream", "ingest", "--stdin", "--rse", "ALPHA_DISK", "--scope", SCOPE,
        "--dataset", "simulated",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert names_in(scoped, f"{SCOPE}:simulated") == [c.name for c in chunks]
    created = scoped.get_metadata(f"{SCOPE}:{chunks[2].name}")["chunk_created"]
    assert created == pytest.approx(chunks[2].created, abs=1e-6)

    # a reader that goes away: one line, a non-zero exit, no traceback
    process = subprocess.Popen(
        [*simulate[:4], "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.read(100)
    process.stdout.close()
    assert process.wait(timeout=30) == 1
    with process.stderr:
        assert process.stderr.read() == b"error: standard output closed by its reader\n"


# -- consumption -------------------------------------------------------------------------------


def test_the_consumer_downloads_each_chunk_once_verified_and_resumes(
    scoped: Client, tmp_path: Path
) -> None:
    scoped.add_dataset(f"{SCOPE}:run")
    ingest = Ingestor(scoped, rse="ALPHA_DISK", scope=SCOPE, dataset="run", close=False)
    chunks = list(virgo_chunks(start_gps=1_300_000_000, count=8))
    ingest.run(chunks[:5])
    directory = tmp_path / "consumed"

    first = Consumer(scoped, f"{SCOPE}:run", directory).run(total=5)
    again = Consumer(scoped, f"{SCOPE}:run", directory).run(total=5)  # nothing new: returns
    ingest.run(chunks[5:])
    resumed = Consumer(scoped, f"{SCOPE}:run", directory).run(total=8)

    assert first.summary()["downloaded"] == 5
    assert again.summary()["files"] == 0
    assert again.earlier == 5
    assert sorted(f.did for f in resumed.files) == sorted(f"{SCOPE}:{c.name}" for c in chunks[5:])
    lines = read_report(directory)
    assert sorted(line["did"] for line in lines) == sorted(f"{SCOPE}:{c.name}" for c in chunks)
    for chunk in chunks:
        assert chunk.data is not None
        assert (directory / SCOPE / chunk.name).read_bytes() == chunk.data
    assert all(line["status"] == "downloaded" and line["latency"] > 0 for line in lines)
    created = {f"{SCOPE}:{c.name}": c.created for c in chunks}
    assert all(line["created"] == pytest.approx(created[line["did"]]) for line in lines)


def test_a_chunk_corrupted_on_storage_is_caught_not_counted(
    scoped: Client, lake: Lake, cli: Any, tmp_path: Path
) -> None:
    chunks = [Chunk(name=f"c{i}", data=bytes([65 + i]) * 4000) for i in range(3)]
    Ingestor(scoped, rse="ALPHA_DISK", scope=SCOPE, dataset="run").run(chunks)
    stored = rse_prefix(lake, "ALPHA_DISK") / deterministic_path(SCOPE, "c1")
    stored.write_bytes(b"Z" * 4000)  # same size, other bytes: a silent corruption
    directory = tmp_path / "consumed"

    result: CLIResult = cli(
        "stream", "consume", f"{SCOPE}:run", "--dir", str(directory), "--count", "3"
    )

    assert result.exit_code == 1
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("error: 1 file(s) not downloaded; first: virgo:c1: corrupted:")
    assert "0 corrupted" not in result.stdout
    assert "2 file(s) downloaded" in result.stdout
    lines = {line["did"]: line for line in read_report(directory)}
    assert lines[f"{SCOPE}:c1"]["status"] == "corrupted"
    assert not (directory / SCOPE / "c1").exists()
    assert (directory / SCOPE / "c0").read_bytes() == chunks[0].data
    assert not [p for p in (directory / SCOPE).iterdir() if p.name not in ("c0", "c2")]


# -- a killed server, a killed consumer ---------------------------------------------------------


def test_ingest_and_consume_lose_and_repeat_nothing_across_kills(
    served: Served,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    total = 120
    root = Client(served.url, account="root", password=PASSWORD)
    root.add_scope(SCOPE)
    root.add_dataset(f"{SCOPE}:run")
    directory = tmp_path / "consumed"
    env = clean_env(LACUS_URL=served.url, LACUS_ACCOUNT="root", LACUS_PASSWORD=PASSWORD)
    consume = [
        lacus_program(), "stream", "consume", f"{SCOPE}:run", "--dir", str(directory),
        "--count", str(total),
    ]  # fmt: skip
    consumer = subprocess.Popen(consume, env=env, stdout=subprocess.DEVNULL)
    settled: list[str] = []
    writer = Client(served.url, account="root", password=PASSWORD)
    ingestor = Ingestor(
        writer,
        rse="ALPHA_DISK",
        scope=SCOPE,
        dataset="run",
        on_result=lambda result: settled.append(result.name),
    )
    results: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: results.setdefault(
            "report", ingestor.run(virgo_chunks(start_gps=1_300_000_000, count=total), rate=40)
        )
    )
    thread.start()
    try:
        wait_until(lambda: len(settled) >= 30, timeout=60)
        served.kill()  # mid-stream: registrations and the event stream lose their server
        served.start()
        wait_until(lambda: len(read_report(directory)) >= 60, timeout=60)
        consumer.send_signal(signal.SIGKILL)  # mid-stream: the consumer dies too
        consumer.wait()
        consumer = subprocess.Popen(consume, env=env, stdout=subprocess.DEVNULL)
        thread.join(timeout=120)
        assert consumer.wait(timeout=120) == 0
    finally:
        writer.close()
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()

    report = results["report"]
    assert report.count(ChunkStatus.REGISTERED) == total
    assert len(names_in(root, f"{SCOPE}:run")) == total
    assert root.get_did(f"{SCOPE}:run")["open"] is False
    lines = read_report(directory)
    assert len(lines) == total
    assert len({line["did"] for line in lines}) == total
    assert {line["status"] for line in lines} == {"downloaded"}
    files = sorted((directory / SCOPE).iterdir())
    assert len(files) == total
    expected = {r["name"]: r["adler32"] for r in root.list_replicas([f"{SCOPE}:run"])}
    root.close()
    assert all(adler32(path.read_bytes()) == expected[path.name] for path in files)
