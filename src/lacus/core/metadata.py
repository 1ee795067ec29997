"""Free-form metadata on any DID: typed values, searchable as text and as numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, tuple_

from lacus.core.dids import DIDKey, chunks, get_did_row_type, names_by_scope
from lacus.db.tables import did_meta
from lacus.errors import InvalidInput
from lacus.types import MetaValue, Viewer

MAX_KEY = 100
MAX_VALUE = 4096
_RESERVED = {"name", "type", "bytes", "length", "scope"}


def _check(key: str, value: Any) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise InvalidInput(f"invalid metadata key {str(key)[:60]!r}: 1-100 characters")
    if (
        not (key[0].isalpha() or key[0] == "_")
        or not key.replace("_", "a").replace(".", "a").replace("-", "a").isalnum()
    ):
        raise InvalidInput(
            f"invalid metadata key {key[:60]!r}: letters, digits, '_', '.' and '-', "
            "starting with a letter or '_'"
        )
    if key in _RESERVED:
        raise InvalidInput(f"metadata key {key!r} is reserved for the DID's own columns")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInput(f"metadata {key!r}: values are strings, numbers, booleans or null")
    if isinstance(value, str) and (len(value) > MAX_VALUE or "\x00" in value):
        raise InvalidInput(f"metadata {key!r}: a value has at most {MAX_VALUE} characters, no NUL")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise InvalidInput(f"metadata {key!r}: integers must fit in 64-bit (signed)")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"metadata {key!r}: numbers must be finite")


def _row(scope: str, name: str, key: str, value: MetaValue) -> dict[str, Any]:
    if isinstance(value, bool):
        text, number = ("true" if value else "false"), None
    elif isinstance(value, int | float):
        text, number = repr(value), float(value)
    elif value is None:
        text, number = "", None
    else:
        text, number = value, None
    return {
        "scope": scope,
        "name": name,
        "key": key,
        "value_text": text,
        "value_num": number,
        "value_json": orjson.dumps(value).decode(),
    }


def set_metadata(conn: Connection, scope: str, name: str, items: Mapping[str, MetaValue]) -> None:
    get_did_row_type(conn, scope, name)
    set_metadata_bulk(conn, {(scope, name): items})


def set_metadata_bulk(
    conn: Connection, items: Mapping[DIDKey, Mapping[str, MetaValue]], *, new: bool = False
) -> None:
    """Set (replace) metadata keys on many existing DIDs at once; ``new``: DIDs created in this
    transaction, which have no metadata to replace yet (no DELETE)."""
    rows = []
    for (scope, name), meta in items.items():
        for key, value in meta.items():
            _check(key, value)
            rows.append(_row(scope, name, key, value))
    if not rows:
        return
    keys = [] if new else [(row["scope"], row["name"], row["key"]) for row in rows]
    for part in chunks(keys):
        conn.execute(
            delete(did_meta).where(
                tuple_(did_meta.c.scope, did_meta.c.name, did_meta.c.key).in_(part)
            )
        )
    conn.execute(insert(did_meta), rows)


def get_metadata(
    conn: Connection, scope: str, name: str, *, viewer: Viewer | None = None
) -> dict[str, MetaValue]:
    get_did_row_type(conn, scope, name, viewer=viewer)
    rows = conn.execute(
        select(did_meta.c.key, did_meta.c.value_json)
        .where(did_meta.c.scope == scope, did_meta.c.name == name)
        .order_by(did_meta.c.key)
    )
    return {row.key: orjson.loads(row.value_json) for row in rows}


def get_metadata_many(
    conn: Connection, keys: Sequence[DIDKey]
) -> dict[DIDKey, dict[str, MetaValue]]:
    """The free-form metadata of DIDs (checked to exist by the caller), by key."""
    found: dict[DIDKey, dict[str, MetaValue]] = {}
    for scope, names in names_by_scope(keys):
        rows = conn.execute(
            select(did_meta.c.name, did_meta.c.key, did_meta.c.value_json)
            .where(did_meta.c.scope == scope, did_meta.c.name.in_(names))
            .order_by(did_meta.c.name, did_meta.c.key)
        )
        for row in rows:
            found.setdefault((scope, row.name), {})[row.key] = orjson.loads(row.value_json)
    return found


def delete_metadata(conn: Connection, scope: str, name: str, key: str) -> None:
    get_did_row_type(conn, scope, name)
    result = conn.execute(
        delete(did_meta).where(
            did_meta.c.scope == scope, did_meta.c.name == name, did_meta.c.key == key
        )
    )
    if result.rowcount == 0:
        raise InvalidInput(f"{scope}:{name} has no metadata key {key!r}")
