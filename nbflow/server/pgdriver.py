"""Statements on PostgreSQL's driver connection, for the server's hottest writes.

The task-state and log writers (``services/taskstore.py``, ``services/logs.py``) speak to
asyncpg directly: SQLAlchemy's session and ``Connection`` around a statement cost more than
the statement's own Python. They still take the connection from the engine's one pool
(``pooled_driver``), and write their SQL with named parameters, compiled once to asyncpg's
``$n`` form (``Positional``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.util import greenlet_spawn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.sql import ClauseElement

#: The SQLSTATE of ``nbflow_unless_stale`` (migration 0006): what a write statement raises
#: when the rows it was decided on moved since they were read.
STALE = "NB001"

#: Batches of more rows than this are written in a transaction that plans each statement for
#: its own arrays (``BEGIN_CUSTOM_PLANS``).
CUSTOM_PLAN_FROM = 8

# A prepared statement's plan is made generic after five runs if the generic one looks no
# dearer. Planned while the tables are young (before autovacuum's first ANALYZE), it scans
# them whole: a batch of 500 task states read 30 times slower until the next ANALYZE. A
# batch is planned for its own arrays instead (a fraction of a millisecond); a few rows keep
# the cached plan, whose choice is the same index.
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


@contextlib.asynccontextmanager
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The asyncpg connection of one of the pool's connections, for the block. One left
    broken, interrupted or inside a transaction block is dropped, never given back."""
    # The pool's own connection, without a SQLAlchemy Connection around it: the wrapper cost
    # more than the statements' Python.
    pooled = await engine.raw_connection()
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
