"""Building blocks of the rule engine tests: files really on POSIX RSEs, daemons run to rest."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from lacus.core import dids, replicas, rses, scopes
from lacus.core.transfers import transfer_done
from lacus.daemons import DAEMONS
from lacus.daemons.base import run_once
from lacus.db.tables import events, locks, requests
from lacus.db.tables import replicas as replicas_table
from lacus.naming import deterministic_path
from lacus.service import rules as service_rules
from lacus.service.lake import Lake, Principal
from lacus.types import DIDType, RuleSpec

ROOT = Principal("root", admin=True)
INTEGRITY_CHECKS = ("auditor", "scrubber", "dark-reaper")
"""Daemons that judge stored bytes: tests that damage bytes on purpose run them explicitly."""


def add_rule(lake: Lake, scope: str, name: str, expression: str, **options: object) -> str:
    """A rule added by root through the service layer; returns its id."""
    spec = RuleSpec(scope=scope, name=name, rse_expression=expression, **options)  # type: ignore[arg-type]
    (rule_id,) = service_rules.add_rules(lake, ROOT, [spec])
    return rule_id


def rule(lake: Lake, rule_id: str) -> dict[str, Any]:
    return service_rules.get_rule(lake, ROOT, rule_id)


def rse_prefix(lake: Lake, rse: str) -> Path:
    with lake.read() as conn:
        info = rses.get_rse(conn, rse)
    return Path(info["protocols"][0]["prefix"])


def put_files(
    lake: Lake, rse: str, scope: str, names: list[str], *, size: int = 100
) -> dict[str, bytes]:
    """Write files on ``rse``'s storage and register them there (available)."""
    prefix = rse_prefix(lake, rse)
    written: dict[str, bytes] = {}
    specs = []
    for name in names:
        data = (name.encode() * (size // max(len(name), 1) + 1))[:size]
        path = prefix / deterministic_path(scope, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[name] = data
        specs.append(
            {"scope": scope, "name": name, "bytes": size, "adler32": f"{zlib.adler32(data):08x}"}
        )
    with lake.write() as conn:
        rse_id = rses.get_rse_id(conn, rse)
        replicas.add_replicas(conn, rse_id, specs, account="root", deterministic=True)  # type: ignore[arg-type]
    return written


def make_dataset(
    lake: Lake, scope: str, name: str, files: list[str], *, rse: str = "ALPHA_DISK", size: int = 100
) -> dict[str, bytes]:
    with lake.write() as conn:
        if scope not in {s["scope"] for s in scopes.list_scopes(conn)}:
            scopes.add_scope(conn, scope, account="root")
        dids.add_collection(conn, scope, name, DIDType.DATASET, account="root")
    data = put_files(lake, rse, scope, files, size=size) if files else {}
    if files:
        with lake.write() as conn:
            dids.attach(conn, scope, name, [(scope, f) for f in files])
    return data


def settle(lake: Lake, *names: str) -> int:
    """Run the daemons (all, or ``names``) until none finds anything to do."""
    chosen = (
        [DAEMONS[name] for name in names]
        if names
        else [daemon for name, daemon in DAEMONS.items() if name not in INTEGRITY_CHECKS]
    )
    total = 0
    for _ in range(50):
        done = sum(run_once(lake, daemon) for daemon in chosen)
        total += done
        if done == 0:
            return total
    raise AssertionError("the daemons never came to rest")


def stall_transfers(lake: Lake, monkeypatch: Any, source: str = "ALPHA_DISK") -> None:
    """For tests about waiting locks while the conveyor runs (the server's daemons): ``source``
    is taken out of reading, so transfers have no source and retry (never giving up in a test)."""
    monkeypatch.setattr(lake.settings, "transfer_max_attempts", 1000)
    with lake.write() as conn:
        rses.update_rse(conn, rses.get_rse_id(conn, source), availability_read=False)


def lock_rows(lake: Lake, rule_id: str) -> list[Any]:
    with lake.read() as conn:
        return list(
            conn.execute(
                select(locks.c.scope, locks.c.name, locks.c.rse_id, locks.c.state).where(
                    locks.c.rule_id == rule_id
                )
            )
        )


def rse_names(lake: Lake) -> dict[int, str]:
    with lake.read() as conn:
        return {info["id"]: info["rse"] for info in rses.list_rses(conn)}


def request_rows(lake: Lake) -> list[Any]:
    with lake.read() as conn:
        return list(conn.execute(select(requests).order_by(requests.c.id)))


def copy_and_finish(lake: Lake, request: Any) -> None:
    """What the transfer engine will do: copy the bytes, then declare the transfer done."""
    names = rse_names(lake)
    with lake.read() as conn:
        source = conn.execute(
            select(replicas_table.c.rse_id).where(
                replicas_table.c.scope == request.scope,
                replicas_table.c.name == request.name,
                replicas_table.c.state == "available",
            )
        ).scalar()
    path = deterministic_path(request.scope, request.name)
    data = (rse_prefix(lake, names[source]) / path).read_bytes()
    target = rse_prefix(lake, names[request.dest_rse_id]) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    with lake.write() as conn:
        transfer_done(conn, request.id)


def event_types(lake: Lake, event_type: str | None = None) -> list[dict[str, Any]]:
    with lake.read() as conn:
        query = select(events).order_by(events.c.id)
        if event_type:
            query = query.where(events.c.event_type == event_type)
        return [
            {"type": row.event_type, **orjson.loads(row.payload)} for row in conn.execute(query)
        ]


def count(lake: Lake, table: Any, *conditions: Any) -> int:
    with lake.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(table).where(*conditions)).scalar()
        )
