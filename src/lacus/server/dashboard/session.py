"""Logging in to the dashboard: a form that checks account and password with the same
user/password authentication as ``/auth/userpass`` and keeps the token it issues in an HttpOnly,
SameSite=Strict cookie (the browser's EventSource, which follows ``/events``, cannot send a
header); logging out revokes the token."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from lacus.errors import AccessDenied, InvalidInput, LacusError
from lacus.server.dashboard.render import PREFIX, PageRoute, render
from lacus.server.deps import TOKEN_COOKIE, LakeDep
from lacus.service.auth import login_userpass, logout

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)

MAX_FORM = 4096
"""Bytes of a login form at most."""


@router.get("/login")
def login_form(
    request: Request, next: Annotated[str, Query(max_length=2000)] = PREFIX
) -> HTMLResponse:
    return render(request, "login.html", {"next": safe_next(next), "account": "", "message": ""})


@router.post("/login")
async def login(request: Request, lake: LakeDep) -> Response:
    """Account and password (and a user name, when it is not the account's name) from the
    form: a token in the cookie and back to the page asked for, or the form again with why."""
    _same_origin(request)
    form = await _form(request)
    account = form.get("account", "").strip()
    username = form.get("username", "").strip() or account
    password = form.get("password", "")
    target = safe_next(form.get("next", PREFIX))
    if not account or not password:
        return _refused(request, account, target, InvalidInput("give an account and a password"))
    try:
        token, _expires_at = await run_in_threadpool(
            login_userpass, lake, account, username, password
        )
    except LacusError as exc:
        return _refused(request, account, target, exc)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=lake.settings.token_lifetime,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout_now(request: Request, lake: LakeDep) -> Response:
    """Revoke the cookie's token and forget the cookie."""
    _same_origin(request)
    token = request.cookies.get(TOKEN_COOKIE)
    if token:
        await run_in_threadpool(logout, lake, token)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def safe_next(target: str) -> str:
    """Where to go after logging in: a dashboard page of this server, nothing else (an open
    redirection would send a user who logged in to any site)."""
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not (parts.path == PREFIX or parts.path.startswith(PREFIX + "/"))
        or "\\" in target
        or any(ord(char) < 32 for char in target)
    ):
        return PREFIX
    return target


def _same_origin(request: Request) -> None:
    """A form posted from another site is refused (login CSRF): browsers send ``Origin``."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise AccessDenied(f"this form may only be posted from {host}, not from {origin[:100]}")


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise InvalidInput(f"the form is larger than {MAX_FORM} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:
        raise InvalidInput("the form has too many fields") from None
    return {key: values[0] for key, values in fields.items() if values}


def _refused(request: Request, account: str, target: str, error: LacusError) -> HTMLResponse:
    return render(
        request,
        "login.html",
        {"next": target, "account": account, "message": error.message},
        status_code=error.http_status if 400 <= error.http_status < 500 else 401,
    )
