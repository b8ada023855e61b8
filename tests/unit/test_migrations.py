"""The migrations build exactly the schema the models describe: a model change without its
migration (or a migration that drifts from the models) fails here, on SQLite, before any
server would start against a database that lacks a column or an index."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nbflow.server import db
from nbflow.server.models import Base

if TYPE_CHECKING:
    from pathlib import Path


def differences(path: Path) -> list[Any]:
    """What autogenerate would change to make the migrated database match the models."""

    async def go() -> list[Any]:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        await db.migrate(engine)

        def compare(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            return compare_metadata(context, Base.metadata)

        async with engine.connect() as conn:
            found = await conn.run_sync(compare)
        await engine.dispose()
        return found

    # Its own thread: Playwright's sync API may keep an event loop running in the main thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    assert differences(tmp_path / "nbflow.db") == []


def test_the_comparison_sees_a_missing_index(tmp_path: Path) -> None:
    from sqlalchemy import Index

    table = Base.metadata.tables["flow_runs"]
    extra = Index("ix_test_only", table.c.state)
    try:
        found = differences(tmp_path / "nbflow.db")
    finally:
        table.indexes.discard(extra)
    assert [d[0] for d in found] == ["add_index"] and found[0][1].name == "ix_test_only"
