"""Publishers to brokers: each sends a batch of events and returns only once the broker has
acknowledged every message (or raises ``BrokerError``), so that the sender may then move its
cursor.

* STOMP (``stomp.py``): every SEND carries a ``receipt`` header; the broker's RECEIPT frames are
  the acknowledgements (RabbitMQ sends one once the message is routed, and persisted when
  durable). An ERROR frame or a lost connection fails the batch.
* NATS JetStream (``nats-py``, asyncio: each publisher runs its own event loop in its caller's
  thread): every message is published in order, then each PubAck (the stream stored it) awaited.
  Each carries ``Nats-Msg-Id`` (lake identity and event id): a batch sent again after a sender
  died is dropped by the stream within its duplicate window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import nats
import stomp
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from lacus.core.delivery import body, nats_headers, stomp_headers
from lacus.core.events import Event
from lacus.service.settings import EventDestinationSettings, NatsDestination, StompDestination


class BrokerError(Exception):
    """The broker could not be reached, refused a message, or did not acknowledge in time."""


class Publisher(Protocol):
    def publish(self, batch: Sequence[Event]) -> None:
        """Send ``batch`` in order; return once every message is acknowledged."""

    def close(self) -> None: ...


def publisher_for(
    destination: EventDestinationSettings,
    *,
    timeout: float,
    origin: str,
    duplicate_window: float = 300.0,
) -> Publisher:
    """The publisher of ``destination``. ``origin``: the lake's identity (message ids);
    ``duplicate_window``: seconds a JetStream stream Lacus creates remembers message ids."""
    if isinstance(destination, StompDestination):
        return StompPublisher(destination, timeout=timeout)
    return JetStreamPublisher(
        destination, timeout=timeout, origin=origin, duplicate_window=duplicate_window
    )


# -- STOMP ---------------------------------------------------------------------------------------


class _Frames(stomp.ConnectionListener):  # type: ignore[misc]
    """What the broker sent back: the connection, receipts, an error."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.connected = False
        self.closed = False
        self.error: str | None = None
        self.pending: set[str] = set()
        """Receipts asked for and not yet received."""

    def on_connected(self, frame: Any) -> None:
        with self.changed:
            self.connected = True
            self.changed.notify_all()

    def on_receipt(self, frame: Any) -> None:
        with self.changed:
            self.pending.discard(frame.headers.get("receipt-id", ""))
            if not self.pending:
                self.changed.notify_all()

    def on_error(self, frame: Any) -> None:
        with self.changed:
            message = frame.headers.get("message") or ""
            detail = (frame.body or "").strip().replace("\n", " ")
            self.error = f"{message}: {detail}" if detail else message or "ERROR frame"
            self.changed.notify_all()

    def on_disconnected(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def wait(self, done: Any, timeout: float, what: str) -> None:
        """Wait until ``done()``; raise if the broker errs, goes away, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done():
                if self.error is not None:
                    raise BrokerError(f"the broker answered with an error: {self.error}")
                if self.closed:
                    raise BrokerError(f"the broker closed the connection while {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerError(f"no answer from the broker within {timeout:g} s ({what})")
                self.changed.wait(remaining)


class StompPublisher:
    """Sends events as STOMP frames to one destination of one broker."""

    def __init__(self, config: StompDestination, *, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self._connection: Any = None
        self._frames = _Frames()
        self._receipt_ids = itertools.count(1)

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _connect(self) -> None:
        if self._connection is not None and self._connection.is_connected():
            return
        self.close()
        frames = _Frames()
        connection = stomp.Connection12(
            [(self.config.host, self.config.port)],
            reconnect_attempts_max=1,
            timeout=self.timeout,
            vhost=self.config.vhost,
            heartbeats=(0, 0),
        )
        connection.set_listener("lacus", frames)
        try:
            connection.connect(self.config.username, self.config.password, wait=False)
            frames.wait(lambda: frames.connected, self.timeout, "connecting")
        except stomp.exception.StompException as exc:
            _stop(connection)
            raise BrokerError(f"cannot connect to STOMP broker {self.where}: {exc!r}") from None
        except BrokerError as exc:
            _stop(connection)
            raise BrokerError(f"STOMP broker {self.where}: {exc}") from None
        self._connection, self._frames = connection, frames

    def publish(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        self._connect()
        frames = self._frames
        receipts = [f"lacus-{next(self._receipt_ids)}" for _ in batch]
        with frames.changed:
            frames.pending = set(receipts)
        try:
            for event, receipt in zip(batch, receipts, strict=True):
                self._connection.send(
                    self.config.destination,
                    body(event),
                    headers={**stomp_headers(event), "receipt": receipt},
                )
            frames.wait(
                lambda: not frames.pending,
                self.timeout,
                f"waiting for {len(receipts)} receipt(s)",
            )
        except stomp.exception.StompException as exc:
            self.close()
            raise BrokerError(f"STOMP broker {self.where}: {exc!r}") from None
        except BrokerError as exc:
            self.close()
            raise BrokerError(f"STOMP broker {self.where}: {exc}") from None

    def close(self) -> None:
        if self._connection is not None:
            _stop(self._connection)
            self._connection = None


def _stop(connection: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing more to close
        if connection.is_connected():
            connection.disconnect()
    with contextlib.suppress(Exception):
        connection.transport.stop()


# -- NATS JetStream ------------------------------------------------------------------------------


class JetStreamPublisher:
    """Publishes events to a JetStream subject (creating the stream when it is named and
    missing)."""

    def __init__(
        self,
        config: NatsDestination,
        *,
        timeout: float,
        origin: str,
        duplicate_window: float = 300.0,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.origin = origin
        self.duplicate_window = duplicate_window
        self._loop = asyncio.new_event_loop()
        self._client: NatsClient | None = None
        self._stream: JetStreamContext | None = None

    def publish(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._publish(batch), self.timeout * 2))
        except BrokerError:
            self.close_connection()
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self.close_connection()
            raise BrokerError(
                f"NATS {self.config.url} subject {self.config.subject}: {_describe(exc)}"
            ) from None

    async def _publish(self, batch: Sequence[Event]) -> None:
        stream = await self._jetstream()
        acks = [
            await stream.publish_async(
                self.config.subject,
                body(event),
                headers=nats_headers(event, self.origin),
                stream=self.config.stream,
            )
            for event in batch
        ]
        await asyncio.wait_for(asyncio.gather(*acks), self.timeout)

    async def _jetstream(self) -> JetStreamContext:
        if self._client is not None and self._client.is_connected and self._stream is not None:
            return self._stream
        await self._close()
        client = NatsClient()
        failures: list[Exception] = []

        async def failed(exc: Exception) -> None:  # surfaces as this publication's error
            failures.append(exc)

        try:
            await client.connect(
                self.config.url,
                user=self.config.username,
                password=self.config.password,
                token=self.config.token,
                connect_timeout=max(1, math.ceil(self.timeout)),
                allow_reconnect=False,
                max_reconnect_attempts=1,  # 0 would be: for ever
                reconnect_time_wait=0,
                error_cb=failed,
            )
        except nats.errors.NoServersError:
            cause = _describe(failures[-1]) if failures else "no server"
            raise BrokerError(f"cannot connect to NATS {self.config.url}: {cause}") from None
        self._client = client
        stream = client.jetstream(timeout=self.timeout)
        if self.config.stream is not None:
            try:
                await stream.stream_info(self.config.stream)
            except NotFoundError:
                await stream.add_stream(
                    StreamConfig(
                        name=self.config.stream,
                        subjects=[self.config.subject],
                        storage=StorageType.FILE,
                        duplicate_window=self.duplicate_window,
                    )
                )
        self._stream = stream
        return stream

    async def _close(self) -> None:
        client, self._client, self._stream = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):  # closing a broken connection
                await client.close()

    def close_connection(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.wait_for(self._close(), self.timeout))

    def close(self) -> None:
        self.close_connection()
        self._loop.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no acknowledgement in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
