"""HTML answers of the dashboard: the Jinja2 environment, the filters the templates use, error
pages, and the route class that turns every refusal into a page (or, unauthenticated, a
redirection to the login form) instead of the REST API's JSON."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from lacus.errors import InvalidInput, LacusError, Unauthenticated
from lacus.service.dashboard import EVENT_TYPES

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/dashboard"

SECURITY_HEADERS = {
    # Scripts, styles and connections from this server only; no inline script or style, no
    # framing: whatever a DID name or metadata value holds, it cannot run in the page.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def environment() -> Environment:
    """The templates of the dashboard, autoescaped, failing loudly on an undefined name."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        size=human_bytes,
        number=number,
        when=when,
        seconds=seconds,
        details=details,
        did_url=did_url,
    )
    env.globals.update(prefix=PREFIX, query=query, event_types=EVENT_TYPES)
    return env


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    env: Environment = request.app.state.dashboard
    page = env.get_template(template).render(
        {"request": request, "path": request.url.path, "principal": None, **context}
    )
    return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)


def error_page(request: Request, error: LacusError) -> HTMLResponse:
    status = error.http_status if 400 <= error.http_status < 500 else 500
    return render(
        request,
        "error.html",
        {"status": status, "error": type(error).__name__, "message": error.message},
        status_code=status,
    )


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/login?{urlencode({'next': here})}"


class PageRoute(APIRoute):
    """A dashboard route: refusals become HTML error pages with their 4xx status, a missing or
    expired login a redirection to the login form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                return RedirectResponse(login_url(request), status_code=303)
            except LacusError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                return error_page(request, _validation_error(exc))

        return page


def _validation_error(exc: RequestValidationError) -> InvalidInput:
    errors = exc.errors()
    if not errors:
        return InvalidInput("invalid request")
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "query") or "request"
    return InvalidInput(f"invalid {where}: {first.get('msg', 'invalid value')}")


# -- filters -------------------------------------------------------------------------------------

NOTHING = "\u2014"
"""What a missing value shows (an em dash)."""
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(value: int | float | None) -> str:
    """Bytes in decimal units, three significant digits: ``1.23 GB``."""
    if value is None:
        return NOTHING
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def number(value: int | float | None) -> str:
    """A count with thin-space thousands separators: ``1 234 567``."""
    if value is None:
        return NOTHING
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\u202f")
    return f"{int(value):,}".replace(",", "\u202f")


def when(value: datetime | None) -> str:
    """A catalog time (naive UTC) as ``2026-11-22 10:20:05Z``."""
    if value is None:
        return NOTHING
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def seconds(value: float | None) -> str:
    """A duration: ``350 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if value is None or math.isnan(value):
        return NOTHING
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.3g} s"
    if value < 3600:
        whole = int(value)
        return f"{whole // 60} min" + (f" {whole % 60} s" if whole % 60 else "")
    whole = int(value)
    return f"{whole // 3600} h" + (f" {whole % 3600 // 60} min" if whole % 3600 // 60 else "")


_PLAIN = frozenset({"id", "type", "scope", "name", "created_at"})


def details(payload: Mapping[str, Any], limit: int = 300) -> str:
    """An event's payload without what its row shows already, as compact JSON."""
    rest = {key: value for key, value in payload.items() if key not in _PLAIN}
    text = orjson.dumps(rest, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_url(scope: str, name: str) -> str:
    return f"{PREFIX}/dids/{quote(scope, safe='')}/{quote(name, safe='')}"


def query(path: str, **params: Any) -> str:
    """``path`` with the parameters that are not None, URL-encoded (lists repeat their key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value == "":
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, str(item)) for item in values)
    return f"{path}?{urlencode(pairs)}" if pairs else path
