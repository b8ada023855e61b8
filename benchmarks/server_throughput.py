"""Server throughput: task-run state updates/s and log lines/s (one per request and batched) and
createFlowRun/s.

Starts a real ``nbflow server start`` process per database (SQLite file, and
PostgreSQL when NBFLOW_TEST_POSTGRES_URL is set: a fresh database is made and
dropped), then drives it over HTTP with the nbflow client from this process.

With Prefect 3's server on the same databases and pgbench's simple-update rate as peers in
the same run (``server_peers.py``; ``--skip-peers`` leaves them out).

    python benchmarks/server_throughput.py [--updates 2000] [--batch 500] [--runs 300] [--workers 2]
        [--postgres-only] [--skip-peers]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from server_helpers import ServerProcess, fresh_postgres_database  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_peers  # noqa: E402

from nbflow.client import AsyncClient, Client  # noqa: E402
from nbflow.core.record import LogRecord, StateRecord, new_id  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

STRUCTURE = {"name": "bench", "tasks": [{"slug": f"t{i}"} for i in range(10)], "edges": [], "parameters": []}
STORAGE = {"kind": "local", "location": "/bench.py", "sha256": "c" * 64}


def start_server(home: Path, database_url: str, **options: float) -> ServerProcess:
    """A real ``nbflow server start`` with the server's own default timings unless given."""
    return ServerProcess(
        home, database_url, **{"scheduler_interval": 10.0, "recovery_interval": 5.0, **options}
    ).start()


@contextlib.contextmanager
def database(base: str | None, home: Path) -> Iterator[str]:
    """A database URL: a SQLite file under ``home``, or a fresh PostgreSQL database made
    beside ``base`` (dropped afterwards)."""
    if base is None:
        yield f"sqlite+aiosqlite:///{home / 'nbflow.db'}"
        return
    with fresh_postgres_database(base) as url:
        yield url


def task_updates(run_id: str, n: int) -> list[dict]:
    """n state changes in wire form: Running then Success for n/2 task runs."""
    out = []
    now = time.time()
    for i in range(n // 2):
        tid = new_id()
        for offset, state in enumerate(("Running", "Success")):
            record = StateRecord(
                flow_run_id=run_id,
                state=state,
                transition_id=new_id(),
                timestamp=now + offset,
                task_run_id=tid,
                task=f"t{i % 10}",
            )
            out.append(record.to_wire())
    return out


def log_lines(run_id: str, n: int, *, first: int = 0, execution: int = 0) -> list[dict]:
    """n log lines of one run in wire form, numbered in order from ``first``."""
    now = time.time()
    return [
        LogRecord(flow_run_id=run_id, level="INFO", message=f"line {seq} of the task's output",
                  timestamp=now + seq / 1000, task=f"t{seq % 10}", seq=seq, execution=execution).to_wire()
        for seq in range(first, first + n)
    ]  # fmt: skip


class ServerCPU:
    """CPU seconds the server process used (user and system), read between phases."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)

    def __call__(self) -> float:
        used = self.process.cpu_times()
        return used.user + used.system


def measure(url: str, key: str, updates: int, batch: int, runs: int, cpu: ServerCPU) -> dict[str, float]:
    results: dict[str, float] = {}
    with Client(url, key) as client:
        client.register_flow("bench", STRUCTURE, STORAGE)
        run = client.create_flow_run(flow_name="bench")

        # The floor of one request over this stack (client, HTTP, gate, GraphQL): no database.
        floor = 1000
        start, used = time.perf_counter(), cpu()
        for _ in range(floor):
            client.graphql("{ __typename }")
        results["{ __typename }/s, one per request (no database)"] = floor / (time.perf_counter() - start)
        results["{ __typename }, server CPU ms"] = (cpu() - used) * 1000 / floor

        # As an agent sends them: answered with the refusals only (none here).
        single = task_updates(run.id, min(updates, 1000))
        took = []
        start, used = time.perf_counter(), cpu()
        for change in single:
            began = time.perf_counter()
            assert client.set_task_run_states([change], refused_only=True) == []
            took.append(time.perf_counter() - began)
        results["state updates/s, one per request"] = len(single) / (time.perf_counter() - start)
        results["one state update, server CPU ms"] = (cpu() - used) * 1000 / len(single)
        took.sort()
        results["one state update, median ms"] = statistics.median(took) * 1000
        results["one state update, p95 ms"] = took[int(len(took) * 0.95)] * 1000

        batched = task_updates(run.id, updates)
        start = time.perf_counter()
        for i in range(0, len(batched), batch):
            assert client.set_task_run_states(batched[i : i + batch], refused_only=True) == []
        results[f"state updates/s, batches of {batch}"] = len(batched) / (time.perf_counter() - start)

        # The same, each change answered (what the API gives a caller that asks for every result).
        batched = task_updates(run.id, updates)
        start = time.perf_counter()
        for i in range(0, len(batched), batch):
            assert all(r.ok for r in client.set_task_run_states(batched[i : i + batch]))
        results[f"state updates/s, batches of {batch}, every result answered"] = len(batched) / (
            time.perf_counter() - start
        )

        # Log lines as a flow process sends them: one at a time, then in batches.
        singles = min(updates, 1000)
        lines = log_lines(run.id, singles + updates)
        took = []
        used = cpu()
        for one in lines[:singles]:
            began = time.perf_counter()
            assert client.write_run_logs([one]) == 1
            took.append(time.perf_counter() - began)
        results["one log line, median ms"] = statistics.median(took) * 1000
        results["one log line, server CPU ms"] = (cpu() - used) * 1000 / len(took)
        batched = lines[singles:]
        start = time.perf_counter()
        for i in range(0, len(batched), batch):
            assert client.write_run_logs(batched[i : i + batch]) == len(batched[i : i + batch])
        results[f"log lines/s, batches of {batch}"] = len(batched) / (time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(runs):
            client.create_flow_run(flow_name="bench")
        results["createFlowRun/s, sequential"] = runs / (time.perf_counter() - start)

    results["createFlowRun/s, 8 concurrent clients"] = concurrent_creates(url, key, runs)
    return results


def concurrent_creates(url: str, key: str, runs: int) -> float:
    """createFlowRun/s from 8 concurrent clients (the flow "bench" is registered)."""

    async def concurrent() -> float:
        async with AsyncClient(url, key) as aclient:
            start = time.perf_counter()
            sem = asyncio.Semaphore(8)

            async def one() -> None:
                async with sem:
                    await aclient.create_flow_run(flow_name="bench")

            await asyncio.gather(*(one() for _ in range(runs)))
            return runs / (time.perf_counter() - start)

    return asyncio.run(concurrent())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--skip-peers", action="store_true", help="no Prefect 3 server, no pgbench")
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes for the last row (1: skip it)"
    )
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--postgres-only", action="store_true", help="leave SQLite out")
    args = parser.parse_args()

    backends: list[tuple[str, str | None]] = [] if args.postgres_only else [("SQLite", None)]
    pg = os.environ.get("NBFLOW_TEST_POSTGRES_URL")
    if pg:
        backends.append(("PostgreSQL", pg))
    elif args.postgres_only:
        raise SystemExit("--postgres-only needs NBFLOW_TEST_POSTGRES_URL")
    prefect = None if args.skip_peers else server_peers.prefect_version()
    table: dict[str, dict[str, float]] = {}
    for name, base in backends:
        with tempfile.TemporaryDirectory() as tmp, database(base, Path(tmp)) as url:
            server = start_server(Path(tmp), url)
            key = server.admin_key or ""
            try:
                assert server.proc is not None
                table[f"nbflow, {name}"] = measure(
                    server.url, key, args.updates, args.batch, args.runs, ServerCPU(server.proc.pid)
                )
            finally:
                server.stop()
            if args.workers > 1:  # the same database and key, served by several processes
                server = start_server(Path(tmp), url, workers=args.workers)
                try:
                    table[f"nbflow, {name}"][
                        f"createFlowRun/s, 8 concurrent clients, {args.workers} workers"
                    ] = concurrent_creates(server.url, key, args.runs)
                finally:
                    server.stop()
        if prefect:
            table[f"Prefect {prefect}, {name}"] = server_peers.prefect_server(base, args.updates, args.runs)
    print_table(table, os.getloadavg()[0])
    if pg and not args.skip_peers:
        tps = server_peers.pgbench_tps(pg, args.pgbench_seconds)
        shown = f"{tps:,.0f} transactions/s" if isinstance(tps, float) else tps
        print(f"\npgbench -N (simple-update), 1 client, prepared, PostgreSQL: {shown}")
    if not args.skip_peers and not prefect:
        print(
            "\nPrefect 3 not measured: run benchmarks/engine_overhead.py once to install benchmarks/.venv-prefect"
        )


def print_table(table: dict[str, dict[str, float]], load: float) -> None:
    """Measures down, servers across, then each nbflow/Prefect ratio on the same database."""
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load:.2f}\n")  # fmt: skip
    names = list(table)
    metrics = list(next(iter(table.values())))
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for metric in metrics:
        shown = "{:,.2f}" if metric.endswith(" ms") else "{:,.0f}"
        cells = [shown.format(table[n][metric]) if metric in table[n] else "—" for n in names]
        print(f"| {metric} | " + " | ".join(cells) + " |")
    for name in names:
        peer = next((n for n in names if n.startswith("Prefect") and n.endswith(name.split(", ")[1])), None)
        if not name.startswith("nbflow") or peer is None:
            continue
        for metric in metrics:
            if metric not in table[peer]:
                continue
            if metric.endswith(" ms"):  # a time: how many times as long the peer takes
                print(f"{peer} / {name}, {metric}: {table[peer][metric] / table[name][metric]:.1f}x")
            else:
                print(f"{name} / {peer}, {metric}: {table[name][metric] / table[peer][metric]:.1f}x")


if __name__ == "__main__":
    main()
