"""RSE use cases: anyone may look, admins change."""

from __future__ import annotations

from lacus.core import rses
from lacus.service.lake import Lake, Principal
from lacus.types import ProtocolInfo, RSEInfo, RSEType


def add_rse(
    lake: Lake,
    principal: Principal,
    rse: str,
    *,
    rse_type: RSEType = RSEType.DISK,
    deterministic: bool = True,
    total_bytes: int | None = None,
    attributes: dict[str, str] | None = None,
    protocols: list[ProtocolInfo] | None = None,
    read_only: bool = False,
) -> None:
    with lake.write() as conn:
        rse_id = rses.add_rse(
            conn,
            rse,
            rse_type=rse_type,
            deterministic=deterministic,
            total_bytes=total_bytes,
            attributes=attributes,
            read_only=read_only,
        )
        for protocol in protocols or []:
            rses.add_protocol(conn, rse_id, protocol)


def get_rse(lake: Lake, principal: Principal, rse: str) -> RSEInfo:
    with lake.read() as conn:
        return rses.get_rse(conn, rse)


def list_rses(lake: Lake, principal: Principal) -> list[RSEInfo]:
    with lake.read() as conn:
        return rses.list_rses(conn)


def set_attribute(lake: Lake, principal: Principal, rse: str, key: str, value: str) -> None:
    with lake.write() as conn:
        rses.set_attribute(conn, rses.get_rse_id(conn, rse), key, value)


def delete_attribute(lake: Lake, principal: Principal, rse: str, key: str) -> None:
    with lake.write() as conn:
        rses.delete_attribute(conn, rses.get_rse_id(conn, rse), key)


def add_protocol(lake: Lake, principal: Principal, rse: str, protocol: ProtocolInfo) -> None:
    with lake.write() as conn:
        rses.add_protocol(conn, rses.get_rse_id(conn, rse), protocol)


def update_rse(
    lake: Lake,
    principal: Principal,
    rse: str,
    *,
    total_bytes: int | None = None,
    availability_read: bool | None = None,
    availability_write: bool | None = None,
    availability_delete: bool | None = None,
    read_only: bool | None = None,
) -> None:
    with lake.write() as conn:
        rses.update_rse(
            conn,
            rses.get_rse_id(conn, rse),
            total_bytes=total_bytes,
            availability_read=availability_read,
            availability_write=availability_write,
            availability_delete=availability_delete,
            read_only=read_only,
        )
