"""The HTTP session: tokens obtained and refreshed transparently, errors mapped to Lacus errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from lacus.client.config import ClientConfig
from lacus.errors import LacusError, ServerError, ServerUnavailable, Unauthenticated, error_class

REFRESH_MARGIN = 60.0


class Session:
    """Sends requests to one server as one account."""

    def __init__(self, config: ClientConfig, *, http: httpx.Client | None = None) -> None:
        self.config = config
        self.http = http or httpx.Client(
            base_url=config.url, timeout=httpx.Timeout(60.0, connect=10.0)
        )
        self._token = config.token
        self._refresh_at = float("inf") if config.token else 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    @property
    def token(self) -> str:
        with self._lock:
            if self._token is None or (
                self.config.password and time.monotonic() > self._refresh_at
            ):
                self._login()
            assert self._token is not None
            return self._token

    def token_seconds_left(self) -> float | None:
        """How many seconds the token can still be used (``GET /auth/validate``: the server
        knows the expiry of its own tokens and of a JWT), or None when that does not matter:
        with a password the session logs in again whenever its token runs out."""
        if self.config.password:
            return None
        response = self._send("GET", "/auth/validate", headers={"X-Rucio-Auth-Token": self.token})
        raise_for_error(response)
        left = orjson.loads(response.content).get("seconds_left")
        return float(left) if isinstance(left, int | float) else None

    def forget_token(self) -> None:
        """The server refused the token: log in again on the next request."""
        with self._lock:
            self._token = None

    def logout(self) -> bool:
        """Revoke the token this session holds on the server and forget it (a later request
        logs in again, with a password); whether the server revoked one. A token the server
        does not list (a JWT: its issuer's) or no longer accepts is only forgotten."""
        with self._lock:
            token, self._token = self._token, None
        if token is None:
            return False
        headers = {"X-Rucio-Auth-Token": token}
        listed = self._send("GET", "/auth/tokens", headers=headers)
        if listed.status_code == 401:
            return False
        raise_for_error(listed)
        for entry in orjson.loads(listed.content):
            if entry.get("current"):
                response = self._send("DELETE", f"/auth/tokens/{entry['id']}", headers=headers)
                if response.status_code == 401:
                    return False
                raise_for_error(response)
                return True
        return False

    def _login(self) -> None:
        if not self.config.account or not self.config.password:
            raise Unauthenticated(
                "no credentials: set LACUS_ACCOUNT and LACUS_PASSWORD (or LACUS_TOKEN), "
                "or run 'lacus login'"
            )
        response = self._send(
            "GET",
            "/auth/userpass",
            headers={
                "X-Rucio-Account": self.config.account,
                "X-Rucio-Username": self.config.account,
                "X-Rucio-Password": self.config.password,
            },
        )
        raise_for_error(response)
        self._token = response.headers["X-Rucio-Auth-Token"]
        body = response.json()
        lifetime = _seconds_until(body.get("expires_at"))
        # Refresh a minute before expiry, or half-way through a short-lived token.
        self._refresh_at = time.monotonic() + lifetime - min(REFRESH_MARGIN, lifetime / 2)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"cannot reach the Lacus server at {self.config.url}: {exc}"
            ) from None

    def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        content = orjson.dumps(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        for attempt in (1, 2):
            headers["X-Rucio-Auth-Token"] = self.token
            response = self._send(method, path, content=content, params=params, headers=headers)
            if response.status_code == 401 and attempt == 1 and self.config.password:
                with self._lock:
                    self._token = None
                continue
            raise_for_error(response)
            return response
        raise Unauthenticated("the server refused the refreshed token")

    def json(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        response = self.request(method, path, json=json, params=params)
        return orjson.loads(response.content) if response.content else None

    def ndjson(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> Iterator[Any]:
        """Stream a newline-delimited JSON response, one object at a time."""
        content = orjson.dumps(json) if json is not None else None
        for attempt in (1, 2):
            headers = {"X-Rucio-Auth-Token": self.token}
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                with self.http.stream(
                    method, path, content=content, params=params, headers=headers
                ) as response:
                    if response.status_code == 401 and attempt == 1 and self.config.password:
                        with self._lock:
                            self._token = None
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise_for_error(response)
                    for line in response.iter_lines():
                        if line:
                            yield orjson.loads(line)
                    return
            except httpx.TransportError as exc:
                raise ServerUnavailable(
                    f"cannot reach the Lacus server at {self.config.url}: {exc}"
                ) from None
        raise Unauthenticated("the server refused the refreshed token")


def _seconds_until(value: str | None) -> float:
    if not value:
        return 3600.0
    from datetime import UTC, datetime

    try:
        expires = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 3600.0
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return max(0.0, (expires - datetime.now(UTC)).total_seconds())


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    name = response.headers.get("X-Lacus-Error")
    message = response.headers.get("ExceptionMessage") or ""
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict):
            message = str(body.get("ExceptionMessage") or message)
            name = name or body.get("error")
    except orjson.JSONDecodeError:
        pass
    cls: type[LacusError] = error_class(name) if name else ServerError
    if cls is LacusError:
        cls = ServerError
    raise cls(message or f"the server answered {response.status_code}")
