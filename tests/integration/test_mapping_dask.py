"""Mapping on a real Dask LocalCluster: same results as local, children as their own Dask tasks."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nbflow import DaskExecutor, EventStream, Flow, Parameter, StateType, task, unmapped

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mapping_helpers import double, parse, scale, total  # noqa: E402

if TYPE_CHECKING:
    from nbflow.core.events import Event

pytestmark = pytest.mark.integration
S = StateType


def build() -> Flow:
    with Flow("mapped") as flow:
        scaled = scale.map(Parameter("xs", default=list(range(12))), factor=unmapped(3))
        total(scaled)
        double.map(parse.map(["1", "x", "3"]))
    return flow


def run(executor: object) -> tuple[dict[str, object], list[Event]]:
    stream = EventStream()
    events: list[Event] = []
    stream.subscribe(events.extend)
    state = build().run(executor=executor, stream=stream)  # type: ignore[arg-type]
    return {
        t.slug: (s.type, s.result if s.is_successful() else s.message) for t, s in state.result.items()
    }, events


def test_a_mapped_flow_gives_the_same_results_on_dask_as_locally() -> None:
    local, _ = run("local")
    dask, events = run(DaskExecutor(n_workers=2, processes=True))
    assert dask == local
    assert dask["total"] == (S.SUCCESS, 3 * sum(range(12)))
    assert dask["double"] == (S.FAILED, "1 of 3 children failed: double[1]")
    finals = {e.task: e.state for e in events if e.kind == "state" and e.is_finished()}
    assert {finals[f"scale[{i}]"] for i in range(12)} == {"Success"}
    assert finals["parse[1]"] == "Failed" and finals["double[1]"] == "TriggerFailed"
    assert finals["double[0]"] == finals["double[2]"] == "Success"


def test_on_dask_a_failing_child_retries_alone_on_a_worker(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"

    @task(retries=1, retry_delay=0)
    def fetch(page: int, marker: str) -> tuple[int, int]:
        if page == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise ConnectionError("page 1: connection reset")
        return page, os.getpid()

    with Flow("pages") as flow:
        pages = fetch.map([0, 1, 2], marker=unmapped(str(marker)))
    stream = EventStream()
    events: list[Event] = []
    stream.subscribe(events.extend)
    state = flow.run(executor=DaskExecutor(n_workers=2, processes=True), stream=stream)
    result = state.result[pages].result
    assert [page for page, _ in result] == [0, 1, 2]
    assert all(pid != os.getpid() for _, pid in result)  # ran on the workers
    by_task: dict[str, list[str]] = {}
    for e in events:
        if e.kind == "state" and e.task is not None:
            by_task.setdefault(e.task, []).append(e.state)
    assert by_task["fetch[1]"] == ["Running", "Retrying", "Running", "Success"]
    assert by_task["fetch[0]"] == by_task["fetch[2]"] == ["Running", "Success"]


def test_a_notebook_with_a_mapped_cell_gives_the_same_lists_on_dask(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from notebook_helpers import write_notebook

    from nbflow.cells.ipynb import flow_from_notebook
    from nbflow.terminal.headless import run_notebook_flow

    cells = [
        "%%task rows_cell\nrows = [3, 1, 2]\nfactor = 10",
        "%%task scaled --map rows\nimport os\nscaled = rows * factor\npid = os.getpid()",
        "%%task total\ntotal = sum(scaled)",
    ]
    notebook = flow_from_notebook(write_notebook(tmp_path / "mapped.ipynb", cells), name="notebook")
    results = {}
    for executor in ("local", "threads", "dask"):
        code, state = run_notebook_flow(notebook, quiet=True, executor=executor)
        assert code == 0, state.message
        by_slug = state.result.by_slug()
        results[executor] = (by_slug["scaled"].result["scaled"], by_slug["total"].result["total"])
        pids = by_slug["scaled"].result["pid"]
        assert (set(pids) == {os.getpid()}) == (executor != "dask")
    assert results["local"] == results["threads"] == results["dask"] == ([30, 10, 20], 60)


@task
def checked(n: int, marker: str, log: str) -> int:
    with open(log, "a") as fh:
        fh.write(f"{n}\n")
    if n == 2 and not os.path.exists(marker):
        raise ValueError("not ready")
    return n * n


def test_on_dask_a_restart_runs_only_the_failed_children(tmp_path: Path) -> None:
    from nbflow.core.restart import Earlier, plan_restart

    marker, log, store = tmp_path / "ready", tmp_path / "runs.txt", str(tmp_path / "results")

    def build_checked() -> tuple[Flow, object]:
        with Flow("checked") as flow:
            squares = checked.map([1, 2, 3], marker=unmapped(str(marker)), log=unmapped(str(log)))
        return flow, squares

    flow, squares = build_checked()
    first = flow.run(executor=DaskExecutor(n_workers=2, processes=True), results=store)
    assert first.result[squares].message == "1 of 3 children failed: checked[1]"
    marker.write_text("ready")
    earlier = {t.slug: Earlier(s.type.value, s.result_ref) for t, s in first.result.items()}
    flow, squares = build_checked()
    plan = plan_restart(flow, earlier)
    second = flow.run(executor=DaskExecutor(n_workers=2, processes=True), initial_states=plan.reused)
    assert second.result[squares].result == [1, 4, 9]
    assert sorted(log.read_text().split()) == ["1", "2", "2", "3"]  # only the failed child ran again
    assert [c.type for c in second.result[squares].children] == [S.CACHED, S.SUCCESS, S.CACHED]
