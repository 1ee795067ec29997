"""Settings of a lake, from ``DIR/lake.json``; ``LACUS_DATABASE_URL`` overrides the database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lacus.core.events import TYPES as EVENT_TYPES
from lacus.core.metadata import KEY_COLUMN_LENGTH, MetadataLimits
from lacus.errors import InvalidInput, NotFound

CONFIG_NAME = "lake.json"

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""The JWT algorithms an issuer may use: public-key signatures only (no ``none``, no ``HS*``)."""


class OIDCIssuer(BaseModel):
    """One trusted OpenID Connect issuer whose JWT bearer tokens authenticate accounts."""

    issuer: str = Field(min_length=1, description="the tokens' 'iss' value")
    jwks_url: str = Field(min_length=1, description="where the issuer publishes its keys (JWKS)")
    audience: str | list[str] = Field(description="a token's 'aud' must name one of these")
    account_claim: str = Field(
        default="preferred_username",
        description="the claim naming the account, used when no identity is mapped",
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="signature algorithms accepted"
    )
    jwks_cache_seconds: float = Field(default=300.0, ge=0, description="seconds keys are cached")
    jwks_min_refetch_seconds: float = Field(
        default=10.0,
        ge=0,
        description="least seconds between two fetches of the keys forced by unknown key ids "
        "or by a failed fetch",
    )
    leeway_seconds: int = Field(default=30, ge=0, description="clock skew allowed on exp/nbf/iat")
    group_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="WLCG group → account ({'/virgo': 'virgo_ops'}): a token naming the group "
        "in 'wlcg.groups' (the first mapped one, in the token's order) acts as the account, "
        "unless its identity is mapped to one",
    )
    admin_groups: list[str] = Field(
        default_factory=list,
        description="WLCG groups whose tokens are admins (['/lake/admins']); not for tokens with "
        "storage.* scopes, which the WLCG profile authorises by their scopes alone",
    )

    @field_validator("group_accounts", "admin_groups")
    @classmethod
    def _group_names(cls, value: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
        wrong = sorted(group for group in value if not group.startswith("/"))
        if wrong:
            raise ValueError(f"WLCG group names start with '/' (like /virgo), not {wrong[0]!r}")
        return value

    @field_validator("algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: list[str]) -> list[str]:
        unsafe = sorted(set(value) - ASYMMETRIC_ALGORITHMS)
        if unsafe or not value:
            raise ValueError(
                f"algorithms must be some of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
                + (f", not {', '.join(unsafe)}" if unsafe else "")
            )
        return value

    @property
    def audiences(self) -> list[str]:
        return [self.audience] if isinstance(self.audience, str) else list(self.audience)


class EventDestination(BaseModel):
    """A broker the event sender forwards events to (at least once, in id order)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="unique name: the key of its cursor in the catalog",
    )
    types: list[str] = Field(
        default_factory=list,
        description="event types forwarded ('rule.*' for every rule event); none: every type",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="events per publication")

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if not _matching_types(t)]
        if unknown:
            raise ValueError(
                f"unknown event type(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(EVENT_TYPES))} (or a family such as 'rule.*')"
            )
        return value

    def event_types(self) -> frozenset[str]:
        """The exact types forwarded (empty: every type)."""
        return frozenset(t for pattern in self.types for t in _matching_types(pattern))


def _matching_types(pattern: str) -> frozenset[str]:
    if pattern.endswith(".*"):
        return frozenset(t for t in EVENT_TYPES if t.startswith(pattern[:-1]))
    return frozenset({pattern}) & EVENT_TYPES


class StompDestination(EventDestination):
    """A STOMP broker (RabbitMQ with its STOMP plugin, ActiveMQ...): each event is one SEND with a
    receipt, counted delivered once the broker's RECEIPT arrives."""

    kind: Literal["stomp"]
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=61613, ge=1, le=65535)
    destination: str = Field(
        min_length=1, description="where to send, e.g. /topic/rucio.events or /queue/lacus"
    )
    username: str | None = None
    password: str | None = None
    vhost: str = Field(
        default="/",
        min_length=1,
        description="the CONNECT frame's host header (RabbitMQ: the virtual host)",
    )


class NatsDestination(EventDestination):
    """A NATS server with JetStream: each event is published on ``subject`` and counted delivered
    once JetStream's PubAck says it is stored."""

    kind: Literal["nats"]
    url: str = Field(
        default="nats://127.0.0.1:4222", pattern=r"^(nats|tls)://", description="the server"
    )
    subject: str = Field(pattern=r"^[^\s*>]+$", description="the subject events are published on")
    stream: str | None = Field(
        default=None,
        pattern=r"^[^\s.*>/\\]+$",
        description="the JetStream stream expected to store them; created (file storage, this "
        "subject) when missing",
    )
    username: str | None = None
    password: str | None = None
    token: str | None = None


EventDestinationSettings = Annotated[
    StompDestination | NatsDestination, Field(discriminator="kind")
]


class Settings(BaseModel):
    """Everything a server or daemon of one lake needs to know."""

    lake_dir: Path
    database_url: str
    token_lifetime: int = Field(default=3600, description="seconds a token stays valid")
    token_cache_seconds: float = Field(
        default=5.0,
        description="seconds a validated token is cached: how long another server process may "
        "still accept a revoked token (this one refuses it at once)",
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="largest request body")
    metrics_public: bool = Field(
        default=True,
        description="serve /metrics without a token (Prometheus scrapers); false: a token is "
        "needed",
    )
    page_size: int = Field(default=1000, description="rows per page of streamed listings")
    oidc_issuers: list[OIDCIssuer] = Field(
        default_factory=list, description="OpenID Connect issuers whose JWTs are accepted"
    )
    embedded_daemons: bool = Field(default=True, description="run the daemons inside 'lacus serve'")
    claim_lease_seconds: float = Field(
        default=120.0, description="seconds a daemon's claim on queued work lasts"
    )
    embedded_daemons_skipped: list[str] = Field(
        default_factory=list,
        description="daemons the server does not run among its embedded ones (run them as "
        "'lacus daemon NAME' elsewhere, e.g. the scrubber on a host near the storage)",
    )
    daemon_sleep_seconds: float = Field(
        default=2.0, description="longest pause of an idle daemon (new work wakes it sooner)"
    )
    transfer_max_attempts: int = Field(
        default=5, description="attempts of a transfer before its locks are stuck"
    )
    transfer_retry_max_seconds: float = Field(
        default=300.0, ge=0, description="longest pause between two attempts of a transfer"
    )
    transfer_threads: int = Field(
        default=16, ge=1, le=512, description="copies one conveyor runs at the same time"
    )
    transfer_link_max_active: int = Field(
        default=8, ge=1, description="copies in flight per link unless its distance row says"
    )
    transfer_rse_max_active: int = Field(
        default=32,
        ge=1,
        description="copies in flight per RSE (source or destination) unless its "
        "'max_active_transfers' attribute says",
    )
    hop_sweep_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="seconds between two looks for multi-hop scratch copies left behind",
    )
    transfer_third_party: bool = Field(
        default=True, description="let storages copy between themselves when both can"
    )
    audit_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="seconds a replica or a file on storage must be old before an audit may "
        "call it lost or dark (what is being written or deleted is never judged)",
    )
    audit_interval_seconds: float = Field(
        default=86400.0, gt=0, description="seconds between two audits of an RSE"
    )
    audit_max_fraction: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="an audit finding more dark or lost files than this fraction of the RSE's "
        "files takes no action and raises an audit.aborted alert (a wrong mount must not wipe "
        "a site)",
    )
    dark_min_age_days: float = Field(
        default=28.0,
        ge=0,
        description="days a dark file stays quarantined before the dark reaper deletes it (if "
        "the catalog still does not know it)",
    )
    scrub_mb_per_second: float = Field(
        default=50.0,
        ge=0,
        description="MB/s the scrubber reads at most from one RSE (0: no limit)",
    )
    scrub_interval_days: float = Field(
        default=30.0, gt=0, description="days between two verifications of the same replica"
    )
    suspicious_reports_limit: int = Field(
        default=3,
        ge=1,
        description="suspicious reports that make a replica bad without reading it back",
    )
    repair_replace_after: float = Field(
        default=86400.0, description="seconds a lock may stay stuck before it moves to another RSE"
    )
    event_destinations: list[EventDestinationSettings] = Field(
        default_factory=list, description="brokers the event sender forwards events to"
    )
    event_retention_hours: float = Field(
        default=168.0, gt=0, description="hours events are kept once every destination has them"
    )
    event_backlog_max_hours: float = Field(
        default=720.0,
        gt=0,
        description="hours an event is kept at most, even if a destination has not had it yet",
    )
    transfer_history_days: float | None = Field(
        default=400.0,
        gt=0,
        description="days a finished transfer attempt is kept in the history (the dashboard "
        "looks back a year at most); null keeps it for ever",
    )
    event_send_timeout_seconds: float = Field(
        default=10.0, gt=0, description="seconds a broker has to connect or acknowledge a batch"
    )
    event_retry_max_seconds: float = Field(
        default=60.0, gt=0, description="longest pause before retrying a failing destination"
    )
    # -- limits: metadata, slow and hostile clients --------------------------------------------
    metadata_max_keys_per_did: int = Field(
        default=256, ge=1, description="metadata keys one DID may carry (those it has counted)"
    )
    metadata_max_key_length: int = Field(
        default=KEY_COLUMN_LENGTH,
        ge=1,
        le=KEY_COLUMN_LENGTH,
        description=f"characters of a metadata key (at most {KEY_COLUMN_LENGTH}, the catalog's "
        "column)",
    )
    metadata_max_value_bytes: int = Field(
        default=4096, ge=1, description="bytes (UTF-8) of a metadata value"
    )
    metadata_max_keys_per_request: int = Field(
        default=100_000,
        ge=1,
        description="metadata keys one request may set, over all its DIDs (an upload registers "
        "5,000 files a request, each with the same keys)",
    )
    server_max_connections_per_client: int = Field(
        default=64,
        ge=1,
        description="connections one client address may hold open at once; more are answered "
        "503 and closed at once",
    )
    server_max_connections: int = Field(
        default=1000,
        ge=1,
        description="connections the server holds open at once, over every client; more are "
        "answered 503 and closed at once",
    )
    server_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="seconds a client has to send a request's line and headers, from connecting "
        "or from the end of its previous response; then the connection is closed",
    )
    server_max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="bytes of a request's line and headers; more are answered 431 and the "
        "connection closed",
    )
    server_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="seconds the server waits for the next bytes of a request body it is "
        "reading; then it answers 408 and closes the connection",
    )
    server_keep_alive_seconds: int = Field(
        default=5, ge=1, description="seconds an idle connection is kept open between requests"
    )

    def metadata_limits(self) -> MetadataLimits:
        return MetadataLimits(
            max_keys_per_did=self.metadata_max_keys_per_did,
            max_key_length=self.metadata_max_key_length,
            max_value_bytes=self.metadata_max_value_bytes,
            max_keys_per_request=self.metadata_max_keys_per_request,
        )

    @field_validator("event_destinations")
    @classmethod
    def _unique_destinations(
        cls, value: list[EventDestinationSettings]
    ) -> list[EventDestinationSettings]:
        names = [destination.name for destination in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"event destination names must be unique: {', '.join(twice)}")
        return value


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
    try:
        return Settings.model_validate(config)
    except ValidationError as exc:
        raise InvalidInput(f"{config_file}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    """One line: where the first mistake is (``event_destinations.0.port``) and what it is."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    more = exc.error_count() - 1
    return f"{where}: {error['msg']}" + (f" (and {more} more)" if more else "")


def write_settings(settings: Settings) -> None:
    data = settings.model_dump(mode="json", exclude={"lake_dir"})
    path = settings.lake_dir / CONFIG_NAME
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    path.chmod(0o600)
