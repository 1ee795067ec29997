"""RSEs: storage elements, their attributes, protocols and space accounting."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lacus.core.clock import utcnow
from lacus.db.tables import rse_attributes, rse_protocols, rses
from lacus.errors import AlreadyExists, InvalidInput, NotFound, RSEAlreadyExists, RSENotFound
from lacus.naming import validate_rse
from lacus.types import MAX_INT64, ProtocolInfo, RSEInfo, RSEType

_ATTRIBUTE_KEY_MAX = 100
_ATTRIBUTE_VALUE_MAX = 255

CHANGED = "lacus.rses_changed"
"""Set in a connection's ``info`` by a change of RSE configuration: whoever keeps RSE
configurations in memory (``lacus.service.rse_configs``) forgets them when it ends."""


def _changed(conn: Connection) -> None:
    conn.info[CHANGED] = True


def add_rse(
    conn: Connection,
    rse: str,
    *,
    rse_type: RSEType = RSEType.DISK,
    deterministic: bool = True,
    total_bytes: int | None = None,
    attributes: dict[str, str] | None = None,
    read_only: bool = False,
) -> int:
    """Create an RSE and return its id (``read_only``: an archive Lacus never writes to)."""
    validate_rse(rse)
    _changed(conn)
    if total_bytes is not None and total_bytes < 0:
        raise InvalidInput("total_bytes must not be negative")
    try:
        with conn.begin_nested():
            rse_id = conn.execute(
                insert(rses)
                .values(
                    rse=rse,
                    rse_type=rse_type.value,
                    deterministic=deterministic,
                    availability_read=True,
                    availability_write=True,
                    availability_delete=True,
                    read_only=read_only,
                    total_bytes=total_bytes,
                    used_bytes=0,
                    files=0,
                    created_at=utcnow(),
                )
                .returning(rses.c.id)
            ).scalar_one()
    except IntegrityError:
        raise RSEAlreadyExists(f"RSE {rse!r} exists already") from None
    for key, value in (attributes or {}).items():
        set_attribute(conn, rse_id, key, value)
    return int(rse_id)


def find_rse_id(conn: Connection, rse: str) -> int | None:
    return conn.execute(select(rses.c.id).where(rses.c.rse == rse)).scalar_one_or_none()


def get_rse_id(conn: Connection, rse: str) -> int:
    rse_id = find_rse_id(conn, rse)
    if rse_id is None:
        raise RSENotFound(f"RSE {rse!r} does not exist")
    return rse_id


def get_rse(conn: Connection, rse: str) -> RSEInfo:
    found = list_rses(conn, names=[rse])
    if not found:
        raise RSENotFound(f"RSE {rse!r} does not exist")
    return found[0]


def list_rses(conn: Connection, *, names: list[str] | None = None) -> list[RSEInfo]:
    """RSEs (all, or those named) with their attributes and protocols, in name order."""
    query = select(rses).order_by(rses.c.rse)
    if names is not None:
        query = query.where(rses.c.rse.in_(names))
    rows = conn.execute(query).all()
    ids = [row.id for row in rows]
    attributes: dict[int, dict[str, str]] = defaultdict(dict)
    for attr in conn.execute(select(rse_attributes).where(rse_attributes.c.rse_id.in_(ids))):
        attributes[attr.rse_id][attr.key] = attr.value
    protocols: dict[int, list[ProtocolInfo]] = defaultdict(list)
    protocol_rows = conn.execute(
        select(rse_protocols)
        .where(rse_protocols.c.rse_id.in_(ids))
        .order_by(rse_protocols.c.scheme, rse_protocols.c.hostname, rse_protocols.c.port)
    )
    for proto in protocol_rows:
        protocols[proto.rse_id].append(_protocol_info(proto))
    return [
        RSEInfo(
            rse=row.rse,
            id=row.id,
            rse_type=row.rse_type,
            deterministic=bool(row.deterministic),
            availability_read=bool(row.availability_read),
            availability_write=bool(row.availability_write),
            availability_delete=bool(row.availability_delete),
            read_only=bool(row.read_only),
            total_bytes=row.total_bytes,
            used_bytes=row.used_bytes,
            files=row.files,
            attributes=dict(attributes[row.id]),
            protocols=protocols[row.id],
            created_at=row.created_at,
        )
        for row in rows
    ]


def _protocol_info(row: Any) -> ProtocolInfo:
    info = ProtocolInfo(
        scheme=row.scheme, hostname=row.hostname, port=row.port, prefix=row.prefix, impl=row.impl
    )
    if row.extended_attributes:
        info["extended_attributes"] = row.extended_attributes
    return info


def set_attribute(conn: Connection, rse_id: int, key: str, value: str) -> None:
    key, value = str(key), str(value)
    if (
        not key
        or len(key) > _ATTRIBUTE_KEY_MAX
        or not key.replace("_", "").replace("-", "").isalnum()
    ):
        raise InvalidInput(
            f"invalid RSE attribute key {key[:60]!r}: use 1-100 letters, digits, '_' and '-'"
        )
    if len(value) > _ATTRIBUTE_VALUE_MAX or "\x00" in value:
        raise InvalidInput(f"invalid value for RSE attribute {key!r}: at most 255 characters")
    _changed(conn)
    conn.execute(
        delete(rse_attributes).where(rse_attributes.c.rse_id == rse_id, rse_attributes.c.key == key)
    )
    conn.execute(insert(rse_attributes).values(rse_id=rse_id, key=key, value=value))


def delete_attribute(conn: Connection, rse_id: int, key: str) -> None:
    _changed(conn)
    result = conn.execute(
        delete(rse_attributes).where(rse_attributes.c.rse_id == rse_id, rse_attributes.c.key == key)
    )
    if result.rowcount == 0:
        raise NotFound(f"the RSE has no attribute {key!r}")


def add_protocol(conn: Connection, rse_id: int, protocol: ProtocolInfo) -> None:
    if not protocol["scheme"] or not protocol["scheme"].isalnum():
        raise InvalidInput(f"invalid protocol scheme {protocol['scheme']!r}")
    _changed(conn)
    try:
        with conn.begin_nested():
            conn.execute(insert(rse_protocols).values(rse_id=rse_id, **protocol))
    except IntegrityError:
        raise AlreadyExists(
            f"the RSE has a {protocol['scheme']!r} protocol on "
            f"{protocol['hostname']}:{protocol['port']} already"
        ) from None


def update_rse(
    conn: Connection,
    rse_id: int,
    *,
    total_bytes: int | None = None,
    availability_read: bool | None = None,
    availability_write: bool | None = None,
    availability_delete: bool | None = None,
    read_only: bool | None = None,
) -> None:
    values: dict[str, Any] = {
        key: value
        for key, value in {
            "total_bytes": total_bytes,
            "availability_read": availability_read,
            "availability_write": availability_write,
            "availability_delete": availability_delete,
            "read_only": read_only,
        }.items()
        if value is not None
    }
    if total_bytes is not None and total_bytes < 0:
        raise InvalidInput("total_bytes must not be negative")
    if values:
        _changed(conn)
        conn.execute(update(rses).where(rses.c.id == rse_id).values(**values))


def adjust_usage(conn: Connection, rse_id: int, *, bytes_delta: int, files_delta: int) -> None:
    """Add to the RSE's used space and file count (negative deltas subtract).

    Both are signed 64-bit counters that never overflow nor go negative: a change that would
    is refused (InvalidInput), never clamped (SQLite would silently make an overflow a REAL)."""
    for what, delta in (("bytes", bytes_delta), ("files", files_delta)):
        if abs(delta) > MAX_INT64:
            raise InvalidInput(f"{delta} {what} at once: more than a 64-bit counter holds")
    query = update(rses).where(rses.c.id == rse_id)
    for column, delta in ((rses.c.used_bytes, bytes_delta), (rses.c.files, files_delta)):
        if delta > 0:
            query = query.where(column <= MAX_INT64 - delta)
        elif delta < 0:
            query = query.where(column >= -delta)
    result = conn.execute(
        query.values(used_bytes=rses.c.used_bytes + bytes_delta, files=rses.c.files + files_delta)
    )
    if result.rowcount == 0:
        if conn.execute(select(rses.c.id).where(rses.c.id == rse_id)).first() is None:
            raise RSENotFound(f"no RSE with id {rse_id}")
        raise InvalidInput(
            f"the RSE's used space or file count would leave 0..{MAX_INT64} "
            f"({bytes_delta:+} bytes, {files_delta:+} files)"
        )


def rse_attribute_map(conn: Connection) -> dict[str, dict[str, str]]:
    """RSE name → attributes, with the implicit ``rse`` and ``rse_type``: what expressions see."""
    result: dict[str, dict[str, str]] = {}
    id_to_name: dict[int, str] = {}
    for row in conn.execute(select(rses.c.id, rses.c.rse, rses.c.rse_type)):
        result[row.rse] = {"rse": row.rse, "rse_type": row.rse_type}
        id_to_name[row.id] = row.rse
    for attr in conn.execute(select(rse_attributes)):
        name = id_to_name.get(attr.rse_id)
        if name is not None:
            result[name].setdefault(attr.key, attr.value)
    return result
