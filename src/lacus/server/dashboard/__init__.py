"""The web dashboard served by ``lacus serve`` under ``/dashboard``: server-rendered HTML
(Jinja2 templates), inline SVG plots, a small script (no build step, nothing from a CDN) that
follows ``/events`` to update pages live. Same accounts and tokens as the REST API: the login
form keeps the token in an HttpOnly cookie. See docs/dashboard.md."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from lacus.server.dashboard import pages, session
from lacus.server.dashboard.render import PREFIX, environment

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages, login and static files from ``app``."""
    app.state.dashboard = environment()
    app.include_router(session.router)
    app.include_router(pages.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")


__all__ = ["install"]
