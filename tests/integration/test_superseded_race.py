"""A write of an execution that loses its run at that very moment: on PostgreSQL a log line or
task state checked against the run's execution must hold that row until it commits, so a new
claim (or a release) waits for it and the feed shows the old execution's records before the
change that superseded it. Without the lock the release commits first and a zombie record lands
after it — what the chaos suite caught once under load.

Task states are read without a lock and written by one statement that checks what the read
saw (``services/taskstore.py``): a release that commits between the read and the write must
make the write decide again, and refuse the superseded record."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import claimed_run, fresh_postgres_database, postgres_url

from nbflow.core.record import LogRecord, StateRecord, new_id
from nbflow.core.states import StateType
from nbflow.server.models import RunEvent
from nbflow.server.pgdriver import CUSTOM_PLAN_FROM
from nbflow.server.services.logs import write_logs
from nbflow.server.services.runs import get_flow_run
from nbflow.server.services.taskstore import PostgresTaskRuns, task_run_store
from nbflow.server.services.transitions import (
    record_task_run_states,
    server_change,
    set_flow_run_state,
    set_task_run_states,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def positions_after_a_release_races(url: str, write: str) -> dict[str, int]:
    """Execution 1 writes (a log line or a task state) in a transaction that stays open while the
    server releases the run; returns each record's feed position."""

    async def go() -> dict[str, int]:
        made = await claimed_run(url)
        sessions, tenant_id, run_id = made.sessions, made.tenant_id, made.run_id
        execution = 2  # the claim's resulting version

        async def release() -> None:
            async with sessions.begin() as session:
                current = await get_flow_run(session, tenant_id, run_id)
                change = server_change(current, StateType.SCHEDULED, "resubmitted: no heartbeat")
                assert (await set_flow_run_state(session, tenant_id, change, version=None)).ok

        if write == "log":
            async with sessions.begin() as session:
                line = LogRecord(run_id, "INFO", "zombie?", time.time(), execution=execution, seq=1)
                await write_logs(session, tenant_id, [line])
                releasing = asyncio.create_task(release())
                await asyncio.sleep(1.0)  # the release has every chance to overtake this write
        else:
            # A batch large enough to be written in a transaction: it stays open after the write.
            changes = [
                StateRecord(
                    flow_run_id=run_id, task_run_id=new_id(), task="a", state="Running",
                    transition_id=new_id(), timestamp=time.time(), execution=execution,
                )
                for _ in range(CUSTOM_PLAN_FROM + 1)
            ]  # fmt: skip
            async with task_run_store(sessions) as store:
                assert all(r.ok for r in await set_task_run_states(store, tenant_id, changes))
                releasing = asyncio.create_task(release())
                await asyncio.sleep(1.0)
        await releasing
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(RunEvent.kind, RunEvent.state, RunEvent.position).where(
                        RunEvent.flow_run_id == run_id
                    )
                )
            ).all()
        await sessions.kw["bind"].dispose()
        return {f"{kind}:{state}": position for kind, state, position in rows}

    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own (Playwright may hold one)
        return pool.submit(asyncio.run, go()).result()


@pytest.mark.parametrize("write", ["log", "task state"])
def test_a_write_of_the_superseded_execution_never_lands_after_the_release(write: str) -> None:
    if not postgres_url():
        pytest.skip("NBFLOW_TEST_POSTGRES_URL is not set")
    with fresh_postgres_database() as url:
        positions = positions_after_a_release_races(url, write)
    old = positions["log:None"] if write == "log" else positions["state:Running"]
    assert old < positions["state:Scheduled"], positions


def test_a_task_state_read_before_a_new_claim_and_written_after_it_is_refused() -> None:
    if not postgres_url():
        pytest.skip("NBFLOW_TEST_POSTGRES_URL is not set")

    async def go() -> tuple[list[bool], list[str | None], list[tuple[str, str | None]]]:
        made = await claimed_run(url)
        sessions, tenant_id, run_id = made.sessions, made.tenant_id, made.run_id
        released = False
        real_write = PostgresTaskRuns.write

        async def write_after_a_release(self: PostgresTaskRuns, *args: object) -> None:
            nonlocal released
            if not released:  # the first attempt: between its read and its write the run is
                released = True  # released and claimed again, by a new execution
                async with sessions.begin() as session:
                    current = await get_flow_run(session, tenant_id, run_id)
                    change = server_change(current, StateType.SCHEDULED, "resubmitted: no heartbeat")
                    assert (await set_flow_run_state(session, tenant_id, change, version=None)).ok
                async with sessions.begin() as session:
                    current = await get_flow_run(session, tenant_id, run_id)
                    again = StateRecord(
                        flow_run_id=run_id, state="Submitted", transition_id=new_id(), timestamp=time.time()
                    )
                    assert (await set_flow_run_state(session, tenant_id, again, version=current.version)).ok
            await real_write(self, *args)  # type: ignore[arg-type]

        change = StateRecord(
            flow_run_id=run_id, task_run_id=new_id(), task="a", state="Running",
            transition_id=new_id(), timestamp=time.time(), execution=2,
        )  # fmt: skip
        PostgresTaskRuns.write = write_after_a_release  # type: ignore[method-assign]
        try:
            results = await record_task_run_states(sessions, tenant_id, [change])
        finally:
            PostgresTaskRuns.write = real_write  # type: ignore[method-assign]
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(RunEvent.kind, RunEvent.state)
                    .where(RunEvent.flow_run_id == run_id)
                    .order_by(RunEvent.position)
                )
            ).all()
        await sessions.kw["bind"].dispose()
        return [r.ok for r in results], [r.error for r in results], [tuple(r) for r in rows]

    with fresh_postgres_database() as url, ThreadPoolExecutor(max_workers=1) as pool:
        oks, errors, journal = pool.submit(asyncio.run, go()).result()
    assert oks == [False], errors
    assert "execution" in (errors[0] or ""), errors
    # The journal holds the run's own changes and nothing of the superseded execution.
    assert journal == [("state", s) for s in ("Scheduled", "Submitted", "Scheduled", "Submitted")]
