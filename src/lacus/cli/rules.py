"""``lacus rule add|list|info|update|delete|history``."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, emit_object, human_bytes, table
from lacus.errors import InvalidInput

app = typer.Typer(help="Replication rules: keep copies of DIDs on RSEs.", no_args_is_help=True)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"(\d+)\s*([smhdwy]?)")


def parse_duration(text: str) -> int:
    """``3600``, ``90m``, ``12h``, ``30d``, ``2w``, ``1y`` as seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match[1]) <= 0:
        raise InvalidInput(
            f"invalid duration {text!r}: a positive number of seconds, or with a unit: "
            "90m, 12h, 30d, 2w, 1y"
        )
    return int(match[1]) * _UNITS[match[2] or "s"]


def _state(rule: dict[str, Any]) -> str:
    return (
        f"{rule['state']}[{rule['locks_ok_cnt']}/{rule['locks_replicating_cnt']}/"
        f"{rule['locks_stuck_cnt']}]"
    )


_RULE_COLUMNS = [
    ("id", "id"),
    ("account", "account"),
    ("did", "DID"),
    ("state_counts", "state[ok/repl/stuck]"),
    ("rse_expression", "RSE expression"),
    ("copies", "copies"),
    ("bytes", "size"),
    ("expires_at", "expires"),
]


@app.command("add")
def add(
    dids: Annotated[list[str], typer.Argument(help="DIDs (scope:name) to keep copies of.")],
    rses: Annotated[
        str | None, typer.Option("--rses", help="RSE expression, e.g. 'qos=DISK&site=X'.")
    ] = None,
    copies: Annotated[int, typer.Option(help="Copies of each file.")] = 1,
    lifetime: Annotated[
        str | None, typer.Option(help="Remove the rule after this long: 3600, 12h, 30d.")
    ] = None,
    grouping: Annotated[
        str, typer.Option(help="dataset (a dataset's files together), all or none.")
    ] = "dataset",
    weight: Annotated[
        str | None, typer.Option(help="RSE attribute weighting the choice of RSEs.")
    ] = None,
    locked: Annotated[bool, typer.Option(help="Refuse removal until unlocked.")] = False,
    purge_replicas: Annotated[
        bool, typer.Option(help="Delete the replicas at once when the rule goes.")
    ] = False,
    delete_source: Annotated[
        bool,
        typer.Option(
            help="Once the rule is OK, delete the file's other replicas (those on "
            "--source-rses when given): data leaves the buffer only once safe elsewhere."
        ),
    ] = False,
    source_rses: Annotated[str | None, typer.Option(help="RSE expression to copy from.")] = None,
    activity: Annotated[str | None, typer.Option(help="Transfer activity.")] = None,
    priority: Annotated[int, typer.Option(help="Transfer priority, 0 to 5.")] = 3,
    comment: Annotated[str | None, typer.Option(help="Why the rule exists.")] = None,
    qos: Annotated[
        str | None, typer.Option(help="Quality-of-service class: the same as --rses qos=CLASS.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="Start this lifecycle policy instead (see 'policy list').")
    ] = None,
    account: Annotated[str | None, typer.Option(help="Owner (admins only).")] = None,
    ask_approval: Annotated[
        bool, typer.Option("--ask-approval", help="Wait until an admin approves the rule.")
    ] = False,
) -> None:
    """Add a rule per DID and print the rule ids; the rule engine places the copies."""
    chosen = [option for option in (rses, qos, policy) if option is not None]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of --rses, --qos and --policy")
    with client() as lacus:
        if policy is not None:
            ids = lacus.add_rule(dids, policy=policy, account=account)
        else:
            ids = lacus.add_rule(
                dids,
                rses if rses is not None else f"qos={qos}",
                copies=copies,
                lifetime=parse_duration(lifetime) if lifetime else None,
                grouping=grouping.lower(),
                weight=weight,
                locked=locked,
                purge_replicas=purge_replicas,
                delete_source=delete_source,
                source_replica_expression=source_rses,
                activity=activity,
                priority=priority,
                comment=comment,
                account=account,
                ask_approval=ask_approval,
            )
    for rule_id in ids:
        console().print(rule_id)


@app.command("list")
def list_(
    did: Annotated[str | None, typer.Option(help="Rules on this DID (scope:name).")] = None,
    account: Annotated[str | None, typer.Option(help="Rules of this account.")] = None,
    state: Annotated[
        str | None, typer.Option(help="ok, replicating, stuck, suspended or waiting_approval.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """List rules, with their lock counts (ok/replicating/stuck)."""
    with client() as lacus:
        found = lacus.list_rules(did=did, account=account, state=state)
    if json:
        emit_json(found)
        return
    for rule in found:
        rule["did"] = f"{rule['scope']}:{rule['name']}"
        rule["state_counts"] = _state(rule)
    table(found, _RULE_COLUMNS, formatters={"bytes": human_bytes})


@app.command("info")
def info(rule_id: str, json: JsonOption = False) -> None:
    """Show a rule: state, lock counts, error, and each stuck or failing lock with the last
    error of its transfer."""
    with client() as lacus:
        rule = lacus.get_rule(rule_id)
        locks = lacus.rule_locks(rule_id)
    # Stuck locks, and waiting ones whose transfer failed before (the repairer retries stuck
    # locks at once: they are replicating again, with the error of their last attempt).
    failing = [lock for lock in locks if lock["state"] == "STUCK" or lock.get("last_error")]
    if json:
        emit_object({**rule, "failing_locks": failing})
        return
    out = console()
    rows = [
        ("id", rule["id"]),
        ("account", rule["account"]),
        ("DID", f"{rule['scope']}:{rule['name']} ({rule['did_type'].lower()})"),
        ("RSE expression", rule["rse_expression"]),
        ("copies", rule["copies"]),
        ("state", rule["state"]),
        (
            "locks",
            f"{rule['locks_ok_cnt']} ok, {rule['locks_replicating_cnt']} replicating, "
            f"{rule['locks_stuck_cnt']} stuck",
        ),
        ("size", human_bytes(rule["bytes"])),
        ("error", rule["error"] or "-"),
        ("grouping", rule["grouping"].lower()),
        ("locked", "yes" if rule["locked"] else "no"),
        ("delete at source", "yes" if rule.get("delete_source") else "no"),
        ("purge replicas", "yes" if rule["purge_replicas"] else "no"),
        ("priority", rule["priority"]),
        ("activity", rule["activity"]),
        ("expires", rule["expires_at"] or "never"),
        ("comment", rule["comments"] or "-"),
        ("policy", f"{rule['policy']} (step {rule['policy_step'] + 1})" if rule.get("policy")
         else "-"),
        ("subscription", rule["subscription_id"] or "-"),
        ("child rule", rule["child_rule_id"] or "-"),
        ("created", rule["created_at"]),
        ("updated", rule["updated_at"]),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        out.print(f"{label + ':':<{width}}{value}", markup=False)
    if failing:
        out.print(f"stuck or failing locks ({len(failing)}):", markup=False)
        for lock in failing:
            out.print(
                f"  {lock['scope']}:{lock['name']} on {lock['rse']} ({lock['state'].lower()}): "
                f"{lock.get('attempts') or 0} attempt(s), last error: "
                f"{lock.get('last_error') or '-'}",
                markup=False,
            )


@app.command("update")
def update(
    rule_id: str,
    lifetime: Annotated[
        str | None,
        typer.Option(help="Expire this long from now (3600, 12h, 30d), or 'none': never."),
    ] = None,
    locked: Annotated[
        bool | None, typer.Option("--locked/--unlocked", help="Lock or unlock the rule.")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Transfer priority, 0 to 5.")] = None,
    copies: Annotated[int | None, typer.Option(help="New number of copies.")] = None,
    comment: Annotated[str | None, typer.Option(help="New comment.")] = None,
    suspend: Annotated[
        bool | None, typer.Option("--suspend/--resume", help="Stop or restart placing copies.")
    ] = None,
) -> None:
    """Change a rule."""
    options: dict[str, Any] = {}
    if lifetime is not None:
        options["lifetime"] = None if lifetime.lower() == "none" else parse_duration(lifetime)
    if locked is not None:
        options["locked"] = locked
    if priority is not None:
        options["priority"] = priority
    if copies is not None:
        options["copies"] = copies
    if comment is not None:
        options["comment"] = comment
    if suspend is not None:
        options["state"] = "SUSPENDED" if suspend else "REPLICATING"
    if not options:
        raise InvalidInput("nothing to change: give at least one option (see --help)")
    with client() as lacus:
        rule = lacus.update_rule(rule_id, **options)
    console().print(f"Updated rule {rule_id}: {_state(rule)}", markup=False)


@app.command("approve")
def approve(rule_id: str) -> None:
    """Approve a rule waiting for approval (admins): the rule engine places its copies."""
    with client() as lacus:
        lacus.approve_rule(rule_id)
    console().print(f"Approved rule {rule_id}", markup=False)


@app.command("deny")
def deny(
    rule_id: str,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the rule's history).")] = None,
) -> None:
    """Deny a rule waiting for approval (admins): it is deleted."""
    with client() as lacus:
        lacus.deny_rule(rule_id, reason)
    console().print(f"Denied rule {rule_id}: deleted", markup=False)


@app.command("reduce")
def reduce(
    rule_id: str,
    copies: Annotated[int, typer.Option(help="Copies the new rule keeps.")],
    exclude: Annotated[
        str | None, typer.Option(help="RSE expression whose copies go first.")
    ] = None,
) -> None:
    """Keep fewer copies: a rule with --copies replaces this one at once, on the copies that
    are there (refused when it would need a transfer); the others lose their lock."""
    with client() as lacus:
        child_id = lacus.reduce_rule(rule_id, copies, exclude_expression=exclude)
    console().print(f"Rule {child_id} ({copies} copies) replaces rule {rule_id}", markup=False)


@app.command("move")
def move(
    rule_id: str,
    rses: Annotated[str, typer.Option("--rses", help="RSE expression of the new rule.")],
    activity: Annotated[str | None, typer.Option(help="Activity of the new rule.")] = None,
    source_rses: Annotated[
        str | None,
        typer.Option(help="Where the new rule's copies come from (RSE expression, or 'none')."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Move a rule's copies to --rses: the rule goes once its replacement is OK.

    The new rule copies the rule's options; the data stays where it is until the new rule is OK.
    """
    override: dict[str, Any] = {}
    if activity is not None:
        override["activity"] = activity
    if source_rses is not None:
        override["source_replica_expression"] = (
            None if source_rses.lower() == "none" else source_rses
        )
    with client() as lacus:
        child_id = lacus.move_rule(rule_id, rses, **override)
    if json:
        emit_object({"rule_id": child_id, "replaces": rule_id})
        return
    console().print(
        f"Rule {child_id} on {rses} replaces rule {rule_id} (deleted once {child_id} is OK)",
        markup=False,
    )


@app.command("delete")
def delete(
    rule_id: str,
    purge_replicas: Annotated[
        bool, typer.Option(help="Delete the replicas the rule leaves unprotected at once.")
    ] = False,
) -> None:
    """Remove a rule (a locked rule must be unlocked first)."""
    with client() as lacus:
        lacus.delete_rule(rule_id, purge_replicas=True if purge_replicas else None)
    console().print(f"Deleted rule {rule_id}", markup=False)


@app.command("history")
def history(
    target: Annotated[str, typer.Argument(help="A rule id, or a DID (scope:name).")],
    json: JsonOption = False,
) -> None:
    """What happened to a rule, or the rules ever added to and removed from a DID."""
    with client() as lacus:
        by_did = ":" in target
        found = lacus.did_rule_history(target) if by_did else lacus.rule_history(target)
    if json:
        emit_json(found)
        return
    columns = [("updated_at", "time"), ("action", "action")]
    if ":" in target:
        columns += [("rule_id", "rule"), ("account", "account")]
    columns += [("rse_expression", "RSE expression"), ("state", "state")]
    if ":" not in target:
        columns += [("detail", "detail")]
    table(found, columns)
