"""The Alembic migrations build exactly the schema of ``lacus.db.tables`` on both backends."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from lacus.db import current_revision, make_engine, metadata, transaction, upgrade
from lacus.db.migrate import MIGRATIONS
from tests.conftest import _postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a brand-new, empty database (not the shared test catalog)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    name = f"lacus_migrate_{os.getpid()}_{secrets.token_hex(4)}"
    for url in _postgres_database(name):
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def _head() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def test_upgrade_builds_exactly_the_declared_schema(fresh_engine: Engine) -> None:
    assert current_revision(fresh_engine) is None
    assert set(inspect(fresh_engine).get_table_names()) == set()

    upgrade(fresh_engine)

    assert _differences(fresh_engine) == []
    tables = set(inspect(fresh_engine).get_table_names()) - {"alembic_version"}
    assert tables == set(metadata.tables)
    assert current_revision(fresh_engine) == _head()


def test_upgrade_twice_is_harmless_and_keeps_the_data(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    with transaction(fresh_engine) as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (account, account_type, status, admin, created_at, "
                "updated_at) VALUES ('keeper', 'user', 'active', false, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )

    upgrade(fresh_engine)

    assert _differences(fresh_engine) == []
    assert current_revision(fresh_engine) == _head()
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT account FROM accounts")).scalars().all() == ["keeper"]
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [_head()]


def test_the_head_is_a_single_linear_history() -> None:
    script = _scripts()
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert revisions[0].revision == _head()
