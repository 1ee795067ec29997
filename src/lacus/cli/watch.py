"""``lacus watch``: react to each new file of a dataset or container as soon as it is there."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from lacus.cli._common import client
from lacus.cli._output import console, error_console
from lacus.client import Client, NewFile, follow_files
from lacus.errors import InvalidInput


def watch(
    did: Annotated[str, typer.Argument(help="The dataset or container to follow (scope:name).")],
    download: Annotated[
        Path | None,
        typer.Option(help="Download each new file here (DIR/scope/name), verifying its adler32."),
    ] = None,
    exec_: Annotated[
        str | None,
        typer.Option(
            "--exec",
            help="Run this command for each new file: '{}' in it is replaced by the file's local "
            "path (with --download) or its URL, else the path is appended.",
        ),
    ] = None,
    after: Annotated[
        int | None,
        typer.Option(help="Start after this event id (0: every event kept); default: from now."),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many files.")] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds without a new file.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object per file.")] = False,
) -> None:
    """Follow a dataset or container: print each file as soon as it has an available replica,
    download it (--download) and run a command on it (--exec). Survives server restarts."""
    command = shlex.split(exec_) if exec_ else None
    if exec_ is not None and not command:
        raise InvalidInput("--exec needs a command")
    handled = 0
    failures = 0
    with client() as lacus:
        for new in follow_files(lacus, did, after=after, timeout=timeout):
            where = _fetch(lacus, new, download) if download is not None else new.pfn
            _report(new, where, json)
            if command is not None:
                failures += _run(command, where, new)
            handled += 1
            if count is not None and handled >= count:
                break
    if failures:
        raise typer.Exit(1)


def _fetch(lacus: Client, new: NewFile, directory: Path) -> str:
    results = lacus.download([new.did], directory, structure=False, workers=1)
    return str(results[0]["path"])


def _report(new: NewFile, where: str, as_json: bool) -> None:
    if as_json:
        line = {
            "did": new.did,
            "rse": new.rse,
            "bytes": new.bytes,
            "adler32": new.adler32,
            "path": where,
            "event_id": new.event_id,
        }
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        sys.stdout.flush()
        return
    console().print(f"{new.did}  {new.rse}  {where}", highlight=False, soft_wrap=True)


def _run(command: list[str], where: str, new: NewFile) -> int:
    """Run ``command`` for one file; returns 1 if it failed (reported, the watch goes on)."""
    argv = [part.replace("{}", where) for part in command]
    if not any("{}" in part for part in command):
        argv.append(where)
    try:
        code = subprocess.run(argv, check=False).returncode
    except OSError as exc:
        error_console().print(f"error: cannot run {argv[0]!r} for {new.did}: {exc.strerror}")
        return 1
    if code != 0:
        error_console().print(f"error: {argv[0]!r} exited with {code} for {new.did}")
        return 1
    return 0
