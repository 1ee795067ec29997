"""``lacus scope add|list``."""

from __future__ import annotations

from typing import Annotated

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, table

app = typer.Typer(help="Scopes: namespaces owned by accounts.", no_args_is_help=True)


@app.command("add")
def add(
    scope: str,
    account: Annotated[str | None, typer.Option(help="Owner (default: you).")] = None,
) -> None:
    """Add a scope."""
    with client() as lacus:
        lacus.add_scope(scope, account=account)
    console().print(f"Added scope {scope}")


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List scopes and their owners."""
    with client() as lacus:
        found = lacus.list_scopes()
    if json:
        emit_json(found)
    else:
        table(found, [("scope", "scope"), ("account", "account"), ("created_at", "created")])
