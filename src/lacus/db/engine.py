"""Engine factory: SQLite (WAL, one writer at a time) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

WRITE = "lacus_write"


def normalise_url(url: str) -> str:
    """Pick the driver Lacus uses for a database URL (psycopg 3 for PostgreSQL)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


DEADLOCK = "40P01"
"""PostgreSQL's SQLSTATE for a transaction it aborted to break a deadlock."""


def is_deadlock(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL aborting this transaction to break a deadlock (running the
    transaction again from its start is then the remedy)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == DEADLOCK


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the settings Lacus relies on."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite:"):
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    # Plan each statement with the table sizes of now: psycopg prepares a statement after five
    # runs, and a generic plan made while a table was small (a seq scan of ``locks``) would be
    # kept after it grew (measured: 9 ms instead of 0.09 ms per rule's lock lookup).
    # No JIT: Lacus's statements are index probes and short scans, but a correlated subplan's
    # cost is estimated per outer row and crosses jit_above_cost; compiling it took 17 ms for a
    # read of the event stream that ran in 1.3 ms (a container filter, 100,000 files).
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("options", "-c plan_cache_mode=force_custom_plan -c jit=off")
    kwargs["connect_args"] = connect_args
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock at once: no deadlock upgrading a read lock, waits honour
        # busy_timeout. Readers never block in WAL mode.
        if connection.get_execution_options().get(WRITE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


OUTBOX = "lacus_outbox"
"""Key in a connection's ``info``: the event rows its transaction wrote, inserted at commit."""

OUTBOX_COLUMNS = ("event_type", "scope", "name", "payload", "created_at")

NOTIFY_CHANNEL = "lacus_events"
"""The PostgreSQL channel a commit with events notifies."""


@contextmanager
def transaction(
    engine: Engine, *, write: bool = True, after_events: Callable[[], None] | None = None
) -> Iterator[Connection]:
    """Open one transaction: commit when the block ends, roll back if it raises.

    Events the block recorded (``lacus.core.events.emit``) are inserted just before the commit
    (``flush_outbox``); ``after_events`` is called once a transaction with events has committed.
    """
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE: write})
        try:
            with connection.begin():
                yield connection
                flushed = flush_outbox(connection)
        finally:
            connection.info.pop(OUTBOX, None)
    if flushed and after_events is not None:
        after_events()


def flush_outbox(conn: Connection) -> bool:
    """Insert the events this transaction recorded; returns whether there were any.

    Last thing before the commit, so an event's id is taken as late as possible: ids are then
    nearly in commit order, and a reader waiting for a transaction that holds an id (see
    ``lacus.core.events.Horizon``) waits no longer than that transaction's commit. On
    PostgreSQL a trigger (migration 0010) makes each inserting statement take the transaction's
    id before its events take theirs (what the horizon relies on) and notify ``NOTIFY_CHANNEL``,
    heard by listeners when the transaction commits.
    """
    rows = conn.info.pop(OUTBOX, None)
    if not rows:
        return False
    from lacus.db.tables import events  # the tables import this module's types

    insert_rows(conn, events, OUTBOX_COLUMNS, rows)
    return True


_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    skip_existing: bool = False,
) -> int:
    """Insert ``rows`` (one value per name in ``columns``) with one DBAPI ``executemany``.

    Core's executemany builds and processes a dictionary per row, which costs more than SQLite
    takes to store the row; here each value goes through its column type's bind processor (once
    per distinct value, so a timestamp shared by every row is converted once) and the driver
    gets plain tuples. ``skip_existing`` leaves out the rows whose primary or unique key exists
    already (``ON CONFLICT DO NOTHING``: a probe of the key's index per row). Returns the number
    of rows inserted.
    """
    if not rows:
        return 0
    dialect = conn.dialect
    mark = _MARKS.get(dialect.paramstyle)
    if mark is None or dialect.name not in ("sqlite", "postgresql"):
        if skip_existing:
            raise NotImplementedError(f"skip_existing on {dialect.name} ({dialect.paramstyle})")
        result = conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return len(rows) if result.rowcount < 0 else int(result.rowcount)
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.quote(name) for name in columns)
    marks = ", ".join([mark] * len(columns))
    sql = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({marks})"
    if skip_existing:
        sql += " ON CONFLICT DO NOTHING"
    processors = [
        (index, _memoised(processor))
        for index, name in enumerate(columns)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    if processors:
        rows = [_processed(row, processors) for row in rows]
    if len(rows) == 1:  # an executemany of one row costs the driver a pipeline round
        result = conn.exec_driver_sql(sql, tuple(rows[0]))
    else:
        result = conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))
    return int(result.rowcount)


def _memoised(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    done: dict[tuple[type, Any], Any] = {}

    def process(value: Any) -> Any:
        key = (type(value), value)
        try:
            return done[key]
        except KeyError:
            done[key] = result = processor(value)
            return result
        except TypeError:  # unhashable
            return processor(value)

    return process


def _processed(
    row: Sequence[Any], processors: list[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    values = list(row)
    for index, process in processors:
        values[index] = process(values[index])
    return tuple(values)


__all__ = ["insert_rows", "is_sqlite", "make_engine", "normalise_url", "transaction"]
