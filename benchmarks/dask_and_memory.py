"""nbflow on Dask against raw dask.distributed, and peak memory of a chain of large arrays.

1. Overhead: no-op tasks as a chain (each takes the previous result) and a fan (one
   root, every other task takes its result), 100 to 10,000 tasks, on one LocalCluster
   (2 worker processes, 1 thread each), through one connected ``Client``: nbflow's Dask
   executor (the run keeps only the terminal results) against the same graph submitted
   with ``client.submit``, gathering the same results. Median of ``--repeat``; the ratio
   nbflow / raw.
2. Memory: a chain of 10 tasks, each taking a 100 MB array and returning a new one.
   Peak resident memory (the kernel's high-water mark, VmHWM) of a fresh process per
   case: a plain Python loop (the floor), ``dask.threaded.get``, nbflow local and
   threads (``keep="none"``, as headless and agent runs do); and on a fresh
   LocalCluster per case, nbflow's Dask executor against raw dask.distributed (wall
   time, and the workers' summed peak), median of ``--memory-repeat`` clusters each.

    python benchmarks/dask_and_memory.py [--sizes 100,1000,10000] [--repeat 3] [--mb 100]
        [--shapes chain,fan] [--skip-memory] [--memory-repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_overhead import nbflow_flow, noop  # noqa: E402

CHAIN_LENGTH = 10


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


# -- 1. overhead -------------------------------------------------------------------


def time_nbflow_dask(client, shape: str, n: int) -> float:  # type: ignore[no-untyped-def]
    from nbflow.core.executors import DaskExecutor
    from nbflow.core.runner import FlowRunner

    flow = nbflow_flow(shape, n)
    start = time.perf_counter()
    state = FlowRunner(flow, executor=DaskExecutor(client=client), keep="terminal", echo=False).run()
    elapsed = time.perf_counter() - start
    assert state.is_successful(), state
    return elapsed


def time_raw_dask(client, shape: str, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    if shape == "chain":
        future = client.submit(noop, pure=False)
        for _ in range(n - 1):
            future = client.submit(noop, future, pure=False)
        client.gather([future])
    else:
        root = client.submit(noop, pure=False)
        client.gather([client.submit(noop, root, pure=False) for _ in range(n - 1)])
    return time.perf_counter() - start


def overhead(sizes: list[int], repeat: int, shapes: list[str]) -> list[dict[str, object]]:
    from distributed import Client, LocalCluster

    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            time_raw_dask(client, "chain", 50)  # warm both paths
            time_nbflow_dask(client, "chain", 50)
            for shape in shapes:
                for n in sizes:
                    raw, ours = [], []
                    for _ in range(repeat):  # interleaved, so load hits both alike
                        raw.append(time_raw_dask(client, shape, n))
                        ours.append(time_nbflow_dask(client, shape, n))
                    rows.append(
                        {
                            "shape": shape,
                            "n": n,
                            "raw": statistics.median(raw),
                            "nbflow": statistics.median(ours),
                        }
                    )
    return rows


# -- 2. memory ---------------------------------------------------------------------

MEMORY_CASE = r"""
import json, sys, time
import numpy as np
mb, case = int(sys.argv[1]), sys.argv[2]
size = mb * 1024 * 1024 // 8

def make():
    return np.ones(size)

def step(x):
    return x + 1.0

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

baseline = peak()
start = time.perf_counter()
if case == "python":
    x = make()
    for _ in range(CHAIN - 1):
        x = step(x)
    total = float(x[0])
elif case == "dask.threaded":
    import dask.threaded
    graph = {"t0": (make,)}
    for i in range(1, CHAIN):
        graph[f"t{i}"] = (step, f"t{i - 1}")
    total = float(dask.threaded.get(graph, f"t{CHAIN - 1}")[0])
else:
    from nbflow import Flow, Task
    from nbflow.core.runner import FlowRunner
    flow = Flow("arrays")
    previous = flow.add_task(Task(make, name="t0"))
    for i in range(1, CHAIN):
        task = Task(step, name=f"t{i}")
        flow.add_edge(previous, task, key="x")
        previous = task
    state = FlowRunner(flow, executor=case, keep="terminal", echo=False).run()
    assert state.is_successful(), state
    total = float(state.result.by_slug()[f"t{CHAIN - 1}"].result[0])
assert total == CHAIN, total
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak(), "baseline_mb": baseline}))
""".replace("CHAIN", str(CHAIN_LENGTH))


def memory_in_process(mb: int) -> dict[str, dict[str, float]]:
    results = {}
    for case in ("python", "dask.threaded", "local", "threads"):
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_CASE, str(mb), case], capture_output=True, text=True, check=True
        )
        results[case] = json.loads(done.stdout)
    return results


def _make(mb: int):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.ones(mb * 1024 * 1024 // 8)


def _step(x):  # type: ignore[no-untyped-def]
    return x + 1.0


def memory_on_dask(mb: int, case: str) -> dict[str, float]:
    """One fresh LocalCluster (2 workers) for ``case``: wall time and peak memory."""
    import functools

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.run(lambda: None)
            start = time.perf_counter()
            if case == "raw":
                future = client.submit(_make, mb, pure=False)
                for _ in range(CHAIN_LENGTH - 1):
                    future = client.submit(_step, future, pure=False)
                last = future.result()
            else:
                from nbflow import Flow, Task
                from nbflow.core.executors import DaskExecutor
                from nbflow.core.runner import FlowRunner

                flow = Flow("arrays")
                previous = flow.add_task(Task(functools.partial(_make, mb), name="t0"))
                for i in range(1, CHAIN_LENGTH):
                    task = Task(_step, name=f"t{i}")
                    flow.add_edge(previous, task, key="x")
                    previous = task
                executor = DaskExecutor(client=client)  # the client raw uses: no connecting in the timing
                state = FlowRunner(flow, executor=executor, keep="terminal", echo=False).run()
                assert state.is_successful(), state
                last = state.result.by_slug()[f"t{CHAIN_LENGTH - 1}"].result
            seconds = time.perf_counter() - start
            assert float(last[0]) == CHAIN_LENGTH
            workers = sum(client.run(peak_mb).values())
    return {"seconds": seconds, "workers_peak_mb": workers}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="chain,fan", help="chain, fan or both")
    parser.add_argument("--mb", type=int, default=100, help="array size in the memory chain")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-repeat", type=int, default=3, help="fresh clusters per case (median)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import dask

    import nbflow

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"nbflow {nbflow.__version__}, dask {dask.__version__}; load average {os.getloadavg()[0]:.1f}"
    )
    print("\n| shape | tasks | raw dask.distributed (ms/task) | nbflow on Dask (ms/task) | nbflow / raw |")
    print("|---|---:|---:|---:|---:|")
    for row in overhead(sizes, args.repeat, args.shapes.split(",")):
        n = row["n"]
        raw, ours = row["raw"] / n * 1000, row["nbflow"] / n * 1000  # type: ignore[operator]
        print(f"| {row['shape']} | {n:,} | {raw:.2f} | {ours:.2f} | {ours / raw:.2f}x |")
    if args.skip_memory:
        return
    print(f"\nchain of {CHAIN_LENGTH} tasks passing {args.mb} MB arrays; peak resident memory (VmHWM)")
    print("\n| where | run | seconds | peak MB | vs dask |")
    print("|---|---|---:|---:|---:|")
    inproc = memory_in_process(args.mb)
    floor = inproc["dask.threaded"]["peak_mb"]
    for case, r in inproc.items():
        print(
            f"| one process | {case} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r['peak_mb'] / floor:.2f}x |"
        )
    on_dask = {case: [] for case in ("raw", "nbflow")}  # type: ignore[var-annotated]
    for _ in range(args.memory_repeat):  # interleaved, a fresh cluster each
        for case, runs in on_dask.items():
            runs.append(memory_on_dask(args.mb, case))
    on_dask = {
        case: {k: statistics.median(r[k] for r in runs) for k in runs[0]}  # type: ignore[misc]
        for case, runs in on_dask.items()
    }
    raw = on_dask["raw"]
    for case, r in on_dask.items():
        label = "raw dask.distributed" if case == "raw" else "nbflow on Dask"
        print(
            f"| LocalCluster, 2 workers | {label} | {r['seconds']:.2f} (x{r['seconds'] / raw['seconds']:.2f}) | "
            f"{r['workers_peak_mb']:.0f} (workers) | {r['workers_peak_mb'] / raw['workers_peak_mb']:.2f}x |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
