"""Statements on PostgreSQL's driver connection, for the server's hottest writes.

The task-state and log writers (``services/taskstore.py``, ``services/logs.py``) and
``createFlowRun`` (``services/runcreate.py``) speak to asyncpg directly: SQLAlchemy's session
and ``Connection`` around a statement cost more than the statement's own Python. They write
their SQL with named parameters, compiled once to asyncpg's ``$n`` form (``Positional``), and
take their connections from a pool of their own beside the engine's (``pooled_driver``), whose
sessions keep one plan per statement (``driver_engine``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.util import greenlet_spawn

from nbflow.server import db

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.sql import ClauseElement

#: The SQLSTATE of ``nbflow_unless_stale`` (migration 0006): what a write statement raises
#: when the rows it was decided on moved since they were read.
STALE = "NB001"

#: Batches of more rows than this are written in a transaction that plans each statement for
#: its own arrays (``BEGIN_CUSTOM_PLANS``).
CUSTOM_PLAN_FROM = 8

# The driver's sessions keep one generic plan per statement (``driver_engine``). Made while
# the tables are young (before autovacuum's first ANALYZE), a plan that guesses a batch's
# arrays at ten rows scans them whole: a batch of 500 task states read 30 times slower until
# the next ANALYZE. A batch is planned for its own arrays instead (a fraction of a
# millisecond); a few rows keep the cached plan, one index look-up per key.
BEGIN_CUSTOM_PLANS = "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan"


class Positional:
    """A statement with named parameters (SQL text, or a SQLAlchemy Core statement), compiled
    once to asyncpg's ``$n`` form."""

    def __init__(self, statement: str | ClauseElement) -> None:
        compiled = (text(statement) if isinstance(statement, str) else statement).compile(
            dialect=pg_asyncpg.dialect()
        )
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        # Values SQLAlchemy bound itself (a Core statement's LIMIT, say).
        self.fixed = {name: value for name, value in compiled.params.items() if value is not None}

    def args(self, values: dict[str, Any]) -> list[Any]:
        """The parameters in the statement's order."""
        fixed = self.fixed
        return [values[name] if name in values else fixed[name] for name in self.names]


def is_stale(exc: BaseException) -> bool:
    """Whether ``exc`` is ``nbflow_unless_stale``'s refusal."""
    return getattr(exc, "sqlstate", None) == STALE


#: The driver pool keeps as many connections as the engine's: one past the pool's size is
#: opened and closed for each use, which costs more than the statements it runs.
DRIVER_POOL_SIZE, DRIVER_MAX_OVERFLOW = 10, 10

_DRIVER_ENGINES: WeakKeyDictionary[Engine, AsyncEngine] = WeakKeyDictionary()


def driver_engine(engine: AsyncEngine) -> AsyncEngine:
    """The pool ``Positional`` statements run on, beside ``engine``'s (to the same database,
    disposed with it): its sessions plan each prepared statement once
    (``plan_cache_mode = force_generic_plan``); ``BEGIN_CUSTOM_PLANS`` plans a batch for its
    own arrays."""
    # PostgreSQL keeps a generic plan only if it looks no dearer than the custom ones. An
    # array parameter's length is known to a custom plan (one element for one state) and
    # guessed at ten in a generic one, so the write statements were planned again on every
    # run: 0.33 ms of PostgreSQL's time in a 2.3 ms state write. The statements are written
    # for the generic plan (one look-up per key; tests/integration/test_young_plans.py). The
    # engine's own pool keeps PostgreSQL's choice: its ORM queries filter on values whose
    # frequencies differ (a run state, a time range), where a plan for the value is better.
    found = _DRIVER_ENGINES.get(engine.sync_engine)
    if found is None:  # made once per engine, on first use
        found = db.create_engine(
            engine.url.render_as_string(hide_password=False),
            pool_size=DRIVER_POOL_SIZE,
            max_overflow=DRIVER_MAX_OVERFLOW,
            plan_cache_mode="force_generic_plan",
        )
        _DRIVER_ENGINES[engine.sync_engine] = found
        # Engine.dispose runs in the async engine's greenlet, where a sync dispose can await.
        event.listen(engine.sync_engine, "engine_disposed", lambda _engine: found.sync_engine.dispose())
    return found


@contextlib.asynccontextmanager
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The asyncpg connection of one of the driver pool's connections (``driver_engine``), for
    the block. One left broken, interrupted or inside a transaction block is dropped, never
    given back."""
    # The pool's own connection, without a SQLAlchemy Connection around it: the wrapper cost
    # more than the statements' Python.
    pooled = await driver_engine(engine).raw_connection()
    driver = pooled.driver_connection
    interrupted = False
    try:
        yield driver
    except asyncio.CancelledError:
        # A cancelled request may have left a statement in flight: its connection is dropped,
        # not rolled back (closing it ends the transaction on the server too).
        interrupted = True
        raise
    finally:
        # Returning a connection may close it (past the pool's size), which awaits: hence
        # the greenlet.
        if interrupted or driver.is_closed() or driver.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)
