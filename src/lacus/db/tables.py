"""The catalog schema in SQLAlchemy Core; the Alembic migrations build the same schema."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

SCOPE = String(25)
NAME = String(250)
ACCOUNT = String(25)
TIMESTAMP = DateTime()


NOT_AVAILABLE = "state <> 'available'"
"""The replicas the integrity daemons look for (few): a partial index keeps them at hand."""


def _ts(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, TIMESTAMP, nullable=nullable)


accounts = Table(
    "accounts",
    metadata,
    Column("account", ACCOUNT, primary_key=True),
    Column("account_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("email", String(255)),
    Column("admin", Boolean, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)

identities = Table(
    "identities",
    metadata,
    Column("identity", String(255), primary_key=True),
    Column("identity_type", String(16), primary_key=True),
    Column("account", ACCOUNT, ForeignKey("accounts.account"), nullable=False),
    Column("password_hash", String(255)),
    _ts("created_at"),
    Index(None, "account"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token", String(100), primary_key=True),
    Column("account", ACCOUNT, ForeignKey("accounts.account"), nullable=False),
    Column("identity", String(255)),
    _ts("expires_at"),
    _ts("created_at"),
    Index(None, "expires_at"),
)

scopes = Table(
    "scopes",
    metadata,
    Column("scope", SCOPE, primary_key=True),
    Column("account", ACCOUNT, ForeignKey("accounts.account"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("embargoed", Boolean, nullable=False, server_default=false()),
    _ts("embargo_release_at", nullable=True),
    _ts("created_at"),
    Index(None, "account"),
)

dids = Table(
    "dids",
    metadata,
    Column("scope", SCOPE, ForeignKey("scopes.scope"), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("did_type", String(10), nullable=False),
    Column("account", ACCOUNT, nullable=False),
    Column("is_open", Boolean),
    Column("bytes", BigInteger),
    Column("length", BigInteger),
    Column("adler32", String(8)),
    Column("md5", String(32)),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("closed_at", nullable=True),
    Column("embargoed", Boolean, nullable=False, server_default=false()),
    _ts("embargo_release_at", nullable=True),
    Column("own_embargoed", Boolean, nullable=False, server_default=false()),
    _ts("own_release_at", nullable=True),
    _ts("expired_at", nullable=True),
    Index(None, "did_type"),
    Index(None, "created_at"),
    Index(None, "expired_at"),
)
"""``own_embargoed``, ``own_release_at``: the embargo set on this DID itself (migration 0013);
``embargoed``, ``embargo_release_at``: the effective one every read checks (``core.visibility``),
kept by ``core.embargo`` as its own embargo joined with what every path from a parent hands down
(release: the latest, None for ever)."""

did_meta = Table(
    "did_meta",
    metadata,
    Column("scope", SCOPE, primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("value_text", Text, nullable=False),
    Column("value_num", Float),
    Column("value_json", Text, nullable=False),
    ForeignKeyConstraint(["scope", "name"], ["dids.scope", "dids.name"], ondelete="CASCADE"),
    Index(None, "key", "value_text"),
    Index(None, "key", "value_num"),
)

contents = Table(
    "contents",
    metadata,
    Column("scope", SCOPE, primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("child_scope", SCOPE, primary_key=True),
    Column("child_name", NAME, primary_key=True),
    Column("child_type", String(10), nullable=False),
    _ts("created_at"),
    ForeignKeyConstraint(["scope", "name"], ["dids.scope", "dids.name"]),
    ForeignKeyConstraint(["child_scope", "child_name"], ["dids.scope", "dids.name"]),
    Index(None, "child_scope", "child_name"),
)

rses = Table(
    "rses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rse", String(100), nullable=False, unique=True),
    Column("rse_type", String(10), nullable=False),
    Column("deterministic", Boolean, nullable=False),
    Column("availability_read", Boolean, nullable=False),
    Column("availability_write", Boolean, nullable=False),
    Column("availability_delete", Boolean, nullable=False),
    Column("read_only", Boolean, nullable=False, server_default=false()),
    Column("total_bytes", BigInteger),
    Column("used_bytes", BigInteger, nullable=False),
    Column("files", BigInteger, nullable=False),
    _ts("created_at"),
)

rse_attributes = Table(
    "rse_attributes",
    metadata,
    Column("rse_id", Integer, ForeignKey("rses.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("value", String(255), nullable=False),
    Index(None, "key", "value"),
)

rse_protocols = Table(
    "rse_protocols",
    metadata,
    Column("rse_id", Integer, ForeignKey("rses.id", ondelete="CASCADE"), primary_key=True),
    Column("scheme", String(20), primary_key=True),
    Column("hostname", String(255), primary_key=True),
    Column("port", Integer, primary_key=True),
    Column("prefix", String(1024), nullable=False),
    Column("impl", String(255), nullable=False),
    Column("extended_attributes", JSON),
)
"""``extended_attributes``: backend options (``verify``, ``tpc``, S3 credentials' env names...)."""

distances = Table(
    "distances",
    metadata,
    Column("src_rse_id", Integer, ForeignKey("rses.id", ondelete="CASCADE"), primary_key=True),
    Column("dest_rse_id", Integer, ForeignKey("rses.id", ondelete="CASCADE"), primary_key=True),
    Column("distance", Integer, nullable=False),
    Column("max_active", Integer),
)
"""Links between RSEs: lower distance = preferred source; ``max_active`` caps copies in flight.

A source RSE with any row here is linked only to the destinations it names (multi-hop reaches the
others); a source with no row is linked to every RSE at a default distance."""

replicas = Table(
    "replicas",
    metadata,
    Column("scope", SCOPE, primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("rse_id", Integer, ForeignKey("rses.id"), primary_key=True),
    Column("bytes", BigInteger, nullable=False),
    Column("adler32", String(8)),
    Column("md5", String(32)),
    Column("path", String(1024)),
    Column("state", String(16), nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("accessed_at", nullable=True),
    _ts("tombstone", nullable=True),
    _ts("verified_at", nullable=True),
    Column("state_reason", String(255)),
    Column("state_account", ACCOUNT),
    _ts("state_expires_at", nullable=True),
    Column("suspicious_reports", Integer),
    ForeignKeyConstraint(["scope", "name"], ["dids.scope", "dids.name"]),
    Index(None, "rse_id", "state"),
    Index(None, "tombstone"),
    Index(None, "rse_id", "verified_at"),
    Index(
        "ix_replicas_not_available",
        "state",
        "updated_at",
        sqlite_where=text(NOT_AVAILABLE),
        postgresql_where=text(NOT_AVAILABLE),
    ),
)
"""``verified_at``: when the scrubber (or a read-back) last found the stored bytes right.
``state_reason``, ``state_account``: why and by whom the replica was declared suspicious, bad,
unavailable or lost; ``state_expires_at``: when an ``unavailable`` one is available again;
``suspicious_reports``: reports since it was last found right (migration 0012)."""

replica_declarations = Table(
    "replica_declarations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("scope", SCOPE, nullable=False),
    Column("name", NAME, nullable=False),
    Column("rse_id", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", String(255)),
    Column("account", ACCOUNT),
    Column("bytes", BigInteger),
    _ts("created_at"),
    _ts("expires_at", nullable=True),
    Index(None, "scope", "name", "rse_id"),
    Index(None, "state", "created_at"),
    Index(None, "created_at"),
)
"""The history of replica states declared (Rucio's bad_replicas): suspicious reports, bad,
unavailable, lost, and their end (``available``: found right again; ``repaired``). No foreign
keys: the history outlives the replica."""

quarantine = Table(
    "quarantine",
    metadata,
    Column("rse_id", Integer, ForeignKey("rses.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("bytes", BigInteger),
    Column("scope", SCOPE),
    Column("name", NAME),
    Column("reason", String(255)),
    _ts("mtime", nullable=True),
    _ts("found_at"),
    _ts("seen_at"),
)
"""Dark files: bytes on an RSE the catalog does not know, found by the auditor (or declared by
an admin). Listed, never deleted before ``dark_min_age_days`` after ``found_at``, and then only
by the dark reaper if the catalog still does not know them."""

audits = Table(
    "audits",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("rse_id", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("state", String(10), nullable=False),
    Column("worker", String(100)),
    _ts("started_at"),
    _ts("finished_at", nullable=True),
    _ts("round_started_at", nullable=True),
    Column("files", BigInteger, nullable=False),
    Column("listed", BigInteger, nullable=False),
    Column("dark", BigInteger, nullable=False),
    Column("lost", BigInteger, nullable=False),
    Column("bad", BigInteger, nullable=False),
    Column("suspicious", BigInteger, nullable=False),
    Column("bytes_verified", BigInteger, nullable=False),
    Column("detail", String(1000)),
    Index(None, "rse_id", "kind", "id"),
)
"""One row per audit (``kind`` audit) or scrub round (``kind`` scrub) of an RSE: ``state``
running, finished or aborted (an audit that would act on too large a part of the RSE), with
what it found. ``files``: replicas looked at; ``listed``: files on the storage."""

integrity_work = Table(
    "integrity_work",
    metadata,
    Column("rse_id", Integer, ForeignKey("rses.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(10), primary_key=True),
    _ts("next_at", nullable=True),
    Column("audit_id", BigInteger),
    Column("claimed_by", String(100)),
    _ts("lease_until", nullable=True),
)
"""Per RSE and kind (audit, scrub): when the next one is due and who works on it (a claim with
a lease, so several auditor or scrubber processes share the RSEs)."""

rules = Table(
    "rules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account", ACCOUNT, ForeignKey("accounts.account"), nullable=False),
    Column("scope", SCOPE, nullable=False),
    Column("name", NAME, nullable=False),
    Column("did_type", String(10), nullable=False),
    Column("rse_expression", String(1000), nullable=False),
    Column("copies", Integer, nullable=False),
    Column("grouping", String(10), nullable=False),
    Column("weight", String(100)),
    Column("locked", Boolean, nullable=False),
    Column("purge_replicas", Boolean, nullable=False),
    Column("delete_source", Boolean, nullable=False, server_default=false()),
    Column("source_replica_expression", String(1000)),
    Column("activity", String(50)),
    Column("priority", Integer, nullable=False),
    Column("notification", String(10), nullable=False),
    Column("comments", String(255)),
    Column("state", String(16), nullable=False),
    Column("error", String(255)),
    Column("ignore_availability", Boolean, nullable=False),
    Column("ignore_account_limit", Boolean, nullable=False),
    Column("subscription_id", String(32)),
    Column("child_rule_id", String(32)),
    Column("policy", String(100)),
    Column("policy_step", Integer),
    _ts("expires_at", nullable=True),
    _ts("stuck_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    ForeignKeyConstraint(["scope", "name"], ["dids.scope", "dids.name"]),
    Index(None, "scope", "name"),
    Index(None, "account"),
    Index(None, "state"),
    Index(None, "expires_at"),
)

locks = Table(
    "locks",
    metadata,
    Column("rule_id", String(32), ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True),
    Column("scope", SCOPE, primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("rse_id", Integer, ForeignKey("rses.id"), primary_key=True),
    Column("account", ACCOUNT, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    Index(None, "scope", "name", "rse_id"),
    Index(None, "rse_id", "state"),
    Index(None, "account", "rse_id"),
)
"""One per file, per RSE a rule keeps it on: what protects a replica from deletion."""

requests = Table(
    "requests",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("scope", SCOPE, nullable=False),
    Column("name", NAME, nullable=False),
    Column("dest_rse_id", Integer, ForeignKey("rses.id"), nullable=False),
    Column("rule_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("activity", String(50)),
    Column("priority", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("adler32", String(8)),
    Column("md5", String(32)),
    Column("source_replica_expression", String(1000)),
    Column("source_rse_id", Integer),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(1000)),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("next_attempt_at", nullable=True),
    Column("claimed_by", String(100)),
    _ts("lease_until", nullable=True),
    UniqueConstraint("scope", "name", "dest_rse_id"),
    Index(None, "state", "priority"),
)
"""A transfer wanted: bring file ``scope:name`` to ``dest_rse_id`` (shared by every lock there)."""

transfers = Table(
    "transfers",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", BigInteger, nullable=False),
    Column("scope", SCOPE, nullable=False),
    Column("name", NAME, nullable=False),
    Column("source_rse_id", Integer),
    Column("dest_rse_id", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("error", String(1000)),
    _ts("started_at"),
    _ts("finished_at"),
    Column("duration", Float, nullable=False),
    Column("activity", String(50)),
    Index(None, "source_rse_id", "dest_rse_id", "finished_at"),
    Index(None, "scope", "name"),
    Index(None, "finished_at"),
)
"""Transfer history: one row per attempt of a request (``done`` or ``failed``), kept after the
request. ``source_rse_id`` is empty when no source was found; no foreign keys, so the history
outlives what it tells about."""

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("rule_id", String(32)),
    Column("scope", SCOPE),
    Column("name", NAME),
    Column("children", Text),
    _ts("created_at"),
    Column("claimed_by", String(100)),
    _ts("lease_until", nullable=True),
)
"""The rule evaluator's queue: new or changed rules, and collections whose content changed
(``children``: of an attach, the DIDs attached, JSON ``[[scope, name, did_type], ...]``)."""

new_dids = Table(
    "new_dids",
    metadata,
    Column("scope", SCOPE, primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("did_type", String(10), nullable=False),
    _ts("created_at"),
    Column("claimed_by", String(100)),
    _ts("lease_until", nullable=True),
)
"""Collections not yet matched against the subscriptions."""

rule_history = Table(
    "rule_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("rule_id", String(32), nullable=False),
    Column("scope", SCOPE, nullable=False),
    Column("name", NAME, nullable=False),
    Column("account", ACCOUNT, nullable=False),
    Column("rse_expression", String(1000), nullable=False),
    Column("action", String(20), nullable=False),
    Column("state", String(16), nullable=False),
    Column("locks_ok_cnt", BigInteger, nullable=False),
    Column("locks_replicating_cnt", BigInteger, nullable=False),
    Column("locks_stuck_cnt", BigInteger, nullable=False),
    Column("detail", String(1000)),
    _ts("created_at"),
    Index(None, "rule_id"),
    Index(None, "scope", "name"),
)

account_limits = Table(
    "account_limits",
    metadata,
    Column("account", ACCOUNT, ForeignKey("accounts.account"), primary_key=True),
    Column("rse_expression", String(1000), primary_key=True),
    Column("bytes", BigInteger, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)
"""Quotas: the bytes an account's locks may hold on the RSEs an expression selects."""

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account", ACCOUNT, ForeignKey("accounts.account"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("filter", Text, nullable=False),
    Column("replication_rules", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("comments", String(255)),
    Column("retroactive", Boolean, nullable=False),
    Column("priority", Integer, nullable=False),
    _ts("expires_at", nullable=True),
    _ts("last_processed", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("account", "name"),
)

lifecycle_policies = Table(
    "lifecycle_policies",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("account", ACCOUNT, ForeignKey("accounts.account"), nullable=False),
    Column("steps", Text, nullable=False),
    Column("comments", String(255)),
    _ts("created_at"),
)
"""Chains of rules: step n+1 is created when step n expires, which goes once n+1 is ok."""

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("daemon", String(50), primary_key=True),
    Column("hostname", String(255), primary_key=True),
    Column("pid", Integer, primary_key=True),
    Column("thread", String(100), primary_key=True),
    _ts("started_at"),
    _ts("updated_at"),
    Column("processed", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_type", String(30), nullable=False),
    Column("scope", SCOPE),
    Column("name", NAME),
    Column("payload", Text, nullable=False),
    _ts("created_at"),
    Index(None, "created_at"),
    Index(None, "scope", "name"),
)
"""The outbox: one row per state change, written in the transaction that makes the change."""

event_cursors = Table(
    "event_cursors",
    metadata,
    Column("destination", String(100), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_error", Text),
    _ts("last_error_at", nullable=True),
    Column("claimed_by", String(100)),
    _ts("lease_until", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)
"""Where the event sender is in the outbox for each broker destination: every event with an id up
to ``last_id`` was acknowledged by it; ``failures`` counts failed attempts since the last
success. One sender at a time works on a destination: the one whose claim (``claimed_by``,
``lease_until``) holds."""

lake_identity = Table(
    "lake_identity",
    metadata,
    Column("id", String(32), primary_key=True),
    _ts("created_at"),
)
"""One row: the lake's identity, a random UUID made with its catalog (migration 0011). It names
what the lake sends out, such as each event's message id on NATS JetStream (``Nats-Msg-Id``),
so that two lakes' messages never pass for one another."""

ALL_TABLES = [  # the catalog's content, children first (``lake_identity`` is not content)
    integrity_work,
    audits,
    quarantine,
    replica_declarations,
    event_cursors,
    distances,
    transfers,
    events,
    heartbeats,
    lifecycle_policies,
    subscriptions,
    account_limits,
    rule_history,
    new_dids,
    evaluations,
    requests,
    locks,
    rules,
    replicas,
    rse_protocols,
    rse_attributes,
    rses,
    contents,
    did_meta,
    dids,
    scopes,
    tokens,
    identities,
    accounts,
]
"""Every table, children before parents (the order to empty them in)."""
