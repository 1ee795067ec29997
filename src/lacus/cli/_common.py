"""Shared CLI plumbing: building the client, parsing ``key=value`` arguments."""

from __future__ import annotations

from typing import Annotated

import typer

from lacus.client import Client
from lacus.errors import InvalidInput
from lacus.types import MetaValue

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def client() -> Client:
    return Client()


def parse_value(text: str) -> MetaValue:
    """``123`` → int, ``1.5`` → float, ``true``/``false`` → bool, ``null`` → None, else str."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_pairs(pairs: list[str], *, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"invalid {what} {pair!r}: expected key=value")
        result[key.strip()] = value.strip()
    return result
