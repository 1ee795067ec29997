"""initial catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("account_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_accounts")),
    )
    op.create_table(
        "rses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rse", sa.String(length=100), nullable=False),
        sa.Column("rse_type", sa.String(length=10), nullable=False),
        sa.Column("deterministic", sa.Boolean(), nullable=False),
        sa.Column("availability_read", sa.Boolean(), nullable=False),
        sa.Column("availability_write", sa.Boolean(), nullable=False),
        sa.Column("availability_delete", sa.Boolean(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rses")),
        sa.UniqueConstraint("rse", name=op.f("uq_rses_rse")),
    )
    op.create_table(
        "identities",
        sa.Column("identity", sa.String(length=255), nullable=False),
        sa.Column("identity_type", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_identities_account_accounts")
        ),
        sa.PrimaryKeyConstraint("identity", "identity_type", name=op.f("pk_identities")),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identities_account"), ["account"], unique=False)

    op.create_table(
        "rse_attributes",
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["rse_id"], ["rses.id"], name=op.f("fk_rse_attributes_rse_id_rses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rse_id", "key", name=op.f("pk_rse_attributes")),
    )
    with op.batch_alter_table("rse_attributes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rse_attributes_key_value"), ["key", "value"], unique=False
        )

    op.create_table(
        "rse_protocols",
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("scheme", sa.String(length=20), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=1024), nullable=False),
        sa.Column("impl", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["rse_id"], ["rses.id"], name=op.f("fk_rse_protocols_rse_id_rses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "rse_id", "scheme", "hostname", "port", name=op.f("pk_rse_protocols")
        ),
    )
    op.create_table(
        "scopes",
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_scopes_account_accounts")
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_scopes")),
    )
    with op.batch_alter_table("scopes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scopes_account"), ["account"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("identity", sa.String(length=255), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.account"], name=op.f("fk_tokens_account_accounts")
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_tokens")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "dids",
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("did_type", sa.String(length=10), nullable=False),
        sa.Column("account", sa.String(length=25), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.Column("adler32", sa.String(length=8), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["scope"], ["scopes.scope"], name=op.f("fk_dids_scope_scopes")),
        sa.PrimaryKeyConstraint("scope", "name", name=op.f("pk_dids")),
    )
    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dids_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_dids_did_type"), ["did_type"], unique=False)

    op.create_table(
        "contents",
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("child_scope", sa.String(length=25), nullable=False),
        sa.Column("child_name", sa.String(length=250), nullable=False),
        sa.Column("child_type", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_scope", "child_name"],
            ["dids.scope", "dids.name"],
            name=op.f("fk_contents_child_scope_dids"),
        ),
        sa.ForeignKeyConstraint(
            ["scope", "name"], ["dids.scope", "dids.name"], name=op.f("fk_contents_scope_dids")
        ),
        sa.PrimaryKeyConstraint(
            "scope", "name", "child_scope", "child_name", name=op.f("pk_contents")
        ),
    )
    with op.batch_alter_table("contents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contents_child_scope_child_name"),
            ["child_scope", "child_name"],
            unique=False,
        )

    op.create_table(
        "did_meta",
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=False),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope", "name"],
            ["dids.scope", "dids.name"],
            name=op.f("fk_did_meta_scope_dids"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope", "name", "key", name=op.f("pk_did_meta")),
    )
    with op.batch_alter_table("did_meta", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_did_meta_key_value_num"), ["key", "value_num"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_did_meta_key_value_text"), ["key", "value_text"], unique=False
        )

    op.create_table(
        "replicas",
        sa.Column("scope", sa.String(length=25), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("rse_id", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("adler32", sa.String(length=8), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("accessed_at", sa.DateTime(), nullable=True),
        sa.Column("tombstone", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["rse_id"], ["rses.id"], name=op.f("fk_replicas_rse_id_rses")),
        sa.ForeignKeyConstraint(
            ["scope", "name"], ["dids.scope", "dids.name"], name=op.f("fk_replicas_scope_dids")
        ),
        sa.PrimaryKeyConstraint("scope", "name", "rse_id", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replicas_rse_id_state"), ["rse_id", "state"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replicas_rse_id_state"))

    op.drop_table("replicas")
    with op.batch_alter_table("did_meta", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_did_meta_key_value_text"))
        batch_op.drop_index(batch_op.f("ix_did_meta_key_value_num"))

    op.drop_table("did_meta")
    with op.batch_alter_table("contents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contents_child_scope_child_name"))

    op.drop_table("contents")
    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dids_did_type"))
        batch_op.drop_index(batch_op.f("ix_dids_created_at"))

    op.drop_table("dids")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_expires_at"))

    op.drop_table("tokens")
    with op.batch_alter_table("scopes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scopes_account"))

    op.drop_table("scopes")
    op.drop_table("rse_protocols")
    with op.batch_alter_table("rse_attributes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rse_attributes_key_value"))

    op.drop_table("rse_attributes")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identities_account"))

    op.drop_table("identities")
    op.drop_table("rses")
    op.drop_table("accounts")
