"""A write that PostgreSQL aborts to break a deadlock is run again from its start
(``Lake.write_retrying``): the caller never sees the deadlock, and nothing of the aborted
attempt remains. Found in CI: ``DELETE /rules/{id}`` answered 500 while the conveyor was
finishing that rule's copies, the two touching ``requests`` and ``locks`` in opposite orders."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from lacus.service import Lake

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""Two writers at once: SQLite runs one writer at a time (it cannot deadlock)."""


@pytest.fixture
def rows(lake: Lake) -> Iterator[Lake]:
    """Two rows in a table of their own, dropped afterwards (the catalog's schema unchanged)."""
    with lake.write() as conn:
        conn.execute(text("DROP TABLE IF EXISTS deadlock_probe"))
        conn.execute(text("CREATE TABLE deadlock_probe (id integer PRIMARY KEY, n integer)"))
        conn.execute(text("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"))
    yield lake
    with lake.write() as conn:
        conn.execute(text("DROP TABLE deadlock_probe"))


def _bump(conn: object, row: int) -> None:
    conn.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": row})  # type: ignore[attr-defined]


@POSTGRES_ONLY
def test_a_write_aborted_by_a_deadlock_runs_again_and_counts_once(rows: Lake) -> None:
    """The retried writer takes row 1 then row 2; the other, row 2 then row 1, after the
    retried one already waits (so PostgreSQL, which checks the longest waiter first, aborts the
    retried writer). The other commits; the retry then runs whole: each row counted twice, once
    per writer, never three times."""
    lake = rows
    attempts: list[int] = []
    holds_row_1 = threading.Event()
    other_holds_row_2 = threading.Event()

    def retried(conn: object) -> None:
        attempts.append(len(attempts) + 1)
        _bump(conn, 1)
        if len(attempts) == 1:
            holds_row_1.set()
            assert other_holds_row_2.wait(20)
        _bump(conn, 2)

    def other() -> None:
        assert holds_row_1.wait(20)
        with lake.write() as conn:
            _bump(conn, 2)
            other_holds_row_2.set()
            time.sleep(0.3)  # the retried writer now waits for row 2
            _bump(conn, 1)

    thread = threading.Thread(target=other)
    thread.start()
    lake.write_retrying(retried)
    thread.join(30)
    assert not thread.is_alive()
    assert attempts == [1, 2]
    with lake.read() as conn:
        counted = dict(conn.execute(text("SELECT id, n FROM deadlock_probe ORDER BY id")).all())
    assert counted == {1: 2, 2: 2}


@POSTGRES_ONLY
def test_other_errors_are_not_retried(rows: Lake) -> None:
    attempts: list[int] = []

    def failing(conn: object) -> None:
        attempts.append(1)
        conn.execute(text("SELECT 1 / 0"))  # type: ignore[attr-defined]

    with pytest.raises(Exception, match="division by zero"):
        rows.write_retrying(failing)
    assert attempts == [1]
