"""Tag concurrency limits with a real server and agent processes: never more task runs of a tag
at once than its limit (from recorded start and end times), waiting tasks say why, and a
killed agent's slot is freed by the heartbeat timeout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import FINISHED, AgentProcess, ServerProcess, agent_key, sqlite_server, wait_for  # noqa: E402

from nbflow import client_team  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(nbflow_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    # A generous heartbeat timeout: a loaded 2-core machine must not look like a dead agent.
    yield from sqlite_server(nbflow_home, tmp_path, heartbeat_timeout=8, submitted_timeout=8)


def tagged_notebook(path: Path, tag: str, record: Path) -> Path:
    cells = [
        "%%setup\nimport time, nbflow",
        "%%params\nseconds = 1.0",
        f"%%task work --tags {tag},other\nwith open({str(record)!r}, 'a') as f:\n"
        "    f.write(f'start {time.time()} {nbflow.context.flow_run_id}\\n')\n"
        "time.sleep(seconds)\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(f'end {time.time()} {nbflow.context.flow_run_id}\\n')\n"
        "done = True",
    ]
    return write_notebook(path, cells)


def most_at_once(record: Path) -> int:
    """The largest number of task runs between their start and end lines at one moment."""
    events = []
    for line in record.read_text().splitlines():
        kind, when, _ = line.split()
        events.append((float(when), 1 if kind == "start" else -1))
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        running += step
        most = max(most, running)
    return most


def waiting_task(client, run_ids: list[str]):  # type: ignore[no-untyped-def]
    for run_id in run_ids:
        for task in client.flow_run(run_id).task_runs:
            if task.state == "Scheduled" and "waiting for a concurrency slot" in task.message:
                return task
    return None


def test_two_agents_never_run_more_tagged_tasks_than_the_limit(server: ServerProcess, tmp_path: Path) -> None:
    record = tmp_path / "intervals.txt"
    server.cli("register", str(tagged_notebook(tmp_path / "tagged.ipynb", "db", record)))
    server.cli("limits", "set", "db", "2")
    key = agent_key(server)
    agents = [AgentProcess(server, key, concurrency=4, name=f"limited-{i}").start() for i in range(2)]
    try:
        with server.client() as client:
            run_ids = [client.create_flow_run(flow_name="tagged").id for _ in range(6)]
            waiting = wait_for(
                lambda: waiting_task(client, run_ids), timeout=60, what="a task waiting for a slot"
            )
            assert "tag 'db' has 2 of 2 slots in use" in waiting.message
            shown = server.cli("limits", "list").stdout
            assert "db" in shown and "work (" in shown
            runs = [
                wait_for(lambda r=r: (x := client.flow_run(r)).state in FINISHED and x, timeout=120)
                for r in run_ids
            ]
        assert all(r.state == "Success" for r in runs), [a.log() for a in agents]
        assert len(record.read_text().splitlines()) == 12
        assert most_at_once(record) == 2  # never more than the limit, and the limit was reached
    finally:
        for agent in agents:
            agent.stop()


def test_killing_an_agent_mid_task_frees_its_slot(server: ServerProcess, tmp_path: Path) -> None:
    record = tmp_path / "intervals.txt"
    server.cli("register", str(tagged_notebook(tmp_path / "solo.ipynb", "solo", record)))
    server.cli("limits", "set", "solo", "1")
    key = agent_key(server)
    doomed = AgentProcess(server, key, name="doomed").start()
    rescuer = None
    try:
        with server.client() as client:
            first = client.create_flow_run(flow_name="solo", parameters={"seconds": 300}).id
            wait_for(
                lambda: record.exists() and "start" in record.read_text(), what="the first task to start"
            )
            [held] = client.execute(client_team.concurrency_limits())
            assert (held["tag"], held["inUse"], held["holders"][0]["flowRunId"]) == ("solo", 1, first)
            doomed.kill9()
            second = client.create_flow_run(flow_name="solo", parameters={"seconds": 0.1}).id
            rescuer = AgentProcess(server, key, name="rescuer").start()
            run = wait_for(lambda: (x := client.flow_run(second)).state in FINISHED and x, timeout=90)
            assert run.state == "Success", rescuer.log()
            assert client.flow_run(first).state == "Failed"  # its heartbeats stopped
        assert record.read_text().count("end") == 1  # the killed task never ended; the second one did
    finally:
        doomed.stop()
        if rescuer is not None:
            rescuer.stop()


def test_a_label_limit_caps_active_flow_runs_and_other_runs_pass_them(
    server: ServerProcess, tmp_path: Path
) -> None:
    record = tmp_path / "intervals.txt"
    server.cli("register", str(tagged_notebook(tmp_path / "gpu_job.ipynb", "gpu", record)), "--labels", "gpu")
    server.cli("register", str(write_notebook(tmp_path / "quick.ipynb", ["%%task\nx = 1"])))
    server.cli("limits", "set", "gpu", "1", "--label")
    agent = AgentProcess(server, agent_key(server), labels="gpu", concurrency=4).start()
    try:
        with server.client() as client:
            gpu_runs = [client.create_flow_run(flow_name="gpu_job").id for _ in range(3)]
            quick = client.create_flow_run(flow_name="quick").id
            # The runs behind the limit wait in the queue; a run without the label passes them.
            wait_for(lambda: client.flow_run(quick).state == "Success", timeout=60, what="the unlimited run")
            assert any(client.flow_run(r).state == "Scheduled" for r in gpu_runs)
            shown = server.cli("limits", "list").stdout
            assert "label" in shown and "gpu" in shown
            runs = [
                wait_for(lambda r=r: (x := client.flow_run(r)).state in FINISHED and x, timeout=120)
                for r in gpu_runs
            ]
        assert all(r.state == "Success" for r in runs), agent.log()
        assert most_at_once(record) == 1
    finally:
        agent.stop()
