"""Every daemon by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, and_, exists, select

from lacus.core import expiry, reaping
from lacus.core.clock import utcnow
from lacus.core.integrity import needs_care
from lacus.daemons.auditor import auditor_pass, dark_reaper_pass
from lacus.daemons.auditor import due as audit_due
from lacus.daemons.base import Daemon
from lacus.daemons.conveyor import conveyor_pass
from lacus.daemons.conveyor import pending as conveyor_pending
from lacus.daemons.evaluator import evaluator_pass
from lacus.daemons.expirers import did_expirer_pass, rule_expirer_pass
from lacus.daemons.necromancer import necromancer_pass
from lacus.daemons.reaper import reaper_pass
from lacus.daemons.repairer import repairer_pass
from lacus.daemons.retention import history_pruner_pass, pruner_pass
from lacus.daemons.scrubber import due as scrub_due
from lacus.daemons.scrubber import scrubber_pass
from lacus.daemons.sender import run_sender, sender_pass
from lacus.daemons.sweeper import due as sweep_due
from lacus.daemons.sweeper import sweeper_pass
from lacus.daemons.transmogrifier import transmogrifier_pass
from lacus.db.tables import dids, evaluations, locks, new_dids, rules
from lacus.types import LockState, RuleState


def _any(*conditions: ColumnElement[bool]) -> Callable[[Connection], bool]:
    def pending(conn: Connection) -> bool:
        return any(conn.execute(select(exists().where(c))).scalar() for c in conditions)

    return pending


def _queued(table: Table) -> Callable[[Connection], bool]:
    return lambda conn: bool(conn.execute(select(exists().select_from(table))).scalar())


def _expired(column: Column[Any]) -> Callable[[Connection], bool]:
    return lambda conn: bool(conn.execute(select(exists().where(column < utcnow()))).scalar())


DAEMONS: dict[str, Daemon] = {
    daemon.name: daemon
    for daemon in (
        Daemon(
            "evaluator",
            evaluator_pass,
            "places new rules and follows content changes",
            _queued(evaluations),
        ),
        Daemon(
            "conveyor",
            conveyor_pass,
            "copies files for transfer requests (ranked sources, link limits, TPC, multi-hop)",
            conveyor_pending,
        ),
        Daemon(
            "repairer",
            repairer_pass,
            "retries or moves stuck locks, re-places failed rules",
            _any(
                locks.c.state == LockState.STUCK.value,
                and_(rules.c.state == RuleState.STUCK.value, rules.c.error.is_not(None)),
            ),
        ),
        Daemon(
            "rule-expirer",
            rule_expirer_pass,
            "removes expired rules and moved ones, runs lifecycle steps",
            lambda conn: _expired(rules.c.expires_at)(conn) or expiry.replaced(conn),
        ),
        Daemon(
            "did-expirer",
            did_expirer_pass,
            "removes DIDs past their lifetime",
            _expired(dids.c.expired_at),
        ),
        Daemon(
            "transmogrifier",
            transmogrifier_pass,
            "adds subscription rules to new DIDs",
            _queued(new_dids),
        ),
        Daemon(
            "reaper",
            reaper_pass,
            "deletes tombstoned replicas no rule needs (at once, or when space is short)",
            reaping.pending,
        ),
        Daemon(
            "event-sender",
            sender_pass,
            "forwards events to the configured brokers (STOMP, NATS JetStream), at least once",
            loop=run_sender,
        ),
        Daemon(
            "event-pruner",
            pruner_pass,
            "deletes events past their retention (never one a destination still waits for)",
        ),
        Daemon(
            "hop-sweeper",
            sweeper_pass,
            "deletes multi-hop scratch copies a killed worker left behind",
            sweep_due,
        ),
        Daemon(
            "necromancer",
            necromancer_pass,
            "reads suspicious replicas back, copies bad ones again, declares lost files",
            needs_care,
        ),
        Daemon(
            "auditor",
            auditor_pass,
            "lists each RSE's storage and compares it with the catalog (lost and dark files)",
            audit_due,
        ),
        Daemon(
            "scrubber",
            scrubber_pass,
            "re-reads stored bytes and checks their checksums, within a rate budget per RSE",
            scrub_due,
        ),
        Daemon(
            "dark-reaper",
            dark_reaper_pass,
            "deletes quarantined dark files past dark_min_age_days that are still unknown",
        ),
        Daemon(
            "history-pruner",
            history_pruner_pass,
            "deletes transfer history older than transfer_history_days",
        ),
    )
}


def daemon_names() -> list[str]:
    return list(DAEMONS)
