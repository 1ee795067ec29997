"""Wire models: the JSON bodies the REST API accepts (shared by server and client)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lacus.types import MAX_INT64, MetaValue

Scope = Annotated[str, Field(min_length=1, max_length=25)]
Name = Annotated[str, Field(min_length=1, max_length=250)]
Bytes = Annotated[int, Field(ge=0, le=MAX_INT64)]
"""A size in bytes: the catalog stores signed 64-bit integers."""
MAX_LIFETIME = 100 * 366 * 24 * 3600
Lifetime = Annotated[int, Field(gt=0, le=MAX_LIFETIME)]
"""Seconds a rule lives: at most a century (an expiry date must stay a date)."""
STATE_PATTERN = "^(A|C|U|B|D|AVAILABLE|COPYING|UNAVAILABLE|BAD|BEING_DELETED|available|copying|unavailable|bad|being_deleted)$"  # noqa: E501


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _storable_strings(cls, data: Any) -> Any:
        _check_storable(data)
        return data


def _check_storable(data: Any) -> None:
    """Raise ValueError if a string (or key) anywhere in ``data`` holds a NUL character or a lone
    surrogate: neither can be stored (PostgreSQL refuses NUL, no driver encodes surrogates)."""
    pending: list[Any] = [data]
    while pending:  # a loop, not recursion: JSON may nest as deep as the parser allows
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("a string contains a NUL character")
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    raise ValueError("a string is not valid Unicode (lone surrogate)") from None
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


class DIDRef(Body):
    scope: Scope
    name: Name


class AccountBody(Body):
    type: str = "user"
    email: str | None = Field(default=None, max_length=255)
    admin: bool = False
    password: str | None = Field(default=None, min_length=8, max_length=256)


class RSEBody(Body):
    rse_type: str = Field(default="disk", pattern="^(disk|tape|DISK|TAPE)$")
    deterministic: bool = True
    total_bytes: Bytes | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    read_only: bool = False


class RSEUpdateBody(Body):
    total_bytes: Bytes | None = None
    availability_read: bool | None = None
    availability_write: bool | None = None
    availability_delete: bool | None = None
    read_only: bool | None = None


class DistanceBody(Body):
    """A link between RSEs (Rucio sends ``distance``, once ``ranking``, and ``bidirectional``).

    On ``PUT`` only the fields sent change; ``max_active: null`` removes the link's limit."""

    distance: int | None = Field(default=None, ge=0, le=1_000_000)
    ranking: int | None = Field(default=None, ge=0, le=1_000_000)
    max_active: int | None = Field(default=None, ge=1, le=1_000_000)
    bidirectional: bool = False


class AttributeBody(Body):
    value: str | int | float | bool


class ProtocolBody(Body):
    hostname: str = Field(default="", max_length=255)
    port: int = Field(default=0, ge=0, le=65535)
    prefix: str = Field(min_length=1, max_length=1024)
    impl: str = Field(default="", max_length=255)
    extended_attributes: dict[str, Any] | None = None


class CollectionRuleBody(Body):
    account: str | None = Field(default=None, max_length=25)
    copies: int = Field(default=1, ge=1, le=100)
    rse_expression: str = Field(min_length=1, max_length=1000)
    grouping: str | None = Field(default=None, pattern="^(ALL|DATASET|NONE|all|dataset|none)$")
    lifetime: Lifetime | None = None


class CollectionBody(Body):
    type: str = Field(pattern="^(dataset|container|DATASET|CONTAINER)$")
    meta: dict[str, MetaValue] | None = None
    rules: list[CollectionRuleBody] | None = Field(default=None, max_length=100)
    dids: list[DIDRef] | None = Field(default=None, max_length=100_000)


class AttachBody(Body):
    dids: list[DIDRef] = Field(max_length=100_000)
    ignore_duplicate: bool = False


class NewCollectionBody(CollectionBody):
    """One item of ``POST /dids`` (Rucio's ``add_dids``)."""

    scope: Scope
    name: Name


class AttachmentBody(Body):
    """One item of ``POST /dids/attachments``: the children of one collection."""

    scope: Scope
    name: Name
    dids: list[DIDRef] = Field(max_length=100_000)


class AttachmentsBody(Body):
    """``POST /dids/attachments`` (Rucio's ``attach_dids_to_dids``)."""

    attachments: list[AttachmentBody] = Field(min_length=1, max_length=1000)
    ignore_duplicate: bool = False


class DIDListBody(Body):
    """A list of DIDs (``POST /dids/bulkmeta``, ``POST /replicas/datasets_bulk``)."""

    dids: list[DIDRef] = Field(min_length=1, max_length=1000)
    inherit: bool = False
    plugin: str = Field(default="DID_COLUMN", max_length=20)


class StatusBody(Body):
    open: bool


class MetaBody(Body):
    value: MetaValue


class MetaBulkBody(Body):
    meta: dict[str, MetaValue]


class FileBody(Body):
    scope: Scope
    name: Name
    bytes: Bytes
    adler32: str = Field(pattern="^[0-9a-f]{8}$")
    md5: str | None = Field(default=None, pattern="^[0-9a-f]{32}$")
    path: str | None = Field(default=None, max_length=1024)
    pfn: str | None = Field(default=None, max_length=2048)
    meta: dict[str, MetaValue] = Field(default_factory=dict)
    state: str | None = Field(default=None, pattern=STATE_PATTERN)


class ReplicasBody(Body):
    rse: str = Field(min_length=1, max_length=100)
    files: list[FileBody] = Field(max_length=100_000)
    dataset: DIDRef | None = None
    ignore_availability: bool = False


class ReplicaStateBody(Body):
    scope: Scope
    name: Name
    state: str = Field(pattern=STATE_PATTERN)


class ReplicaStatesBody(Body):
    rse: str = Field(min_length=1, max_length=100)
    files: list[ReplicaStateBody] = Field(min_length=1, max_length=100_000)


class ReplicaListBody(Body):
    dids: list[DIDRef] = Field(min_length=1, max_length=10_000)
    rse: str | None = Field(default=None, max_length=100)
    rse_expression: str | None = Field(default=None, max_length=1000)
    all_states: bool = False
    resolve_parents: bool = False


class RuleBody(Body):
    """Rucio's rule body; Lacus also takes ``policy`` (a lifecycle policy's name) instead of
    ``rse_expression``: the policy's first step becomes the rule."""

    dids: list[DIDRef] = Field(min_length=1, max_length=10_000)
    copies: int = Field(default=1, ge=1, le=100)
    rse_expression: str | None = Field(default=None, min_length=1, max_length=1000)
    policy: str | None = Field(default=None, min_length=1, max_length=100)
    grouping: str | None = Field(default=None, pattern="^(ALL|DATASET|NONE|all|dataset|none)$")
    weight: str | None = Field(default=None, max_length=100)
    lifetime: Lifetime | None = None
    account: str | None = Field(default=None, max_length=25)
    locked: bool = False
    source_replica_expression: str | None = Field(default=None, max_length=1000)
    activity: str | None = Field(default=None, max_length=50)
    notify: str | None = Field(default=None, pattern="^(N|Y|C|P|NO|YES|CLOSE|PROGRESS)$")
    purge_replicas: bool = False
    delete_source: bool = False
    ignore_availability: bool = False
    ignore_account_limit: bool = False
    comment: str | None = Field(default=None, max_length=255)
    priority: int = Field(default=3, ge=0, le=5)
    ask_approval: bool = False


class RuleDeleteBody(Body):
    purge_replicas: bool | None = None


class RuleUpdateBody(Body):
    """``PUT /rules/{id}``: Rucio's option names (checked one by one by the route)."""

    options: dict[str, Any]


class RuleMoveBody(Body):
    """``POST /rules/{id}/move`` (Rucio's body; its ``rule_id`` repeats the path's)."""

    rse_expression: str = Field(min_length=1, max_length=1000)
    override: dict[str, Any] | None = None
    rule_id: str | None = None


class RuleReduceBody(Body):
    """``POST /rules/{id}/reduce`` (Rucio's body)."""

    copies: int = Field(ge=1, le=100)
    exclude_expression: str | None = Field(default=None, min_length=1, max_length=1000)


class SubscriptionBody(Body):
    """``POST``/``PUT /subscriptions/{account}/{name}``: Rucio's options (checked by the route)."""

    options: dict[str, Any]


class LimitBody(Body):
    """An account limit in bytes; -1 means no limit (Rucio's infinity)."""

    bytes: int = Field(ge=-1, le=MAX_INT64)


class PolicyStepBody(Body):
    """One step of a lifecycle policy: ``copies`` on ``rse_expression`` (or ``qos=CLASS``) for
    ``lifetime`` seconds (only the last step may keep its copies forever)."""

    model_config = ConfigDict(extra="forbid")

    copies: int = Field(default=1, ge=1, le=100)
    rse_expression: str | None = Field(default=None, min_length=1, max_length=1000)
    qos: str | None = Field(default=None, min_length=1, max_length=100)
    lifetime: Lifetime | None = None
    grouping: str | None = Field(default=None, pattern="^(ALL|DATASET|NONE|all|dataset|none)$")
    purge_replicas: bool = False


class PolicyBody(Body):
    name: str = Field(min_length=1, max_length=100)
    steps: list[PolicyStepBody] = Field(min_length=1, max_length=100)
    comment: str | None = Field(default=None, max_length=255)


class EmbargoBody(Body):
    embargoed: bool = True
    release_at: datetime | None = None


# -- integrity: declaring replicas in doubt, quarantine ------------------------------------------
MAX_DECLARED = 10_000
"""Replicas one declaration names at most (Rucio's clients send 1,000 or 10,000 per request)."""
PFN = Annotated[str, Field(min_length=1, max_length=4096)]
Reason = Annotated[str, Field(max_length=10_000)]
"""Why (kept to its first 255 characters, as Rucio does)."""


class ReplicaRef(Body):
    """A replica: a file on an RSE, named by ``rse`` or (Rucio) ``rse_id``."""

    scope: Scope
    name: Name
    rse: str | None = Field(default=None, min_length=1, max_length=100)
    rse_id: str | int | None = None


class BadReplicasBody(Body):
    """``POST /replicas/bad`` (Rucio's ``declare_bad_file_replicas``): PFNs, or replicas as
    dicts; ``pfns`` is the older clients' name; ``force`` changes nothing in Lacus."""

    replicas: list[PFN | ReplicaRef] = Field(default_factory=list, max_length=MAX_DECLARED)
    pfns: list[PFN] = Field(default_factory=list, max_length=MAX_DECLARED)
    reason: Reason | None = None
    force: bool = False


class SuspiciousBody(Body):
    """``POST /replicas/suspicious`` (Rucio's ``declare_suspicious_file_replicas``): PFNs;
    Lacus also takes ``replicas`` as dicts (scope, name, rse)."""

    pfns: list[PFN] = Field(default_factory=list, max_length=MAX_DECLARED)
    replicas: list[ReplicaRef] = Field(default_factory=list, max_length=MAX_DECLARED)
    reason: Reason | None = None


class BadPFNsBody(Body):
    """``POST /replicas/bad/pfns`` (Rucio's ``add_bad_pfns``): ``state`` BAD, SUSPICIOUS or
    TEMPORARY_UNAVAILABLE (until ``expires_at``)."""

    pfns: list[PFN] = Field(max_length=MAX_DECLARED)
    reason: Reason | None = None
    state: str = Field(default="BAD", max_length=30)
    expires_at: datetime | None = None


class BadDIDsBody(Body):
    """``POST /replicas/bad/dids`` (Rucio's ``declare_bad_did_replicas``): files on ``rse``."""

    dids: list[DIDRef] = Field(max_length=MAX_DECLARED)
    rse: str = Field(min_length=1, max_length=100)
    reason: Reason | None = None


class QuarantinedPath(Body):
    path: str = Field(min_length=1, max_length=1024)
    scope: str | None = Field(default=None, max_length=25)
    name: str | None = Field(default=None, max_length=250)


class QuarantineBody(Body):
    """``POST /replicas/quarantine`` (Rucio's ``quarantine_replicas``): files on the RSE
    (``rse``, or its ``rse_id``) that the catalog does not know, by path below its prefix."""

    replicas: list[QuarantinedPath] = Field(default_factory=list, max_length=MAX_DECLARED)
    rse: str | None = Field(default=None, min_length=1, max_length=100)
    rse_id: str | int | None = None


class DeclarationBody(Body):
    """``POST /integrity/declarations``: replicas (scope, name, rse) or PFNs declared
    ``state``; an unavailable replica comes back by itself at ``expires_at``."""

    state: str = Field(pattern="^(suspicious|bad|unavailable)$")
    replicas: list[ReplicaRef] = Field(default_factory=list, max_length=MAX_DECLARED)
    pfns: list[PFN] = Field(default_factory=list, max_length=MAX_DECLARED)
    reason: Reason | None = None
    expires_at: datetime | None = None
