"""Chaos: keep the promises while the system is broken on purpose.

Two server replicas on one PostgreSQL database, three agents (each with its own
NBFLOW_HOME, like separate machines), and chatty flows (short lines and 20 KB
lines). While they run: an agent is killed with SIGKILL; another is frozen with
SIGSTOP past the heartbeat timeout and then woken; a replica is killed with
SIGKILL and restarted; then, with a second wave of long chatty runs in flight,
both replicas are killed for a 60 s outage (the agents spool); and the killed
agent comes back with its old spool. Then, for every run:

* no run is stuck: each ends in a final state;
* exactly once where promised: a run that may not be resubmitted runs each task
  at most once; a resubmitted run's older executions write nothing after the
  winning claim;
* the winning execution's states and log lines are all there, once, in order.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import (  # noqa: E402
    FINISHED,
    AgentProcess,
    ServerProcess,
    fresh_postgres_database,
    postgres_url,
    wait_for,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]
LINES = 24  # per chatty task in the first wave; every fifth is 20 KB
LONG = 100  # per chatty task in the second wave, which runs through the outage
HEARTBEAT_TIMEOUT = 4
OUTAGE = 60.0


def chatty_cells(marker: Path) -> list[str]:
    task = (
        "%%task {name}\nimport time, nbflow\n"
        "with open(MARKER, 'a') as fh:\n    fh.write(f'{{nbflow.context.flow_run_id}} {name}\\n')\n"
        "for i in range(lines):\n"
        "    print(f'{name} {{i:03d}} ' + ('z' * 20_000 if i % 5 == 0 else 'short'))\n"
        "    time.sleep(0.25)\n"
        "{name}_done = lines"
    )
    return [
        f"%%setup\nMARKER = {str(marker)!r}",
        f"%%params\nlines = {LINES}",
        task.format(name="first"),
        task.format(name="second"),
        "%%task total\ntotal = first_done + second_done\nprint(f'total {total}')",
    ]


def all_logs(client, run_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    out: list[dict] = []
    while True:
        page = client.run_logs(run_id, after_id=out[-1]["id"] if out else 0, limit=1000)
        if not page:
            return out
        out += page


RUN_QUERY = """query($id: String!) { flowRun(id: $id) { id state execution resubmits
  states { state position execution }
  taskRuns { id taskSlug state execution states { state position execution } } } }"""


@pytest.mark.timeout(600)
def test_promises_hold_under_kills_pauses_and_a_long_outage(tmp_path: Path, nbflow_home: Path) -> None:
    if not postgres_url():
        pytest.skip("NBFLOW_TEST_POSTGRES_URL is not set: the chaos suite runs two replicas on PostgreSQL")
    marker = tmp_path / "executions.txt"
    options = {"heartbeat_timeout": HEARTBEAT_TIMEOUT, "submitted_timeout": HEARTBEAT_TIMEOUT}
    with fresh_postgres_database() as url:
        replicas = [ServerProcess(nbflow_home / name, url, **options).start() for name in ("a", "b")]
        replicas[1].admin_key = replicas[0].admin_key
        agents: list[AgentProcess] = []
        try:
            runs, agents = _start(replicas, tmp_path, marker)
            runs |= _inject_faults(replicas, agents)
            finals = _wait_for_every_run(replicas[1], runs)
            _check(replicas[1], runs, finals, marker)
        finally:
            for agent in agents:
                agent.stop()
            for replica in replicas:
                replica.stop()


def _start(
    replicas: list[ServerProcess], tmp_path: Path, marker: Path
) -> tuple[dict[str, int], list[AgentProcess]]:
    a, b = replicas
    once = write_notebook(tmp_path / "chatty_once.ipynb", chatty_cells(marker))
    retried = write_notebook(tmp_path / "chatty_retried.ipynb", chatty_cells(marker))
    a.cli("register", str(once), "--storage", str(tmp_path / "code"))
    a.cli("register", str(retried), "--storage", str(tmp_path / "code"), "--max-resubmits", "3")
    with a.client() as client:
        key = client.create_api_key("agent").key
        runs = {client.create_flow_run(flow_name="chatty_once").id: LINES for _ in range(8)}
        runs |= {client.create_flow_run(flow_name="chatty_retried").id: -LINES for _ in range(8)}
    options = ("--storage-root", str(tmp_path / "code"), "--concurrency", "3")
    agents = [
        AgentProcess(server, key, name=f"agent-{i}", home=tmp_path / f"machine-{i}", extra=options).start()
        for i, server in enumerate((a, a, b))
    ]
    return runs, agents


def _inject_faults(replicas: list[ServerProcess], agents: list[AgentProcess]) -> dict[str, int]:
    """The faults, in order; returns the second wave's runs (lines per task, negative: resubmittable)."""
    a, b = replicas
    time.sleep(3)
    agents[0].kill9()  # an agent dies: its runs fail, or are resubmitted to others
    frozen = agents[1].pause()  # a machine freezes past the heartbeat timeout...
    time.sleep(HEARTBEAT_TIMEOUT + 5)
    AgentProcess.resume(frozen)  # ...and wakes up: its runs belong to newer executions now
    a.proc.kill()  # type: ignore[union-attr]  # a replica dies and comes back: its agents wait
    a.proc.wait()  # type: ignore[union-attr]
    time.sleep(3)
    a.start()
    with b.client() as client:
        wave = {
            client.create_flow_run(flow_name="chatty_retried", parameters={"lines": LONG}).id: -LONG
            for _ in range(4)
        }
    wait_for(lambda: _running(b, wave), timeout=60, what="the second wave to run")
    for replica in replicas:  # both replicas die: a total outage while chatty runs go on
        replica.proc.kill()  # type: ignore[union-attr]
        replica.proc.wait()  # type: ignore[union-attr]
    time.sleep(OUTAGE)
    for replica in replicas:
        replica.start()
    agents[0].start()  # the dead agent comes back, with its old spool
    return wave


def _running(server: ServerProcess, runs: dict[str, int]) -> bool:
    with server.client() as client:
        return all(client.flow_run(run_id).state == "Running" for run_id in runs)


def _wait_for_every_run(server: ServerProcess, runs: dict[str, int]) -> dict[str, dict]:
    def finished() -> dict[str, dict] | None:
        with server.client() as client:
            found = {run_id: client.graphql(RUN_QUERY, {"id": run_id})["flowRun"] for run_id in runs}
        return found if all(r["state"] in FINISHED for r in found.values()) else None

    return wait_for(finished, timeout=240, interval=1, what="every run to finish (no stuck run)")


def _check(server: ServerProcess, runs: dict[str, int], finals: dict[str, dict], marker: Path) -> None:
    executed = Counter(tuple(line.split()) for line in marker.read_text().splitlines())
    states = Counter(run["state"] for run in finals.values())
    assert states["Success"] >= 12, states
    report = Counter(runs=len(runs), **{f"runs {k}": v for k, v in states.items()})
    with server.client() as client:
        for run_id, lines in runs.items():
            run = finals[run_id]
            if lines > 0:  # exactly once: no task of a run without resubmits ran twice
                assert all(executed[(run_id, t)] <= 1 for t in ("first", "second")), run_id
            logs = all_logs(client, run_id)
            _check_winner(run, logs, abs(lines))
            report["resubmits"] += run["resubmits"]
            report["executions"] += len([s for s in run["states"] if s["state"] == "Submitted"])
            report["states checked"] += len(run["states"]) + sum(len(t["states"]) for t in run["taskRuns"])
            report["log lines checked"] += len(logs)
    print(f"\nchaos: {dict(report)}; lost 0, duplicated 0")


def _check_winner(run: dict, logs: list[dict], lines: int) -> None:
    winner = run["execution"]
    claims = [s for s in run["states"] if s["state"] == "Submitted"]
    won_at = max(s["position"] for s in claims)
    # Older executions wrote nothing after the winning claim (zombies were refused).
    older = [
        s["position"] for task in run["taskRuns"] if task["execution"] != winner for s in task["states"]
    ] + [line["id"] for line in logs if line["execution"] != winner]
    assert all(position < won_at for position in older), run["id"]
    mine = [line for line in logs if line["execution"] == winner]
    seqs = [line["seq"] for line in mine]
    assert seqs == sorted(set(seqs)), f"{run['id']}: a line repeated or out of order"
    tasks = [t for t in run["taskRuns"] if t["execution"] == winner]
    slugs = Counter(t["taskSlug"] for t in tasks)
    assert all(n == 1 for n in slugs.values()), f"{run['id']}: a task ran twice in one execution"
    if run["state"] != "Success":
        return
    assert set(slugs) == {"lines", "first", "second", "total"}  # the parameter runs as a task too
    by_task: dict[str, list[str]] = defaultdict(list)
    for line in mine:
        if line["level"] != "WARNING":  # the task's own lines, not the engine's notes (an output not stored)
            by_task[line["taskSlug"]].append(line["message"])
    for name in ("first", "second"):
        expected = [f"{name} {i:03d} " + ("z" * 20_000 if i % 5 == 0 else "short") for i in range(lines)]
        assert by_task[name] == expected, f"{run['id']}: {name}'s lines are not all there, once, in order"
    assert by_task["total"] == [f"total {2 * lines}"]
