"""lake identity: one row, a random UUID made with the catalog, naming what the lake sends out
(each event's ``Nats-Msg-Id`` on NATS JetStream, which the stream deduplicates by)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "lake_identity",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lake_identity")),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(table, [{"id": uuid.uuid4().hex, "created_at": now}])


def downgrade() -> None:
    op.drop_table("lake_identity")
