"""``lacus rse add|list|info|update|set-attr`` and ``lacus rse distance``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lacus.cli import distances
from lacus.cli._common import JsonOption, client, parse_pairs
from lacus.cli._output import console, emit_json, emit_object, human_bytes, table

app = typer.Typer(help="Storage elements (RSEs).", no_args_is_help=True)
app.add_typer(distances.app, name="distance")


@app.command("add")
def add(
    rse: Annotated[str, typer.Argument(help="RSE name (upper case, digits, '_', '-').")],
    prefix: Annotated[
        str | None, typer.Option(help="Storage prefix: a directory for POSIX RSEs.")
    ] = None,
    scheme: Annotated[str, typer.Option(help="Protocol scheme of the prefix.")] = "file",
    rse_type: Annotated[str, typer.Option("--type", help="disk or tape.")] = "disk",
    deterministic: Annotated[
        bool, typer.Option(help="Paths derived from DIDs (Rucio's hash layout).")
    ] = True,
    total_bytes: Annotated[int | None, typer.Option(help="Capacity in bytes.")] = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="Attribute key=value (repeatable).")
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only",
            help="An archive Lacus reads but never writes to or deletes from: register the "
            "files already there; no uploads, no transfers to it.",
        ),
    ] = False,
) -> None:
    """Add an RSE (admins only)."""
    attributes = parse_pairs(attr or [], what="attribute")
    if prefix is not None and scheme == "file":
        prefix = str(Path(prefix).resolve())
        Path(prefix).mkdir(parents=True, exist_ok=True)
    with client() as lacus:
        lacus.add_rse(
            rse,
            prefix=prefix,
            scheme=scheme,
            rse_type=rse_type,
            deterministic=deterministic,
            total_bytes=total_bytes,
            attributes=attributes,
            read_only=read_only,
        )
    console().print(f"Added RSE {rse}" + (" (read-only)" if read_only else ""))


@app.command("update")
def update(
    rse: str,
    total_bytes: Annotated[int | None, typer.Option(help="Capacity in bytes.")] = None,
    read: Annotated[
        bool | None, typer.Option("--read/--no-read", help="Available for reading.")
    ] = None,
    write: Annotated[
        bool | None, typer.Option("--write/--no-write", help="Available for writing.")
    ] = None,
    delete: Annotated[
        bool | None, typer.Option("--delete/--no-delete", help="Available for deletion.")
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option("--read-only/--no-read-only", help="An archive Lacus never writes to."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Change an RSE's capacity, availability or read-only flag (admins only)."""
    values = {
        key: value
        for key, value in {
            "total_bytes": total_bytes,
            "availability_read": read,
            "availability_write": write,
            "availability_delete": delete,
            "read_only": read_only,
        }.items()
        if value is not None
    }
    with client() as lacus:
        found = lacus.update_rse(rse, **values)
    if json:
        emit_object(found)
        return
    console().print(
        f"{rse}: read {found['availability_read']}, write {found['availability_write']}, "
        f"delete {found['availability_delete']}, read-only {found['read_only']}, "
        f"total {human_bytes(found['total_bytes']) or 'unlimited'}"
    )


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List RSEs with their attributes and space."""
    with client() as lacus:
        found = lacus.list_rses()
    if json:
        emit_json(found)
        return
    table(
        found,
        [
            ("rse", "RSE"),
            ("rse_type", "type"),
            ("deterministic", "deterministic"),
            ("files", "files"),
            ("used_bytes", "used"),
            ("total_bytes", "total"),
            ("attributes", "attributes"),
        ],
        formatters={"used_bytes": human_bytes, "total_bytes": human_bytes},
    )


@app.command("info")
def info(rse: str, json: JsonOption = False) -> None:
    """Show one RSE: attributes, protocols, space."""
    with client() as lacus:
        found = lacus.get_rse(rse)
    if json:
        emit_object(found)
        return
    out = console()
    out.print(
        f"[bold]{found['rse']}[/bold]  ({found['rse_type']}, "
        f"{'deterministic' if found['deterministic'] else 'non-deterministic'}"
        f"{', read-only' if found.get('read_only') else ''})"
    )
    out.print(
        f"  files: {found['files']}   used: {human_bytes(found['used_bytes'])}   "
        f"total: {human_bytes(found['total_bytes']) or 'unlimited'}"
    )
    out.print(
        f"  read: {found['availability_read']}  write: {found['availability_write']}  "
        f"delete: {found['availability_delete']}"
    )
    for key, value in sorted(found["attributes"].items()):
        out.print(f"  attribute {key} = {value}")
    for proto in found["protocols"]:
        host = f"{proto['hostname']}:{proto['port']}" if proto["hostname"] else ""
        out.print(f"  protocol {proto['scheme']}://{host}{proto['prefix']}")


@app.command("set-attr")
def set_attr(rse: str, key: str, value: str) -> None:
    """Set an RSE attribute (admins only)."""
    with client() as lacus:
        lacus.set_rse_attribute(rse, key, value)
    console().print(f"{rse}: {key} = {value}")
