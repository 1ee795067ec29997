"""``lacus policy add|list``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, table
from lacus.cli.rules import parse_duration
from lacus.errors import InvalidInput

app = typer.Typer(
    help="Lifecycle policies: chains of rules, e.g. 2 copies on disk for 30 days, then tape.",
    no_args_is_help=True,
)
_KEYS = {"copies", "qos", "rses", "rse_expression", "lifetime", "grouping", "purge_replicas"}


def parse_step(text: str) -> dict[str, Any]:
    """``copies=2,qos=DISK,lifetime=30d`` (or ``rses=EXPR``, ``grouping=all``,
    ``purge_replicas=true``) as a policy step."""
    step: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in _KEYS or not value:
            raise InvalidInput(
                f"invalid step {text!r}: key=value pairs of {', '.join(sorted(_KEYS))}"
            )
        if key == "copies":
            if not value.isdigit():
                raise InvalidInput(f"invalid step {text!r}: copies is a number")
            step["copies"] = int(value)
        elif key == "lifetime":
            step["lifetime"] = parse_duration(value)
        elif key in ("rses", "rse_expression"):
            step["rse_expression"] = value
        elif key == "purge_replicas":
            step["purge_replicas"] = value.lower() in ("true", "yes", "1")
        else:
            step[key] = value
    return step


@app.command("add")
def add(
    name: str,
    step: Annotated[
        list[str],
        typer.Option(
            "--step",
            help="A step, in order (repeatable): copies=2,qos=DISK,lifetime=30d; the last may "
            "have no lifetime.",
        ),
    ],
    comment: Annotated[str | None, typer.Option(help="What the policy is for.")] = None,
) -> None:
    """Define a lifecycle policy (admins only)."""
    steps = [parse_step(text) for text in step]
    with client() as lacus:
        lacus.add_policy(name, steps, comment=comment)
    console().print(f"Added policy {name} ({len(steps)} steps)", markup=False)


def _describe(steps: list[dict[str, Any]]) -> str:
    parts = []
    for step in steps:
        text = f"{step['copies']} x {step['rse_expression']}"
        if step.get("lifetime"):
            text += (
                f" for {step['lifetime'] // 86400}d"
                if step["lifetime"] % 86400 == 0
                else (f" for {step['lifetime']}s")
            )
        parts.append(text)
    return " -> ".join(parts)


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List lifecycle policies and their steps."""
    with client() as lacus:
        found = lacus.list_policies()
    if json:
        emit_json(found)
        return
    for policy in found:
        policy["chain"] = _describe(policy["steps"])
    table(found, [("name", "name"), ("chain", "steps"), ("comments", "comment")])
