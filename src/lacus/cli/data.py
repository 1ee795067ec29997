"""``lacus upload`` and ``lacus download``: verified bytes with progress bars."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer

from lacus.cli._common import JsonOption, client, parse_pairs, parse_value
from lacus.cli._output import console, emit_json, human_bytes, table, transfer_progress


def _local_size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            for root, _dirs, names in os.walk(path):
                for name in names:  # a file that cannot be read is reported by the upload
                    with contextlib.suppress(OSError):
                        total += os.path.getsize(os.path.join(root, name))
    return total


def upload(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories to upload.")],
    rse: Annotated[str, typer.Option(help="RSE to write to.")],
    scope: Annotated[str, typer.Option(help="Scope of the new DIDs.")],
    dataset: Annotated[
        str | None, typer.Option(help="Attach the files to this dataset (created if missing).")
    ] = None,
    md5: Annotated[bool, typer.Option(help="Also compute and verify md5 (adler32 always).")] = True,
    meta: Annotated[
        list[str] | None, typer.Option(help="Metadata key=value for every file.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Files uploaded in parallel.")] = 4,
    path: Annotated[
        str | None,
        typer.Option(help="Where the one file goes on a non-deterministic RSE (under its prefix)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Upload files, or directory trees (a directory becomes a dataset; nested ones containers)."""
    values = {k: parse_value(v) for k, v in parse_pairs(meta or [], what="metadata").items()}
    progress, advance = transfer_progress("upload", _local_size(paths))
    with client() as lacus, progress:
        results = lacus.upload(
            paths,
            rse=rse,
            scope=scope,
            dataset=dataset,
            md5=md5,
            meta=values,
            workers=workers,
            progress=advance,
            path=path,
        )
    if json:
        emit_json(results)
        return
    total = sum(result["bytes"] for result in results)
    console().print(f"Uploaded {len(results)} file(s), {human_bytes(total)}, to {rse}")


def download(
    dids: Annotated[list[str], typer.Argument(help="DIDs (scope:name, '*' wildcards allowed).")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the files.")] = Path("."),
    structure: Annotated[
        bool, typer.Option(help="Keep the DID structure: DIR/scope/container/dataset/file.")
    ] = False,
    rse: Annotated[str | None, typer.Option(help="Only from this RSE.")] = None,
    workers: Annotated[int, typer.Option(help="Files downloaded in parallel.")] = 4,
    json: JsonOption = False,
) -> None:
    """Download DIDs, verifying the adler32 of every file; present files are skipped."""
    with client() as lacus:
        progress, advance = transfer_progress("download", 0)
        with progress:
            results = lacus.download(
                dids, directory, structure=structure, rse=rse, workers=workers, progress=advance
            )
    if json:
        emit_json(results)
        return
    table(results, [("did", "DID"), ("status", "status"), ("rse", "from"), ("path", "path")])
    downloaded = sum(1 for r in results if r["status"] == "downloaded")
    present = sum(1 for r in results if r["status"] == "present")
    console().print(f"{downloaded} downloaded, {present} already present, all verified")
