"""Database connection: URL resolution, engine, sessions, migrations on start.

SQLite (the default, a file under ``NBFLOW_HOME``) runs in WAL mode with a
busy timeout so the scheduler, the API and the live feed share it; PostgreSQL
(``postgresql+asyncpg://...``) is for production and several server replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import String, any_, bindparam, event, literal_column, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from nbflow.core.errors import NbflowError
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    import logging
    from collections.abc import AsyncIterator, Callable

    from sqlalchemy.ext.asyncio import AsyncConnection
    from sqlalchemy.sql.elements import ColumnElement

Statement = TypeVar("Statement")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def default_database_url() -> str:
    """SQLite in ``NBFLOW_HOME/nbflow.db``."""
    return f"sqlite+aiosqlite:///{nbflow_home() / 'nbflow.db'}"


def normalize_url(url: str | None) -> str:
    """Accept ``sqlite:///x.db`` and ``postgresql://...`` and pick the async drivers."""
    url = url or default_database_url()
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise NbflowError(
            f"cannot read database URL {url!r}; use sqlite+aiosqlite:///path/to/nbflow.db "
            "or postgresql+asyncpg://user@host:5432/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise NbflowError(f"unsupported database {backend!r}; nbflow runs on SQLite or PostgreSQL")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20, **settings: str) -> AsyncEngine:
    """An async engine: SQLite in WAL mode with a busy timeout, or a pooled PostgreSQL one
    whose connections start with the given server ``settings`` (``plan_cache_mode=...``)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args={"server_settings": settings} if settings else {},
        )
        event.listen(engine.sync_engine, "checkin", _mark_idle)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


#: A pooled connection idle longer than this is pinged before it is used again.
IDLE_PING = 5.0


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # pool_pre_ping pinged every checkout, three round trips on asyncpg (begin, select,
    # rollback): more than a state write's own statements. A connection in steady use has
    # just answered; one that sat idle may have been closed by a database restart or a
    # proxy's timeout, and the pool replaces it when this raises DisconnectionError.
    if dbapi_connection.driver_connection.is_closed():
        # A restart or failover closes every connection at once, and a busy server's were all
        # used a moment ago: asyncpg has seen each one close (no round trip to ask).
        raise DisconnectionError("the database closed this pooled connection")
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < IDLE_PING:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError(
            f"a pooled connection idle for {time.monotonic() - since:.0f} s is gone"
        ) from exc


#: SQLSTATEs of a database that cannot serve now: a connection failure (class 08), a server
#: shutting down, crashed or starting up (57P01-57P03), no free connection slot (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
_NETWORK_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT})


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says the database could not be reached
    or dropped the connection (a restart, a failover, a network fault, no free connection in
    the pool): nothing is wrong with the request, which may go again later."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _says_unavailable(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _says_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, DisconnectionError | PoolTimeout | ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_STATES):
        return True
    # asyncpg's word for a connection it saw close (SQLAlchemy's asyncpg dialect reads it too).
    return type(exc).__name__ == "InterfaceError" and "connection is closed" in str(exc)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: a driver's message may go on with the SQL."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class OutageLog:
    """A background loop's passes (the scheduler, recovery, ...), each run as ``with outage:``:
    a failed pass is logged and the loop goes on. That the database is unavailable is said once
    per outage, and once that it is back, where a traceback every pass (four a second for the
    queue watch) would bury the log; any other failure with its traceback, every time."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.away = False

    def __enter__(self) -> OutageLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            if self.away:
                self.away = False
                self.logger.warning("%s: the database is back", self.what)
            return False
        if not isinstance(exc, Exception):  # cancelled, interrupted: not a failed pass
            return False
        if not is_unavailable(exc):
            self.logger.error("%s failed", self.what, exc_info=exc)
        elif not self.away:
            self.away = True
            self.logger.warning(
                "%s: the database is unavailable (%s); trying again", self.what, first_line(exc)
            )
        return True


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commits write the run journal (``services/journal.py``)."""
    from nbflow.server.services.journal import JournalSession

    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=JournalSession)


class PerDialect(Generic[Statement]):
    """A statement built once for PostgreSQL and once for SQLite: ``build(postgres)`` makes it,
    ``on(connection)`` gives the one for the connection's database."""

    def __init__(self, build: Callable[[bool], Statement]) -> None:
        self.postgres = build(True)
        self.sqlite = build(False)

    def on(self, connection: AsyncConnection) -> Statement:
        """The statement for ``connection``'s database."""
        return self.postgres if connection.dialect.name == "postgresql" else self.sqlite


def one_of(column: ColumnElement[Any], name: str, *, postgres: bool) -> ColumnElement[bool]:
    """``column`` is one of the list bound as ``name``. On PostgreSQL ``= ANY(:name)`` with the
    list as one array: the statement's text is the same for any length, where an expanding
    ``IN`` is rendered again on every call (a tenth of a state write's server time)."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def checked_after(column: ColumnElement[str]) -> ColumnElement[str]:
    """``column`` in a form no index serves: for a condition checked on the rows another key
    found (the tenant of a run found by its id), never used to find them.

    A prepared statement's generic plan made while its table was young (before autovacuum's
    first ANALYZE) costs every index alike, and may take a (tenant, ...) index for
    ``id = :id AND tenant_id = :tenant``, walking the tenant's whole prefix of it for one row:
    9 ms a look-up at 60,000 runs, 615 ms for a journal look-up at 400,000 rows
    (``benchmarks/young_plans.py``). ``tenant_id || ''`` compares the same and can only filter."""
    return column.op("||", return_type=String)(literal_column("''"))


def is_sqlite(engine: AsyncEngine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


@contextlib.asynccontextmanager
async def startup_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Serialize migrations and first-start bootstrap across server processes."""
    if is_sqlite(engine):
        database = engine.url.database or ":memory:"
        if database == ":memory:":
            yield
            return
        lock_path = Path(database).with_suffix(".lock")
        with lock_path.open("w") as fh:
            await asyncio.to_thread(fcntl.flock, fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(424242)"))
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(424242)"))
            await conn.commit()


def _upgrade(connection: Any) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply Alembic migrations up to head (called on every server start)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
