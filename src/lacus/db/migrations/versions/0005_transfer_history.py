"""transfer history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("source_rse_id", sa.Integer(), nullable=True),
        sa.Column("dest_rse_id", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("activity", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfers_scope_name"), ["scope", "name"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfers_source_rse_id_dest_rse_id_finished_at"),
            ["source_rse_id", "dest_rse_id", "finished_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_source_rse_id_dest_rse_id_finished_at"))
        batch_op.drop_index(batch_op.f("ix_transfers_scope_name"))

    op.drop_table("transfers")
