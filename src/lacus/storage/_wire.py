"""An httpx transport on the standard library's ``http.client``: HTTP/1.1 with large bodies moved
in large pieces.

httpx's own transport (httpcore + h11) handles a response body one TLS record (16 KiB) at a time
in Python: a context manager, a socket timeout set (a system call), an h11 event per record. At
loopback speeds that costs twice the CPU of the bytes themselves (1 GiB over HTTPS: ~3 s of CPU
in httpcore against ~1.3 s here and ~1.2 s for ``curl``). Here a body is read 1 MiB at a time by
``http.client`` (C loops of ``recv_into`` below it) and sent with one ``sendall`` per piece; the
WebDAV backend keeps httpx's API (requests, redirects, timeouts, errors) on top.

Connections are kept alive per origin (at most ``max_idle`` idle ones); an idle connection the
server has closed meanwhile is noticed before reuse (readable while idle) and dropped. Failures
are raised as httpx's exceptions, so callers see the same errors as with httpx's transport.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator

import httpx

__all__ = ["WireTransport"]

PIECE = 1024 * 1024  # bytes of a body read per call
_Key = tuple[str, str, int]


class WireTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client``; ``ssl_context`` for https (None: plain http only)."""

    def __init__(self, ssl_context: ssl.SSLContext | None, *, max_idle: int = 8) -> None:
        self._context = ssl_context
        self._max_idle = max_idle
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https") or not url.host:
            raise httpx.UnsupportedProtocol(f"cannot send a request to {url}")
        key = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        connection = self._take(key) or self._connect(key, timeouts.get("connect"), request)
        assert connection.sock is not None
        connection.sock.settimeout(timeouts.get("read"))
        try:
            response = self._exchange(connection, request)
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=_Body(response, connection, key, self, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode()},
            request=request,
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # -- connections ---------------------------------------------------------------------------

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        """An idle connection to ``key`` that the server has not closed meanwhile."""
        while True:
            with self._lock:
                connections = self._idle.get(key)
                if not connections:
                    return None
                connection = connections.pop()
            sock = connection.sock
            if sock is not None and not _readable(sock):
                return connection
            connection.close()  # closed by the server (EOF is readable), or talking out of turn

    def _give_back(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            connections = self._idle.setdefault(key, [])
            if len(connections) < self._max_idle:
                connections.append(connection)
                return
        connection.close()

    def _connect(
        self, key: _Key, timeout: float | None, request: httpx.Request
    ) -> http.client.HTTPConnection:
        scheme, host, port = key
        connection: http.client.HTTPConnection
        if scheme == "https":
            if self._context is None:
                raise httpx.UnsupportedProtocol(
                    "this transport has no TLS context", request=request
                )
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except OSError as exc:  # refused, unreachable, a certificate not trusted...
            connection.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return connection

    # -- one exchange --------------------------------------------------------------------------

    def _exchange(
        self, connection: http.client.HTTPConnection, request: httpx.Request
    ) -> http.client.HTTPResponse:
        """Send ``request`` and read the head of its answer."""
        target = request.url.raw_path.decode("ascii")
        chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
        try:
            connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.raw:
                connection.putheader(name.decode("latin-1"), value.decode("latin-1"))
            connection.endheaders()
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "write timed out", request=request) from exc
        except OSError as exc:
            raise httpx.WriteError(_reason(exc), request=request) from exc
        try:
            _send_body(connection, request.stream, chunked=chunked)  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "write timed out", request=request) from exc
        except OSError as exc:
            # the server may have answered and closed (a refusal before the whole body): read it
            try:
                return _read_head(connection, request)
            except httpx.HTTPError:
                raise httpx.WriteError(_reason(exc), request=request) from exc
        return _read_head(connection, request)


class _Body(httpx.SyncByteStream):
    """A response body in pieces of ``PIECE``; the connection goes back to the pool once the
    whole body was read, and is closed if the body is abandoned."""

    def __init__(
        self,
        response: http.client.HTTPResponse,
        connection: http.client.HTTPConnection,
        key: _Key,
        transport: WireTransport,
        request: httpx.Request,
    ) -> None:
        self._response = response
        self._connection: http.client.HTTPConnection | None = connection
        self._key = key
        self._transport = transport
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        while True:
            try:
                piece = response.read(PIECE)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(
                    str(exc) or "read timed out", request=self._request
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise httpx.ReadError(_reason(exc), request=self._request) from exc
            if not piece:
                break
            yield piece
        if response.length:  # http.client ends a body cut short quietly
            raise httpx.RemoteProtocolError(
                f"the server closed the connection {response.length} bytes before the end of "
                "the body",
                request=self._request,
            )

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        complete = self._response.isclosed() and not self._response.length
        self._response.close()
        if complete and connection.sock is not None:
            self._transport._give_back(self._key, connection)
        else:
            connection.close()


def _send_body(
    connection: http.client.HTTPConnection, stream: Iterable[bytes], *, chunked: bool
) -> None:
    for piece in stream:
        if not piece:
            continue
        if chunked:
            connection.send(b"%x\r\n" % len(piece))
            connection.send(piece)
            connection.send(b"\r\n")
        else:
            connection.send(piece)
    if chunked:
        connection.send(b"0\r\n\r\n")


def _read_head(
    connection: http.client.HTTPConnection, request: httpx.Request
) -> http.client.HTTPResponse:
    try:
        return connection.getresponse()
    except TimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
        raise httpx.RemoteProtocolError(
            f"the server closed the connection without an answer ({_reason(exc)})",
            request=request,
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise httpx.ReadError(_reason(exc), request=request) from exc


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read (the server closed it, most likely)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
