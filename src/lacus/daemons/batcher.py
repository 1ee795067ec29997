"""Group commit in a thread of its own: one thread hands items over, another processes them in
batches, so the first never waits for the processing.

The conveyor's dispatcher hands each finished copy to a ``Batcher`` that registers them in the
catalog (one transaction per batch); the dispatcher goes on starting copies meanwhile. A batch is
taken once its oldest item has waited ``interval`` seconds or ``max_items`` are queued; while one
batch is being processed the next one gathers, so a slow catalog makes batches larger, not the
dispatcher slower.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")


class Batcher(Generic[T]):
    """Items ``put`` by one thread, processed by ``process`` in a thread named ``name``.

    When ``process`` raises, the thread ends: later ``put`` calls and ``close`` raise that error,
    and the items not processed are dropped (their owner must be able to lose them, as a worker
    killed at that moment would).
    """

    def __init__(
        self, process: Callable[[list[T]], None], *, interval: float, max_items: int, name: str
    ) -> None:
        self._process = process
        self._interval = interval
        self._max_items = max_items
        self._queue: list[T] = []
        self._oldest = 0.0
        self._closing = False
        self._changed = threading.Condition()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        with self._changed:
            if self.error is not None:
                raise self.error
            if not self._queue:  # the processing thread starts counting the interval
                self._oldest = time.monotonic()
                self._changed.notify()
            self._queue.append(item)
            if len(self._queue) >= self._max_items:
                self._changed.notify()

    @contextmanager
    def queued(self) -> Iterator[list[T]]:
        """The items not taken yet; none is taken while the block runs."""
        with self._changed:
            yield list(self._queue)

    def close(self) -> None:
        """Process every item left, end the thread; raise the error ``process`` raised, if any."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while batch := self._next_batch():
            try:
                self._process(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the owner's thread
                with self._changed:
                    self.error = exc
                    self._queue.clear()
                return

    def _next_batch(self) -> list[T]:
        """Wait for a batch to be due; an empty list once closed with nothing left."""
        with self._changed:
            self._changed.wait_for(lambda: self._queue or self._closing)
            while not self._closing and len(self._queue) < self._max_items:
                left = self._oldest + self._interval - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            batch, self._queue = self._queue, []
            return batch
