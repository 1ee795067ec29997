"""The REST server: FastAPI routes per noun, one error handler, token authentication."""

from lacus.server.app import create_app

__all__ = ["create_app"]
