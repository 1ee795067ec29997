"""transfer history by time: an index on transfers.finished_at

The newest attempts (``GET /transfers/``, the dashboard's failures) and the attempts of the last
hours (the dashboard's plots, the matrix of a period) are read by finishing time: an index range
instead of a scan and a sort of the whole history.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfers_finished_at"), ["finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_finished_at"))
