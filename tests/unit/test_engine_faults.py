"""Faults inside tasks that must stay inside their task: sys.exit, Ctrl-C, runaway shell children."""

from __future__ import annotations

import _thread
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nbflow import Flow, task
from nbflow.core.states import StateType

S = StateType


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_sys_exit_in_a_task_fails_that_task_and_nothing_else(executor: str) -> None:
    @task
    def quits():
        sys.exit(3)

    @task(trigger="all_finished")
    def after(x=None):
        return "still here"

    with Flow("exits") as flow:
        after(upstream_tasks=[quits()])
    state = flow.run(executor=executor)
    assert state.is_failed()
    quit_state = state.result["quits"]
    assert quit_state.type is S.FAILED
    assert "the task called sys.exit(3)" in quit_state.message
    assert state.result["after"].result == "still here"


def test_a_headless_run_whose_task_calls_sys_exit_says_so(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from notebook_helpers import write_notebook

    notebook = write_notebook(tmp_path / "exits.ipynb", ["%%task quits\nimport sys\nsys.exit(4)"])
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "run", str(notebook)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "quits: Failed: TaskExit: the task called sys.exit(4)" in done.stdout


class TickingFlow:
    """A flow of one cached task, ``slow``, that ticks every 0.05 s for ``ticks`` ticks: what a
    Ctrl-C must stop (no tick after it, nothing cached)."""

    def __init__(self, name: str, ticks: int) -> None:
        self.ticks: list[int] = []
        self.started = threading.Event()

        @task(cache_for=3600)
        def slow():
            self.started.set()
            for i in range(ticks):
                self.ticks.append(i)
                time.sleep(0.05)
            return "done"

        with Flow(name) as self.flow:
            slow()


def test_ctrl_c_stops_running_threads_and_caches_nothing(tmp_path: Path) -> None:
    ticking = TickingFlow("interrupted", 200)
    ticks, started, flow = ticking.ticks, ticking.started, ticking.flow

    def press_ctrl_c() -> None:
        started.wait(5)
        time.sleep(0.2)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    from nbflow.core.runner import FlowRunner

    state = FlowRunner(flow, executor="threads", cache_root=str(tmp_path)).run()
    assert state.is_cancelled() and state.message.startswith("interrupted")
    assert state.result["slow"].type is S.CANCELLED
    seen = len(ticks)
    time.sleep(0.5)
    assert len(ticks) <= seen + 1, "the task kept running after the run was interrupted"
    assert not list(tmp_path.rglob("*.pkl")), "an interrupted task's result was cached"


def test_ctrl_c_while_the_threads_driver_starts_still_stops_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C may come while the threads driver is still starting its first thread, before it
    waits on the crew: the task that just started must be stopped all the same, not left to run
    to its end (and its result cached)."""
    from nbflow.core import drivers
    from nbflow.core.runner import FlowRunner

    ticking = TickingFlow("interrupted while starting", 100)
    ticks, started, flow = ticking.ticks, ticking.started, ticking.flow

    real_start = drivers._ThreadCrew.start

    def start_then_ctrl_c(crew: Any, count: int) -> None:
        real_start(crew, count)
        raise KeyboardInterrupt  # as Ctrl-C does on the main thread, here of all places

    real_cancel = FlowRunner.cancel

    def cancel_late(runner: Any, reason: str = "cancelled by user") -> None:
        time.sleep(0.2)  # the main thread is slow to get there (a loaded machine): the task starts
        real_cancel(runner, reason)

    monkeypatch.setattr(drivers._ThreadCrew, "start", start_then_ctrl_c)
    monkeypatch.setattr(FlowRunner, "cancel", cancel_late)
    state = FlowRunner(flow, executor="threads", cache_root=str(tmp_path)).run()
    assert state.is_cancelled() and state.message.startswith("interrupted"), state.message
    started.wait(0.3)  # the thread may have started the task before it saw the cancel
    seen = len(ticks)
    time.sleep(0.3)
    assert len(ticks) <= seen + 1, "the task kept running after the run was interrupted"
    assert state.result["slow"].type is S.CANCELLED
    assert not list(tmp_path.rglob("*.pkl")), "an interrupted task's result was cached"


def test_a_timed_out_shell_task_takes_its_children_with_it() -> None:
    from nbflow.cells.cells import Cell, TaskOptions
    from nbflow.cells.celltasks import ShellTask

    marker = f"{time.time_ns() % 10_000_000}.5"
    cell = Cell("task", f"sleep 300{marker} &\nsleep 300{marker}", TaskOptions(timeout=1.0, shell=True))
    flow = Flow("shell")
    flow.add_task(ShellTask(cell, "children"))
    state = flow.run()
    assert state.result["children"].type is S.TIMED_OUT
    deadline = time.time() + 5
    while time.time() < deadline:
        alive = subprocess.run(["pgrep", "-f", f"sleep 300{marker}"], capture_output=True, text=True)
        if not alive.stdout.strip():
            break
        time.sleep(0.1)
    assert not alive.stdout.strip(), "the shell task's children outlived its timeout"
