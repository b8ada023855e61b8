"""``nbflow server start --workers N``: several server processes on one port, one database."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import ETL_STRUCTURE as STRUCTURE  # noqa: E402
from server_helpers import ServerProcess, wait_for  # noqa: E402

pytestmark = pytest.mark.integration

STORAGE = {"kind": "local", "location": "/srv/flows/etl.py", "sha256": "a" * 64}


def workers_of(server: ServerProcess) -> list[int]:
    """The server's worker processes (children running the app)."""
    assert server.proc is not None
    pids = []
    for pid in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"multiprocessing.resource_tracker" not in cmdline:
            pids.append(int(pid))
    return pids


def test_two_workers_share_the_port_the_database_and_the_schedule(database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", database_url, workers=2).start()
    try:
        workers = workers_of(server)
        assert len(workers) == 2
        log = server.log_path.read_text()
        assert "2 worker processes" in log
        assert log.count("shown once") == 1  # one process made the database and its key
        with server.client() as client:
            client.register_flow("etl", STRUCTURE, STORAGE)

        def create(_: int) -> str:
            with server.client() as client:
                return client.create_flow_run(flow_name="etl").id

        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(create, range(40)))
        with server.client() as client:
            assert len(set(made)) == 40 and client.flow_runs(flow_name="etl")[1] == 40
            # Each worker runs a scheduler pass: a schedule still gets its 10 runs, not 20.
            client.register_flow("hourly", {**STRUCTURE, "name": "hourly"}, STORAGE,
                                 schedule={"type": "interval", "interval": 3600})  # fmt: skip
            wait_for(lambda: client.flow_runs(flow_name="hourly")[1] >= 10, what="the schedule's runs")
            time.sleep(1.5)  # a few more passes of both schedulers
            assert client.flow_runs(flow_name="hourly")[1] == 10
    finally:
        server.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the server"


def test_workers_need_a_database_they_can_share(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "server", "start", "--workers", "2", "--db", "sqlite+aiosqlite://"],
        capture_output=True, text=True, timeout=60, env={"NBFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "--workers needs a database the processes share" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
