"""integrity: replica states declared (suspicious, bad, unavailable, lost) with reason, account,
expiry and history; when bytes were last verified; quarantined dark files; audits and scrubs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("verified_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("state_reason", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("state_account", sa.String(length=25), nullable=True))
        batch.add_column(sa.Column("state_expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("suspicious_reports", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_replicas_rse_id_verified_at"), "replicas", ["rse_id", "verified_at"])
    op.create_index(
        "ix_replicas_not_available",
        "replicas",
        ["state", "updated_at"],
        sqlite_where=sa.text("state <> 'available'"),
        postgresql_where=sa.text("state <> 'available'"),
    )
    serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "replica_declarations",
        sa.Column("id", serial, nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("account", sa.String(length=25), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replica_declarations")),
    )
    op.create_index(
        op.f("ix_replica_declarations_scope_name_rse_id"),
        "replica_declarations",
        ["scope", "name", "rse_id"],
    )
    op.create_index(
        op.f("ix_replica_declarations_state_created_at"),
        "replica_declarations",
        ["state", "created_at"],
    )
    op.create_index(
        op.f("ix_replica_declarations_created_at"), "replica_declarations", ["created_at"]
    )
    op.create_table(
        "quarantine",
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("scope", sa.String(length=25), nullable=True),
        sa.Column("name", sa.String(length=250), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("mtime", sa.DateTime(), nullable=True),
        sa.Column("found_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rse_id"], ["rses.id"], name=op.f("fk_quarantine_rse_id_rses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rse_id", "path", name=op.f("pk_quarantine")),
    )
    op.create_table(
        "audits",
        sa.Column("id", serial, nullable=False),
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("round_started_at", sa.DateTime(), nullable=True),
        *(
            sa.Column(count, sa.BigInteger(), nullable=False)
            for count in (
                "files",
                "listed",
                "dark",
                "lost",
                "bad",
                "suspicious",
                "bytes_verified",
            )
        ),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
    )
    op.create_index(op.f("ix_audits_rse_id_kind_id"), "audits", ["rse_id", "kind", "id"])
    op.create_table(
        "integrity_work",
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rse_id"],
            ["rses.id"],
            name=op.f("fk_integrity_work_rse_id_rses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rse_id", "kind", name=op.f("pk_integrity_work")),
    )


def downgrade() -> None:
    op.drop_table("integrity_work")
    op.drop_index(op.f("ix_audits_rse_id_kind_id"), table_name="audits")
    op.drop_table("audits")
    op.drop_table("quarantine")
    op.drop_table("replica_declarations")
    op.drop_index("ix_replicas_not_available", table_name="replicas")
    op.drop_index(op.f("ix_replicas_rse_id_verified_at"), table_name="replicas")
    with op.batch_alter_table("replicas") as batch:
        for column in (
            "suspicious_reports",
            "state_expires_at",
            "state_account",
            "state_reason",
            "verified_at",
        ):
            batch.drop_column(column)
