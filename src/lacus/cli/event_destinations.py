"""``lacus events destinations``: where the event sender is with each broker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lacus.cli._common import JsonOption
from lacus.cli._output import emit_json, table

app = typer.Typer(help="Events forwarded to brokers (the event sender).", no_args_is_help=True)

_COLUMNS = [
    ("name", "destination"),
    ("kind", "kind"),
    ("target", "target"),
    ("last_id", "cursor"),
    ("delivered", "delivered"),
    ("backlog", "backlog"),
    ("oldest_waiting", "oldest waiting"),
    ("failures", "failures"),
    ("last_error", "last error"),
    ("last_error_at", "error at"),
]


@app.command()
def destinations(
    lake: Annotated[
        Path | None, typer.Option(help="Lake directory (default $LACUS_LAKE or ./lacus-data).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Each configured destination: its cursor (every event up to it was acknowledged), its
    backlog (events not yet delivered), failures in a row and the last error."""
    from lacus.service import Lake, load_settings
    from lacus.service.event_destinations import destination_status

    the_lake = Lake(load_settings(lake or Path(os.environ.get("LACUS_LAKE", "lacus-data"))))
    try:
        found = [status.as_dict() for status in destination_status(the_lake)]
    finally:
        the_lake.close()
    if json:
        emit_json(found)
        return
    table(found, _COLUMNS, title=None if found else "no event destinations configured")
