"""The JSON answers of the most used routes, for the OpenAPI document (``response_model``).

Routes build their answers themselves (orjson, Rucio's shapes); these models only describe them,
so that clients and the schema tests (tests/test_schemathesis.py) can check what is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Ping(BaseModel):
    version: str
    server: str


class Account(BaseModel):
    account: str
    account_type: str
    status: str
    email: str | None
    admin: bool
    created_at: datetime


class TokenValidation(BaseModel):
    account: str
    lifetime: datetime
    seconds_left: int


class DID(BaseModel):
    """A DID with Lacus's keys and Rucio's (``did_type``, ``is_open``, ...)."""

    scope: str
    name: str
    type: Literal["file", "dataset", "container"]
    account: str
    open: bool | None
    bytes: int | None
    length: int | None
    adler32: str | None
    md5: str | None
    created_at: datetime
    updated_at: datetime
    did_type: Literal["FILE", "DATASET", "CONTAINER"]
    is_open: bool | None
    monotonic: bool
    availability: str
    expired_at: datetime | None


class TransferLink(BaseModel):
    """One cell of the transfer success matrix: the attempts from ``source`` to
    ``destination`` (``source`` null: no source was found)."""

    source: str | None
    destination: str | None
    done: int
    failed: int
    success_pct: float
    bytes: int
    mean_seconds: float | None


class TransferMatrix(BaseModel):
    cells: list[TransferLink]
    rses: list[str]
