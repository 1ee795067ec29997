"""Plain types shared by every layer: enums with readable values, shapes of catalog records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

MetaValue = str | int | float | bool | None
MAX_INT64 = 2**63 - 1
"""The largest integer the catalog stores (sizes, counters: signed 64-bit columns)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads the catalog: embargoed DIDs are visible only to their owners and admins."""

    account: str
    admin: bool = False


class DIDType(StrEnum):
    FILE = "file"
    DATASET = "dataset"
    CONTAINER = "container"


class ReplicaState(StrEnum):
    AVAILABLE = "available"
    COPYING = "copying"
    UNAVAILABLE = "unavailable"
    BAD = "bad"
    SUSPICIOUS = "suspicious"
    LOST = "lost"
    BEING_DELETED = "being_deleted"


class AccountType(StrEnum):
    USER = "user"
    SERVICE = "service"
    GROUP = "group"


class IdentityType(StrEnum):
    USERPASS = "userpass"
    OIDC = "oidc"


class RSEType(StrEnum):
    DISK = "disk"
    TAPE = "tape"


class AccountInfo(TypedDict):
    account: str
    account_type: str
    status: str
    email: str | None
    admin: bool
    created_at: datetime


class ScopeInfo(TypedDict):
    scope: str
    account: str
    created_at: datetime


class DIDInfo(TypedDict):
    scope: str
    name: str
    type: str
    account: str
    open: bool | None
    bytes: int | None
    length: int | None
    adler32: str | None
    md5: str | None
    created_at: datetime
    updated_at: datetime


class ProtocolInfo(TypedDict):
    scheme: str
    hostname: str
    port: int
    prefix: str
    impl: str
    extended_attributes: NotRequired[dict[str, Any] | None]
    """Options of the storage backend (``verify``, ``tpc``, credentials...)."""


class RSEInfo(TypedDict):
    rse: str
    id: int
    rse_type: str
    deterministic: bool
    availability_read: bool
    availability_write: bool
    availability_delete: bool
    read_only: bool
    """An external archive: Lacus reads it, never writes or deletes its files."""
    total_bytes: int | None
    used_bytes: int
    files: int
    attributes: dict[str, str]
    protocols: list[ProtocolInfo]
    created_at: datetime


class FileSpec(TypedDict):
    """One file to register: its DID, size and checksums, and optionally its path on the RSE."""

    scope: str
    name: str
    bytes: int
    adler32: str
    md5: NotRequired[str | None]
    path: NotRequired[str | None]
    pfn: NotRequired[str | None]
    """Rucio's way to give the path: the file's URL under one of the RSE's protocols."""
    meta: NotRequired[dict[str, MetaValue]]


class ReplicaInfo(TypedDict):
    scope: str
    name: str
    bytes: int
    adler32: str | None
    md5: str | None
    rses: dict[str, ReplicaLocation]
    parents: NotRequired[list[str]]


class ReplicaLocation(TypedDict):
    state: str
    path: str
    pfn: str
    created_at: datetime
    accessed_at: datetime | None


class RuleState(StrEnum):
    REPLICATING = "replicating"
    OK = "ok"
    STUCK = "stuck"
    SUSPENDED = "suspended"
    WAITING_APPROVAL = "waiting_approval"


HELD_STATES = frozenset({RuleState.SUSPENDED, RuleState.WAITING_APPROVAL})
"""Rules the evaluator leaves alone: suspended by their owner, or asking an admin's approval."""


class LockState(StrEnum):
    OK = "ok"
    REPLICATING = "replicating"
    STUCK = "stuck"


class RequestState(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    FAILED = "failed"


class RuleGrouping(StrEnum):
    ALL = "all"
    DATASET = "dataset"
    NONE = "none"


class RuleNotification(StrEnum):
    NO = "no"
    YES = "yes"
    CLOSE = "close"
    PROGRESS = "progress"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule asks for: keep ``copies`` of a DID on RSEs matching ``rse_expression``."""

    scope: str
    name: str
    rse_expression: str
    copies: int = 1
    grouping: RuleGrouping = RuleGrouping.DATASET
    lifetime: int | None = None
    weight: str | None = None
    locked: bool = False
    purge_replicas: bool = False
    delete_source: bool = False
    """Once the rule is ok, delete the file's other replicas (on ``source_replica_expression``)."""
    source_replica_expression: str | None = None
    activity: str | None = None
    priority: int = 3
    notification: RuleNotification = RuleNotification.NO
    comment: str | None = None
    ignore_availability: bool = False
    ignore_account_limit: bool = False
    subscription_id: str | None = None
    ask_approval: bool = False
    """Wait (``waiting_approval``, nothing placed) until an admin approves the rule."""
