"""The pool the server's driver statements run on (``pgdriver.driver_engine``).

One task state or one log line at a time is what an agent's flow process sends most; PostgreSQL
planned those statements again on every write (a third of a millisecond each) because a
generic plan's guess at an array's length made it look dearer. On the driver's own pool each
statement is planned once; a large batch still gets a plan for its own arrays; and the pool
goes when its engine is disposed, leaving no connection behind.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import claimed_run, on_postgres

from nbflow.core.record import LogRecord, new_id
from nbflow.server.pgdriver import pooled_driver
from nbflow.server.services import logs, taskstore
from nbflow.server.services.transitions import record_task_run_states

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def plan_counts(driver: Any) -> dict[str, tuple[int, int]]:
    """Each statement prepared on ``driver``'s session: (generic plans, custom plans) made."""
    rows = await driver.fetch("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
    return {row["statement"]: (row["generic_plans"], row["custom_plans"]) for row in rows}


def test_single_writes_are_planned_once_and_a_batch_for_its_own_arrays() -> None:
    async def go(url: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        team = await claimed_run(url)
        engine = team.sessions.kw["bind"]
        for seq in range(12):  # one at a time, as a flow process sends them
            task = new_id()
            for state in ("Running", "Success"):
                [answer] = await record_task_run_states(
                    team.sessions, team.tenant_id, [team.change(task, state)]
                )
                assert answer.ok, answer.message
            line = LogRecord(
                flow_run_id=team.run_id, level="INFO", message=f"line {seq}", timestamp=time.time(),
                execution=2, seq=seq,
            )  # fmt: skip
            assert await logs.record_logs(team.sessions, team.tenant_id, [line]) == 1
        # One request at a time takes the pool's one connection each time: its session is the one
        # that prepared the statements.
        async with pooled_driver(engine) as driver:
            singles = await plan_counts(driver)
        batch = []
        for _ in range(taskstore.CUSTOM_PLAN_FROM):
            task = new_id()
            batch += [team.change(task, "Running"), team.change(task, "Success")]
        assert all(a.ok for a in await record_task_run_states(team.sessions, team.tenant_id, batch))
        async with pooled_driver(engine) as driver:
            after_batch = await plan_counts(driver)
        await engine.dispose()
        return singles, after_batch

    singles, after_batch = on_postgres(go)
    write, log_write = taskstore._WRITE.sql, logs._WRITE.sql
    assert write in singles and log_write in singles, (
        f"not prepared on the pool's connection: {list(singles)}"
    )
    generic, custom = singles[write]
    assert custom == 0 and generic == 24, f"24 state writes made {generic} generic and {custom} custom plans"
    generic, custom = singles[log_write]
    assert custom == 0 and generic == 12, f"12 log writes made {generic} generic and {custom} custom plans"
    # The batch (more than CUSTOM_PLAN_FROM changes) was planned for its own 16 rows.
    assert after_batch[write] == (24, 1), after_batch[write]


def test_the_driver_pool_is_closed_with_its_engine() -> None:
    async def go(url: str) -> tuple[int, int]:
        team = await claimed_run(url)
        engine = team.sessions.kw["bind"]
        task = new_id()
        for state in ("Running", "Success"):
            [answer] = await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, state)])
            assert answer.ok, answer.message
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        watcher = await asyncpg.connect(plain)
        try:
            others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            open_before = await watcher.fetchval(others)
            await engine.dispose()
            open_after = await watcher.fetchval(others)
        finally:
            await watcher.close()
        return open_before, open_after

    open_before, open_after = on_postgres(go)
    assert open_before >= 2, "the engine's and the driver pool's connections should both be open"
    assert open_after == 0, f"{open_after} connections outlived engine.dispose()"
