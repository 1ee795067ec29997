"""Printing: Rich tables for people, ``--json`` for scripts, one readable line for errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

_NOTHING = object()


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(items: Iterable[Any]) -> None:
    """Write ``items`` as one JSON array, streamed (a listing never has to fit in memory)."""
    out = sys.stdout
    iterator = iter(items)
    first = next(iterator, _NOTHING)  # an error (unknown DID...) comes before any output
    out.write("[")
    count = 0
    for item in iterator if first is _NOTHING else chain([first], iterator):
        out.write(",\n" if count else "\n")
        out.write(orjson.dumps(item).decode())
        count += 1
    out.write("\n]\n" if count else "]\n")
    out.flush()


def emit_object(item: Any) -> None:
    sys.stdout.write(orjson.dumps(item, option=orjson.OPT_INDENT_2).decode() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def table(
    items: Iterable[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
    formatters: dict[str, Callable[[Any], str]] | None = None,
) -> None:
    grid = Table(title=title, show_edge=False, header_style="bold")
    for _key, header in columns:
        grid.add_column(header, overflow="fold")
    fmt = formatters or {}
    for item in items:
        grid.add_row(*(fmt.get(key, _cell)(item.get(key)) for key, _ in columns))
    console().print(grid)


def human_bytes(value: Any) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(value)


def transfer_progress(description: str, total: int) -> tuple[Progress, Callable[[int], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=not sys.stderr.isatty(),
    )
    task = progress.add_task(description, total=total)

    def advance(count: int) -> None:
        progress.advance(task, count)

    return progress, advance
