"""The event sender: forwards the outbox's events to brokers (``event_destinations``).

Every destination has its own thread, cursor and backlog (``core.delivery``): a broker that is
down holds back only its own events. A round of a destination's thread:

1. **claim** the destination (a lease on its cursor row, renewed as it goes): one sender at a
   time per destination, however many processes run the daemon;
2. **read** the events past its cursor, never past the event log's horizon, at most
   ``batch_size``, only the types it wants;
3. **publish** them in id order and wait for the broker's acknowledgement of each (STOMP
   RECEIPT, JetStream PubAck);
4. **advance** the cursor in the catalog. A sender that dies between 3 and 4 publishes the batch
   again next time: delivery is at least once, never lossy; consumers drop repeats by ``id``.

A failing destination records its error on its cursor and is retried after a pause that doubles
with every failure in a row, up to ``event_retry_max_seconds``. An idle thread waits on the event
log, which wakes it as soon as new events are committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from lacus.core import delivery
from lacus.core.clock import utcnow
from lacus.core.events import Event
from lacus.daemons.base import HEARTBEAT_SECONDS, beat, forget, worker_id
from lacus.daemons.brokers import Publisher, publisher_for
from lacus.service.lake import Lake
from lacus.service.settings import EventDestinationSettings

log = logging.getLogger("lacus.daemons.sender")
NAME = "event-sender"
QUIET_WRITE_SECONDS = 5.0
"""A cursor moved only past events its destination does not want is written at most this often
(a sender restarted meanwhile reads those events again and sends nothing)."""

Published = Callable[[str, Sequence[Event]], None]
"""Called with a destination and a batch its broker has just acknowledged, before the cursor
moves (tests use it to stop a sender exactly there)."""


class DestinationSender:
    """Delivers the events of one destination."""

    def __init__(
        self,
        lake: Lake,
        config: EventDestinationSettings,
        *,
        worker: str,
        publisher: Publisher | None = None,
        on_published: Published | None = None,
    ) -> None:
        self.lake = lake
        self.config = config
        self.worker = worker
        settings = lake.settings
        self.lease_seconds = settings.claim_lease_seconds
        if publisher is None:
            with lake.read() as conn:
                origin = delivery.origin(conn)
            publisher = publisher_for(  # a resend comes at most a lease after the first send
                config,
                timeout=settings.event_send_timeout_seconds,
                origin=origin,
                duplicate_window=max(300.0, 2 * self.lease_seconds + 60),
            )
        self.publisher = publisher
        self.on_published = on_published
        self.condition = delivery.type_condition(config.event_types())
        self.position: int | None = None
        """Where this sender is (None: not claimed)."""
        self.written = 0
        """The position last written to the catalog."""
        self.renewed_at = 0.0
        self.written_at = 0.0
        self.failures = 0

    # -- one round ---------------------------------------------------------------------------

    def claim(self) -> bool:
        """Take (or renew) the destination; False while another sender holds it."""
        log_ = self.lake.event_log
        with self.lake.write() as conn:
            delivery.ensure_cursor(conn, self.config.name, start_after=log_.horizon())
            if not delivery.claim(
                conn, self.config.name, worker=self.worker, lease_seconds=self.lease_seconds
            ):
                self.position = None
                return False
            cursor = delivery.cursors(conn, [self.config.name])[self.config.name]
        if self.position is None or cursor.last_id > self.position:
            self.position = self.written = cursor.last_id
        self.renewed_at = time.monotonic()
        return True

    def deliver(self) -> int:
        """Publish the next batch and move the cursor; returns the events published (0: none
        waiting, or the destination is another sender's). Raises when the broker or the catalog
        fails."""
        stale = self.position is None or self._lease_ageing() or self.failures
        if stale and not self.claim():
            return 0
        assert self.position is not None
        upto = self.lake.event_log.horizon()
        if upto <= self.position:
            return 0
        limit = self.config.batch_size
        batch = self.lake.event_log.read(
            self.position, upto=upto, limit=limit, where=self.condition
        )
        self.publisher.publish(batch)
        if self.on_published is not None:
            self.on_published(self.config.name, batch)
        position = upto if len(batch) < limit else batch[-1].id
        if batch or self._lease_ageing() or self._quiet_for() > QUIET_WRITE_SECONDS:
            self._advance(position, len(batch))
        else:
            self.position = position
        return len(batch)

    def _advance(self, position: int, delivered: int) -> None:
        with self.lake.write() as conn:
            kept = delivery.advance(
                conn,
                self.config.name,
                worker=self.worker,
                last_id=position,
                delivered=delivered,
                lease_seconds=self.lease_seconds,
            )
        if not kept:  # our lease ran out and another sender took over: it goes on from there
            log.warning("%s: lost the claim on %s", self.worker, self.config.name)
            self.position = None
            return
        self.position = self.written = position
        self.renewed_at = self.written_at = time.monotonic()

    def _lease_ageing(self) -> bool:
        return time.monotonic() - self.renewed_at > self.lease_seconds / 3

    def _quiet_for(self) -> float:
        return time.monotonic() - self.written_at

    def failed(self, exc: Exception) -> float:
        """Note a failure (on the cursor too, if the catalog answers); returns the seconds to
        wait before trying again."""
        self.failures += 1
        message = str(exc) or type(exc).__name__
        log.warning("%s: %s failed (%d in a row): %s", self.worker, self.config.name,
                    self.failures, message)  # fmt: skip
        try:
            with self.lake.write() as conn:
                delivery.record_failure(conn, self.config.name, worker=self.worker, error=message)
        except Exception:  # the catalog is away too: the log has it
            log.exception("%s: recording the failure of %s", self.worker, self.config.name)
        return delivery.retry_delay(self.failures, cap=self.lake.settings.event_retry_max_seconds)

    def succeeded(self) -> None:
        self.failures = 0

    def release(self) -> None:
        """Give the destination up (on a clean stop: another sender may take it at once)."""
        self.publisher.close()
        if self.position is None:
            return
        try:
            with self.lake.write() as conn:
                delivery.release(conn, self.config.name, worker=self.worker)
        except Exception:  # its lease runs out anyway
            log.exception("%s: releasing %s", self.worker, self.config.name)

    # -- the thread ----------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        idle = self.lake.settings.daemon_sleep_seconds
        thread = f"{self.config.name}"
        started, processed, last_beat = utcnow(), 0, 0.0
        try:
            while not stopping.is_set():
                pause = 0.0
                try:
                    with self.lake.daemon_pass() as allowed:
                        sent = self.deliver() if allowed else 0
                    if allowed:
                        self.succeeded()
                    else:  # daemons are paused
                        pause = idle
                    processed += sent
                except Exception as exc:  # noqa: BLE001 - any failure of a broker or the catalog: retry
                    pause = self.failed(exc)
                    sent = 0
                if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    beat(self.lake, NAME, thread, started=started, processed=processed)
                if pause:
                    stopping.wait(pause)
                elif self.position is None:  # another sender has it: look again later
                    stopping.wait(min(idle, self.lease_seconds / 2))
                elif sent == 0:
                    self.lake.event_log.wait(self.position, timeout=idle)
        finally:
            self.release()
            forget(self.lake, NAME, thread)


class EventSender:
    """Runs one ``DestinationSender`` thread per destination until stopped."""

    def __init__(
        self,
        lake: Lake,
        destinations: Sequence[EventDestinationSettings] | None = None,
        *,
        on_published: Published | None = None,
    ) -> None:
        self.lake = lake
        chosen = lake.settings.event_destinations if destinations is None else destinations
        self.senders = [
            DestinationSender(
                lake,
                config,
                worker=worker_id(NAME, config.name),
                on_published=on_published,
            )
            for config in chosen
        ]
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for sender in self.senders:
            thread = threading.Thread(
                target=sender.run,
                args=(self.stopping,),
                name=f"lacus-{NAME}-{sender.config.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()


def run_sender(lake: Lake, stopping: threading.Event) -> None:
    """The daemon's loop: every configured destination in its thread until ``stopping``."""
    if not lake.settings.event_destinations:
        return
    sender = EventSender(lake)
    sender.start()
    try:
        stopping.wait()
    finally:
        sender.stop()


def sender_pass(lake: Lake, worker: str) -> int:
    """One round over every destination, one after the other (``lacus daemon event-sender
    --once``): a batch each; a failing destination is reported and skipped."""
    total = 0
    for config in lake.settings.event_destinations:
        sender = DestinationSender(lake, config, worker=f"{worker}:{config.name}")
        try:
            total += sender.deliver()
        except Exception as exc:  # noqa: BLE001 - reported on its cursor; the others go on
            sender.failed(exc)
        finally:
            sender.release()
    return total
