"""Per-task engine overhead: nbflow (local, threads) vs Prefect 3 vs dask.threaded.get vs Hamilton.

Flows of no-op tasks in two shapes, a chain (each task takes the previous
result) and a wide fan-out (one root, every other task takes its result), at
100, 1,000 and 10,000 tasks. Everything runs in one invocation so the ratios
compare like with like on the same machine at the same moment.

    python benchmarks/engine_overhead.py                 # all peers, all sizes
    python benchmarks/engine_overhead.py --skip-prefect  # quick: nbflow, dask and Hamilton
    python benchmarks/engine_overhead.py --only-build    # only building 100,000-task flows

Prefect 3 is installed on first use into ``benchmarks/.venv-prefect`` (its
own virtual environment, with ``fastapi==0.139.0`` pinned: newer FastAPI
breaks its server) and run in a subprocess against its ephemeral server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hamilton_peer  # noqa: E402

PREFECT_VENV = HERE / ".venv-prefect"
PREFECT_REQUIREMENTS = ["prefect>=3.8,<3.9", "fastapi==0.139.0"]


def noop(x: object = None) -> None:
    return None


# -- nbflow --------------------------------------------------------------------


def nbflow_flow(shape: str, n: int):  # type: ignore[no-untyped-def]
    from nbflow import Flow, Task

    flow = Flow(f"{shape}-{n}")
    if shape == "chain":
        previous = None
        for i in range(n):
            t = flow.add_task(Task(noop, name=f"t{i}"))
            if previous is not None:
                flow.add_edge(previous, t, key="x")
            previous = t
    else:
        root = flow.add_task(Task(noop, name="root"))
        for i in range(n - 1):
            flow.add_edge(root, Task(noop, name=f"t{i}"), key="x")
    return flow


def time_nbflow(shape: str, n: int, executor: str, repeat: int) -> float:
    flow = nbflow_flow(shape, n)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        state = flow.run(executor=executor, echo=False)
        timings.append(time.perf_counter() - start)
        assert state.is_successful(), state
    return statistics.median(timings)


# -- dask ------------------------------------------------------------------------


def dask_graph(shape: str, n: int) -> tuple[dict, list[str]]:
    if shape == "chain":
        graph: dict = {"t0": (noop,)}
        for i in range(1, n):
            graph[f"t{i}"] = (noop, f"t{i - 1}")
        return graph, [f"t{n - 1}"]
    graph = {"root": (noop,)}
    keys = []
    for i in range(n - 1):
        graph[f"t{i}"] = (noop, "root")
        keys.append(f"t{i}")
    return graph, keys


def time_dask(shape: str, n: int, repeat: int) -> float:
    import dask.threaded

    graph, keys = dask_graph(shape, n)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        dask.threaded.get(graph, keys)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


# -- Prefect 3 (own venv, subprocess) ------------------------------------------------

PREFECT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from prefect import flow, task

    @task
    def noop(x=None):
        return None

    @flow
    def chain(n):
        x = None
        for _ in range(n):
            x = noop(x)

    @flow
    def fan(n):
        root = noop()
        for _ in range(n - 1):
            noop(root)

    @flow
    def warm():
        noop()

    warm()  # starts the ephemeral API server outside the timing
    out = {}
    for spec in sys.argv[1:]:
        shape, n = spec.split(":")
        fn = chain if shape == "chain" else fan
        start = time.perf_counter()
        fn(int(n))
        out[spec] = time.perf_counter() - start
    print("RESULT " + json.dumps(out))
    """
)


def ensure_prefect() -> Path:
    python = PREFECT_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing Prefect into {PREFECT_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PREFECT_REQUIREMENTS], check=True)
    return python


def time_prefect(specs: list[tuple[str, int]]) -> tuple[dict[tuple[str, int], float | str], str]:
    """Each case in its own Prefect process (and fresh PREFECT_HOME), so one that fails is
    reported as such instead of taking the others down. Seconds, or why it failed."""
    python = ensure_prefect()
    version = subprocess.run(
        [str(python), "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results: dict[tuple[str, int], float | str] = {}
    for shape, n in specs:
        with tempfile.TemporaryDirectory() as home:
            script = Path(home) / "bench_prefect.py"
            script.write_text(PREFECT_SCRIPT)
            env = {
                **os.environ,
                "PREFECT_HOME": home,
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                # A fresh PREFECT_HOME migrates its database first: give the ephemeral server time.
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            }
            env.pop("PREFECT_API_URL", None)
            try:
                done = subprocess.run(
                    [str(python), str(script), f"{shape}:{n}"],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=3600,
                )
            except subprocess.TimeoutExpired:
                results[(shape, n)] = "failed: no result within 1 h"
                continue
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
        locked = done.stderr.count("database is locked")
        if locked:
            print(
                f"note: Prefect {shape} {n}: its server logged 'database is locked' {locked} times",
                flush=True,
            )
        if line is None:
            errors = [ln for ln in done.stderr.splitlines() if "Error" in ln or "Exception" in ln]
            results[(shape, n)] = "failed: " + (
                errors[-1].strip()[:120] if errors else f"exit code {done.returncode}"
            )
            print(f"Prefect {shape} {n}: {results[(shape, n)]}", flush=True)
            continue
        results[(shape, n)] = json.loads(line[len("RESULT ") :])[f"{shape}:{n}"]
        print(f"Prefect {shape} {n}: {results[(shape, n)] / n * 1e6:.0f} us/task", flush=True)
    return results, version


# -- building a large flow ---------------------------------------------------------


def time_build(shape: str, n: int, repeat: int) -> dict[str, float]:
    """Seconds to build and validate an n-task flow, and to build the same dask graph dict
    and order it (``dask.order``, what dask does before running one), median of ``repeat``."""
    import gc

    from dask.order import order

    nbflow_times, dask_times = [], []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        flow = nbflow_flow(shape, n)
        flow.validate()
        nbflow_times.append(time.perf_counter() - start)
        del flow
        gc.collect()
        start = time.perf_counter()
        graph, _ = dask_graph(shape, n)
        order(graph)
        dask_times.append(time.perf_counter() - start)
    return {"nbflow": statistics.median(nbflow_times), "dask dict + order": statistics.median(dask_times)}


# -- report ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per nbflow/dask case (median)")
    parser.add_argument("--skip-prefect", action="store_true")
    parser.add_argument("--skip-hamilton", action="store_true", help="no Hamilton column (its venv)")
    parser.add_argument("--build-size", type=int, default=100_000, help="tasks in the build+validate case")
    parser.add_argument(
        "--only-build", action="store_true", help="only the build+validate case (no runs, no Prefect)"
    )
    args = parser.parse_args()
    if args.only_build:
        report_build(args.build_size, args.repeat)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    specs = [(shape, n) for shape in ("chain", "fan") for n in sizes]

    import dask

    import nbflow

    results: dict[tuple[str, int], dict[str, float | str]] = {spec: {} for spec in specs}
    runners: dict[str, Callable[[str, int], float]] = {
        "nbflow local": lambda s, n: time_nbflow(s, n, "local", args.repeat),
        "nbflow threads": lambda s, n: time_nbflow(s, n, "threads", args.repeat),
        "dask.threaded.get": lambda s, n: time_dask(s, n, args.repeat),
    }
    for shape, n in specs:
        for name, fn in runners.items():
            results[(shape, n)][name] = fn(shape, n)
        print(
            f"{shape:5} {n:6}: "
            + ", ".join(f"{k} {v / n * 1e6:.1f} us/task" for k, v in results[(shape, n)].items()),
            flush=True,
        )

    if not args.skip_hamilton:
        print("running Hamilton (its own venv) ...", flush=True)
        timed = hamilton_peer.time_hamilton([f"{shape}:{n}" for shape, n in specs], args.repeat)
        for shape, n in specs:
            results[(shape, n)]["hamilton"] = timed[f"{shape}:{n}"]["run"]

    prefect_version = None
    if not args.skip_prefect:
        print("running Prefect 3 (slow: milliseconds per task) ...", flush=True)
        prefect_times, prefect_version = time_prefect(specs)
        for spec, seconds in prefect_times.items():
            results[spec]["prefect 3"] = seconds

    peers = list(next(iter(results.values())).keys())
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"nbflow {nbflow.__version__}, dask {dask.__version__}"
        + (f", prefect {prefect_version}" if prefect_version else "")
    )
    print()
    print(
        "| shape | tasks | "
        + " | ".join(f"{p} (us/task)" for p in peers)
        + " | prefect / nbflow local | dask / nbflow local | hamilton / nbflow local | threads over local (us/task) |"
    )
    print("|---|---:|" + "---:|" * len(peers) + "---:|---:|---:|---:|")
    for (shape, n), row in results.items():
        local = row["nbflow local"] / n * 1e6
        cells = []
        for p in peers:
            value = row.get(p)
            cells.append(f"{value / n * 1e6:.1f}" if isinstance(value, float) else str(value or "-"))
        prefect = row.get("prefect 3")
        prefect_ratio = f"{prefect / n * 1e6 / local:.0f}x" if isinstance(prefect, float) else "-"
        dask_ratio = f"{row['dask.threaded.get'] / n * 1e6 / local:.2f}x"
        hamilton = row.get("hamilton")
        hamilton_ratio = f"{hamilton / n * 1e6 / local:.2f}x" if isinstance(hamilton, float) else "-"
        threads_over = (row["nbflow threads"] - row["nbflow local"]) / n * 1e6
        print(
            f"| {shape} | {n:,} | {' | '.join(cells)} | {prefect_ratio} | {dask_ratio} | {hamilton_ratio} "
            f"| {threads_over:+.1f} |"
        )

    report_build(args.build_size, args.repeat)


def report_build(size: int, repeat: int) -> None:
    """Print the build+validate table: nbflow against a dask graph dict and ``dask.order``."""
    print(f"\nBuilding and validating a flow of {size:,} tasks (median of {repeat}):\n")
    print("| shape | nbflow (s) | dask graph dict + dask.order (s) | nbflow / dask |")
    print("|---|---:|---:|---:|")
    for shape in ("chain", "fan"):
        built = time_build(shape, size, repeat)
        ratio = built["nbflow"] / built["dask dict + order"]
        print(f"| {shape} | {built['nbflow']:.3f} | {built['dask dict + order']:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
