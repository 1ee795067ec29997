"""``lacus transfers list|matrix``: the transfer history and the transfer success matrix."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, emit_object, human_bytes, table

app = typer.Typer(
    help="Transfer history: every attempt, and the success matrix per source and destination.",
    no_args_is_help=True,
)
_COLUMNS = [
    ("finished_at", "finished"),
    ("did", "file"),
    ("source", "source"),
    ("destination", "destination"),
    ("bytes", "size"),
    ("state", "state"),
    ("seconds", "seconds"),
    ("error", "error"),
]


@app.command("list")
def list_(
    did: Annotated[str | None, typer.Option(help="Attempts for this file (scope:name).")] = None,
    state: Annotated[str | None, typer.Option(help="done or failed.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 1000).")] = 100,
    json: JsonOption = False,
) -> None:
    """List transfer attempts, newest first: file, source, destination, size, state, error."""
    with client() as lacus:
        found = lacus.list_transfers(did=did, state=state, limit=limit)
    if json:
        emit_json(found)
        return
    for attempt in found:
        attempt["did"] = f"{attempt['scope']}:{attempt['name']}"
        attempt["seconds"] = f"{attempt['duration']:.2f}"
        attempt["source"] = attempt["source"] or "-"
    table(found, _COLUMNS, formatters={"bytes": human_bytes})


def success_cell(cell: dict[str, Any] | None) -> Text:
    """``97% (35/36)``: green from 90 %, yellow from 50 %, red below; ``-``: no attempt."""
    if cell is None:
        return Text("-", style="dim")
    total = cell["done"] + cell["failed"]
    pct = 100.0 * cell["done"] / total if total else 0.0
    style = "green" if pct >= 90 else "yellow" if pct >= 50 else "red"
    return Text(f"{pct:.0f}% ({cell['done']}/{total})", style=style)


@app.command("matrix")
def matrix(
    hours: Annotated[
        float | None, typer.Option(help="Only the attempts of the last HOURS hours.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """The transfer success matrix: sources as rows, destinations as columns, % of attempts
    done (done/attempts); the row ``(none)`` counts attempts that found no source."""
    with client() as lacus:
        found = lacus.transfer_matrix(hours=hours)
    if json:
        emit_object(found)
        return
    cells = {(c["source"], c["destination"] or "?"): c for c in found["cells"]}
    sources = sorted({c["source"] for c in found["cells"]}, key=lambda s: (s is None, s or ""))
    destinations = sorted({c["destination"] or "?" for c in found["cells"]})
    grid = Table(title="Transfer success", show_edge=False, header_style="bold")
    grid.add_column("source \\ destination")
    for dest in destinations:
        grid.add_column(dest, justify="right")
    for source in sources:
        grid.add_row(
            source or "(none)", *(success_cell(cells.get((source, dest))) for dest in destinations)
        )
    console().print(grid)
