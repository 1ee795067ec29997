"""``lacus rse add|list|info|update|set-attr`` and ``lacus rse distance``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from lacus.cli import distances
from lacus.cli._common import JsonOption, client, parse_pairs
from lacus.cli._output import console, emit_json, emit_object, human_bytes, table
from lacus.errors import InvalidInput

app = typer.Typer(help="Storage elements (RSEs).", no_args_is_help=True)
app.add_typer(distances.app, name="distance")


@app.command("add")
def add(
    rse: Annotated[str, typer.Argument(help="RSE name (upper case, digits, '_', '-').")],
    prefix: Annotated[
        str | None, typer.Option(help="Storage prefix: a directory for POSIX RSEs.")
    ] = None,
    scheme: Annotated[str, typer.Option(help="Protocol scheme of the prefix.")] = "file",
    url: Annotated[
        str | None,
        typer.Option(
            help="Where the storage is, instead of --prefix/--scheme: davs://host:port/path, "
            "root://host:port//path, s3://host:port/bucket/path, file:///path."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="Storage backend option key=value (repeatable): verify=CA.pem, tpc=true, "
            "access_key=..., secure=false."
        ),
    ] = None,
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
    hostname, port = "", 0
    if url is not None:
        if prefix is not None:
            raise InvalidInput("give either --url or --prefix, not both")
        scheme, hostname, port, prefix = parse_storage_url(url)
    if prefix is not None and scheme == "file":
        prefix = str(Path(prefix).resolve())
        Path(prefix).mkdir(parents=True, exist_ok=True)
    with client() as lacus:
        lacus.add_rse(
            rse,
            prefix=prefix,
            scheme=scheme,
            hostname=hostname,
            port=port,
            options=backend_options(option or []),
            rse_type=rse_type,
            deterministic=deterministic,
            total_bytes=total_bytes,
            attributes=attributes,
            read_only=read_only,
        )
    console().print(f"Added RSE {rse}" + (" (read-only)" if read_only else ""))


@app.command("add-protocol")
def add_protocol(
    rse: str,
    url: Annotated[str, typer.Argument(help="davs://host:port/path, root://host:port//path...")],
    option: Annotated[
        list[str] | None, typer.Option(help="Storage backend option key=value (repeatable).")
    ] = None,
) -> None:
    """Add a way to reach an RSE's storage (admins only)."""
    scheme, hostname, port, prefix = parse_storage_url(url)
    with client() as lacus:
        lacus.add_protocol(
            rse,
            scheme=scheme,
            prefix=prefix,
            hostname=hostname,
            port=port,
            options=backend_options(option or []),
        )
    console().print(f"Added protocol {scheme}://{hostname}:{port}{prefix} to {rse}")


def parse_storage_url(url: str) -> tuple[str, str, int, str]:
    """``scheme://host:port/path`` → scheme, host, port (0: the scheme's default), prefix."""
    parts = urlsplit(url)
    if not parts.scheme or (parts.scheme != "file" and not parts.hostname):
        raise InvalidInput(f"invalid storage URL {url[:100]!r}: expected scheme://host[:port]/path")
    try:
        port = parts.port or 0
    except ValueError:
        raise InvalidInput(f"invalid port in storage URL {url[:100]!r}") from None
    if parts.query or parts.fragment:
        raise InvalidInput(f"invalid storage URL {url[:100]!r}: no query or fragment")
    prefix = parts.path or "/"
    return parts.scheme.lower(), parts.hostname or "", port, prefix


def backend_options(pairs: list[str]) -> dict[str, object]:
    """``key=value`` options; true/false become booleans and whole numbers integers."""
    options: dict[str, object] = {}
    for key, value in parse_pairs(pairs, what="option").items():
        lowered = value.lower()
        if lowered in ("true", "false"):
            options[key] = lowered == "true"
        elif value.isdigit():
            options[key] = int(value)
        else:
            options[key] = value
    return options


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
        options = proto.get("extended_attributes") or {}
        shown = "".join(f" {key}={value}" for key, value in sorted(options.items()))
        out.print(f"  protocol {proto['scheme']}://{host}{proto['prefix']}{shown}")


@app.command("set-attr")
def set_attr(rse: str, key: str, value: str) -> None:
    """Set an RSE attribute (admins only)."""
    with client() as lacus:
        lacus.set_rse_attribute(rse, key, value)
    console().print(f"{rse}: {key} = {value}")
