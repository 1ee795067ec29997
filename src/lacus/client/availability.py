"""``Client.make_available``: bring a DID to an RSE for a while and say where it is.

1. Take the event stream's position (``current_position``) *before* adding the rule, so that
   its ``rule.ok`` cannot happen unseen between the two.
2. Add the rule (the DID, one copy on ``rse``, ``lifetime`` seconds); when the account has
   that rule already, extend its lifetime instead.
3. If the rule is OK already, go on at once; else follow the DID's ``rule.ok`` and
   ``rule.stuck`` events from that position (no polling) until this rule's arrives:
   ``rule.stuck`` raises RuleStuck with the rule's error, the end of ``timeout`` TimeoutError.
4. Answer where the files are on the RSE the rule placed them on: the local path when that
   RSE's storage is a directory on this machine, else the replica's URL.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from lacus.client._closest import local_prefix
from lacus.client.events import current_position
from lacus.errors import DuplicateRule, ReplicaNotFound, RuleStuck
from lacus.naming import parse_did

if TYPE_CHECKING:
    from lacus.client._client import Client

WAITED_TYPES = ("rule.ok", "rule.stuck")


def make_available(
    client: Client, did: str, *, rse: str, lifetime: int | None, timeout: float
) -> str | dict[str, str]:
    scope, name = parse_did(did)
    did = f"{scope}:{name}"
    info = client.get_did(did)
    position = current_position(client, did)
    rule_id = _add_or_extend(client, did, rse, lifetime)
    rule = client.get_rule(rule_id)
    state = str(rule["state"]).upper()
    if state == "STUCK":
        raise _stuck(client, did, rule_id, rule.get("error"))
    if state != "OK":
        _wait(client, did, rule_id, position, timeout)
    locations = _locations(client, did, rule_id)
    if info["type"] == "file":
        return locations[did]
    return locations


def _add_or_extend(client: Client, did: str, rse: str, lifetime: int | None) -> str:
    try:
        (rule_id,) = client.add_rule(did, rse, lifetime=lifetime)
        return rule_id
    except DuplicateRule:
        account = client.config.account or client.whoami()["account"]
        for rule in client.list_rules(did=did, account=account):
            if rule["rse_expression"] == rse:
                client.update_rule(rule["id"], lifetime=lifetime)
                return str(rule["id"])
        raise


def _wait(client: Client, did: str, rule_id: str, after: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        for event in client.watch(did, types=WAITED_TYPES, after=after, timeout=remaining):
            after = event.id
            if event.payload.get("rule_id") != rule_id:
                break  # another rule's: watch again, for the time that is left
            if event.type == "rule.ok":
                return
            raise _stuck(client, did, rule_id, event.payload.get("error"))
    rule = client.get_rule(rule_id)
    raise TimeoutError(
        f"{did} is not available after {timeout:g} s: rule {rule_id} is {rule['state']} "
        f"(locks ok/replicating/stuck: {rule['locks_ok_cnt']}/"
        f"{rule['locks_replicating_cnt']}/{rule['locks_stuck_cnt']})"
    )


def _stuck(client: Client, did: str, rule_id: str, error: str | None) -> RuleStuck:
    analysis = client.examine_rule(rule_id)
    reasons = [error or analysis.get("rule_error") or "no reason recorded"]
    for transfer in analysis.get("transfers") or []:
        last = transfer.get("last_error") or transfer.get("error")
        if last:
            reasons.append(f"{transfer.get('scope')}:{transfer.get('name')}: {last}")
            break
    return RuleStuck(
        f"{did} cannot be made available: rule {rule_id} is stuck: " + "; ".join(reasons)
    )


def _locations(client: Client, did: str, rule_id: str) -> dict[str, str]:
    """Each file of the rule, with its local path or URL on the RSE its lock is on."""
    placed = {(lock["scope"], lock["name"]): lock["rse"] for lock in client.rule_locks(rule_id)}
    found: dict[str, str] = {}
    prefixes: dict[str, str | None] = {}
    for replica in client.list_replicas([did]):
        key = (replica["scope"], replica["name"])
        rse = placed.get(key)
        where: dict[str, Any] | None = replica["rses"].get(rse) if rse else None
        if rse is None or where is None:
            raise ReplicaNotFound(f"{key[0]}:{key[1]} has no available replica on the rule's RSE")
        if rse not in prefixes:
            prefixes[rse] = local_prefix(client.get_rse(rse), os.path.isdir)
        prefix = prefixes[rse]
        found[f"{key[0]}:{key[1]}"] = (
            os.path.join(prefix, where["path"]) if prefix is not None else where["pfn"]
        )
    return found
