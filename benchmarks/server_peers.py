"""The peers of ``server_throughput.py``: Prefect 3's server API and pgbench, on the same machine.

- Prefect 3 (``prefect server start`` from the venv ``engine_overhead.py`` installs,
  ``benchmarks/.venv-prefect``), on its SQLite default or on a fresh PostgreSQL database:
  task-run state changes one per request (``POST /api/task_runs/{id}/set_state``, Running
  then Completed), and flow runs created one per request (``POST /api/flow_runs/``).
  Prefect has no batched state endpoint, so it has no batched row.
- pgbench's simple-update script (``pgbench -N``: one UPDATE, two SELECTs and one INSERT per
  transaction), one client, on a fresh PostgreSQL database: the rate PostgreSQL itself
  commits small write transactions at here, the ceiling for one state write per request.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from server_helpers import free_port, fresh_postgres_database  # noqa: E402

PREFECT_PYTHON = HERE / ".venv-prefect" / "bin" / "python"


def pgbench_tps(base: str, seconds: int) -> float | str:
    """Transactions per second of ``pgbench -N`` with one client, or why it could not run."""
    if shutil.which("pgbench") is None:
        return "pgbench not installed"
    from sqlalchemy.engine import make_url

    with fresh_postgres_database(base) as url:
        plain = make_url(url).set(drivername="postgresql")
        dsn = plain.render_as_string(hide_password=False)
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", dsn], check=True, capture_output=True)
        done = subprocess.run(
            ["pgbench", "-N", "-c", "1", "-j", "1", "-M", "prepared", "-T", str(seconds), dsn],
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"tps = ([\d.]+)", done.stdout)
    return float(match.group(1)) if match else f"no tps in pgbench output: {done.stdout[-200:]}"


def _start_prefect(home: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    command = [str(PREFECT_PYTHON), "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    log = (home / "prefect.log").open("w")
    proc = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 180  # a fresh database is migrated first
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: {(home / 'prefect.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prefect server did not answer /api/health within 180 s")


def _post(http: httpx.Client, path: str, body: dict[str, object]) -> dict[str, object]:
    """POST as Prefect's own client does: a 429 or 503 (database busy) is retried, up to 5 times."""
    for attempt in range(6):
        answer = http.post(path, json=body)
        if answer.status_code not in (429, 503) or attempt == 5:
            return answer.raise_for_status().json()
        time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _measure_prefect(url: str, updates: int, runs: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=30) as http:
        flow_id = _post(http, "/flows/", {"name": "bench"})["id"]
        flow_run_id = _post(http, "/flow_runs/", {"flow_id": flow_id})["id"]
        # Prefect aborts task-run states while their flow run is not running.
        _post(http, f"/flow_runs/{flow_run_id}/set_state", {"state": {"type": "RUNNING"}})
        task_runs = [
            _post(
                http,
                "/task_runs/",
                {"flow_run_id": flow_run_id, "task_key": f"t{i % 10}", "dynamic_key": str(i)},
            )["id"]
            for i in range(updates // 2)
        ]
        took = []
        start = time.perf_counter()
        for task_run_id in task_runs:
            for state in ("RUNNING", "COMPLETED"):
                began = time.perf_counter()
                answer = _post(http, f"/task_runs/{task_run_id}/set_state", {"state": {"type": state}})
                took.append(time.perf_counter() - began)
                assert answer["status"] == "ACCEPT", answer
        single = 2 * len(task_runs) / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(runs):
            _post(http, "/flow_runs/", {"flow_id": flow_id})
        created = runs / (time.perf_counter() - start)
    return {
        "state updates/s, one per request": single,
        "one state update, median ms": statistics.median(took) * 1000,
        "createFlowRun/s, sequential": created,
    }


def prefect_version() -> str | None:
    """The installed Prefect's version, or None when its venv is missing."""
    if not PREFECT_PYTHON.exists():
        return None
    done = subprocess.run(
        [str(PREFECT_PYTHON), "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


def prefect_server(base: str | None, updates: int, runs: int) -> dict[str, float]:
    """Prefect 3's server on SQLite (``base`` None) or on a fresh PostgreSQL database beside ``base``."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        database = stack.enter_context(fresh_postgres_database(base)) if base is not None else None
        proc, url = _start_prefect(Path(tmp), database)
        try:
            return _measure_prefect(url, updates, runs)
        finally:
            proc.terminate()
            proc.wait(30)
