"""event writer trigger (PostgreSQL): every statement inserting events first takes its
transaction's id and notifies ``lacus_events``

What ``flush_outbox`` did with a statement of its own before each insert of events: the
transaction id must be taken before any event id (the horizon's hole rule relies on it), and
listeners are told at commit. A BEFORE ... FOR EACH STATEMENT trigger runs before the statement
produces its first row, so before the first id is drawn from the sequence, for every writer.
SQLite has one writer at a time and no notifications: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION lacus_events_writer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_current_xact_id(), pg_notify('lacus_events', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_writer BEFORE INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION lacus_events_writer()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER events_writer ON events")
    op.execute("DROP FUNCTION lacus_events_writer()")
