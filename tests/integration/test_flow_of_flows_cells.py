"""``%%task --starts FLOW``: a cell that starts a run of another registered flow, against a real
server and agent: headless (``nbflow run``), on an agent of another machine (its key from the
server's secrets), and in a kernel."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import kernel as _kernel  # noqa: E402
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, agent_key, wait_for  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(sqlite_agent_server: ServerProcess) -> ServerProcess:
    return sqlite_agent_server


def child_cells(out: Path) -> list[str]:
    """A flow that writes n * 10 to ``out`` (and fails when asked)."""
    return [
        "%%params\nn = 1\nfail = False",
        f"%%task write\nassert not fail, 'asked to fail'\nopen({str(out)!r}, 'w').write(str(n * 10))",
    ]


PARENT = [
    "%%params\nn = 2\nfail = False",
    '%%task --starts child\nparameters = {"n": n * 2, "fail": fail}',
    "%%task report\nreport = (child_run.flow_name, child_run.state)",
]


def child_runs(server: ServerProcess) -> list:  # type: ignore[type-arg]
    with server.client() as client:
        return [client.flow_run(r.id) for r in client.flow_runs(flow_name="child")[0]]


def test_a_starts_cell_runs_another_flow_headless_and_on_an_agent_elsewhere(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "child-output.txt"
    server.cli("register", str(write_notebook(tmp_path / "child.ipynb", child_cells(out))))
    parent = write_notebook(tmp_path / "parent.ipynb", PARENT)
    # Another machine: its own NBFLOW_HOME, its own agent key in NBFLOW_API_KEY; it reads the
    # key to start runs with from the server's secret NBFLOW_API_KEY (an agent key and a run
    # token cannot create runs).
    own_key = agent_key(server)
    monkeypatch.setenv("NBFLOW_API_KEY", own_key)
    agent = AgentProcess(
        server,
        own_key,
        home=tmp_path / "agent-home",
        extra=("--storage-root", str(server.home / "storage")),
    ).start()
    try:
        # Headless: the run is started on the client's server, and the cell waits for it.
        done = server.cli("run", str(parent), "-p", "n=3", "--show-logs")
        assert out.read_text() == "60", done.stdout  # the child ran with the parameters the cell chose
        [first] = child_runs(server)
        assert first.parameters == {"n": 6, "fail": False} and first.state == "Success"
        assert f"started flow run {first.id} of 'child'" in done.stdout
        assert "flow 'parent' Success: 2 tasks (2 Success)" in done.stdout

        failed = server.cli("run", str(parent), "-p", "fail=true", check=False)
        assert failed.returncode == 1
        assert "flow 'parent' Failed" in failed.stdout
        assert "  child_run: Failed: RunError: flow run " in failed.stdout
        assert "of 'child' ended Failed" in failed.stdout

        # On the agent: registered, run by the agent, which also runs the child it starts.
        server.cli("register", str(parent))
        with server.client() as client:
            refused_run = client.create_flow_run(flow_name="parent")
        refused = wait_for(
            lambda: server.finished(refused_run.id), timeout=90, what="a run without the secret"
        )
        assert refused.state == "Failed", agent.log()
        [starter] = [t for t in refused.task_runs if t.task_slug == "child_run"]
        assert "an agent key may not register flows, create or cancel runs" in starter.message

        with server.client() as client:
            user_key = client.create_api_key("user").key
        _set_secret(server, "NBFLOW_API_KEY", user_key)
        with server.client() as client:
            run = client.create_flow_run(flow_name="parent", parameters={"n": 5})
        ended = wait_for(lambda: server.finished(run.id), timeout=90, what="the parent run on the agent")
        assert ended.state == "Success", (ended.message, agent.log())
        assert out.read_text() == "100"
        states = {t.task_slug: t.state for t in ended.task_runs}
        assert states == {"n": "Success", "fail": "Success", "child_run": "Success", "report": "Success"}
        assert user_key not in agent.log()  # the key read from the secrets is never printed
    finally:
        agent.stop()


def _set_secret(server: ServerProcess, name: str, value: str) -> None:
    from nbflow import client_team

    with server.client() as client:
        client.execute(client_team.set_secret(name, value))


def test_a_starts_cell_in_the_kernel_waits_binds_the_outcome_and_fails_with_the_child(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "child-output.txt"
    server.cli("register", str(write_notebook(tmp_path / "child.ipynb", child_cells(out))))
    monkeypatch.setenv("NBFLOW_API_URL", server.url)
    monkeypatch.setenv("NBFLOW_API_KEY", server.admin_key or "")
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        for k in _kernel():
            k.run("%load_ext nbflow")
            k.run("%%params\nn = 4\nfail = False")
            k.run('%%task --starts child\nparameters = {"n": n + 1}')
            outcome = k.ns["child_run"]
            assert (outcome.flow_name, outcome.state) == ("child", "Success")
            assert out.read_text() == "50"
            k.run('%%task --starts child --no-wait\nparameters = {"n": 7}')
            assert k.ns["child_run"].state == "Scheduled"  # created, not waited for
            started = k.ns["child_run"].flow_run_id
            wait_for(partial(server.finished, started), timeout=60, what="the child")
            assert out.read_text() == "70"
            k.run("%%task sizes\nsizes = [1, 2]")
            k.run('%%task fan_out --starts child --map sizes\nparameters = {"n": sizes}')
            fanned = k.ns["child_run"]  # one run per element, their outcomes in order
            assert [o.state for o in fanned] == ["Success", "Success"]
            with server.client() as client:
                assert [client.flow_run(o.flow_run_id).parameters["n"] for o in fanned] == [1, 2]
            failed = k.run('%%task --starts child\nparameters = {"fail": True}', expect_error=True)
            assert "of 'child' ended Failed" in str(failed.error_in_exec)
            wrong = k.run("%%task --starts child\nparameters = [1]", expect_error=True)
            assert "`parameters` must be a dict of 'child''s parameter names" in str(wrong.error_in_exec)
            assert "child_run" in k.ns  # the earlier outcome stays: the failed cells bound nothing
    finally:
        agent.stop()
