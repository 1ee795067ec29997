"""Slow and hostile clients, at the connection level: what uvicorn does not bound by itself.

uvicorn closes an idle keep-alive connection, but a new connection that sends nothing, or sends
its headers a byte at a time (slowloris), stays open for ever, and it accepts any number of
connections from one address. ``serve`` runs uvicorn with ``GuardedProtocol``, its httptools
protocol plus:

- a deadline for a request's line and headers (``server_header_timeout_seconds``), counted from
  the connection's start or from the end of the previous response: the connection is closed when
  it passes;
- a cap on the size of the line and headers (``server_max_header_bytes``): 431, then closed;
- a cap on the connections of one client address (``server_max_connections_per_client``) and on
  all connections (``server_max_connections``): an excess connection is answered 503 and closed
  at once, before anything is read from it.

The idle pause allowed inside a request body is enforced by ``limits.BodyLimit`` (an ASGI
middleware: it alone knows when the application waits for the client).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lacus.errors import LacusError, PayloadTooLarge, ServerUnavailable
from lacus.server.responses import error_response
from lacus.service import Settings


@dataclass
class ConnectionGuard:
    """The open connections of one server, by client address; shared by its connections (one
    event loop: no lock needed). An address is forgotten with its last connection, so the table
    never holds more entries than there are open connections."""

    max_per_client: int
    max_total: int
    header_timeout: float
    max_header_bytes: int
    open: dict[str, int] = field(default_factory=dict)
    total: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionGuard:
        return cls(
            max_per_client=settings.server_max_connections_per_client,
            max_total=settings.server_max_connections,
            header_timeout=settings.server_header_timeout_seconds,
            max_header_bytes=settings.server_max_header_bytes,
        )

    def admit(self, address: str) -> LacusError | None:
        """Count a new connection from ``address``, or say why it is refused."""
        if self.total >= self.max_total:
            return ServerUnavailable(
                f"the server holds {self.total} connections, its limit: try again later"
            )
        held = self.open.get(address, 0)
        if held >= self.max_per_client:
            return ServerUnavailable(
                f"{address} holds {held} connections to this server, at most "
                f"{self.max_per_client} at once: close some or try again later"
            )
        self.open[address] = held + 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        held = self.open.pop(address, 0) - 1
        if held > 0:
            self.open[address] = held
        self.total -= 1


def raw_error(error: LacusError, status: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer carrying ``error`` (Rucio's headers and body) that closes the
    connection: for refusals made before any request was parsed."""
    response = error_response(error)
    status = status or response.status_code
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in response.raw_headers]
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(response.body)


class GuardedProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with the limits of ``guard`` (set on a subclass per server:
    ``guarded_protocol``)."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None  # counted in the guard while set
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for (the rest of) a request's line and headers
        self._head_bytes = 0

    # -- connection ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "unknown"
        refusal = self.guard.admit(address)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._address = address
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.guard.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._address is None:  # refused: the answer is on its way, nothing is read
            return
        counted = self._in_head
        super().data_received(data)
        if counted and self._in_head and not self.transport.is_closing():
            # Counted by whole reads (at most one read beyond the limit): httptools gathers a
            # header across reads before it reports it, so only the reads tell the size.
            self._head_bytes += len(data)
            if self._head_bytes > self.guard.max_header_bytes:
                self._refuse(
                    PayloadTooLarge(
                        f"the request line and headers are larger than "
                        f"{self.guard.max_header_bytes} bytes"
                    ),
                    status=431,
                )

    # -- parser callbacks --------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm()  # the next request's headers (or the rest of an unread body)

    # -- deadline ----------------------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.guard.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, error: LacusError, status: int | None = None) -> None:
        self._disarm()
        self.transport.write(raw_error(error, status))
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedProtocol]:
    """The protocol class of one server: ``GuardedProtocol`` with its own ``ConnectionGuard``."""
    return type(
        "GuardedProtocol", (GuardedProtocol,), {"guard": ConnectionGuard.from_settings(settings)}
    )


def serve(settings: Settings, app: Any, *, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until interrupted, every connection guarded by ``settings``."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        http=guarded_protocol(settings),
        ws="none",
        timeout_keep_alive=settings.server_keep_alive_seconds,
        log_level="warning",
        access_log=False,
        # Open event streams never end by themselves: give them a few seconds on shutdown.
        timeout_graceful_shutdown=3,
    )
