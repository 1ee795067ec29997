"""Response helpers: orjson bodies, newline-delimited JSON streams, Rucio-style error bodies."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import Any, TypeVar

import orjson
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lacus.errors import LacusError

NDJSON = "application/x-json-stream"
T = TypeVar("T")


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
    return Response(b"Created", status_code=201, media_type="text/plain")


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
    return StreamingResponse(_lines(prefetched(items)), media_type=NDJSON)


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
    message = error.message.replace("\n", " ")
    body = {
        "ExceptionClass": error.rucio_class,
        "ExceptionMessage": message,
        "error": type(error).__name__,
    }
    headers = {
        "ExceptionClass": error.rucio_class,
        "ExceptionMessage": message.encode("ascii", "replace").decode("ascii")[:2000],
        "X-Lacus-Error": type(error).__name__,
    }
    return Response(
        dumps(body), status_code=error.http_status, headers=headers, media_type="application/json"
    )


def isoformat(value: datetime) -> str:
    return value.isoformat() + "Z"
