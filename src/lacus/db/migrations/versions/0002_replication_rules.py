"""replication rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("did_type", sa.String(length=10), nullable=False),
        sa.Column("rse_expression", sa.String(length=1000), nullable=False),
        sa.Column("copies", sa.Integer(), nullable=False),
        sa.Column("grouping", sa.String(length=10), nullable=False),
        sa.Column("weight", sa.String(length=100), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("purge_replicas", sa.Boolean(), nullable=False),
        sa.Column("source_replica_expression", sa.String(length=1000), nullable=True),
        sa.Column("activity", sa.String(length=50), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("notification", sa.String(length=10), nullable=False),
        sa.Column("comments", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("ignore_availability", sa.Boolean(), nullable=False),
        sa.Column("ignore_account_limit", sa.Boolean(), nullable=False),
        sa.Column("subscription_id", sa.String(length=32), nullable=True),
        sa.Column("child_rule_id", sa.String(length=32), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("stuck_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_rules_account_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["scope", "name"], ["dids.scope", "dids.name"], name=op.f("fk_rules_scope_dids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
    )
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rules_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_rules_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rules_scope_name"), ["scope", "name"], unique=False)
        batch_op.create_index(batch_op.f("ix_rules_state"), ["state"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rules_state"))
        batch_op.drop_index(batch_op.f("ix_rules_scope_name"))
        batch_op.drop_index(batch_op.f("ix_rules_expires_at"))
        batch_op.drop_index(batch_op.f("ix_rules_account"))

    op.drop_table("rules")
