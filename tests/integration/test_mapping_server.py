"""A mapped notebook on a real server and agent: one node with its children's counts by state."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import FINISHED, AgentProcess, ServerProcess, agent_key, wait_for  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CELLS = [
    "%%task rows_cell\nrows = ['1', 'x', '3']",
    "%%task parsed --map rows\nparsed = int(rows)",
]


@pytest.fixture
def server(sqlite_agent_server: ServerProcess) -> ServerProcess:
    return sqlite_agent_server


def test_the_server_shows_a_mapped_task_as_one_row_with_child_counts(
    server: ServerProcess, tmp_path: Path
) -> None:
    server.cli("register", str(write_notebook(tmp_path / "mapped.ipynb", CELLS)))
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            created = client.create_flow_run(flow_name="mapped")

        def finished():  # type: ignore[no-untyped-def]
            with server.client() as client:
                run = client.flow_run(created.id)
            return run if run.state in FINISHED else None

        run = wait_for(finished, timeout=60, what="the run to finish")
        assert run.state == "Failed", agent.log()
        rows = {t.task_slug: t for t in run.task_runs}
        assert set(rows) == {"rows_cell", "parsed"}
        assert rows["parsed"].state == "Failed"
        assert rows["parsed"].children == {"Success": 2, "Failed": 1}
        with server.client() as client:
            data = client.graphql(
                "query($id: String!) { flowRun(id: $id) { taskRuns { taskSlug mapIndex state } } }",
                {"id": run.id},
            )
        children = {t["taskSlug"]: (t["mapIndex"], t["state"]) for t in data["flowRun"]["taskRuns"]}
        assert children["parsed[1]"] == (1, "Failed") and children["parsed[2]"] == (2, "Success")
        shown = server.cli("runs", "show", run.id).stdout
        assert "children" in shown and "1 failed, 2 success" in shown
    finally:
        agent.stop()
