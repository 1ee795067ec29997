"""``lacus init``, ``lacus serve``, ``lacus login``, ``lacus whoami``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_object, table
from lacus.client import Client, ClientConfig, load_config, save_config


def init(
    directory: Annotated[Path, typer.Argument(help="Directory of the new lake.")],
    root_password: Annotated[
        str | None, typer.Option(help="Password of the root account (generated when omitted).")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the catalog (default: SQLite inside DIR; "
            "LACUS_DATABASE_URL does the same)."
        ),
    ] = None,
) -> None:
    """Create a lake: catalog, root account and three POSIX RSEs."""
    from lacus.service import init_lake

    url = database or os.environ.get("LACUS_DATABASE_URL")
    settings, password = init_lake(directory, root_password=root_password, database_url=url)
    out = console()
    out.print(f"Lake created in {settings.lake_dir}")
    out.print(f"  catalog: {_safe_url(settings.database_url)}")
    out.print("  RSEs: ALPHA_DISK, BETA_DISK (qos=DISK), GAMMA_TAPE (qos=TAPE)")
    if root_password is None:
        out.print(f"  root password: {password}   (shown once: keep it)")
    out.print(f"Serve it with:  lacus serve --lake {settings.lake_dir}")
    out.print("Then log in:    lacus login --account root --password ...")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve(
    lake: Annotated[
        Path | None, typer.Option(help="Lake directory (default $LACUS_LAKE or ./lacus-data).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    daemons: Annotated[
        bool,
        typer.Option(help="Run the rule engine's daemons in the server (embedded mode)."),
    ] = True,
) -> None:
    """Serve a lake over HTTP (Rucio's REST dialect), with its daemons unless told not to."""
    from lacus.server import create_app
    from lacus.server.connections import serve as serve_guarded
    from lacus.service import load_settings

    directory = lake or Path(os.environ.get("LACUS_LAKE", "lacus-data"))
    settings = load_settings(directory)
    app = create_app(settings, daemons=daemons)
    console().print(f"Lacus serving {settings.lake_dir} on http://{host}:{port}")
    console().print(f"  dashboard: http://{host}:{port}/dashboard")
    serve_guarded(settings, app, host=host, port=port)


def login(
    url: Annotated[str | None, typer.Option(help="Server URL (default $LACUS_URL).")] = None,
    account: Annotated[str | None, typer.Option(help="Account (default $LACUS_ACCOUNT).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (default $LACUS_PASSWORD; asked when missing).")
    ] = None,
) -> None:
    """Check credentials and save them for later commands."""
    config = load_config(url, account, password)
    if not config.account:
        config = ClientConfig(config.url, typer.prompt("Account"), config.password, None)
    if not config.password:
        config = ClientConfig(
            config.url, config.account, typer.prompt("Password", hide_input=True), None
        )
    with Client(config.url, account=config.account, password=config.password) as checked:
        me = checked.whoami()
    path = save_config(ClientConfig(config.url, config.account, config.password, None))
    console().print(f"Logged in to {config.url} as {me['account']}; settings saved in {path}")


def whoami(json: JsonOption = False) -> None:
    """Show the account the client acts as."""
    with client() as lacus:
        me = lacus.whoami()
        me["server"] = lacus.config.url
    if json:
        emit_object(me)
    else:
        table(
            [me],
            [
                ("account", "account"),
                ("account_type", "type"),
                ("admin", "admin"),
                ("server", "server"),
            ],
        )
