"""Calls to the server that outlive its restarts: retried with growing pauses until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lacus.errors import ServerError, ServerUnavailable

T = TypeVar("T")

PAUSES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds between attempts (the last one repeats)."""

TRANSIENT = (ServerUnavailable, ServerError)
"""The server is down, restarting, or failed in the middle: the call may be tried again."""


class Outcome:
    """Whether a call had to be repeated: an attempt whose answer was lost may have been done."""

    __slots__ = ("retried",)

    def __init__(self) -> None:
        self.retried = False


def retrying(call: Callable[[], T], *, patience: float, outcome: Outcome | None = None) -> T:
    """``call()``, again after a transient failure, for up to ``patience`` seconds; then the
    last error is raised. ``outcome.retried`` says whether an earlier attempt failed."""
    deadline = time.monotonic() + patience
    attempt = 0
    while True:
        try:
            return call()
        except TRANSIENT:
            if time.monotonic() >= deadline:
                raise
            if outcome is not None:
                outcome.retried = True
            time.sleep(PAUSES[min(attempt, len(PAUSES) - 1)])
            attempt += 1
