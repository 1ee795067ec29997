"""The ``lacus`` command: every error ends as one readable line and a non-zero exit."""

from __future__ import annotations

import sys

import typer

from lacus.cli import (
    daemons,
    data,
    dids,
    event_destinations,
    integrity,
    lake,
    policies,
    quotas,
    rses,
    rules,
    scopes,
    stream,
    subscriptions,
    tokens,
    transfers,
    watch,
)
from lacus.cli._output import error_console
from lacus.errors import LacusError

app = typer.Typer(
    name="lacus",
    help="Lacus: a policy-driven data lake for open science.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(lake.init)
app.command()(lake.serve)
app.command()(lake.login)
app.command()(lake.whoami)
app.command()(tokens.logout)
app.add_typer(tokens.app, name="token")
app.add_typer(rses.app, name="rse")
app.add_typer(scopes.app, name="scope")
app.command()(data.upload)
app.command()(data.download)
app.command()(watch.watch)
app.command()(dids.ls)
app.command()(dids.files)
app.command()(dids.replicas)
app.add_typer(dids.dataset_app, name="dataset")
app.add_typer(dids.container_app, name="container")
app.command()(dids.attach)
app.command()(dids.detach)
app.command()(dids.close)
app.add_typer(dids.meta_app, name="meta")
app.add_typer(dids.embargo_app, name="embargo")
app.command()(daemons.daemon)
app.add_typer(rules.app, name="rule")
app.add_typer(subscriptions.app, name="subscription")
app.add_typer(quotas.app, name="quota")
app.add_typer(policies.app, name="policy")
app.add_typer(transfers.app, name="transfers")
app.add_typer(stream.app, name="stream")
app.add_typer(event_destinations.app, name="events")
app.add_typer(integrity.declare_app, name="declare")
app.add_typer(integrity.audit_app, name="audit")
app.add_typer(integrity.quarantine_app, name="quarantine")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    try:
        result = app(args=argv, prog_name="lacus", standalone_mode=False)
    except LacusError as exc:
        error_console().print(f"error: {exc.message}", markup=False)
        return 1
    except typer.Abort:
        error_console().print("aborted", markup=False)
        return 130
    except typer.TyperException as exc:  # a usage error: unknown command, missing argument...
        message = " ".join(exc.format_message().split())
        if message:  # empty when the help was shown instead (a group without its command)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            error_console().print(f"error: {message}{hint}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())
