"""The catalog database: schema, engines, migrations."""

from lacus.db.engine import is_deadlock, is_sqlite, make_engine, normalise_url, transaction
from lacus.db.migrate import current_revision, upgrade
from lacus.db.tables import metadata

__all__ = [
    "current_revision",
    "is_deadlock",
    "is_sqlite",
    "make_engine",
    "metadata",
    "normalise_url",
    "transaction",
    "upgrade",
]
