"""Settings of a lake, from ``DIR/lake.json``; ``LACUS_DATABASE_URL`` overrides the database."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from pydantic import BaseModel, Field

from lacus.errors import InvalidInput, NotFound

CONFIG_NAME = "lake.json"


class Settings(BaseModel):
    """Everything a server or daemon of one lake needs to know."""

    lake_dir: Path
    database_url: str
    token_lifetime: int = Field(default=3600, description="seconds a token stays valid")
    token_cache_seconds: float = Field(
        default=30.0, description="seconds a validated token is cached"
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="largest request body")
    page_size: int = Field(default=1000, description="rows per page of streamed listings")


def default_database_url(lake_dir: Path) -> str:
    return f"sqlite:///{(lake_dir / 'catalog.db').resolve()}"


def load_settings(lake_dir: str | Path) -> Settings:
    """Settings of the lake in ``lake_dir``; ``LACUS_DATABASE_URL`` overrides its database."""
    lake_dir = Path(lake_dir).resolve()
    config_file = lake_dir / CONFIG_NAME
    if not config_file.is_file():
        raise NotFound(f"no lake in {lake_dir}: run 'lacus init {lake_dir}' first")
    try:
        config = orjson.loads(config_file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{config_file} is not valid JSON: {exc}") from None
    config["lake_dir"] = lake_dir
    env_url = os.environ.get("LACUS_DATABASE_URL")
    if env_url:
        config["database_url"] = env_url
    return Settings.model_validate(config)


def write_settings(settings: Settings) -> None:
    data = settings.model_dump(mode="json", exclude={"lake_dir"})
    path = settings.lake_dir / CONFIG_NAME
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    path.chmod(0o600)
