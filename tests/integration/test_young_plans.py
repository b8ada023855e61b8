"""Plans made in a server's first minutes keep to their keys.

PostgreSQL makes a prepared statement's plan generic after five runs and keeps it until the
table is analyzed; made on a new database, it costs every index alike. A look-up of a run, a
run's task rows, a run's journal or a transition by its key must then still use that key's
index, not walk the tenant's prefix of a (tenant, ...) index, which grows with every run the
tenant ever made (``benchmarks/young_plans.py`` measures what that cost: up to 615 ms a
flow-run state change at 400,000 journal rows).

Each statement the server sends for these requests, captured as sent, is planned here as the
young database would cache it (``plan_cache_mode = force_generic_plan``) and its plan read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import claimed_run, fresh_postgres_database, postgres_url, run_in_own_loop, sql_literal

from nbflow.core.record import new_id
from nbflow.server.pgdriver import pooled_driver
from nbflow.server.services import dashboard, journal, logs, runs

pytestmark = pytest.mark.integration

#: Indexes led by the tenant: right for a tenant's lists, wrong for a look-up by another key.
TENANT_PREFIXES = (
    "ix_flow_runs_tenant_id", "ix_flow_runs_tenant_time", "ix_flow_runs_queue", "ix_task_runs_tenant_id",
    "run_events_tenant_id_position_key",
)  # fmt: skip


async def generic_plans(url: str) -> dict[str, list[str]]:
    """Each look-up's statements as sent, and the generic plan of each on the young tables."""
    team = await claimed_run(url)
    engine = team.sessions.kw["bind"]
    sent: list[tuple[str, Any]] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: sent.append((a[2], a[3])))
    look_ups = {
        "a run by id": lambda s: runs.get_flow_run(s, team.tenant_id, team.run_id),
        "heartbeat": lambda s: runs.heartbeat(s, team.tenant_id, [team.run_id], None),
        "a run's task rows": lambda s: runs.task_runs(s, team.tenant_id, team.run_id),
        "a run's state history": lambda s: runs.state_history(s, team.tenant_id, flow_run_id=team.run_id),
        "a run's timeline": lambda s: dashboard.run_history(s, team.tenant_id, team.run_id),
        "a run's log lines": lambda s: logs.read_logs(s, team.tenant_id, team.run_id),
        "a run's log search": lambda s: dashboard.search_logs(s, team.tenant_id, dashboard.LogQuery(team.run_id)),
        "recorded transitions": lambda s: journal.recorded_transitions(s, team.tenant_id, [new_id(), new_id()]),
        "heartbeat of three runs": lambda s: runs.heartbeat(s, team.tenant_id, [team.run_id, new_id(), new_id()], None),
        "one flow's runs": lambda s: runs.list_flow_runs(s, team.tenant_id, runs.RunFilter(flow_name="one")),
    }  # fmt: skip
    statements: dict[str, list[tuple[str, Any]]] = {}
    for name, look_up in look_ups.items():
        sent.clear()
        async with team.sessions.begin() as session:
            await look_up(session)
        statements[name] = list(sent)
    plans: dict[str, list[str]] = {}
    async with pooled_driver(engine) as driver:
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for name, sent_here in statements.items():
                plans[name] = []
                for i, (sql, args) in enumerate(sent_here):
                    await driver.execute(f"PREPARE young_{i} AS {sql}")
                    rows = await driver.fetch(
                        f"EXPLAIN EXECUTE young_{i}({', '.join(sql_literal(a) for a in args or ())})"
                    )
                    await driver.execute(f"DEALLOCATE young_{i}")
                    plans[name].append(sql + "\n" + "\n".join(row[0] for row in rows))
        finally:
            await driver.execute("RESET plan_cache_mode")
    return plans


def test_look_ups_by_key_keep_to_their_key_on_plans_made_young() -> None:
    if not postgres_url():
        pytest.skip(
            "NBFLOW_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    with fresh_postgres_database() as url:
        plans = run_in_own_loop(generic_plans(url))
    for name, statement_plans in plans.items():
        assert statement_plans, f"{name}: no statement captured"
        for plan in statement_plans:
            assert "Seq Scan on flow_runs" not in plan and "Seq Scan on task_runs" not in plan, (
                f"{name}:\n{plan}"
            )
            assert "Seq Scan on run_events" not in plan, f"{name}:\n{plan}"
            used = [index for index in TENANT_PREFIXES if index in plan]
            assert not used, f"{name} walks a tenant's prefix of {used}:\n{plan}"
