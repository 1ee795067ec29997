"""``lacus stream ingest``, ``consume`` and ``simulate``: chunk streams into and out of the lake."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_object
from lacus.client.stream.chunks import Chunk, directory_chunks, frame, framed_chunks, paced
from lacus.client.stream.ingest import ChunkResult, DatasetPer, Ingestor, RuleSpec
from lacus.errors import InvalidInput, LacusError, LocalFileError

app = typer.Typer(help="Stream chunks into the lake as they are made, and out as they arrive.")


class _Lines:
    """Appends one JSON line per result to a report file, from any thread."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._out: IO[bytes] | None = None
        if path is not None:
            try:
                self._out = open(path, "ab")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise LocalFileError(f"cannot write {path}: {exc.strerror}") from None

    def __call__(self, result: ChunkResult) -> None:
        if self._out is not None:
            line = orjson.dumps(result.to_json()) + b"\n"
            with self._lock:
                self._out.write(line)
                self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _source(
    from_dir: Path | None,
    stdin: bool,
    virgo: bool,
    *,
    pattern: str,
    settle: float,
    idle_timeout: float | None,
    gps: int | None,
) -> Iterator[Chunk]:
    chosen = [
        name
        for name, on in (("--from-dir", from_dir), ("--stdin", stdin), ("--virgo", virgo))
        if on
    ]
    if len(chosen) != 1:
        raise InvalidInput("give one source: --from-dir DIR, --stdin or --virgo")
    if from_dir is not None:
        return directory_chunks(from_dir, pattern=pattern, settle=settle, idle_timeout=idle_timeout)
    if stdin:
        return framed_chunks(sys.stdin.buffer)
    from lacus.client.stream.virgo import virgo_chunks

    return virgo_chunks(start_gps=gps)


def _ms(stats: dict[str, Any]) -> str:
    if not stats["count"]:
        return "no latency measured"
    return (
        f"mean {stats['mean'] * 1000:.1f} ms, p50 {stats['p50'] * 1000:.1f} ms, "
        f"p99 {stats['p99'] * 1000:.1f} ms"
    )


@app.command()
def ingest(
    rse: Annotated[str, typer.Option(help="RSE the chunks are written to.")],
    scope: Annotated[str, typer.Option(help="Scope of the chunks and datasets.")],
    dataset: Annotated[
        str, typer.Option(help="The run's dataset; with --dataset-per hour, their name prefix.")
    ],
    dataset_per: Annotated[
        DatasetPer,
        typer.Option(help="One open dataset per run, or per hour of the chunks' data (UTC)."),
    ] = DatasetPer.RUN,
    from_dir: Annotated[
        Path | None,
        typer.Option(help="Ingest the complete files that appear in this directory."),
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read framed chunks from standard input.")
    ] = False,
    virgo: Annotated[
        bool, typer.Option("--virgo", help="Simulated Virgo strain: 1 s of 4096 Hz per chunk.")
    ] = False,
    gps: Annotated[
        int | None, typer.Option(help="GPS time of the first simulated chunk (default now).")
    ] = None,
    pattern: Annotated[str, typer.Option(help="With --from-dir: names to take (glob).")] = "*",
    settle: Annotated[
        float,
        typer.Option(help="With --from-dir: take a file only once unmodified this many seconds."),
    ] = 0.0,
    idle_timeout: Annotated[
        float | None,
        typer.Option(help="With --from-dir: stop after this many seconds without a new file."),
    ] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many chunks.")] = None,
    rate: Annotated[
        float | None, typer.Option(help="Chunks per second (default: as fast as they come).")
    ] = None,
    rule_rse: Annotated[
        str | None, typer.Option(help="Add a rule on each new dataset: RSE expression.")
    ] = None,
    copies: Annotated[int, typer.Option(help="With --rule-rse: copies.")] = 1,
    lifetime: Annotated[
        int | None, typer.Option(help="With --rule-rse: the rule's lifetime in seconds.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Chunks written in parallel.")] = 4,
    close: Annotated[
        bool, typer.Option(help="Close every dataset of the run when the source ends.")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Append one JSON line per chunk to this file.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Write chunks to an RSE as they come and register each in an open dataset at once."""
    if count is not None and count < 1:
        raise InvalidInput("--count is 1 or more")
    source = _source(
        from_dir, stdin, virgo, pattern=pattern, settle=settle, idle_timeout=idle_timeout, gps=gps
    )
    rule = RuleSpec(rule_rse, copies, lifetime) if rule_rse else None
    lines = _Lines(report)
    try:
        with client() as lacus:
            ingestor = Ingestor(
                lacus,
                rse=rse,
                scope=scope,
                dataset=dataset,
                dataset_per=dataset_per,
                rule=rule,
                workers=workers,
                close=close,
                on_result=lines,
            )
            result = ingestor.run(source, rate=rate, count=count)
    finally:
        lines.close()
    summary = result.summary()
    if json:
        emit_object(summary)
    else:
        console().print(
            f"{summary['registered']} chunk(s) registered, {summary['already']} already there, "
            f"{summary['failed']} failed, in {summary['seconds']:.1f} s; datasets: "
            f"{', '.join(summary['datasets']) or 'none'} (closed: {len(summary['closed'])})"
        )
        console().print(f"creation to registration: {_ms(summary['latency'])}")
    if summary["failed"]:
        first = next(c for c in result.chunks if c.error)
        raise LacusError(f"{summary['failed']} chunk(s) failed; first: {first.name}: {first.error}")


@app.command()
def consume(
    did: Annotated[str, typer.Argument(help="The dataset (or container) to follow: SCOPE:NAME.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where the files go (DIR/scope/name).")],
    count: Annotated[
        int | None,
        typer.Option(help="Stop once this many files are handled (earlier runs' included)."),
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a new file.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Files downloaded in parallel.")] = 4,
    json: JsonOption = False,
) -> None:
    """Download each new file of a dataset as soon as it is available, verified; resumable."""
    from lacus.client.stream.consume import REPORT_FILE, Consumer

    if count is not None and count < 1:
        raise InvalidInput("--count is 1 or more")
    with client() as lacus:
        consumer = Consumer(lacus, did, directory, workers=workers)
        result = consumer.run(total=count, timeout=idle_timeout)
    summary = result.summary()
    if json:
        emit_object(summary)
        return
    console().print(
        f"{summary['downloaded']} file(s) downloaded and verified, {summary['corrupted']} "
        f"corrupted, {summary['failed']} failed ({summary['earlier']} by earlier runs); "
        f"report: {directory / REPORT_FILE}"
    )
    console().print(f"creation to verified copy: {_ms(summary['latency'])}")
    bad = [f for f in result.files if f.status != "downloaded"]
    if bad:
        raise LacusError(
            f"{len(bad)} file(s) not downloaded; first: {bad[0].did}: {bad[0].status}: "
            f"{bad[0].error}"
        )


@app.command()
def simulate(
    count: Annotated[int | None, typer.Option(help="Stop after this many chunks.")] = None,
    rate: Annotated[
        float | None, typer.Option(help="Chunks per second (default: as fast as they are made).")
    ] = None,
    gps: Annotated[
        int | None, typer.Option(help="GPS time of the first chunk (default now).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated noise.")] = 0,
) -> None:
    """Simulated Virgo strain (1 s of 4096 Hz per chunk, HDF5) framed on standard output, for
    ``lacus stream ingest --stdin``: a detector's data acquisition in its own process."""
    from lacus.client.stream.virgo import virgo_chunks

    if count is not None and count < 1:
        raise InvalidInput("--count is 1 or more")
    out = sys.stdout.buffer
    if out.isatty():
        raise InvalidInput(
            "the chunks are binary: pipe them, e.g. into lacus stream ingest --stdin"
        )
    try:
        for chunk in paced(virgo_chunks(start_gps=gps, count=count, seed=seed), rate):
            out.write(frame(chunk))
            out.flush()
    except BrokenPipeError:
        # the reader is gone; stdout is pointed at /dev/null so that the interpreter's own
        # flush at exit does not fail a second time
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise LocalFileError("standard output closed by its reader") from None
