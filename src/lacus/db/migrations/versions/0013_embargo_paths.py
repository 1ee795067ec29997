"""embargo paths: each DID's own embargo kept apart from the effective one

Until now an embargo was copied onto everything below the collection it was set on, and lifting
it cleared everything below, even what another embargoed collection still held. The embargo a
DID's owner set is now kept in ``own_embargoed``/``own_release_at``; ``embargoed`` and
``embargo_release_at`` become the effective embargo, recomputed from every path up (see
``lacus.core.embargo``).

Upgrading: an embargoed DID is taken to carry its own embargo unless a parent holds the same
embargo (it was copied down from there). Then the effective embargo of every DID is computed
again from those, so a DID that an earlier lift wrongly showed is hidden again, and DIDs of
other scopes below a DID of an embargoed scope are hidden as well.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OWN = """
UPDATE dids SET own_embargoed = embargoed, own_release_at = embargo_release_at
WHERE embargoed AND NOT EXISTS (
    SELECT 1 FROM contents c JOIN dids p ON p.scope = c.scope AND p.name = c.name
    WHERE c.child_scope = dids.scope AND c.child_name = dids.name AND p.embargoed
      AND (p.embargo_release_at = dids.embargo_release_at
           OR (p.embargo_release_at IS NULL AND dids.embargo_release_at IS NULL))
)
"""

CLEAR = "UPDATE dids SET embargoed = false, embargo_release_at = NULL WHERE embargoed"

EFFECTIVE = """
WITH RECURSIVE reached(scope, name, release_at) AS (
    SELECT scope, name, own_release_at FROM dids WHERE own_embargoed
    UNION
    SELECT c.child_scope, c.child_name, s.embargo_release_at
    FROM contents c JOIN scopes s ON s.scope = c.scope
    WHERE s.embargoed AND c.scope <> c.child_scope
    UNION
    SELECT c.child_scope, c.child_name, r.release_at
    FROM reached r JOIN contents c ON c.scope = r.scope AND c.name = r.name
),
effective(scope, name, release_at) AS (
    SELECT scope, name,
        CASE WHEN count(*) > count(release_at) THEN NULL ELSE max(release_at) END
    FROM reached GROUP BY scope, name
)
UPDATE dids SET embargoed = true, embargo_release_at = effective.release_at
FROM effective WHERE dids.scope = effective.scope AND dids.name = effective.name
"""


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN: a batch would copy ``dids`` on SQLite, and dropping the old
    # table fails while contents and replicas refer to it.
    op.add_column(
        "dids",
        sa.Column("own_embargoed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("dids", sa.Column("own_release_at", sa.DateTime(), nullable=True))
    op.execute(OWN)
    op.execute(CLEAR)
    op.execute(EFFECTIVE)


def downgrade() -> None:
    with op.batch_alter_table("dids") as batch:
        batch.drop_column("own_release_at")
        batch.drop_column("own_embargoed")
