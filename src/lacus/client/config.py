"""Where the client finds its server and credentials: arguments, then ``LACUS_*``, then the config
file written by ``lacus login`` (``$LACUS_CONFIG``, default ``~/.config/lacus/client.json``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lacus.errors import InvalidInput

DEFAULT_URL = "http://127.0.0.1:8080"


def config_path() -> Path:
    explicit = os.environ.get("LACUS_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lacus" / "client.json"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    url: str = DEFAULT_URL
    account: str | None = None
    password: str | None = None
    token: str | None = None
    upload_rate: float | None = None
    """The slowest upload speed to count on, in MiB/s (``LACUS_UPLOAD_RATE``): a client with a
    token and no password then refuses, before writing a byte, an upload its token cannot
    outlast. Without it the speed is measured in the first seconds of the upload."""


def load_config(
    url: str | None = None,
    account: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> ClientConfig:
    saved: dict[str, Any] = {}
    path = config_path()
    if path.is_file():
        try:
            saved = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            raise InvalidInput(f"{path} is not valid JSON: run 'lacus login' again") from None
    env = os.environ
    return ClientConfig(
        url=(url or env.get("LACUS_URL") or saved.get("url") or DEFAULT_URL).rstrip("/"),
        account=account or env.get("LACUS_ACCOUNT") or saved.get("account"),
        password=password or env.get("LACUS_PASSWORD") or saved.get("password"),
        token=token or env.get("LACUS_TOKEN") or saved.get("token"),
        upload_rate=_rate(env.get("LACUS_UPLOAD_RATE") or saved.get("upload_rate")),
    )


def _rate(value: object) -> float | None:
    """An upload rate in MiB/s (a positive number), or None when not set."""
    if value in (None, ""):
        return None
    try:
        rate = float(str(value))
    except ValueError:
        rate = 0.0
    if not rate > 0 or rate == float("inf"):
        raise InvalidInput(
            f"the upload rate {str(value)[:40]!r} is not a positive number of MiB/s "
            "(LACUS_UPLOAD_RATE, or 'upload_rate' in the config file)"
        )
    return rate


def save_config(config: ClientConfig) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "url": config.url,
        "account": config.account,
        "password": config.password,
        "token": config.token,
        "upload_rate": config.upload_rate,
    }
    temp = path.with_suffix(".tmp")
    temp.write_bytes(orjson.dumps({k: v for k, v in data.items() if v}, option=orjson.OPT_INDENT_2))
    temp.chmod(0o600)
    temp.replace(path)
    return path
