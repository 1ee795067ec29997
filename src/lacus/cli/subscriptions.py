"""``lacus subscription add|list``."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, table
from lacus.errors import InvalidInput

app = typer.Typer(
    help="Subscriptions: rules added to every new matching DID.", no_args_is_help=True
)


def _parse(option: str, text: str) -> Any:
    try:
        return jsonlib.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{option} is not valid JSON: {exc}") from None


@app.command("add")
def add(
    name: str,
    filter: Annotated[
        str,
        typer.Option(
            "--filter",
            help='JSON filter, e.g. \'{"scope": ["lofar"], "pattern": "obs.*", '
            '"did_type": "DATASET"}\'.',
        ),
    ],
    rules: Annotated[
        str,
        typer.Option(
            "--rules",
            help='JSON list of rules, e.g. \'[{"copies": 1, "rse_expression": "qos=TAPE"}]\'.',
        ),
    ],
    comment: Annotated[str | None, typer.Option(help="Why the subscription exists.")] = None,
    lifetime: Annotated[
        int | None, typer.Option(help="Days until the subscription expires.")
    ] = None,
    retroactive: Annotated[
        bool, typer.Option(help="Also add the rules to the DIDs that exist already.")
    ] = False,
    priority: Annotated[int, typer.Option(help="Priority of the subscription.")] = 3,
    account: Annotated[str | None, typer.Option(help="Owner (admins only).")] = None,
) -> None:
    """Add a subscription; print its id."""
    sub_filter = _parse("--filter", filter)
    rule_list = _parse("--rules", rules)
    if not isinstance(sub_filter, dict):
        raise InvalidInput("--filter is a JSON object")
    if not isinstance(rule_list, list):
        raise InvalidInput("--rules is a JSON list of objects")
    with client() as lacus:
        subscription_id = lacus.add_subscription(
            name,
            filter=sub_filter,
            rules=rule_list,
            comment=comment,
            lifetime_days=lifetime,
            retroactive=retroactive,
            priority=priority,
            account=account,
        )
    console().print(f"Added subscription {name}: {subscription_id}", markup=False)


@app.command("list")
def list_(
    account: Annotated[str | None, typer.Option(help="Subscriptions of this account.")] = None,
    json: JsonOption = False,
) -> None:
    """List subscriptions with their filters and rules."""
    with client() as lacus:
        found = lacus.list_subscriptions(account=account)
    if json:
        emit_json(found)
        return
    for item in found:
        item["filter_text"] = jsonlib.dumps(item["filter"])
        item["rules_text"] = jsonlib.dumps(item["replication_rules"])
    table(
        found,
        [
            ("account", "account"),
            ("name", "name"),
            ("state", "state"),
            ("priority", "priority"),
            ("filter_text", "filter"),
            ("rules_text", "rules"),
            ("expires_at", "expires"),
            ("comments", "comment"),
        ],
    )
