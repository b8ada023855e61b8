"""Agent latency and throughput, with real processes (server, agent, flow subprocesses).

* latency: from ``createFlowRun`` returning at the client to the run's Running state
  (recorded by the server when the flow subprocess confirms it), over N runs created
  one after another (each waits for the previous to finish), p50 and p95;
* throughput: M runs created at once, one agent (``--concurrency C``): flow runs per minute;

each with warm flow processes (forked from the agent's pre-imported parent, the default)
and cold ones (``--cold-start``: a fresh interpreter per run), in the same run.

    python benchmarks/agent_latency.py [--runs 100] [--burst 120] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat

from nbflow.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], home: Path, log: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "nbflow.cli", *args],
        env={**os.environ, "NBFLOW_HOME": str(home)},
        stdout=(home / log).open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_finished(client: Client, run_id: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if client.flow_run(run_id).state in ("Success", "Failed", "Cancelled"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} did not finish")


def running_time(client: Client, run_id: str) -> float:
    states = client.graphql(
        "query($id: String!) { flowRun(id: $id) { states { state timestamp } } }", {"id": run_id}
    )
    return next(s["timestamp"] for s in states["flowRun"]["states"] if s["state"] == "Running")


def measure(url: str, admin: str, home: Path, args: argparse.Namespace, start: str) -> dict[str, float]:
    """One agent with ``start`` flow processes ("warm" forks, "cold" fresh interpreters)."""
    with Client(url, admin) as client:
        agent_key = client.create_api_key("agent").key
        agent = spawn(
            ["agent", "start", "--server", url, "--key", agent_key, "--concurrency", str(args.concurrency),
             "--poll-wait", "5", *(["--cold-start"] if start == "cold" else [])],
            home, f"agent-{start}.log",
        )  # fmt: skip
        try:
            time.sleep(2)
            for _ in range(3):  # warm-up
                wait_finished(client, client.create_flow_run(flow_name="tiny").id)
            latencies = []
            for _ in range(args.runs):
                run = client.create_flow_run(flow_name="tiny")
                created = time.time()
                wait_finished(client, run.id)
                latencies.append(running_time(client, run.id) - created)
            latencies.sort()
            began = time.time()
            burst = [client.create_flow_run(flow_name="tiny").id for _ in range(args.burst)]
            for run_id in burst:
                wait_finished(client, run_id, timeout=600)
            elapsed = time.time() - began
        finally:
            agent.terminate()
            agent.wait(20)
    return {
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "max": latencies[-1] * 1000,
        "per_minute": args.burst / elapsed * 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--burst", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = spawn(["server", "start", "--port", str(port)], home, "server.log")
        try:
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            admin = re.search(r"^\s+(nbf_\S+)$", (home / "server.log").read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell("%%task tiny\nvalue = 1")]
            nbformat.write(nb, str(home / "tiny.ipynb"))
            subprocess.run(
                [sys.executable, "-m", "nbflow.cli", "register", str(home / "tiny.ipynb"), "--server", url, "--key", admin],
                env={**os.environ, "NBFLOW_HOME": str(home)}, check=True, capture_output=True,
            )  # fmt: skip
            for start in ("cold", "warm"):
                results[start] = measure(url, admin, home, args, start)
        finally:
            server.terminate()
            server.wait(20)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for start, r in results.items():
        print(
            f"{start}: create -> Running over {args.runs} runs: p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, "
            f"max {r['max']:.0f} ms; {args.burst} runs at once (concurrency {args.concurrency}): "
            f"{r['per_minute']:.0f} flow runs/minute"
        )
    cold, warm = results["cold"], results["warm"]
    print(
        f"warm vs cold: p95 {cold['p95'] / warm['p95']:.1f}x lower, {warm['per_minute'] / cold['per_minute']:.1f}x the runs per minute"
    )


if __name__ == "__main__":
    main()
