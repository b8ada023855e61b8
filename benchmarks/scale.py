"""The server at the size of many teams: a PostgreSQL database seeded with 100,000 flow runs
and 5,000,000 task runs (10,000,000 journal rows), thousands of schedules, dozens of agents.

Measured against a real ``nbflow server start`` over HTTP with nbflow's own client, on a
fresh database made beside NBFLOW_TEST_POSTGRES_URL (dropped afterwards):

* the runs list (newest first; by state; by flow; a page deep) and a run's detail
  (its 50 task runs, its state history), median of ``--repeat`` calls;
* a scheduler pass over ``--schedules`` active schedules (in process, on the same database):
  the pass that makes their runs and a steady pass that finds nothing to do;
* ``--agents`` agents long-polling for work that never comes: the server's CPU;
* the live feed with ``--subscribers`` subscribers while 1,000 state changes are written:
  how long until every subscriber has every change, and the server's CPU.

    NBFLOW_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        python benchmarks/scale.py [--runs 100000] [--tasks 50] [--schedules 10000]

The seeding is done in SQL (``generate_series``) in one transaction per table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_throughput import database, start_server  # noqa: E402

from nbflow.client import AsyncClient, Client  # noqa: E402
from nbflow.core.record import StateRecord, new_id  # noqa: E402

FLOWS = 100  # the seeded runs belong to this many flows


def seed(
    url: str, tenant_id: str, runs: int, tasks: int, schedules: int, *, analyze: bool = True
) -> dict[str, float]:
    """Fill the database in SQL; seconds per table. ``analyze=False`` leaves the statistics as
    they were (``young_plans.py``)."""
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    structure = json.dumps(
        {"name": "bench", "tasks": [{"slug": f"t{i}"} for i in range(tasks)], "edges": [], "parameters": []}
    )
    storage = json.dumps({"kind": "local", "location": "/bench.py", "sha256": "c" * 64})
    schedule = json.dumps({"type": "interval", "interval": 3600})
    times: dict[str, float] = {}
    statements = {
        "flows": (
            """INSERT INTO flows (id, tenant_id, name, schedule_active, created)
            SELECT md5('f' || i)::uuid::text, %(t)s, 'bench-' || i, i >= %(flows)s, now()
            FROM generate_series(0, %(flows)s + %(schedules)s - 1) i""",
            """INSERT INTO flow_versions (id, tenant_id, flow_id, version, fingerprint, structure, parameters,
                schedule, labels, storage, max_resubmits, private, created)
            SELECT md5('v' || i)::uuid::text, %(t)s, md5('f' || i)::uuid::text, 1, md5('fp' || i),
                %(structure)s::json, '[]'::json,
                CASE WHEN i >= %(flows)s THEN %(schedule)s::json ELSE 'null'::json END,
                '[]'::json, %(storage)s::json, 0, false, now()
            FROM generate_series(0, %(flows)s + %(schedules)s - 1) i""",
        ),
        "flow_runs": (
            """INSERT INTO flow_runs (id, tenant_id, flow_id, flow_version_id, parameters, labels, state,
                state_message, version, scheduled_start_time, start_time, end_time, execution, resubmits,
                created, updated)
            SELECT md5('r' || r)::uuid::text, %(t)s, md5('f' || (r %% %(flows)s))::uuid::text,
                md5('v' || (r %% %(flows)s))::uuid::text, '{}'::json, '[]'::json,
                CASE WHEN r %% 100 < 90 THEN 'Success' WHEN r %% 100 < 95 THEN 'Failed'
                     ELSE 'Cancelled' END,
                '', 4, now() - r * interval '25 seconds', now() - r * interval '25 seconds',
                now() - r * interval '25 seconds' + interval '20 seconds', 1, 0, now(), now()
            FROM generate_series(0, %(runs)s - 1) r""",
        ),
        "task_runs": (
            """INSERT INTO task_runs (id, tenant_id, flow_run_id, task_slug, state, state_message, attempt,
                version, execution, start_time, end_time, created)
            SELECT md5('t' || r || '-' || k)::uuid::text, %(t)s, md5('r' || r)::uuid::text, 't' || k,
                'Success', '', 1, 2, 1, now(), now(), now()
            FROM generate_series(0, %(runs)s - 1) r, generate_series(0, %(tasks)s - 1) k""",
        ),
        "run_events": (
            """INSERT INTO run_events (tenant_id, position, kind, flow_run_id, task_run_id, task, state,
                previous, message, attempt, timestamp, transition_id, execution)
            SELECT %(t)s::text, (SELECT feed_position FROM tenants WHERE id = %(t)s::text) + 1 + (r * %(tasks)s + k) * 2 + s,
                'state', md5('r' || r)::uuid::text,
                md5('t' || r || '-' || k)::uuid::text, 't' || k,
                CASE WHEN s = 0 THEN 'Running' ELSE 'Success' END,
                CASE WHEN s = 0 THEN 'Pending' ELSE 'Running' END,
                '', 1, extract(epoch from now()), md5('e' || r || '-' || k || '-' || s), 1
            FROM generate_series(0, %(runs)s - 1) r, generate_series(0, %(tasks)s - 1) k,
                generate_series(0, 1) s""",
            "UPDATE tenants SET feed_position = feed_position + %(runs)s::bigint * %(tasks)s * 2 WHERE id = %(t)s",
        ),
    }
    values = {
        "t": tenant_id, "flows": FLOWS, "schedules": schedules, "runs": runs, "tasks": tasks,
        "structure": structure, "storage": storage, "schedule": schedule,
    }  # fmt: skip
    with psycopg.connect(plain, autocommit=False) as conn:
        conn.execute("SET synchronous_commit = off")
        for table, sql in statements.items():
            start = time.perf_counter()
            for statement in sql:
                conn.execute(statement, values)
            conn.commit()
            times[table] = time.perf_counter() - start
            print(f"  seeded {table} in {times[table]:.1f} s", flush=True)
        conn.autocommit = True
        if analyze:
            conn.execute("VACUUM ANALYZE")
    return times


def median_ms(call: Any, repeat: int) -> float:
    call()  # warm: connections, statement caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def queries(client: Client, repeat: int, tasks: int) -> dict[str, float]:
    """Runs list and run detail, as the UI and the CLI ask for them."""
    some_run = client.flow_runs(flow_name="bench-7", limit=1)[0][0].id
    detail = client.flow_run(some_run)
    assert len(detail.task_runs) == tasks, len(detail.task_runs)
    history = "query($id: String!) { runHistoryRows(flowRunId: $id) }"
    return {
        "runs list, newest 50": median_ms(lambda: client.flow_runs(limit=50), repeat),
        "runs list, Failed, newest 50": median_ms(lambda: client.flow_runs(states=["Failed"], limit=50), repeat),
        "runs list, one flow, newest 50": median_ms(lambda: client.flow_runs(flow_name="bench-7", limit=50), repeat),
        "runs list, page 100 (offset 4,950)": median_ms(lambda: client.flow_runs(limit=50, offset=4950), repeat),
        f"run detail ({tasks} task runs)": median_ms(lambda: client.flow_run(some_run), repeat),
        f"run history ({tasks * 2} states)": median_ms(lambda: client.graphql(history, {"id": some_run}), repeat),
    }  # fmt: skip


def scheduler(url: str) -> dict[str, float]:
    """Scheduler passes in process, on the seeded database."""
    from nbflow.server import db
    from nbflow.server.services.scheduler import schedule_flows

    async def go() -> dict[str, float]:
        engine = db.create_engine(url)
        sessions = db.sessionmaker(engine)
        out = {}
        start = time.perf_counter()
        made = await schedule_flows(sessions)
        out[f"scheduler pass making {made:,} runs"] = time.perf_counter() - start
        start = time.perf_counter()
        made = await schedule_flows(sessions)
        out[f"scheduler pass, steady ({made} to make)"] = time.perf_counter() - start
        await engine.dispose()
        return out

    return asyncio.run(go())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def long_polling(url: str, key: str, pid: int, agents: int, seconds: float) -> dict[str, float]:
    """``agents`` agents asking for work with labels nothing needs; the server's CPU share."""

    async def go() -> float:
        async with AsyncClient(url, key) as client:  # httpx pools up to 100 connections
            stop = time.monotonic() + seconds

            async def agent(i: int) -> None:
                while time.monotonic() < stop:
                    await client.get_runs_in_queue(labels=[f"nowhere-{i}"], wait=min(10.0, seconds))

            await asyncio.sleep(0)
            before, start = cpu_seconds(pid), time.monotonic()
            await asyncio.gather(*(agent(i) for i in range(agents)))
            return (cpu_seconds(pid) - before) / (time.monotonic() - start)

    return {f"{agents} agents long-polling: server CPU (% of a core)": asyncio.run(go()) * 100}


def live_feed(url: str, key: str, pid: int, subscribers: int, changes: int) -> dict[str, float]:
    """``subscribers`` open feeds while ``changes`` state changes are written in batches of 20."""

    async def go() -> dict[str, float]:
        got = [0] * subscribers
        ready = asyncio.Event()
        connected = 0

        async def subscribe(i: int, http: httpx.AsyncClient) -> None:
            nonlocal connected
            headers = {"Authorization": f"Bearer {key}"}
            async with http.stream("GET", f"{url}/events", headers=headers) as response:
                connected += 1
                if connected == subscribers:
                    ready.set()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        got[i] += sum(1 for r in json.loads(line[6:]) if r.get("kind") == "state")
                    if got[i] >= changes:
                        return

        timeout = httpx.Timeout(120.0)
        limits = httpx.Limits(max_connections=subscribers + 5)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as http, AsyncClient(url, key) as client:
            run = await client.create_flow_run(flow_name="bench-0")
            readers = [asyncio.create_task(subscribe(i, http)) for i in range(subscribers)]
            await asyncio.wait_for(ready.wait(), 60)
            await asyncio.sleep(0.5)
            before, start = cpu_seconds(pid), time.monotonic()
            records = []
            for i in range(changes // 2):
                tid = new_id()
                for state in ("Running", "Success"):
                    records.append(
                        StateRecord(
                            flow_run_id=run.id, state=state, transition_id=new_id(), timestamp=time.time(),
                            task_run_id=tid, task=f"t{i % 50}",
                        ).to_wire()
                    )  # fmt: skip
            written = 0
            for i in range(0, len(records), 20):
                await client.set_task_run_states(records[i : i + 20])
                written += 20
            wrote = time.monotonic() - start
            await asyncio.wait_for(asyncio.gather(*readers), 120)
            elapsed = time.monotonic() - start
            cpu = (cpu_seconds(pid) - before) / elapsed
        return {
            f"feed: {changes:,} changes written (batches of 20), s": wrote,
            f"feed: until all {subscribers} subscribers had all, s": elapsed,
            "feed: server CPU meanwhile (% of a core)": cpu * 100,
        }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=50, help="task runs per flow run")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    base = os.environ.get("NBFLOW_TEST_POSTGRES_URL")
    if not base:
        sys.exit("set NBFLOW_TEST_POSTGRES_URL (a PostgreSQL server to make a scratch database on)")

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, database(base, Path(tmp)) as url:
        server = start_server(Path(tmp), url, scheduler_interval=100_000)
        proc, server_url, key = server.proc, server.url, server.admin_key
        assert proc is not None, "server did not start"
        assert key is not None, "server printed no admin key"
        try:
            with Client(server_url, key) as client:
                tenant_id = client.graphql("{ me { tenantId } }", {})["me"]["tenantId"]
                agent_key = client.create_api_key("agent").key
            print(f"seeding {args.runs:,} flow runs x {args.tasks} task runs, {args.schedules:,} schedules")
            seed(url, tenant_id, args.runs, args.tasks, args.schedules)
            with Client(server_url, key) as client:
                results |= queries(client, args.repeat, args.tasks)
            results |= {k: v * 1000 for k, v in scheduler(url).items()}
            results |= long_polling(server_url, agent_key, proc.pid, args.agents, args.poll_seconds)
            results |= live_feed(server_url, key, proc.pid, args.subscribers, 1000)
        finally:
            server.stop()

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"PostgreSQL with {args.runs:,} flow runs, {args.runs * args.tasks:,} task runs\n")
    print("| measurement | result |")
    print("|---|---:|")
    for name, value in results.items():
        unit = "" if "%" in name or name.endswith(", s") else " ms"
        print(f"| {name} | {value:,.1f}{unit} |")


if __name__ == "__main__":
    main()
