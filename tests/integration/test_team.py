"""Running flows as a team, with a real server and real agent processes: handlers and per-run
context on agents (secrets, hooks and limits have their own files)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, agent_key, wait_for  # noqa: E402

from nbflow.core.errors import APIError  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(sqlite_agent_server: ServerProcess) -> ServerProcess:
    return sqlite_agent_server


def test_agent_runs_handlers_and_reads_the_runs_context(server: ServerProcess, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    cells = [
        f"""%%setup
import nbflow, pathlib
def alert(obj, old, new):
    with pathlib.Path({str(calls)!r}).open("a") as f:
        f.write(f"{{obj.name}} {{new.type.value}} region={{nbflow.context.region}}\\n")
""",
        "%flow on failed alert",
        "%%task greet --on-success alert\nprint('hello from', nbflow.context.region)",
        "%%task boom\nraise RuntimeError('no ' + nbflow.context.region)",
    ]
    server.cli("register", str(write_notebook(tmp_path / "team.ipynb", cells)))
    created = server.cli("runs", "create", "team", "-c", "region=eu", "--json")
    run_id = json.loads(created.stdout)["id"]
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        run = wait_for(lambda: server.finished(run_id), what="the run to finish")
        assert run.state == "Failed", agent.log()
        assert run.context == {"region": "eu"}
        with server.client() as client:
            messages = [e["message"] for e in client.run_logs(run_id)]
        assert "hello from eu" in messages
        assert any("RuntimeError: no eu" in m for m in messages)
        wait_for(lambda: len(calls.read_text().splitlines()) >= 2 if calls.exists() else False)
        assert calls.read_text().splitlines() == ["greet Success region=eu", "team Failed region=eu"]
        refused = server.cli("runs", "create", "team", "-c", "flow_name=x", check=False)
        assert (
            refused.returncode == 2
            and "'flow_name' is a name nbflow.context gives every run" in refused.stderr
        )
        # The server checks by the same rule when a client skips it.
        with server.client() as client, pytest.raises(APIError, match="the run's context key 'flow_name'"):
            client.create_flow_run(flow_name="team", context={"flow_name": "x"})
    finally:
        agent.stop()
