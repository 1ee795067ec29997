"""``lacus quota set|show``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_object, human_bytes, table
from lacus.errors import InvalidInput

app = typer.Typer(help="Quotas: the bytes an account may keep on RSEs.", no_args_is_help=True)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)", re.IGNORECASE)
_FACTORS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_BINARY = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def parse_size(text: str) -> int | None:
    """``1000``, ``10GB``, ``1.5TB``, ``512MiB``; ``inf``/``infinity``/``unlimited`` → None."""
    if text.strip().lower() in ("inf", "infinity", "unlimited"):
        return None
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"invalid size {text!r}: e.g. 1000, 10GB, 512MiB or infinity")
    unit = match[2].lower()
    prefix = unit[:1] if unit[:1] in _FACTORS and unit[:1] != "b" else ""
    factor = _BINARY[prefix] if unit.startswith(f"{prefix}i") and prefix else _FACTORS[prefix]
    return int(float(match[1]) * factor)


def _size(value: Any) -> str:
    return "unlimited" if value is None else human_bytes(value)


@app.command("set")
def set_(
    account: str,
    rse_expression: Annotated[
        str, typer.Argument(help="An RSE, or an RSE expression the quota covers as a whole.")
    ],
    size: Annotated[str, typer.Argument(help="Bytes: 1000, 10GB, 512MiB or infinity.")],
) -> None:
    """Set an account's quota on an RSE or RSE expression (admins only)."""
    limit = parse_size(size)
    with client() as lacus:
        lacus.set_quota(account, rse_expression, limit)
    console().print(f"Quota of {account} on {rse_expression}: {_size(limit)}", markup=False)


@app.command("show")
def show(
    account: Annotated[str | None, typer.Argument(help="Account (default: yours).")] = None,
    json: JsonOption = False,
) -> None:
    """Show an account's quotas, what it uses and what is left."""
    with client() as lacus:
        usage = lacus.quota_usage(account)
    if json:
        emit_object(usage)
        return
    formatters: dict[str, Callable[[Any], str]] = {
        "bytes": human_bytes,
        "bytes_limit": _size,
        "bytes_remaining": _size,
    }
    table(
        usage["rses"],
        [("rse", "RSE"), ("files", "files"), ("bytes", "used"), ("bytes_limit", "quota"),
         ("bytes_remaining", "left")],
        title="per RSE",
        formatters=formatters,
    )  # fmt: skip
    if usage["expressions"]:
        table(
            usage["expressions"],
            [("rse_expression", "RSE expression"), ("files", "files"), ("bytes", "used"),
             ("bytes_limit", "quota"), ("bytes_remaining", "left")],
            title="per RSE expression",
            formatters=formatters,
        )  # fmt: skip
