"""Free-form metadata on any DID: typed values, searchable as text and as numbers.

Every write goes through ``set_metadata_bulk``, which enforces the ``MetadataLimits`` (keys per
request, keys per DID counting those already there, key length, value size) before it writes
anything: a refused request leaves the catalog as it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, tuple_

from lacus.core.dids import DIDKey, chunks, get_did_row_type, names_by_scope
from lacus.db.tables import did_meta
from lacus.errors import InvalidInput
from lacus.types import MetaValue, Viewer

KEY_COLUMN_LENGTH = 100
"""The size of the catalog's key column: no limit may allow longer keys."""
_RESERVED = {"name", "type", "bytes", "length", "scope"}


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    """How much metadata one request and one DID may carry (the ``metadata_*`` settings)."""

    max_keys_per_did: int
    max_key_length: int
    max_value_bytes: int
    max_keys_per_request: int


def _check(key: str, value: Any, limits: MetadataLimits) -> None:
    if not isinstance(key, str) or not key or len(key) > limits.max_key_length:
        raise InvalidInput(
            f"invalid metadata key {str(key)[:60]!r}: 1-{limits.max_key_length} characters"
        )
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
    if isinstance(value, str) and (
        len(value.encode("utf-8", "surrogatepass")) > limits.max_value_bytes or "\x00" in value
    ):
        raise InvalidInput(
            f"metadata {key!r}: a value has at most {limits.max_value_bytes} bytes (UTF-8), no NUL"
        )
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


def set_metadata(
    conn: Connection,
    scope: str,
    name: str,
    items: Mapping[str, MetaValue],
    *,
    limits: MetadataLimits,
) -> None:
    get_did_row_type(conn, scope, name)
    set_metadata_bulk(conn, {(scope, name): items}, limits=limits)


def set_metadata_bulk(
    conn: Connection,
    items: Mapping[DIDKey, Mapping[str, MetaValue]],
    *,
    limits: MetadataLimits,
    new: bool = False,
) -> None:
    """Set (replace) metadata keys on many existing DIDs at once; ``new``: DIDs created in this
    transaction, which have no metadata to replace yet (no DELETE).

    InvalidInput, before anything is written, when a key or value is not valid or a limit is
    exceeded: more than ``max_keys_per_request`` keys in all, or a DID that would carry more than
    ``max_keys_per_did`` keys (those it has plus the new ones)."""
    total = sum(len(meta) for meta in items.values())
    if total > limits.max_keys_per_request:
        raise InvalidInput(
            f"{total} metadata keys in one request: at most {limits.max_keys_per_request}"
        )
    rows = []
    for (scope, name), meta in items.items():
        if len(meta) > limits.max_keys_per_did:
            raise InvalidInput(_too_many(scope, name, len(meta), limits))
        for key, value in meta.items():
            _check(key, value, limits)
            rows.append(_row(scope, name, key, value))
    if not rows:
        return
    if not new:
        _check_keys_per_did(conn, items, limits)
    keys = [] if new else [(row["scope"], row["name"], row["key"]) for row in rows]
    for part in chunks(keys):
        conn.execute(
            delete(did_meta).where(
                tuple_(did_meta.c.scope, did_meta.c.name, did_meta.c.key).in_(part)
            )
        )
    conn.execute(insert(did_meta), rows)


def _too_many(scope: str, name: str, count: int, limits: MetadataLimits) -> str:
    return (
        f"{scope}:{name} would carry {count} metadata keys: at most "
        f"{limits.max_keys_per_did} per DID"
    )


def _check_keys_per_did(
    conn: Connection, items: Mapping[DIDKey, Mapping[str, MetaValue]], limits: MetadataLimits
) -> None:
    """InvalidInput when a DID would carry more than ``max_keys_per_did`` keys once ``items``
    are set: counted set-based, the exact keys read only for DIDs near the limit."""
    wanted = [key for key, meta in items.items() if meta]
    for scope, names in names_by_scope(wanted):
        counts = conn.execute(
            select(did_meta.c.name, func.count())
            .where(did_meta.c.scope == scope, did_meta.c.name.in_(names))
            .group_by(did_meta.c.name)
        )
        for name, existing in counts:
            meta = items[(scope, name)]
            if existing + len(meta) <= limits.max_keys_per_did:
                continue
            present = conn.execute(
                select(did_meta.c.key).where(did_meta.c.scope == scope, did_meta.c.name == name)
            ).scalars()
            count = len(set(present) | set(meta))
            if count > limits.max_keys_per_did:
                raise InvalidInput(_too_many(scope, name, count, limits))


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
