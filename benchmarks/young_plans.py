"""A server's first minutes on PostgreSQL: every hot request on plans made while the tables were
young, against the same requests once the tables are analyzed.

PostgreSQL makes a prepared statement's plan generic after five runs, from the statistics it
has then, and keeps it until the table is analyzed. On a new database those statistics say
"empty": a plan made then may scan a table whole, or take the wrong one of two indexes, and
keeps doing so as the table grows, until autovacuum's ANALYZE (a minute or more later, and
never while it is switched off). This script makes that window last: it switches autovacuum
off for nbflow's tables, warms every request of an agent's cycle and of the web UI on the
young database, grows it (``scale.seed``, in SQL, no ANALYZE), then times the same requests
on the plans the connections kept, then again after ``ANALYZE``. A ratio well above 1 is a
statement whose plan does not keep to its keys.

    NBFLOW_TEST_POSTGRES_URL=... python benchmarks/young_plans.py [--runs 20000] [--tasks 10] [--cycles 20]

The server runs in process (httpx's ASGI transport), so what is timed is the request's own
work and its statements, not HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
sys.path.insert(0, str(ROOT))

from scale import seed  # noqa: E402
from server_helpers import flow_change, fresh_postgres_database  # noqa: E402

from nbflow.client import AsyncClient  # noqa: E402
from nbflow.core.record import LogRecord, StateRecord, new_id  # noqa: E402

STRUCTURE = {"name": "young", "tasks": [{"slug": "a"}, {"slug": "b"}], "edges": [], "parameters": []}
STORAGE = {"kind": "local", "location": "/young.py", "sha256": "0" * 64}
TABLES = (
    "flows",
    "flow_versions",
    "flow_runs",
    "flow_run_labels",
    "task_runs",
    "run_events",
    "agents",
    "tenants",
)


async def _sql(url: str, statements: list[str]) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as conn:
        for statement in statements:
            await conn.execute(statement)


class Cycle:
    """One agent's cycle for a new run, and the web UI's reads, each request timed by name."""

    def __init__(self, admin: AsyncClient, agent: AsyncClient, agent_id: str, transport: Any) -> None:
        self.admin = admin
        self.agent = agent
        self.agent_id = agent_id
        self.transport = transport
        self.times: dict[str, list[float]] = defaultdict(list)

    async def timed(self, name: str, call: Any) -> Any:
        start = time.perf_counter()
        result = await call
        self.times[name].append((time.perf_counter() - start) * 1000)
        return result

    async def once(self) -> None:
        run = await self.timed("createFlowRun", self.admin.create_flow_run(flow_name="young"))
        await self.timed("getRunsInQueue", self.agent.get_runs_in_queue(limit=10))
        (claim,) = await self.timed(
            "claim (Submitted)",
            self.agent.set_flow_run_states(
                [flow_change(run.id, "Submitted", run.version, agent_id=self.agent_id)]
            ),
        )
        async with AsyncClient("http://bench", claim.run_token, transport=self.transport) as flow:
            (running,) = await self.timed(
                "flow run Running", flow.set_flow_run_states([flow_change(run.id, "Running", claim.version)])
            )
            await self.timed("heartbeat", self.agent.heartbeat([run.id], self.agent_id))
            task_run_id = new_id()
            for state in ("Running", "Success"):
                change = StateRecord(
                    flow_run_id=run.id, task_run_id=task_run_id, task="a", state=state,
                    transition_id=new_id(), timestamp=time.time(), execution=claim.version,
                )  # fmt: skip
                await self.timed(
                    f"task state {state}", flow.set_task_run_states([change.to_wire()], refused_only=True)
                )
            line = LogRecord(
                flow_run_id=run.id, level="INFO", message="hello", timestamp=time.time(), task="a",
                execution=claim.version, seq=0,
            )  # fmt: skip
            await self.timed("log line", flow.write_run_logs([line.to_wire()]))
            await self.timed(
                "flow run Success",
                flow.set_flow_run_states([flow_change(run.id, "Success", running.version)]),
            )
        await self.timed("runs list (newest 50)", self.admin.flow_runs(limit=50))
        await self.timed("runs list, one flow", self.admin.flow_runs(flow_name="young", limit=50))
        await self.timed("run detail", self.admin.flow_run(run.id))
        await self.timed("run logs", self.admin.run_logs(run.id))

    def medians(self) -> dict[str, float]:
        medians = {name: statistics.median(samples) for name, samples in self.times.items()}
        self.times.clear()
        return medians


async def measure(url: str, runs: int, tasks: int, cycles: int) -> None:
    import httpx

    from nbflow.server.app import Settings, create_app

    keys: list[str] = []
    app = create_app(Settings(database_url=url, run_scheduler=False, run_recovery=False, run_hooks=False,
                              on_bootstrap=keys.append))  # fmt: skip
    async with app.router.lifespan_context(app):
        await _sql(url, [f"ALTER TABLE {table} SET (autovacuum_enabled = false)" for table in TABLES])
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://bench", keys[0], transport=transport) as admin:
            await admin.register_flow("young", STRUCTURE, STORAGE)
            agent_id = await admin.register_agent("young-agent")
            cycle = Cycle(admin, admin, agent_id, transport)
            for _ in range(cycles):  # the plans are made here, on young tables
                await cycle.once()
            young_tables = cycle.medians()
            tenant = (await admin.me())["tenantId"]
            print(
                f"growing the database: {runs:,} runs, {runs * tasks:,} task runs (no ANALYZE) ...",
                flush=True,
            )
            await asyncio.to_thread(seed, url, tenant, runs, tasks, 0, analyze=False)
            # The seed's dirty pages written out now, not during the timing that follows.
            await _sql(url, ["CHECKPOINT"])
            for _ in range(cycles):
                await cycle.once()
            kept = cycle.medians()
            await _sql(url, ["ANALYZE"])
            for _ in range(cycles):
                await cycle.once()
            analyzed = cycle.medians()
    print(f"\n{cycles} cycles each; median ms per request\n")
    print("| request | young tables | grown, plans made young | grown, after ANALYZE | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name in young_tables:
        ratio = kept[name] / analyzed[name]
        flag = " **" if ratio > 2 else ""
        print(
            f"| {name} | {young_tables[name]:.2f} | {kept[name]:.2f} | {analyzed[name]:.2f} | {ratio:.2f}x{flag} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20_000, help="flow runs the database grows by")
    parser.add_argument("--tasks", type=int, default=10, help="task runs (and 2 journal rows each) per run")
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("NBFLOW_TEST_POSTGRES_URL")
    if not url:
        sys.exit("set NBFLOW_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    print(f"machine: load average {os.getloadavg()[0]:.2f}")
    with fresh_postgres_database(url) as fresh:
        asyncio.run(measure(fresh, args.runs, args.tasks, args.cycles))


if __name__ == "__main__":
    main()
