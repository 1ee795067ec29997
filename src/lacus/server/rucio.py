"""Rucio's wire shapes: Lacus records rendered the way the official ``rucio`` client reads them.

Pure functions. Lacus keys stay in every object; Rucio's keys are added next to them (upper-case
enum values, ``did_type``, RSE settings, rule fields, ``pfns``/``rses``/``states`` of replicas).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lacus.errors import InvalidInput, InvalidMetadataFilter
from lacus.types import DIDInfo, ProtocolInfo, ReplicaInfo, ReplicaState, RSEInfo

_IMPL = {"file": "rucio.rse.protocols.posix.Default", "posix": "rucio.rse.protocols.posix.Default"}
_SUFFIX_OPS = {".gt": ">", ".lt": "<", ".gte": ">=", ".lte": "<=", ".ne": "!="}
MAX_FILTER_TEXT = 10_000
MAX_FILTER_GROUPS = 100


def protocol(proto: ProtocolInfo) -> dict[str, Any]:
    priorities = {"read": 1, "write": 1, "delete": 1}
    return {
        **proto,
        "impl": _IMPL.get(proto["scheme"], proto["impl"]),
        "domains": {
            "lan": dict(priorities),
            "wan": {**priorities, "third_party_copy_read": 1, "third_party_copy_write": 1},
        },
        "extended_attributes": _redacted(proto.get("extended_attributes")),
    }


_SECRET_WORDS = ("secret", "password", "token", "key", "credential")
REDACTED = "***"


def _redacted(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Backend options as shown to clients: credentials never leave the server."""
    if not options:
        return None
    return {
        key: REDACTED if any(word in key.lower() for word in _SECRET_WORDS) else value
        for key, value in options.items()
    }


def rse(info: RSEInfo) -> dict[str, Any]:
    """RSE settings as ``GET /rses/{rse}`` returns them (Rucio keys plus Lacus ones)."""
    return {
        **info,
        "id": str(info["id"]),
        "rse_type": info["rse_type"].upper(),
        "volatile": False,
        "staging_area": False,
        "credentials": None,
        "domain": ["lan", "wan"],
        "lfn2pfn_algorithm": "hash" if info["deterministic"] else "identity",
        "qos_class": info["attributes"].get("qos"),
        "sign_url": None,
        "verify_checksum": True,
        "read_protocol": 1,
        "write_protocol": 1,
        "delete_protocol": 1,
        "third_party_copy_read_protocol": 1,
        "third_party_copy_write_protocol": 1,
        "protocols": [protocol(proto) for proto in info["protocols"]],
    }


def rse_usage(info: RSEInfo) -> dict[str, Any]:
    total = info["total_bytes"]
    used = info["used_bytes"]
    return {
        "rse": info["rse"],
        "rse_id": str(info["id"]),
        "source": "rucio",
        "used": used,
        "free": None if total is None else max(0, total - used),
        "total": total,
        "files": info["files"],
        "updated_at": None,
    }


def did(info: DIDInfo) -> dict[str, Any]:
    """A DID with Rucio's column names next to Lacus's."""
    return {
        **info,
        "did_type": info["type"].upper(),
        "is_open": info["open"],
        "monotonic": False,
        "availability": "AVAILABLE",
        "expired_at": None,
    }


def rule(info: dict[str, Any]) -> dict[str, Any]:
    """A rule as Rucio clients read it: every key of Rucio's rule dict (upper-case enums,
    ``comments``, ``bytes``), plus Lacus's (``policy``, ``policy_step``)."""
    return {
        **info,
        "did_type": str(info["did_type"]).upper(),
        "state": str(info["state"]).upper(),
        "grouping": str(info["grouping"]).upper(),
        "notification": str(info["notification"]).upper(),
        "activity": info.get("activity") or "default",
        "bytes": info.get("bytes"),
        "eol_at": None,
        "split_container": False,
        "meta": None,
        "deleted_at": None,
    }


def lock(info: dict[str, Any]) -> dict[str, Any]:
    """A replica lock of ``GET /rules/{id}/locks``: Rucio's keys (``state`` upper-case) and the
    transfer request behind it (``request_state``, ``attempts``, ``last_error``)."""
    return {
        **info,
        "rse_id": str(info["rse_id"]),
        "state": str(info["state"]).upper(),
        "request_state": info["request_state"].upper() if info.get("request_state") else None,
    }


def dataset_lock(info: dict[str, Any]) -> dict[str, Any]:
    return {**info, "rse_id": str(info["rse_id"]), "state": str(info["state"]).upper()}


def rule_event(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry of a rule's full history (``GET /rules/{id}/history``)."""
    return {
        **entry,
        "state": str(entry["state"]).upper(),
        "updated_at": entry["created_at"],
    }


def did_rule_history(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rucio's DID rule history: per rule at most two lines, its creation then its removal
    (``created_at`` is when the rule was created, ``updated_at`` when the line's event was)."""
    created: dict[str, Any] = {}
    lines: list[dict[str, Any]] = []
    for entry in entries:
        rule_id = entry["rule_id"]
        if entry["action"] == "created":
            if rule_id in created:
                continue
            created[rule_id] = entry["created_at"]
        elif rule_id not in created:
            # Removed without a recorded creation: a creation line first keeps the pairs aligned.
            created[rule_id] = entry["created_at"]
            lines.append(_history_line(entry, entry["created_at"], "created"))
        lines.append(_history_line(entry, created[rule_id], entry["action"]))
    return lines


def _history_line(entry: dict[str, Any], created_at: Any, action: str) -> dict[str, Any]:
    return {
        "rule_id": entry["rule_id"],
        "created_at": created_at,
        "updated_at": entry["created_at"],
        "rse_expression": entry["rse_expression"],
        "state": str(entry["state"]).upper(),
        "account": entry["account"],
        "locks_ok_cnt": entry["locks_ok_cnt"],
        "locks_stuck_cnt": entry["locks_stuck_cnt"],
        "locks_replicating_cnt": entry["locks_replicating_cnt"],
        "action": action,
    }


def subscription(info: dict[str, Any]) -> dict[str, Any]:
    """A subscription as Rucio clients read it: ``filter`` and ``replication_rules`` as JSON
    strings, ``policyid`` (the priority), ``lifetime`` (the expiry date), upper-case state."""
    return {
        "id": info["id"],
        "name": info["name"],
        "account": info["account"],
        "filter": json.dumps(info["filter"]),
        "replication_rules": json.dumps(info["replication_rules"]),
        "policyid": info["priority"],
        "priority": info["priority"],
        "state": str(info["state"]).upper(),
        "last_processed": info["last_processed"],
        "lifetime": info["expires_at"],
        "expires_at": info["expires_at"],
        "comments": info["comments"],
        "retroactive": bool(info["retroactive"]),
        "expired_at": None,
        "created_at": info["created_at"],
        "updated_at": info["updated_at"],
    }


def replica(item: ReplicaInfo, *, all_states: bool, parents: list[str] | None) -> dict[str, Any]:
    """One file of ``POST /replicas/list``: Rucio's ``pfns``/``rses``/``states`` and Lacus's
    ``replicas`` (state, path, PFN and times per RSE)."""
    pfns: dict[str, Any] = {}
    rses: dict[str, list[str]] = {}
    states: dict[str, str] = {}
    for name, location in sorted(item["rses"].items()):
        pfns[location["pfn"]] = {
            "rse": name,
            "rse_id": name,
            "type": "DISK",
            "volatile": False,
            "domain": "wan",
            "priority": len(pfns) + 1,
            "client_extract": False,
        }
        rses[name] = [location["pfn"]]
        states[name] = location["state"].upper()
    line: dict[str, Any] = {
        "scope": item["scope"],
        "name": item["name"],
        "bytes": item["bytes"],
        "adler32": item["adler32"],
        "md5": item["md5"],
        "pfns": pfns,
        "rses": rses,
        "replicas": item["rses"],
    }
    if all_states:
        line["states"] = states
    if parents is not None:
        line["parents"] = parents
    return line


def metalink(lines: Iterable[dict[str, Any]]) -> Iterable[bytes]:
    """Metalink 4 XML of replica lines (what ``rucio download`` asks for)."""
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n'
    yield b'<metalink xmlns="urn:ietf:params:xml:ns:metalink">\n'
    for line in lines:
        parts = [f" <file name={quoteattr(line['name'])}>\n"]
        parents = line.get("parents") or []
        parts.append("  <parents>\n")
        parts.extend(f"   <did>{escape(parent)}</did>\n" for parent in parents)
        parts.append("  </parents>\n")
        parts.append(f"  <identity>{escape(line['scope'])}:{escape(line['name'])}</identity>\n")
        if line.get("adler32"):
            parts.append(f'  <hash type="adler32">{line["adler32"]}</hash>\n')
        if line.get("md5"):
            parts.append(f'  <hash type="md5">{line["md5"]}</hash>\n')
        parts.append(f"  <size>{line['bytes']}</size>\n")
        parts.append(
            f'  <glfn name="/lacus/{escape(line["scope"])}:{escape(line["name"])}"></glfn>\n'
        )
        for pfn, source in line["pfns"].items():
            parts.append(
                f'  <url location={quoteattr(source["rse"])} domain="wan" '
                f'priority="{source["priority"]}" client_extract="false">{escape(pfn)}</url>\n'
            )
        parts.append(" </file>\n")
        yield "".join(parts).encode()
    yield b"</metalink>\n"


def parse_filters(text: str) -> list[list[str]]:
    """Rucio's ``filters`` query value (a Python literal: a dict or a list of dicts, OR-ed) as
    groups of Lacus filter strings (``key=value``, ``key>n``, ...), each group AND-ed."""
    if len(text) > MAX_FILTER_TEXT:
        raise InvalidMetadataFilter("the filters are too long")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise InvalidMetadataFilter(f"invalid filters {text[:80]!r}: not a literal") from None
    groups = value if isinstance(value, list) else [value]
    if len(groups) > MAX_FILTER_GROUPS:
        raise InvalidMetadataFilter(f"at most {MAX_FILTER_GROUPS} groups of filters are OR-ed")
    result: list[list[str]] = []
    for group in groups:
        if not isinstance(group, dict):
            raise InvalidMetadataFilter("filters are a dict or a list of dicts")
        conditions: list[str] = []
        for key, raw in group.items():
            if not isinstance(key, str):
                raise InvalidMetadataFilter("filter keys are strings")
            op = "="
            for suffix, symbol in _SUFFIX_OPS.items():
                if key.endswith(suffix):
                    key, op = key[: -len(suffix)], symbol
                    break
            text_value = str(raw).lower() if isinstance(raw, bool) else str(raw)
            conditions.append(f"{key}{op}{text_value}")
        result.append(conditions)
    return result


_STATE_CODES = {
    "A": ReplicaState.AVAILABLE,
    "C": ReplicaState.COPYING,
    "U": ReplicaState.UNAVAILABLE,
    "B": ReplicaState.BAD,
    "D": ReplicaState.BEING_DELETED,
}


def replica_state(code: str | None) -> ReplicaState:
    """Rucio's one-letter or upper-case replica state (or Lacus's), as a ReplicaState."""
    if not code:
        return ReplicaState.AVAILABLE
    return _STATE_CODES.get(code) or ReplicaState(code.lower())


_BAD_STATES = {
    "B": ReplicaState.BAD,
    "BAD": ReplicaState.BAD,
    "S": ReplicaState.SUSPICIOUS,
    "SUSPICIOUS": ReplicaState.SUSPICIOUS,
    "T": ReplicaState.UNAVAILABLE,
    "TEMPORARY_UNAVAILABLE": ReplicaState.UNAVAILABLE,
    "L": ReplicaState.LOST,
    "LOST": ReplicaState.LOST,
}
_BAD_STATE_NAMES = {
    ReplicaState.BAD: "BAD",
    ReplicaState.SUSPICIOUS: "SUSPICIOUS",
    ReplicaState.UNAVAILABLE: "TEMPORARY_UNAVAILABLE",
    ReplicaState.LOST: "LOST",
}


def bad_state(code: str) -> ReplicaState:
    """Rucio's state of a bad replica (``BadFilesStatus``: BAD/B, SUSPICIOUS/S,
    TEMPORARY_UNAVAILABLE/T, LOST/L) as a ReplicaState."""
    found = _BAD_STATES.get(code.strip().upper())
    if found is None:
        raise InvalidInput(
            f"invalid state {code[:40]!r}: use BAD, SUSPICIOUS, TEMPORARY_UNAVAILABLE or LOST"
        )
    return found


def not_declared(refused: Iterable[tuple[str, str, str]]) -> dict[str, list[str]]:
    """Replicas a declaration left alone, as Rucio answers them: per RSE ("unknown" when a PFN
    names none), ``"what was given: why"``."""
    answer: dict[str, list[str]] = {}
    for given, rse_name, reason in refused:
        answer.setdefault(rse_name or "unknown", []).append(f"{given}: {reason}")
    return answer


def doubted_replica(row: dict[str, Any]) -> dict[str, Any]:
    """A replica in doubt (``GET /replicas/suspicious``, ``/replicas/bad/states``): Rucio's
    keys (``cnt``: reports, ``state`` as ``BadFilesStatus``) and Lacus's (``reason``...)."""
    state = ReplicaState(row["state"])
    return {
        **row,
        "rse_id": str(row["rse_id"]),
        "state": _BAD_STATE_NAMES.get(state, state.value.upper()),
        "updated_at": row["created_at"],
    }
