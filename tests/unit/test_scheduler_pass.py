"""The scheduler's pass, in process on a SQLite file: it makes exactly the missing runs, and
a pass over schedules that need nothing costs a fixed number of statements, however many."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, select

from nbflow.server.models import FlowRun
from nbflow.server.services.flows import FlowSpec, register_flow, set_schedule_active
from nbflow.server.services.scheduler import RUNS_AHEAD, schedule_flows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import run_in_own_loop, team_database  # noqa: E402

STRUCTURE = {"name": "f", "tasks": [{"slug": "a"}], "edges": [], "parameters": []}
STORAGE = {"kind": "local", "location": "/tmp/f.py", "sha256": "0" * 64}
HOUR = {"type": "interval", "interval": 3600, "start_date": "2030-01-01T00:00:00+00:00"}


def scenario(tmp_path: Path, flows: int) -> dict[str, object]:
    async def go() -> dict[str, object]:
        engine, sessions, tenant_id = await team_database(tmp_path)
        async with sessions.begin() as session:
            ids = []
            for i in range(flows):
                spec = FlowSpec(f"f{i}", {**STRUCTURE, "name": f"f{i}"}, HOUR, [], STORAGE)
                flow, _, _ = await register_flow(session, tenant_id, spec)
                ids.append(flow.id)
            plain = FlowSpec("no-schedule", {**STRUCTURE, "name": "no-schedule"}, None, [], STORAGE)
            await register_flow(session, tenant_id, plain)
        statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        start = datetime(2030, 1, 1, tzinfo=UTC) - timedelta(minutes=1)
        out: dict[str, object] = {"first": await schedule_flows(sessions, now=start)}
        statements.clear()
        out["quiet"] = await schedule_flows(sessions, now=start)
        out["quiet_statements"] = len(statements)
        # An hour on, every schedule's first run is due: each flow needs (and gets) one more.
        out["an_hour_on"] = await schedule_flows(sessions, now=start + timedelta(hours=1))
        async with sessions.begin() as session:
            await set_schedule_active(session, tenant_id, ids[0], False)
        out["off"] = await schedule_flows(sessions, now=start + timedelta(hours=1))
        async with sessions() as session:
            out["runs"] = (await session.execute(select(func.count()).select_from(FlowRun))).scalar_one()
        await engine.dispose()
        return out

    return run_in_own_loop(go())


def test_a_pass_makes_the_missing_runs_and_a_quiet_pass_costs_two_statements(tmp_path: Path) -> None:
    out = scenario(tmp_path, flows=30)
    assert out["first"] == 30 * RUNS_AHEAD
    assert out["quiet"] == 0
    assert out["quiet_statements"] == 2  # 30 quiet schedules and a flow without one: two queries
    assert out["an_hour_on"] == 30
    assert out["off"] == 0  # a schedule turned off gets nothing, and its waiting runs are gone
    assert out["runs"] == 30 * RUNS_AHEAD + 30 - (RUNS_AHEAD + 1)  # flow 0 lost its 11 waiting runs
