"""A real agent against hostile runs: each must fail alone, say why, and lose nothing else."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import FINISHED, AgentProcess, ServerProcess, agent_key, sqlite_server, wait_for  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(nbflow_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    # A small body limit, so a spool batch of long lines must be split to fit.
    yield from sqlite_server(
        nbflow_home, tmp_path, heartbeat_timeout=3, submitted_timeout=3, max_body_bytes=512 * 1024
    )


def run_flow(server: ServerProcess, notebook: Path, name: str, **create: object):  # type: ignore[no-untyped-def]
    server.cli("register", str(notebook))
    with server.client() as client:
        created = client.create_flow_run(flow_name=name, **create)

    def finished():  # type: ignore[no-untyped-def]
        with server.client() as client:
            run = client.flow_run(created.id)
        return run if run.state in FINISHED else None

    return wait_for(finished, timeout=90, what=f"run of {name} to finish")


def test_long_and_many_log_lines_all_arrive(server: ServerProcess, tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "chatty.ipynb",
        [
            "%%task chatty\nfor i in range(600):\n    print(f'{i:04d} ' + 'x' * 10_000)\nprint('big ' + 'y' * 50_000_000)\nprint('after the big one')"
        ],
    )
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        run = run_flow(server, notebook, "chatty")
        with server.client() as client:
            logs = []
            while True:
                page = client.run_logs(run.id, after_id=logs[-1]["id"] if logs else 0, limit=1000)
                if not page:
                    break
                logs += page
    finally:
        agent.stop()
    assert run.state == "Success", agent.log()
    messages = [line["message"] for line in logs]
    assert len(messages) == 602
    assert [m[:4] for m in messages[:600]] == [f"{i:04d}" for i in range(600)]
    big = messages[600]
    assert big.startswith("big yyy") and big.endswith("more characters cut by the agent]")
    assert messages[601] == "after the big one"


def test_sys_exit_in_a_task_fails_the_run_at_once_and_loses_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    notebook = write_notebook(
        tmp_path / "exits.ipynb",
        ["%%task talk\nprint('before')\nx = 1", "%%task quits\nimport sys\nprint('bye')\nsys.exit(4)"],
    )
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        started = time.monotonic()
        run = run_flow(server, notebook, "exits")
        took = time.monotonic() - started
        with server.client() as client:
            logs = [line["message"] for line in client.run_logs(run.id)]
    finally:
        agent.stop()
    assert run.state == "Failed" and took < 30  # not left Running until a heartbeat timeout
    states = {t.task_slug: (t.state, t.message) for t in run.task_runs}
    assert states["talk"] == ("Success", "")
    assert states["quits"][0] == "Failed" and "the task called sys.exit(4)" in states["quits"][1]
    assert "before" in logs and "bye" in logs


def test_task_code_holds_no_credential_but_its_runs(server: ServerProcess, tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "snoop.ipynb",
        [
            "%%task snoop\nimport os\nfound = sorted(k for k, v in os.environ.items() if 'nbf_' in v or k.startswith('NBFLOW_FLOW'))\nprint('found', found)"
        ],
    )
    key = agent_key(server)
    agent = AgentProcess(server, key).start()
    try:
        run = run_flow(server, notebook, "snoop")
        with server.client() as client:
            logs = [line["message"] for line in client.run_logs(run.id)]
    finally:
        agent.stop()
    assert run.state == "Success", agent.log()
    assert "found []" in logs
    assert key not in (server.home / "agent" / "logs" / f"{run.id}.log").read_text()
    assert not list((server.home / "agent" / "logs").glob("*.spec.json"))  # read and deleted


def test_poison_runs_fail_alone_and_the_agent_keeps_working(server: ServerProcess, tmp_path: Path) -> None:
    good = write_notebook(tmp_path / "good.ipynb", ["%%task fine\nx = 1"])
    server.cli("register", str(good))
    with server.client() as client:
        flow = client.flow(name="good")
        versions = client.graphql('{ flow(name: "good") { latestVersion { storage structure } } }')
        storage = versions["flow"]["latestVersion"]["storage"]
        structure = versions["flow"]["latestVersion"]["structure"]
        outside = {**storage, "location": "/etc/hostname"}
        device = {**storage, "location": "/dev/zero"}
        client.register_flow("outside", {**structure, "name": "outside"}, outside)
        client.register_flow("device", {**structure, "name": "device"}, device)
        poisons = [client.create_flow_run(flow_name=name) for name in ("outside", "device")]
        healthy = client.create_flow_run(flow_id=flow.id)
    agent = AgentProcess(server, agent_key(server)).start()
    try:

        def all_finished():  # type: ignore[no-untyped-def]
            with server.client() as client:
                runs = [client.flow_run(r.id) for r in [*poisons, healthy]]
            return runs if all(r.state in FINISHED for r in runs) else None

        outside_run, device_run, healthy_run = wait_for(all_finished, timeout=60, what="all three runs")
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()
    finally:
        agent.stop()
    assert healthy_run.state == "Success"
    assert outside_run.state == "Failed" and "is outside this agent's storage folders" in outside_run.message
    assert device_run.state == "Failed" and "is outside this agent's storage folders" in device_run.message


def test_an_agent_writes_files_only_its_user_can_read(server: ServerProcess, tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "files.ipynb", ["%%task chat\nprint('hello')"])
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        run = run_flow(server, notebook, "files")
    finally:
        agent.stop()
    assert run.state == "Success"
    home = server.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    loose = [
        str(path.relative_to(home))
        for path in [*home.rglob("*")]
        if stat.S_IMODE(path.stat().st_mode) & 0o077
        and not path.name.endswith(".log")
        or (
            path.name.endswith(".log") and "agent" in path.parts and stat.S_IMODE(path.stat().st_mode) & 0o077
        )
    ]
    assert loose == [], loose
    assert os.access(home / "agent" / "logs" / f"{run.id}.log", os.R_OK)
