"""StartFlowRun: a task that runs another registered flow on a real server (an agent runs it) and waits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, agent_key  # noqa: E402

from nbflow import EventStream, Flow, Parameter, StartFlowRun, StateType, task  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
S = StateType


@pytest.fixture
def server(sqlite_agent_server: ServerProcess) -> ServerProcess:
    return sqlite_agent_server


def test_a_task_starts_another_flow_with_parameters_and_waits_for_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "child-output.txt"
    child = [
        "%%params\nn = 1\nfail = False",
        f"%%task write\nassert not fail, 'asked to fail'\nopen({str(out)!r}, 'w').write(str(n * 10))\nwritten = n",
    ]
    server.cli("register", str(write_notebook(tmp_path / "child.ipynb", child)))
    agent = AgentProcess(server, agent_key(server)).start()
    try:

        @task
        def how_many() -> int:
            return 4

        @task
        def after(outcome: object) -> str:
            return f"child {outcome.state}"  # type: ignore[attr-defined]

        start = StartFlowRun("child", server=server.url, key=server.admin_key, poll_interval=0.2)
        with Flow("parent") as flow:
            outcome = start(n=how_many(), fail=Parameter("fail", default=False))
            done = after(outcome)
        stream = EventStream()
        events: list = []
        stream.subscribe(events.extend)
        state = flow.run(stream=stream)
        assert state.is_successful(), (state.message, agent.log())
        result = state.result[outcome].result
        assert result.flow_name == "child" and result.state == "Success"
        assert out.read_text() == "40"  # the child ran with the parameter an upstream task chose
        assert state.result[done].result == "child Success"
        assert any(
            e.kind == "log" and e.message == f"started flow run {result.flow_run_id} of 'child'"
            for e in events
        )
        with server.client() as client:
            assert client.flow_run(result.flow_run_id).parameters == {"n": 4, "fail": False}

        failed = flow.run(parameters={"fail": True})
        assert failed.result[outcome].type is S.FAILED
        assert "of 'child' ended Failed" in failed.result[outcome].message
        assert failed.result[done].type is S.TRIGGER_FAILED
    finally:
        agent.stop()
