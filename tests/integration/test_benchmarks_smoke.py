"""Every benchmark still runs: each at a tiny size, so a change that breaks one shows in CI.

These assert only that a benchmark finishes and prints its figures, never how fast anything
was (timings are measured in ``benchmarks/`` on a quiet machine, not asserted here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

CASES = {
    "engine_overhead": ["--sizes", "10", "--repeat", "1", "--skip-prefect", "--skip-hamilton"],
    "build_instructions": ["fan", "100"],
    "dask_and_memory": ["--sizes", "10", "--repeat", "1", "--mb", "4", "--memory-repeat", "1"],
    "magic_overhead": ["--repeat", "20"],
    "mapping": ["--sizes", "10", "--dask-sizes", "10", "--repeat", "1", "--skip-prefect"],
    "result_store": ["--small", "5", "--large", "2", "--mb", "0.1"],
    "server_throughput": ["--updates", "40", "--batch", "10", "--runs", "5", "--skip-peers"],
    "server_instructions": ["--db", "sqlite", "--cases", "empty,single", "--requests", "2"],
    "agent_latency": ["--runs", "3", "--burst", "3", "--concurrency", "1"],
    "young_plans": ["--runs", "30", "--tasks", "2", "--cycles", "2"],
    "scale": [  # fmt: skip
        "--runs",
        "50",
        "--tasks",
        "3",
        "--schedules",
        "5",
        "--agents",
        "3",
        "--subscribers",
        "3",
        "--poll-seconds",
        "1",
        "--repeat",
        "1",
    ],
}
NEEDS_POSTGRES = {"scale", "young_plans"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    if name in NEEDS_POSTGRES and not os.environ.get("NBFLOW_TEST_POSTGRES_URL"):
        pytest.skip("NBFLOW_TEST_POSTGRES_URL is not set: this benchmark seeds a PostgreSQL database")
    env = {**os.environ, "NBFLOW_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *CASES[name]],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip(), "the benchmark printed no figures"
