"""Lacus: a policy-driven data lake for open science.

The public surface for Python users is the client: ``lacus.Client`` (catalog calls over REST,
verified uploads and downloads) and the error tree in ``lacus.errors``.
"""

from lacus._version import __version__
from lacus.client import Client
from lacus.errors import LacusError

__all__ = ["Client", "LacusError", "__version__"]
