"""Secrets with a real server and a real agent: set by the CLI, stored encrypted, read by a task on
an agent, masked in every stored log line and error, never readable with a read-only key."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import FINISHED, AgentProcess, ServerProcess, agent_key, wait_for  # noqa: E402

from nbflow import client_team  # noqa: E402
from nbflow.core.errors import APIError, AuthError  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALUE = "hunter2-Zq8-very-secret"


@pytest.fixture
def server(sqlite_agent_server: ServerProcess) -> ServerProcess:
    return sqlite_agent_server


def db_bytes(tmp_path: Path) -> bytes:
    """The SQLite database file and its write-ahead log, as stored on disk."""
    folder = tmp_path / "server"
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("nbflow.db"))


def set_secret(
    server: ServerProcess, name: str, value: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**server.env(), "NBFLOW_API_URL": server.url, "NBFLOW_API_KEY": key or server.admin_key or ""}
    return subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "secrets", "set", name],
        input=value + "\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_secret_on_an_agent_is_masked_in_stored_logs_and_refused_to_readers(
    server: ServerProcess, tmp_path: Path, nbflow_home: Path
) -> None:
    done = set_secret(server, "DB_PASSWORD", VALUE)
    assert done.returncode == 0, done.stderr
    assert VALUE not in done.stdout + done.stderr
    key_file = nbflow_home / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    listed = server.cli("secrets", "list")
    assert "DB_PASSWORD" in listed.stdout and VALUE not in listed.stdout

    cells = [
        "%%setup\nimport nbflow",
        "%%task connect\npassword = nbflow.secret('DB_PASSWORD')\nprint('connecting with', password)\n"
        "nbflow.context.logger.warning(f'password length {len(password)}: {password}')\n"
        "raise ConnectionError(f'login refused for {password}')",
    ]
    server.cli("register", str(write_notebook(tmp_path / "secretive.ipynb", cells)))
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            run_id = client.create_flow_run(flow_name="secretive").id
            run = wait_for(lambda: (r := client.flow_run(run_id)).state in FINISHED and r, what="the run")
            logs = [e["message"] for e in client.run_logs(run_id)]
        assert run.state == "Failed", agent.log()
        assert "connecting with ****" in logs
        assert f"password length {len(VALUE)}: ****" in logs
        assert any("ConnectionError: login refused for ****" in m for m in logs)
        [task] = run.task_runs
        assert task.message == "ConnectionError: login refused for ****"
        stored = db_bytes(tmp_path)
        assert b"login refused for ****" in stored  # the lines are there...
        assert VALUE.encode() not in stored  # ...and the value is nowhere in the database
    finally:
        agent.stop()

    # Nobody but an agent (or the run's own token, while it runs) reads a value back.
    with server.client() as admin:
        read_only = admin.create_api_key("read-only").key
        with pytest.raises(AuthError, match="may not read secret values"):
            admin.execute(client_team.run_secret(run_id, "DB_PASSWORD"))
    with server.client(read_only) as reader:
        with pytest.raises(AuthError, match="a read-only key may not read secret values"):
            reader.execute(client_team.run_secret(run_id, "DB_PASSWORD"))
        assert [s["name"] for s in reader.execute(client_team.secrets())] == ["DB_PASSWORD"]
    refused = set_secret(server, "OTHER", "x", key=read_only)
    assert refused.returncode == 1 and "read-only key may not" in refused.stderr
    # An agent key reads values only for a run that is running now.
    with server.client(agent_key(server)) as agent_client, pytest.raises(APIError, match="running runs only"):
        agent_client.execute(client_team.run_secret(run_id, "DB_PASSWORD"))
    server.cli("secrets", "delete", "DB_PASSWORD")
    assert "no secrets" in server.cli("secrets", "list").stdout
