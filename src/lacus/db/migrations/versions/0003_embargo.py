"""embargo

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("embargoed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("embargo_release_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("scopes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("embargoed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("embargo_release_at", sa.DateTime(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("scopes", schema=None) as batch_op:
        batch_op.drop_column("embargo_release_at")
        batch_op.drop_column("embargoed")

    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.drop_column("embargo_release_at")
        batch_op.drop_column("embargoed")
