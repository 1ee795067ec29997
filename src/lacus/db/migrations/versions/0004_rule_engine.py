"""rule engine

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("scope", sa.String(length=25), nullable=True),
        sa.Column("name", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_type", sa.String(length=30), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=True),
        sa.Column("name", sa.String(length=250), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_scope_name"), ["scope", "name"], unique=False)

    op.create_table(
        "heartbeats",
        sa.Column("daemon", sa.String(length=50), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("processed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("daemon", "hostname", "pid", "thread", name=op.f("pk_heartbeats")),
    )
    op.create_table(
        "new_dids",
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("did_type", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("scope", "name", name=op.f("pk_new_dids")),
    )
    op.create_table(
        "rule_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("rse_expression", sa.String(length=1000), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("locks_ok_cnt", sa.BigInteger(), nullable=False),
        sa.Column("locks_replicating_cnt", sa.BigInteger(), nullable=False),
        sa.Column("locks_stuck_cnt", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_history")),
    )
    with op.batch_alter_table("rule_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_history_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_rule_history_scope_name"), ["scope", "name"], unique=False
        )

    op.create_table(
        "account_limits",
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("rse_expression", sa.String(length=1000), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_account_limits_account_accounts")
        ),
        sa.PrimaryKeyConstraint("account", "rse_expression", name=op.f("pk_account_limits")),
    )
    op.create_table(
        "lifecycle_policies",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("comments", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_lifecycle_policies_account_accounts")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lifecycle_policies")),
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("dest_rse_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("activity", sa.String(length=50), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("adler32", sa.String(length=8), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("source_replica_expression", sa.String(length=1000), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dest_rse_id"], ["rses.id"], name=op.f("fk_requests_dest_rse_id_rses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint(
            "scope", "name", "dest_rse_id", name=op.f("uq_requests_scope_name_dest_rse_id")
        ),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_requests_state_priority"), ["state", "priority"], unique=False
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("filter", sa.Text(), nullable=False),
        sa.Column("replication_rules", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("comments", sa.String(length=255), nullable=True),
        sa.Column("retroactive", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_processed", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_subscriptions_account_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("account", "name", name=op.f("uq_subscriptions_account_name")),
    )
    op.create_table(
        "locks",
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["rse_id"], ["rses.id"], name=op.f("fk_locks_rse_id_rses")),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["rules.id"], name=op.f("fk_locks_rule_id_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rule_id", "scope", "name", "rse_id", name=op.f("pk_locks")),
    )
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_locks_account_rse_id"), ["account", "rse_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_locks_rse_id_state"), ["rse_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_locks_scope_name_rse_id"), ["scope", "name", "rse_id"], unique=False
        )

    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_dids_expired_at"), ["expired_at"], unique=False)

    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_replicas_tombstone"), ["tombstone"], unique=False)

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("policy_step", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_column("policy_step")
        batch_op.drop_column("policy")

    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replicas_tombstone"))

    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dids_expired_at"))
        batch_op.drop_column("expired_at")

    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_locks_scope_name_rse_id"))
        batch_op.drop_index(batch_op.f("ix_locks_rse_id_state"))
        batch_op.drop_index(batch_op.f("ix_locks_account_rse_id"))

    op.drop_table("locks")
    op.drop_table("subscriptions")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requests_state_priority"))

    op.drop_table("requests")
    op.drop_table("lifecycle_policies")
    op.drop_table("account_limits")
    with op.batch_alter_table("rule_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_history_scope_name"))
        batch_op.drop_index(batch_op.f("ix_rule_history_rule_id"))

    op.drop_table("rule_history")
    op.drop_table("new_dids")
    op.drop_table("heartbeats")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_scope_name"))
        batch_op.drop_index(batch_op.f("ix_events_created_at"))

    op.drop_table("events")
    op.drop_table("evaluations")
