"""The daemons that make rules true: evaluator, conveyor (transfers), repairer, rule-expirer,
did-expirer, transmogrifier (subscriptions) and reaper. Each runs in threads of ``lacus serve``
(embedded) or alone as ``lacus daemon NAME``; several processes share the work through claims on
PostgreSQL."""

from lacus.daemons.base import Daemon, DaemonRunner, worker_id
from lacus.daemons.registry import DAEMONS, daemon_names

__all__ = ["DAEMONS", "Daemon", "DaemonRunner", "daemon_names", "worker_id"]
