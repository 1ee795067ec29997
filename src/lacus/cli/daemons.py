"""``lacus daemon NAME``: run one daemon (or all) against a lake, outside the server."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from lacus.cli._output import console
from lacus.errors import InvalidInput


def daemon(
    name: Annotated[
        str,
        typer.Argument(
            help="A daemon's name (docs/rules.md lists them, and so does a wrong name), or all."
        ),
    ],
    lake: Annotated[
        Path | None, typer.Option(help="Lake directory (default $LACUS_LAKE or ./lacus-data).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Work until nothing is left, then stop.")
    ] = False,
    threads: Annotated[int, typer.Option(help="Threads per daemon.", min=1, max=64)] = 1,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this process's Prometheus metrics on this port (/metrics)."),
    ] = None,
) -> None:
    """Run a daemon of the rule engine (several processes may share one PostgreSQL catalog)."""
    from lacus.daemons import DAEMONS, DaemonRunner
    from lacus.daemons.base import run_once
    from lacus.service import Lake, load_settings

    chosen = list(DAEMONS.values()) if name == "all" else [DAEMONS.get(name)]
    if None in chosen:
        raise InvalidInput(f"no daemon {name!r}; daemons: {', '.join(DAEMONS)}, all")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(lake or Path(os.environ.get("LACUS_LAKE", "lacus-data")))
    the_lake = Lake(settings)
    try:
        if once:
            for item in chosen:
                assert item is not None
                done = run_once(the_lake, item)
                console().print(f"{item.name}: {done} item(s)")
            return
        if metrics_port is not None:
            from prometheus_client import start_http_server

            from lacus.service.metrics import registry

            start_http_server(metrics_port, addr="127.0.0.1", registry=registry(the_lake))
        DaemonRunner(the_lake, [d for d in chosen if d is not None], threads=threads).run_forever()
    finally:
        the_lake.close()
