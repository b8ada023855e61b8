"""Hybrid execution with real processes: server, agents, flow subprocesses."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import DF_CELLS, write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, agent_key, wait_for  # noqa: E402

from nbflow.storage.code import sha256_text  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(sqlite_agent_server: ServerProcess) -> ServerProcess:
    return sqlite_agent_server


def register(server: ServerProcess, notebook: Path, *extra: str) -> None:
    server.cli("register", str(notebook), *extra)


def test_register_run_and_every_state_and_log_line_is_stored(server: ServerProcess, tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "frames.ipynb", [*DF_CELLS, "%%task shout\nfor i in range(3):\n    print(f'line {i}')"]
    )
    register(server, notebook)
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            created = client.create_flow_run(flow_name="frames")
        run = wait_for(lambda: server.finished(created.id), what="the run to finish")
        assert run.state == "Success", agent.log()
        with server.client() as client:
            logs = client.run_logs(run.id)
        slugs = {t.task_slug: t for t in run.task_runs}
        assert set(slugs) == {"load_data", "clean", "summary", "n_plotted", "shout"}
        assert all(t.state == "Success" and t.version == 2 for t in slugs.values())  # Running, then Success
        messages = [(entry["taskSlug"], entry["message"]) for entry in logs]
        assert messages == [
            ("n_plotted", "plotting 3 rows"),
            ("shout", "line 0"),
            ("shout", "line 1"),
            ("shout", "line 2"),
        ] or sorted(messages) == sorted(
            [("n_plotted", "plotting 3 rows"), ("shout", "line 0"), ("shout", "line 1"), ("shout", "line 2")]
        )
        assert [e["seq"] for e in logs] == sorted(e["seq"] for e in logs)
    finally:
        agent.stop()


def test_labels_route_runs_to_the_right_agent(server: ServerProcess, tmp_path: Path) -> None:
    for name, label in (("gpu_flow", "gpu"), ("cpu_flow", "cpu")):
        register(
            server,
            write_notebook(tmp_path / f"{name}.ipynb", ["%%task\nimport os\npid = os.getpid()"]),
            "--labels",
            label,
        )
    key = agent_key(server)
    gpu = AgentProcess(server, key, labels="gpu,linux", name="gpu-agent").start()
    cpu = AgentProcess(server, key, labels="cpu", name="cpu-agent").start()
    try:
        with server.client() as client:
            runs = [
                client.create_flow_run(flow_name=f) for f in ("gpu_flow", "cpu_flow", "gpu_flow", "cpu_flow")
            ]
        done = [wait_for(lambda r=r: server.finished(r.id)) for r in runs]
        assert all(r.state == "Success" for r in done)
        for run in done:
            expected, other = (gpu, cpu) if run.flow_name == "gpu_flow" else (cpu, gpu)
            # The agent logs a run once its flow process has started, which on a busy machine
            # can be after that process has finished the run: wait for the line.
            wait_for(
                lambda run=run, agent=expected: run.id in agent.log(), what=f"{run.flow_name} in its log"
            )
            assert run.id not in other.log(), f"{run.flow_name} ran on the wrong agent"
    finally:
        gpu.stop()
        cpu.stop()


@pytest.mark.timeout(300)  # its own wait is 180 s: the suite's 120 s default must not cut it
def test_two_agents_fifty_runs_each_run_exactly_once(server: ServerProcess, tmp_path: Path) -> None:
    marker = tmp_path / "executions.txt"
    cells = [
        "%%setup\nimport nbflow",
        f"%%task record\nwith open({str(marker)!r}, 'a') as fh:\n    fh.write(nbflow.context.flow_run_id + '\\n')\ndone = True",
    ]
    register(server, write_notebook(tmp_path / "counted.ipynb", cells))
    key = agent_key(server)
    agents = [AgentProcess(server, key, concurrency=4, name=f"worker-{i}").start() for i in range(2)]
    try:
        with server.client() as client:
            runs = [client.create_flow_run(flow_name="counted") for _ in range(50)]
        ids = {r.id for r in runs}

        def all_done() -> bool:
            with server.client() as client:
                return client.flow_runs(flow_name="counted", states=["Success"], limit=100)[1] == 50

        try:
            wait_for(all_done, timeout=180, what="50 runs to succeed")
        except AssertionError:  # say where the runs are
            with server.client() as client:
                listed, _ = client.flow_runs(flow_name="counted", limit=100)
            raise AssertionError(Counter((r.state, r.message) for r in listed)) from None
    finally:
        for agent in agents:
            agent.stop()
    executions = Counter(marker.read_text().split())
    assert set(executions) == ids
    assert set(executions.values()) == {1}
    # Both agents did work; a run whose claim was released before it started is run by the
    # other agent, and the first one's process runs nothing ("not started here").
    shares = [
        sum(f"run {run_id} finished (flow process exit 0)" in agent.log() for run_id in ids)
        for agent in agents
    ]
    assert sum(shares) == 50 and all(share > 0 for share in shares), shares


def test_cancel_a_running_flow(server: ServerProcess, tmp_path: Path) -> None:
    cells = [
        "%%task slow\nimport time\nfor i in range(600):\n    time.sleep(0.05)\nslow = True",
        "%%task after\nafter = slow",
    ]
    register(server, write_notebook(tmp_path / "slow.ipynb", cells))
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            run = client.create_flow_run(flow_name="slow")
            wait_for(lambda: client.flow_run(run.id).state == "Running", what="the run to start")
            started = time.time()
            assert client.cancel_flow_run(run.id).state == "Cancelling"
        final = wait_for(lambda: server.finished(run.id), timeout=30)
        assert final.state == "Cancelled"
        assert time.time() - started < 20
        states = {t.task_slug: t.state for t in final.task_runs}
        assert states.get("slow") == "Cancelled"
        assert states.get("after") in (None, "Cancelled")
    finally:
        agent.stop()


def test_killed_agent_fails_the_run_or_resubmits_it(server: ServerProcess, tmp_path: Path) -> None:
    # The first executions wait after their second line until the agent is dead: however slow
    # the machine, neither run can finish before the kill.
    released = tmp_path / "released"
    cells = [
        "%%task slow\nimport os, time\nfor i in range(8):\n    print(f'line {i}')\n"
        f"    while i == 1 and not os.path.exists({str(released)!r}):\n        time.sleep(0.05)\n"
        "    time.sleep(0.2)\nslow = True"
    ]
    register(server, write_notebook(tmp_path / "fragile.ipynb", cells))
    register(server, write_notebook(tmp_path / "sturdy.ipynb", cells), "--max-resubmits", "1")
    key = agent_key(server)

    doomed = AgentProcess(server, key, name="doomed").start()
    with server.client() as client:
        fragile = client.create_flow_run(flow_name="fragile")
        sturdy = client.create_flow_run(flow_name="sturdy")
        wait_for(
            lambda: {client.flow_run(fragile.id).state, client.flow_run(sturdy.id).state} == {"Running"},
            what="both runs to start",
        )
        wait_for(lambda: len(client.run_logs(sturdy.id)) >= 2, what="the first execution's first lines")
    doomed.kill9()
    released.touch()
    failed = wait_for(lambda: server.finished(fragile.id), timeout=30, what="recovery to fail the run")
    assert failed.state == "Failed"
    assert "no heartbeat for 3s: the agent or the flow process died" in failed.message
    with server.client() as client:
        resubmitted = wait_for(
            lambda: client.flow_run(sturdy.id).state == "Scheduled" and client.flow_run(sturdy.id), timeout=30
        )
    assert "resubmitted (1 of 1)" in resubmitted.message
    rescuer = AgentProcess(server, key, name="rescuer").start()
    try:
        done = wait_for(lambda: server.finished(sturdy.id), timeout=60)
        assert done.state == "Success", (done.message, rescuer.log())
        wait_for(lambda: sturdy.id in rescuer.log(), what="the rescuer's log to name the run")
        with server.client() as client:
            logs = client.run_logs(sturdy.id)
            execution = client.graphql(
                "query($id: String!) { flowRun(id: $id) { execution } }", {"id": sturdy.id}
            )
    finally:
        rescuer.stop()
    # Both executions numbered their lines from 1: the resubmitted one lost none of its own.
    winner = execution["flowRun"]["execution"]
    assert [line["message"] for line in logs if line["execution"] == winner] == [
        f"line {i}" for i in range(8)
    ]
    assert any(line["execution"] != winner for line in logs)  # the first execution's lines are kept too


def test_server_outage_mid_run_loses_no_state_and_no_log_line(server: ServerProcess, tmp_path: Path) -> None:
    cells = [
        "%%task chatty\nimport time\nfor i in range(40):\n    print(f'tick {i}')\n    time.sleep(0.1)\nticks = 40",
        "%%task after\nprint('after', ticks)\nresult = ticks",
    ]
    register(server, write_notebook(tmp_path / "chatty.ipynb", cells))
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            run = client.create_flow_run(flow_name="chatty")
            wait_for(
                lambda: any(t.task_slug == "chatty" for t in client.flow_run(run.id).task_runs),
                what="the first task",
            )
        server.stop()  # the run goes on; its states and logs go to the spool
        time.sleep(5)
        server.start()
        final = wait_for(
            lambda: server.finished(run.id), timeout=60, what="the run's final state after the outage"
        )
        assert final.state == "Success", agent.log()
        with server.client() as client:
            logs = client.run_logs(run.id, limit=1000)
        lines = [entry["message"] for entry in logs]
        assert lines == [f"tick {i}" for i in range(40)] + ["after 40"]
        assert [e["seq"] for e in logs] == list(range(1, 42))  # each line once, in order
        assert {t.task_slug: (t.state, t.version) for t in final.task_runs} == {
            "chatty": ("Success", 2),
            "after": ("Success", 2),
        }
    finally:
        agent.stop()


def test_agent_refuses_code_whose_hash_does_not_match(
    server: ServerProcess, tmp_path: Path, nbflow_home: Path
) -> None:
    register(server, write_notebook(tmp_path / "tampered.ipynb", ["%%task\nx = 1"]))
    code = next((nbflow_home / "storage").rglob("*.py"))
    code.write_text(code.read_text() + "\nimport os  # injected\n")
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            run = client.create_flow_run(flow_name="tampered")
        final = wait_for(lambda: server.finished(run.id))
        assert final.state == "Failed"
        assert "does not match its registration" in final.message and "refusing to run it" in final.message
        assert sha256_text(code.read_text())[:12] not in final.message  # the file's own hash stays hidden
    finally:
        agent.stop()


def test_notebook_runs_on_the_server_and_the_widget_follows_it_live(server: ServerProcess) -> None:
    from notebook_helpers import Kernel

    agent = AgentProcess(server, agent_key(server)).start()
    kernel = Kernel()
    try:
        kernel.run_all(
            [
                *DF_CELLS[:2],
                "%%task load_data --no-run\ndf = load()",
                "%%task clean --no-run\ndf = df.dropna()",
            ]
        )
        kernel.run("%flow name remote_frames")
        kernel.run(f"%flow run --server {server.url} --key {server.admin_key}")
        watch = kernel.session.watches[-1]
        assert watch.finished.wait(60), agent.log()
        time.sleep(0.5)  # the watcher's trailing sync
        states = watch.widget.states
        assert states["run"]["state"] == "Success"
        assert {slug: t["state"] for slug, t in states["tasks"].items()} == {
            "load_data": "Success",
            "clean": "Success",
        }
        assert {t["slug"] for t in watch.widget.graph["tasks"]} == {"load_data", "clean"}
        # %flow watch on a finished run replays it from the start.
        kernel.run(f"%flow watch {watch.run_id} --server {server.url} --key {server.admin_key}")
        again = kernel.session.watches[-1]
        assert again.finished.wait(30)
        time.sleep(0.5)
        assert again.widget.states["tasks"]["clean"]["state"] == "Success"
    finally:
        for w in kernel.session.watches:
            w.stop()
        kernel.close()
        agent.stop()


def test_a_private_flow_keeps_its_words_on_the_agent(
    server: ServerProcess, tmp_path: Path, nbflow_home: Path
) -> None:
    marker = "MARKER-private-4b1d"
    notebook = write_notebook(
        tmp_path / "private.ipynb",
        [
            "%%task extract\nsecret_rows = [1, 2, 3]",
            f"%%task report\nprint('{marker}-printed')\nraise ValueError('{marker}-raised ' + str(secret_rows))",
        ],
    )
    register(server, notebook, "--private")
    agent = AgentProcess(server, agent_key(server)).start()
    try:
        with server.client() as client:
            structure = client.graphql('{ flow(name: "private") { latestVersion { private structure } } }')
            run = client.create_flow_run(flow_name="private")
        final = wait_for(lambda: server.finished(run.id))
        with server.client() as client:
            logs = client.run_logs(run.id)
    finally:
        agent.stop()
    version = structure["flow"]["latestVersion"]
    assert version["private"] is True
    assert "secret_rows" not in str(version["structure"])  # no variable names either
    assert final.state == "Failed" and logs == []
    report = next(t for t in final.task_runs if t.task_slug == "report")
    assert report.state == "Failed"
    assert report.message == "failed (ValueError); details are kept in the agent's run log"
    # The server's database has none of the task's words; the agent's run log has them all.
    stored = b"".join(p.read_bytes() for p in (tmp_path / "server").glob("nbflow.db*"))
    assert marker.encode() not in stored and b"secret_rows" not in stored
    run_log = (nbflow_home / "agent" / "logs" / f"{run.id}.log").read_text()
    assert f"{marker}-printed" in run_log and f"{marker}-raised [1, 2, 3]" in run_log
