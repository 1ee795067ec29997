"""Response helpers: orjson bodies, newline-delimited JSON streams, Rucio-style error bodies."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Any, TypeVar

import orjson
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from lacus.errors import LacusError

NDJSON = "application/x-json-stream"
T = TypeVar("T")


class ErrorBody(BaseModel):
    """The body of every error answer; the same class and message are in its headers."""

    ExceptionClass: str
    ExceptionMessage: str
    error: str


_ERROR_HEADERS = {
    "ExceptionClass": {
        "description": "Rucio's exception class, which the rucio client raises",
        "required": True,
        "schema": {"type": "string"},
    },
    "ExceptionMessage": {
        "description": "What went wrong (ASCII, at most 2,000 characters)",
        "required": True,
        "schema": {"type": "string"},
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorBody,
        "description": "Refused: invalid input (400), not authenticated (401), not allowed "
        "(403), not found (404), conflict (409), body too large (413), checksum mismatch (422)",
        "headers": _ERROR_HEADERS,
    },
    "5XX": {
        "model": ErrorBody,
        "description": "The server or a storage failed",
        "headers": _ERROR_HEADERS,
    },
}
"""The error answers of every route, declared once for the OpenAPI document (``create_app``)."""


class NDJSONResponse(StreamingResponse):
    """A stream of JSON values, one per line; as ``response_class`` it documents a route's
    content type as ``application/x-json-stream``."""

    media_type = NDJSON


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


class ORJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(value: Any, status_code: int = 200) -> Response:
    return Response(dumps(value), status_code=status_code, media_type="application/json")


def created() -> Response:
    return PlainTextResponse(b"Created", status_code=201)


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """``items`` with the first one produced now, so errors such as an unknown DID surface
    before a response starts (as a proper 4xx instead of a broken stream)."""
    iterator = iter(items)
    try:
        first = next(iterator)
    except StopIteration:
        return iter(())
    return chain([first], iterator)


def stream(items: Iterable[Any]) -> Response:
    """Stream ``items`` as newline-delimited JSON (``application/x-json-stream``)."""
    return NDJSONResponse(_lines(prefetched(items)))


def _lines(items: Iterator[Any]) -> Iterator[bytes]:
    batch: list[bytes] = []
    for item in items:
        batch.append(dumps(item))
        if len(batch) >= 256:
            yield b"\n".join(batch) + b"\n"
            batch = []
    if batch:
        yield b"\n".join(batch) + b"\n"


def error_response(error: LacusError) -> Response:
    # No lone surrogate (from a hostile body echoed in a message) may break the JSON encoder.
    message = error.message.replace("\n", " ").encode("utf-8", "replace").decode()
    body = {
        "ExceptionClass": error.rucio_class,
        "ExceptionMessage": message,
        "error": type(error).__name__,
    }
    headers = {
        "ExceptionClass": error.rucio_class,
        "ExceptionMessage": _header_value(message[:2000]),
        "X-Lacus-Error": type(error).__name__,
    }
    return Response(
        dumps(body), status_code=error.http_status, headers=headers, media_type="application/json"
    )


def _header_value(text: str) -> str:
    """``text`` as printable ASCII: a control character (from a hostile name echoed in a
    message) in a header would make the server drop the answer."""
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def isoformat(value: datetime) -> str:
    return value.isoformat() + "Z"


def utc_naive(value: datetime | None) -> datetime | None:
    """A datetime from the wire as the catalog stores it: naive UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
