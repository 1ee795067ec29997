"""Replicas in doubt, from the client's side: declaring them, and reporting the corrupt copies
a reader comes across.

``declare`` names files (or datasets and containers: their files with a replica on the RSE)
and sends one declaration; any replica the server refuses makes it raise that refusal's error
(ReplicaNotFound, AccessDenied...) after the others were declared. ``Suspects`` is what the
download manager and the ``lacus://`` reader use: a replica whose bytes do not match the
catalog is reported suspicious once, best effort — a report that fails never fails a read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lacus.errors import InvalidInput, LacusError, error_class
from lacus.naming import parse_did

if TYPE_CHECKING:
    from lacus.client._client import Client

log = logging.getLogger("lacus.client")
STATES = ("suspicious", "bad", "unavailable")


def declare(
    client: Client,
    state: str,
    dids: Sequence[str],
    *,
    rse: str,
    reason: str,
    until: datetime | None = None,
) -> list[str]:
    """See ``Client.declare_replicas``."""
    if state not in STATES:
        raise InvalidInput(f"a replica is declared {', '.join(STATES)}, not {state!r}")
    if until is not None and state != "unavailable":
        raise InvalidInput("only an unavailable replica is declared until a date")
    named = {parse_did(did) for did in dids}
    files = [
        {"scope": item["scope"], "name": item["name"], "rse": rse}
        for item in client.list_replicas(list(dids), rse=rse, all_states=True)
        if (item["scope"], item["name"]) in named or rse in item["rses"]
    ]
    if not files:
        raise InvalidInput(f"no file of {', '.join(dids)} has a replica on {rse}")
    body: dict[str, Any] = {"state": state, "replicas": files, "reason": reason}
    if until is not None:
        moment = until if until.tzinfo else until.replace(tzinfo=UTC)
        body["expires_at"] = moment.isoformat()
    answer = client.session.json("POST", "/integrity/declarations", json=body)
    refused = answer["refused"]
    if refused:
        first = refused[0]
        where = f" on {first['rse']}" if first["rse"] else ""
        done = len(answer["declared"])
        prefix = f"{done} of {done + len(refused)} declared {state}; " if done else ""
        raise error_class(first["error"])(f"{prefix}{first['replica']}{where}: {first['reason']}")
    return [f"{item['scope']}:{item['name']}" for item in answer["declared"]]


class Suspects:
    """Replicas a reader found corrupt, reported suspicious to the server once each (per
    reader), best effort: the server reads them back and repairs what is really bad."""

    def __init__(self, client: Client, *, reader: str) -> None:
        self.client = client
        self.reader = reader
        self._reported: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def report(self, scope: str, name: str, rse: str, problem: str, *, where: str = "") -> None:
        """Report the replica of ``scope:name`` on ``rse`` suspicious because of ``problem``
        (an error message; ``where``, the URL it starts with, is left out of the reason)."""
        key = (scope, name, rse)
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        if where and problem.startswith(f"{where}: "):
            problem = problem[len(where) + 2 :]
        reason = f"{self.reader}: {problem}"
        try:
            self.client.report_suspicious([key], reason=reason)
        except LacusError as exc:  # best effort: the read goes on to the next copy anyway
            log.warning("could not report %s:%s on %s suspicious: %s", scope, name, rse, exc)
