"""A write of an execution that loses its run at that very moment: on PostgreSQL a log line or
task state checked against the run's execution must hold that row until it commits, so a new
claim (or a release) waits for it and the feed shows the old execution's records before the
change that superseded it. Without the lock the release commits first and a zombie record lands
after it — what the chaos suite caught once under load."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import ONE_TASK_STORAGE, ONE_TASK_STRUCTURE, fresh_postgres_database, postgres_url

from nbflow.core.record import LogRecord, StateRecord, new_id
from nbflow.core.states import StateType
from nbflow.server import auth, db
from nbflow.server.models import RunEvent
from nbflow.server.services.flows import FlowSpec, register_flow
from nbflow.server.services.logs import write_logs
from nbflow.server.services.runs import create_flow_run, get_flow_run
from nbflow.server.services.transitions import server_change, set_flow_run_state, set_task_run_states

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def positions_after_a_release_races(url: str, write: str) -> dict[str, int]:
    """Execution 1 writes (a log line or a task state) in a transaction that stays open while the
    server releases the run; returns each record's feed position."""

    async def go() -> dict[str, int]:
        engine = db.create_engine(url)
        await db.migrate(engine)
        sessions = db.sessionmaker(engine)
        async with sessions.begin() as session:
            tenant, _ = await auth.create_tenant(session, "team")
            spec = FlowSpec("one", {**ONE_TASK_STRUCTURE, "name": "one"}, None, [], ONE_TASK_STORAGE)
            flow, _, _ = await register_flow(session, tenant.id, spec)
            run, _ = await create_flow_run(session, tenant.id, flow)
        async with sessions.begin() as session:
            claim = StateRecord(
                flow_run_id=run.id, state="Submitted", transition_id=new_id(), timestamp=time.time()
            )
            assert (await set_flow_run_state(session, tenant.id, claim, version=run.version)).ok
        execution = 2  # the claim's resulting version

        async def release() -> None:
            async with sessions.begin() as session:
                current = await get_flow_run(session, tenant.id, run.id)
                change = server_change(current, StateType.SCHEDULED, "resubmitted: no heartbeat")
                assert (await set_flow_run_state(session, tenant.id, change, version=None)).ok

        async with sessions.begin() as session:
            if write == "log":
                line = LogRecord(run.id, "INFO", "zombie?", time.time(), execution=execution, seq=1)
                await write_logs(session, tenant.id, [line])
            else:
                change = StateRecord(
                    flow_run_id=run.id, task_run_id=new_id(), task="a", state="Running",
                    transition_id=new_id(), timestamp=time.time(), execution=execution,
                )  # fmt: skip
                assert (await set_task_run_states(session, tenant.id, [change]))[0].ok
            releasing = asyncio.create_task(release())
            await asyncio.sleep(1.0)  # the release has every chance to overtake this write
        await releasing
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(RunEvent.kind, RunEvent.state, RunEvent.position).where(
                        RunEvent.flow_run_id == run.id
                    )
                )
            ).all()
        await engine.dispose()
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
