"""``lacus declare bad|suspicious|unavailable``, ``lacus audit show``, ``lacus quarantine list``:
replicas in doubt, what the auditor and the scrubber found, and the dark files they keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, human_bytes, table
from lacus.cli.rules import parse_duration
from lacus.errors import InvalidInput

declare_app = typer.Typer(
    help="Declare replicas in doubt: suspicious, bad or unavailable.", no_args_is_help=True
)
audit_app = typer.Typer(help="What the auditor and the scrubber found.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Dark files (on storage, unknown to the catalog) in quarantine; admins.",
    no_args_is_help=True,
)

DIDs = Annotated[
    list[str],
    typer.Argument(help="Files (scope:name); a dataset or container: its files on the RSE."),
]
RSE = Annotated[str, typer.Option("--rse", help="The RSE holding the replicas.")]
Reason = Annotated[str, typer.Option("--reason", help="Why: kept with the declaration.")]


@declare_app.command("bad")
def bad(dids: DIDs, rse: RSE, reason: Reason) -> None:
    """Declare replicas bad: they are copied again from a good copy, or the file is lost when
    none is left (the scope's owner or an admin)."""
    _declare("bad", dids, rse=rse, reason=reason)


@declare_app.command("suspicious")
def suspicious(dids: DIDs, rse: RSE, reason: Reason) -> None:
    """Report replicas suspicious: the lake reads them back, and declares them bad if their
    bytes are wrong (anyone who can see the files)."""
    _declare("suspicious", dids, rse=rse, reason=reason)


@declare_app.command("unavailable")
def unavailable(
    dids: DIDs,
    rse: RSE,
    reason: Reason,
    until: Annotated[
        datetime | None,
        typer.Option(help="Available again then (UTC), e.g. 2027-06-01T12:00:00."),
    ] = None,
    for_: Annotated[
        str | None, typer.Option("--for", help="Available again after this long: 90m, 12h, 2d.")
    ] = None,
) -> None:
    """Declare replicas unavailable (a storage down for a while): rules find them missing
    until they come back, by themselves at --until or after --for, else when set available
    (the scope's owner or an admin)."""
    if until is not None and for_ is not None:
        raise InvalidInput("give --until or --for, not both")
    expires = until.replace(tzinfo=UTC) if until is not None else None
    if for_ is not None:
        expires = datetime.now(UTC) + timedelta(seconds=parse_duration(for_))
    if expires is not None and expires <= datetime.now(UTC):
        raise InvalidInput(f"--until {expires:%Y-%m-%d %H:%M:%S} is not in the future")
    _declare("unavailable", dids, rse=rse, reason=reason, until=expires)


def _declare(
    state: str, dids: list[str], *, rse: str, reason: str, until: datetime | None = None
) -> None:
    with client() as lacus:
        declared = lacus.declare_replicas(state, dids, rse=rse, reason=reason, until=until)
    then = f" until {until:%Y-%m-%d %H:%M:%S} UTC" if until is not None else ""
    out = console()
    for did in declared:
        out.print(f"{did} on {rse}: {state}{then}", markup=False)


_RUN_COLUMNS = [
    ("rse", "RSE"),
    ("kind", "run"),
    ("state", "state"),
    ("started_at", "started"),
    ("finished_at", "finished"),
    ("files", "files"),
    ("listed", "listed"),
    ("dark", "dark"),
    ("lost", "lost"),
    ("suspicious", "suspicious"),
    ("bad", "bad"),
    ("bytes_verified", "verified"),
]
_NOW_COLUMNS = [
    ("rse", "RSE"),
    ("suspicious", "suspicious"),
    ("bad", "bad"),
    ("unavailable", "unavailable"),
    ("lost", "lost"),
    ("quarantined", "quarantined"),
]


def _when(value: Any) -> str:
    return "" if value is None else str(value).replace("T", " ")[:19]


@audit_app.command("show")
def show(
    rse: Annotated[str | None, typer.Argument(help="Only this RSE.")] = None,
    json: JsonOption = False,
) -> None:
    """The last audit and scrub of each RSE (started, finished, files listed, dark, lost,
    suspicious, bad, bytes verified) and the replicas in doubt there now."""
    with client() as lacus:
        report = lacus.audit_report(rse)
    if json:
        emit_json(report)
        return
    runs = [
        {"rse": entry["rse"], "kind": kind, **entry[kind]}
        for entry in report
        for kind in ("audit", "scrub")
        if entry[kind] is not None
    ]
    if runs:
        table(
            runs,
            _RUN_COLUMNS,
            title="last runs",
            formatters={"started_at": _when, "finished_at": _when, "bytes_verified": human_bytes},
        )
    else:
        console().print("No audit or scrub has run yet.")
    table(
        [{"rse": entry["rse"], **entry["now"]} for entry in report],
        _NOW_COLUMNS,
        title="replicas in doubt now",
    )


@quarantine_app.command("list")
def list_(
    rse: Annotated[str | None, typer.Argument(help="Only this RSE.")] = None,
    json: JsonOption = False,
) -> None:
    """List the dark files in quarantine: RSE, path, size, when found and last seen, why.
    They are deleted once old enough if the catalog still does not know them."""
    with client() as lacus:
        found = lacus.list_quarantine(rse)
    if json:
        emit_json(found)
        return
    table(
        found,
        [
            ("rse", "RSE"),
            ("path", "path"),
            ("bytes", "size"),
            ("found_at", "found"),
            ("seen_at", "last seen"),
            ("reason", "reason"),
        ],
        formatters={"bytes": human_bytes, "found_at": _when, "seen_at": _when},
    )
