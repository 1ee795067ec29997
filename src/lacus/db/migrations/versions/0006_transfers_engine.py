"""transfers engine

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "distances",
        sa.Column("src_rse_id", sa.Integer(), nullable=False),
        sa.Column("dest_rse_id", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.Column("max_active", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dest_rse_id"],
            ["rses.id"],
            name=op.f("fk_distances_dest_rse_id_rses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["src_rse_id"],
            ["rses.id"],
            name=op.f("fk_distances_src_rse_id_rses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("src_rse_id", "dest_rse_id", name=op.f("pk_distances")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_rse_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("rse_protocols", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extended_attributes", sa.JSON(), nullable=True))

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delete_source", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("rses", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("read_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("rses", schema=None) as batch_op:
        batch_op.drop_column("read_only")

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_column("delete_source")

    with op.batch_alter_table("rse_protocols", schema=None) as batch_op:
        batch_op.drop_column("extended_attributes")

    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("source_rse_id")

    op.drop_table("distances")
