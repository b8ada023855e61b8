"""Restart from failure and %flow pull against a real server and agent, on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import kernel as _kernel  # noqa: E402
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, agent_key, wait_for  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cells(marker: Path) -> list[str]:
    return [
        "%%task items_cell\nitems = [1, 2, 3]",
        "%%task other\nother = len(items) * 2",
        f"%%task checked\nimport os\nassert os.path.exists({str(marker)!r}), 'the input is not ready'\nchecked = sum(items)",
        "%%task report\nreport = (checked, other)",
    ]


def test_a_failed_run_restarts_from_its_failed_tasks_and_a_kernel_pulls_its_outputs(
    server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "ready"
    server.cli("register", str(write_notebook(tmp_path / "restartable.ipynb", cells(marker))))
    # The agent keeps its results in its own home (another machine would, too).
    agent = AgentProcess(
        server,
        agent_key(server),
        home=tmp_path / "agent-home",
        extra=("--storage-root", str(server.home / "storage")),
    ).start()
    try:
        with server.client() as client:
            first = client.create_flow_run(flow_name="restartable")
        failed = wait_for(lambda: server.finished(first.id), timeout=60, what="the first run")
        assert failed.state == "Failed", agent.log()
        assert {t.task_slug: t.state for t in failed.task_runs} == {
            "items_cell": "Success", "other": "Success", "checked": "Failed", "report": "TriggerFailed",
        }  # fmt: skip
        assert all(t.result_ref for t in failed.task_runs if t.state == "Success")
        # A run that did not fail cannot be restarted; an unknown one is a clear error.
        refused = server.cli("runs", "restart", "no-such-run", check=False)
        assert refused.returncode != 0 and "no flow run 'no-such-run'" in refused.stderr + refused.stdout

        marker.write_text("ready")
        answer = server.cli("runs", "restart", first.id).stdout
        restart_id = answer.split()[2]
        assert f"restarts {first.id} from its failed tasks" in answer
        second = wait_for(lambda: server.finished(restart_id), timeout=60, what="the restarted run")
        assert second.state == "Success", agent.log()
        assert second.restart_of == first.id
        # Only the failed task and its downstream ran again; the others were reused.
        assert {t.task_slug: t.state for t in second.task_runs} == {
            "items_cell": "Cached", "other": "Cached", "checked": "Success", "report": "Success",
        }  # fmt: skip
        assert sum(t.version for t in second.task_runs if t.state == "Cached") == 2  # one state each
        again = server.cli("runs", "restart", restart_id, check=False)
        assert (
            again.returncode != 0 and "only a failed or cancelled run restarts" in again.stderr + again.stdout
        )

        # A kernel pulls the restarted run's outputs (reused ones included) into its variables.
        for k in _kernel():
            k.run("%load_ext nbflow")
            k.run(f"%flow pull {restart_id} --server {server.url} --key {server.admin_key}")
            assert k.ns["report"] == (6, 6) and k.ns["checked"] == 6 and k.ns["items"] == [1, 2, 3]
            k.run(f"%flow pull {first.id} other --server {server.url} --key {server.admin_key}")
            k.run(
                f"%flow pull {first.id} nope --server {server.url} --key {server.admin_key}",
                expect_error=True,
            )
    finally:
        agent.stop()


def mapped_cells(marker: Path, log: Path) -> list[str]:
    """A mapped cell whose child for 3 fails until ``marker`` exists; each child run adds its
    element to ``log``, so the file counts the child runs."""
    square = (
        "%%task square --map items\nimport os\n"
        f"open({str(log)!r}, 'a').write(str(items) + '\\n')\n"
        f"assert items != 3 or os.path.exists({str(marker)!r}), 'the input is not ready'\n"
        "squares = items * items"
    )
    return ["%%task items_cell\nitems = [1, 2, 3, 4]", square, "%%task report\nreport = sum(squares)"]


def task_runs(server: ServerProcess, run_id: str) -> dict[str, str]:
    """Every task run of a run, mapped children included: slug -> state."""
    with server.client() as client:
        data = client.graphql(
            "query($id: String!) { flowRun(id: $id) { taskRuns { taskSlug state } } }", {"id": run_id}
        )
    return {t["taskSlug"]: t["state"] for t in data["flowRun"]["taskRuns"]}


def test_a_restart_reruns_only_the_failed_children_of_a_mapped_task(
    server: ServerProcess, tmp_path: Path
) -> None:
    marker, log = tmp_path / "ready", tmp_path / "child-runs.txt"
    server.cli("register", str(write_notebook(tmp_path / "mapped_restart.ipynb", mapped_cells(marker, log))))
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            first = client.create_flow_run(flow_name="mapped_restart")
        failed = wait_for(lambda: server.finished(first.id), timeout=60, what="the first run")
        assert failed.state == "Failed", agent.log()
        assert task_runs(server, first.id) == {
            "items_cell": "Success", "square": "Failed", "square[0]": "Success", "square[1]": "Success",
            "square[2]": "Failed", "square[3]": "Success", "report": "TriggerFailed",
        }  # fmt: skip

        marker.write_text("ready")
        restart_id = server.cli("runs", "restart", first.id).stdout.split()[2]
        second = wait_for(lambda: server.finished(restart_id), timeout=60, what="the restarted run")
        assert second.state == "Success", agent.log()
        # One child ran again; its siblings came back from the result store.
        assert task_runs(server, restart_id) == {
            "items_cell": "Cached", "square": "Success", "square[0]": "Cached", "square[1]": "Cached",
            "square[2]": "Success", "square[3]": "Cached", "report": "Success",
        }  # fmt: skip
        assert log.read_text().split() == ["1", "2", "3", "4", "3"]
        run_log = (server.home / "agent" / "logs" / f"{restart_id}.log").read_text()
        assert "square reuses 3 of its 4 children, runs the others" in run_log
        for k in _kernel():
            k.run("%load_ext nbflow")
            k.run(f"%flow pull {first.id} --server {server.url} --key {server.admin_key}")
            # The failed mapped task stored its succeeded children for a restart, not outputs.
            assert k.ns["items"] == [1, 2, 3, 4] and "squares" not in k.ns
            k.run(f"%flow pull {restart_id} --server {server.url} --key {server.admin_key}")
            assert k.ns["squares"] == [1, 4, 9, 16] and k.ns["report"] == 30
    finally:
        agent.stop()
