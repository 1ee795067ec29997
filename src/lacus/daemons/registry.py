"""Every daemon by name."""

from __future__ import annotations

from lacus.daemons.base import Daemon
from lacus.daemons.evaluator import evaluator_pass
from lacus.daemons.expirers import did_expirer_pass, rule_expirer_pass
from lacus.daemons.reaper import reaper_pass
from lacus.daemons.repairer import repairer_pass
from lacus.daemons.transmogrifier import transmogrifier_pass

DAEMONS: dict[str, Daemon] = {
    daemon.name: daemon
    for daemon in (
        Daemon("evaluator", evaluator_pass, "places new rules and follows content changes"),
        Daemon("repairer", repairer_pass, "retries or moves stuck locks, re-places failed rules"),
        Daemon("rule-expirer", rule_expirer_pass, "removes expired rules, runs lifecycle steps"),
        Daemon("did-expirer", did_expirer_pass, "removes DIDs past their lifetime"),
        Daemon("transmogrifier", transmogrifier_pass, "adds subscription rules to new DIDs"),
        Daemon("reaper", reaper_pass, "deletes tombstoned replicas no rule needs"),
    )
}


def daemon_names() -> list[str]:
    return list(DAEMONS)
