"""``lacus rse distance set|list|delete``: links between RSEs (how close a source is, how many
copies may run on the link at once)."""

from __future__ import annotations

from typing import Annotated

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, table

app = typer.Typer(
    help="Links between RSEs: distance (lower: preferred source) and copies in flight.",
    no_args_is_help=True,
)


@app.command("set")
def set_(
    src: Annotated[str, typer.Argument(help="Source RSE.")],
    dest: Annotated[str, typer.Argument(help="Destination RSE.")],
    distance: Annotated[int, typer.Argument(help="0 or more; lower is preferred.", min=0)],
    max_active: Annotated[
        int | None,
        typer.Option(
            help="At most this many copies in flight on the link (default: no limit).", min=1
        ),
    ] = None,
) -> None:
    """Link SRC to DEST (admins only). An RSE with links is a source only for the RSEs it is
    linked to; one without any is a source for every RSE."""
    with client() as lacus:
        lacus.set_distance(src, dest, distance, max_active=max_active)
    limit = f", at most {max_active} in flight" if max_active is not None else ""
    console().print(f"{src} -> {dest}: distance {distance}{limit}")


@app.command("list")
def list_(
    src: Annotated[str | None, typer.Argument(help="Only the links from this RSE.")] = None,
    json: JsonOption = False,
) -> None:
    """List links: source, destination, distance, max_active."""
    with client() as lacus:
        found = lacus.list_distances(src=src)
    if json:
        emit_json(found)
        return
    table(
        found,
        [
            ("src_rse", "source"),
            ("dest_rse", "destination"),
            ("distance", "distance"),
            ("max_active", "max active"),
        ],
    )


@app.command("delete")
def delete(
    src: Annotated[str, typer.Argument(help="Source RSE.")],
    dest: Annotated[str, typer.Argument(help="Destination RSE.")],
) -> None:
    """Remove the link from SRC to DEST (admins only)."""
    with client() as lacus:
        lacus.delete_distance(src, dest)
    console().print(f"{src} -> {dest}: unlinked")
