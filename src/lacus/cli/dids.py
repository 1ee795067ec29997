"""``lacus ls|files|replicas``, ``dataset add``, ``container add``, ``attach``, ``detach``,
``close``, ``meta get|set``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from lacus.cli._common import JsonOption, client, parse_pairs, parse_value
from lacus.cli._output import console, emit_json, emit_object, human_bytes, table

dataset_app = typer.Typer(help="Datasets: sets of files.", no_args_is_help=True)
container_app = typer.Typer(
    help="Containers: sets of datasets and containers.", no_args_is_help=True
)
meta_app = typer.Typer(help="Free-form metadata on DIDs.", no_args_is_help=True)
embargo_app = typer.Typer(
    help="Embargo: hide a DID (and all below it) or a scope from other accounts.",
    no_args_is_help=True,
)

_DID_COLUMNS = [
    ("scope", "scope"),
    ("name", "name"),
    ("type", "type"),
    ("bytes", "size"),
    ("length", "files"),
    ("open", "open"),
]


def ls(
    pattern: Annotated[str, typer.Argument(help="scope:name pattern, '*' as wildcard.")],
    filter: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", "-f", help="Metadata filter: key=value, key>n, key<n (repeatable)."
        ),
    ] = None,
    did_type: Annotated[
        str | None, typer.Option("--type", help="file, dataset, container or collection.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many results.")] = None,
    json: JsonOption = False,
) -> None:
    """Search DIDs by name pattern and metadata."""
    with client() as lacus:
        found = lacus.list_dids(pattern, filters=filter or [], did_type=did_type, limit=limit)
        if json:
            emit_json(found)
        else:
            table(found, _DID_COLUMNS, formatters={"bytes": human_bytes})


def files(did: str, json: JsonOption = False) -> None:
    """List the files of a DID (recursively)."""
    with client() as lacus:
        found = lacus.list_files(did)
        if json:
            emit_json(found)
        else:
            table(
                found,
                [("scope", "scope"), ("name", "name"), ("bytes", "size"), ("adler32", "adler32")],
                formatters={"bytes": human_bytes},
            )


def replicas(
    did: str,
    rse: Annotated[str | None, typer.Option(help="Only replicas on this RSE.")] = None,
    all_states: Annotated[
        bool, typer.Option("--all-states", help="Not only available ones (always with --json).")
    ] = False,
    json: JsonOption = False,
) -> None:
    """List the replicas of the files of a DID: with --all-states (and in JSON) also those
    not available (suspicious, bad, unavailable, lost...) with the reason."""
    with client() as lacus:
        found = lacus.list_replicas([did], rse=rse, all_states=all_states or json)
        if json:
            emit_json(found)
            return
        rows = (
            {
                "did": f"{item['scope']}:{item['name']}",
                "bytes": item["bytes"],
                "adler32": item["adler32"],
                "rse": rse_name,
                "state": location["state"],
                "reason": location.get("reason"),
                "pfn": location["pfn"],
            }
            for item in found
            for rse_name, location in sorted(item["rses"].items())
        )
        columns = [
            ("did", "DID"),
            ("bytes", "size"),
            ("adler32", "adler32"),
            ("rse", "RSE"),
            ("state", "state"),
            ("pfn", "PFN"),
        ]
        if all_states:
            columns.insert(5, ("reason", "reason"))
        table(rows, columns, formatters={"bytes": human_bytes})


@dataset_app.command("add")
def add_dataset(
    did: Annotated[str, typer.Argument(help="scope:name of the new dataset.")],
    meta: Annotated[list[str] | None, typer.Option(help="Metadata key=value (repeatable).")] = None,
) -> None:
    """Create an empty, open dataset."""
    with client() as lacus:
        lacus.add_dataset(
            did,
            meta={k: parse_value(v) for k, v in parse_pairs(meta or [], what="metadata").items()},
        )
    console().print(f"Added dataset {did}")


@container_app.command("add")
def add_container(
    did: Annotated[str, typer.Argument(help="scope:name of the new container.")],
    meta: Annotated[list[str] | None, typer.Option(help="Metadata key=value (repeatable).")] = None,
) -> None:
    """Create an empty container."""
    with client() as lacus:
        lacus.add_container(
            did,
            meta={k: parse_value(v) for k, v in parse_pairs(meta or [], what="metadata").items()},
        )
    console().print(f"Added container {did}")


def attach(
    parent: Annotated[str, typer.Argument(help="Dataset or container (scope:name).")],
    children: Annotated[list[str], typer.Argument(help="DIDs to attach (scope:name).")],
) -> None:
    """Attach files to a dataset, or datasets/containers to a container."""
    with client() as lacus:
        lacus.attach(parent, children)
    console().print(f"Attached {len(children)} DID(s) to {parent}")


def detach(
    parent: Annotated[str, typer.Argument(help="Dataset or container (scope:name).")],
    children: Annotated[list[str], typer.Argument(help="DIDs to detach (scope:name).")],
) -> None:
    """Detach DIDs from a dataset or container."""
    with client() as lacus:
        lacus.detach(parent, children)
    console().print(f"Detached {len(children)} DID(s) from {parent}")


def close(did: str) -> None:
    """Close a dataset: no more files can be attached."""
    with client() as lacus:
        lacus.close_dataset(did)
    console().print(f"Closed {did}")


@meta_app.command("get")
def meta_get(did: str, json: JsonOption = False) -> None:
    """Show the metadata of a DID."""
    with client() as lacus:
        found = lacus.get_metadata(did)
    if json:
        emit_object(found)
    else:
        table(
            ({"key": key, "value": value} for key, value in found.items()),
            [("key", "key"), ("value", "value")],
        )


@meta_app.command("set")
def meta_set(
    did: str,
    pairs: Annotated[
        list[str], typer.Argument(help="key=value pairs (numbers and true/false are typed).")
    ],
) -> None:
    """Set metadata on a DID."""
    values = {key: parse_value(value) for key, value in parse_pairs(pairs, what="metadata").items()}
    with client() as lacus:
        lacus.set_metadata(did, values)
    console().print(f"{did}: set {', '.join(values)}")


@embargo_app.command("set")
def embargo_set(
    target: Annotated[str, typer.Argument(help="scope:name of a DID, or a scope.")],
    until: Annotated[
        datetime | None,
        typer.Option(help="Release date (UTC), e.g. 2027-06-01 or 2027-06-01T12:00:00."),
    ] = None,
) -> None:
    """Embargo a DID or scope: only its owner and admins see it, until the release date."""
    with client() as lacus:
        lacus.set_embargo(target, release_at=until)
    console().print(f"Embargoed {target}" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""))


@embargo_app.command("lift")
def embargo_lift(
    target: Annotated[str, typer.Argument(help="scope:name of a DID, or a scope.")],
) -> None:
    """Lift an embargo: everyone sees the DID or scope again."""
    with client() as lacus:
        lacus.set_embargo(target, embargoed=False)
    console().print(f"Lifted the embargo on {target}")
