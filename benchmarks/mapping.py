"""Mapping overhead per child: one no-op task mapped over n elements.

    python benchmarks/mapping.py                      # nbflow local, threads, Dask; Prefect 3 if found
    python benchmarks/mapping.py --sizes 100 --dask-sizes 100 --repeat 1

nbflow runs ``noop.map(Parameter("xs"))`` (each child a full task run: trigger, inputs,
states, captured output) on ``local``, ``threads`` and a Dask ``LocalCluster`` (children
submitted in one batch from the parent's worker). Prefect 3's ``noop.map(range(n))`` runs in
the Prefect venv ``benchmarks/engine_overhead.py`` installs (``benchmarks/.venv-prefect``), or
in this interpreter if ``prefect`` imports here; without either it is skipped and the report
says so. Prints microseconds per child (nbflow: median of ``--repeat``; Prefect: one timed
run per size, after a warm-up run) and Prefect's time over nbflow's (local, Dask).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nbflow import DaskExecutor, Flow, Parameter, task  # noqa: E402


@task
def noop(x: int) -> int:
    return x


def mapped_flow() -> Flow:
    with Flow("mapping-bench") as flow:
        noop.map(Parameter("xs", default=[]))
    return flow


def time_nbflow(n: int, executor: object, repeat: int) -> float:
    """Seconds for a run mapping over n elements (median of ``repeat``)."""
    flow = mapped_flow()
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        state = flow.run(parameters={"xs": list(range(n))}, executor=executor, echo=False)  # type: ignore[arg-type]
        timings.append(time.perf_counter() - start)
        assert state.is_successful(), state.message
    return statistics.median(timings)


def _plain(x: int) -> int:
    return x


def _from_worker(n: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        return len(client.gather(client.map(_plain, range(n), pure=False)))


def time_submission(client: object, n: int, repeat: int) -> dict[str, float]:
    """Seconds for n plain Dask tasks submitted in one batch from the driver, and from a task on
    a worker (``worker_client``, what a mapped task's parent does): the cost of the route alone."""
    timings: dict[str, list[float]] = {"driver": [], "worker_client": []}
    for _ in range(repeat):
        start = time.perf_counter()
        client.gather(client.map(_plain, range(n), pure=False))  # type: ignore[attr-defined]
        timings["driver"].append(time.perf_counter() - start)
        start = time.perf_counter()
        client.submit(_from_worker, n, pure=False).result()  # type: ignore[attr-defined]
        timings["worker_client"].append(time.perf_counter() - start)
    return {route: statistics.median(values) for route, values in timings.items()}


PREFECT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from prefect import flow, task

    @task
    def noop(x):
        return x

    @flow
    def mapped(n):
        return noop.map(list(range(n))).result()

    mapped(1)  # starts the ephemeral API server outside the timing
    out = {}
    for n in map(int, sys.argv[1:]):
        start = time.perf_counter()
        mapped(n)
        out[n] = time.perf_counter() - start
    print("RESULT " + json.dumps(out))
    """
)


def prefect_python() -> str | None:
    """An interpreter with Prefect 3: the benchmarks' Prefect venv, else this one, else None."""
    venv = HERE / ".venv-prefect" / "bin" / "python"
    if venv.exists():
        return str(venv)
    try:
        import prefect  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def time_prefect(python: str, sizes: list[int]) -> dict[int, float]:
    """Seconds per size, in one Prefect process with a fresh PREFECT_HOME."""
    with tempfile.TemporaryDirectory() as home:
        script = Path(home) / "bench_prefect_map.py"
        script.write_text(PREFECT_SCRIPT)
        env = {**os.environ, "PREFECT_HOME": home, "PREFECT_LOGGING_LEVEL": "WARNING",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
        env.pop("PREFECT_API_URL", None)
        done = subprocess.run(
            [python, str(script), *map(str, sizes)], capture_output=True, text=True, env=env, timeout=3600
        )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print(f"Prefect failed: {done.stderr.strip().splitlines()[-1:]}")
        return {}
    return {int(k): v for k, v in json.loads(line[len("RESULT ") :]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="map sizes for local and threads")
    parser.add_argument("--dask-sizes", default="100,1000", help="map sizes on the Dask LocalCluster")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-prefect", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dask_sizes = [int(s) for s in args.dask_sizes.split(",") if s]
    results: dict[int, dict[str, float]] = {n: {} for n in sorted({*sizes, *dask_sizes})}
    routes: dict[int, dict[str, float]] = {}
    for n in sizes:
        results[n]["local"] = time_nbflow(n, "local", args.repeat)
        results[n]["threads"] = time_nbflow(n, "threads", args.repeat)
    if dask_sizes:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=2, threads_per_worker=2, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            for n in dask_sizes:
                results[n]["dask"] = time_nbflow(n, DaskExecutor(client=client), args.repeat)
                routes[n] = time_submission(client, n, args.repeat)
    python = None if args.skip_prefect else prefect_python()
    if python is not None:
        for n, seconds in time_prefect(python, sorted(results)).items():
            results[n]["prefect 3"] = seconds
    elif not args.skip_prefect:
        print("Prefect 3 is not importable here and benchmarks/.venv-prefect does not exist: skipped")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    if routes:
        print("| plain Dask tasks | from the driver (µs/task) | from a worker, worker_client (µs/task) |")
        print("|---:|---:|---:|")
        for n, route in routes.items():
            print(f"| {n:,} | {route['driver'] / n * 1e6:,.1f} | {route['worker_client'] / n * 1e6:,.1f} |")
    print(
        "| children | nbflow local (µs/child) | nbflow threads | nbflow dask | Prefect 3 .map "
        "| Prefect / local | Prefect / dask |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, row in results.items():
        cells = [
            f"{row[k] / n * 1e6:,.1f}" if k in row else "-" for k in ("local", "threads", "dask", "prefect 3")
        ]
        ratios = [
            f"{row['prefect 3'] / row[k]:,.1f}×" if "prefect 3" in row and k in row else "-"
            for k in ("local", "dask")
        ]
        print(f"| {n:,} | {' | '.join(cells)} | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()
