"""``db.is_unavailable``: which failures say the database could not serve (the request may go
again, ``UNAVAILABLE``) and which are the request's own or a bug (still masked)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from nbflow.server.db import is_unavailable


def raised_from(cause: BaseException) -> BaseException:
    """``cause`` as SQLAlchemy and our code wrap it: a RuntimeError raised from it."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("while writing") from exc
    except RuntimeError as wrapped:
        return wrapped


def with_state(sqlstate: str) -> asyncpg.PostgresError:
    error = asyncpg.PostgresError("from the server")
    error.sqlstate = sqlstate  # type: ignore[attr-defined]
    return error


UNAVAILABLE = {
    "connection refused": ConnectionRefusedError(111, "Connection refused"),
    "connection reset": ConnectionResetError(104, "Connection reset by peer"),
    "host unreachable": OSError(113, "No route to host"),
    "connect timed out": TimeoutError(),
    "asyncpg saw it close": asyncpg.exceptions.InterfaceError(
        "cannot call Connection.fetch(): connection is closed"
    ),
    "closed mid-statement": asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle"
    ),
    "admin shutdown (57P01)": with_state("57P01"),
    "starting up (57P03)": with_state("57P03"),
    "too many connections (53300)": with_state("53300"),
    "connection failure (08006)": with_state("08006"),
    "pool checkout failed": DisconnectionError("a pooled connection idle for 9 s is gone"),
    "no free pool connection": PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    "an invalidated connection": DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
    "a cause deep in the chain": raised_from(raised_from(ConnectionResetError(104, "reset"))),
}

NOT_UNAVAILABLE = {
    "a unique violation (23505)": with_state("23505"),
    "a statement error": asyncpg.exceptions.InterfaceError("the server expects 3 arguments, 2 were passed"),
    "an integrity error": IntegrityError("INSERT", {}, Exception("duplicate key")),
    "a DBAPI error on a live connection": DBAPIError("SELECT 1", {}, Exception("syntax")),
    "a bug": KeyError("state"),
    "a file not found": FileNotFoundError(2, "No such file"),
}


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_a_database_that_cannot_serve_is_unavailable(name: str) -> None:
    assert is_unavailable(UNAVAILABLE[name])
    assert is_unavailable(raised_from(UNAVAILABLE[name]))


@pytest.mark.parametrize("name", sorted(NOT_UNAVAILABLE))
def test_the_requests_own_errors_and_bugs_are_not(name: str) -> None:
    assert not is_unavailable(NOT_UNAVAILABLE[name])
    assert not is_unavailable(raised_from(NOT_UNAVAILABLE[name]))


def test_a_cycle_in_the_chain_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert not is_unavailable(first)


def test_a_loop_says_an_outage_once_its_end_once_and_every_other_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio
    import logging

    from nbflow.server.db import OutageLog

    outage = OutageLog(logging.getLogger("nbflow.test.loop"), "test pass")
    with caplog.at_level(logging.WARNING, logger="nbflow.test.loop"):
        for _ in range(3):
            with outage:
                raise ConnectionRefusedError(111, "Connection refused")
        with outage:
            pass
        for _ in range(2):
            with outage:
                raise KeyError("a bug")
        with pytest.raises(asyncio.CancelledError), outage:  # a cancel is not a failed pass
            raise asyncio.CancelledError
    said = [(record.getMessage(), record.exc_info is not None) for record in caplog.records]
    assert said == [
        ("test pass: the database is unavailable (ConnectionRefusedError: [Errno 111] Connection refused); "
         "trying again", False),
        ("test pass: the database is back", False),
        ("test pass failed", True),
        ("test pass failed", True),
    ]  # fmt: skip
