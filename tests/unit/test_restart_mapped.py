"""A restart runs only the failed children of a mapped task: the others come back from the
result store (the ``PartialMap`` the failed task stored), on the local and threads executors."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from nbflow import EventStream, Flow, StateType, task
from nbflow.core.mapping import PartialMap
from nbflow.core.restart import Earlier, plan_restart
from nbflow.core.results import load

if TYPE_CHECKING:
    from pathlib import Path

S = StateType
BROKEN: set[int] = set()
CALLS: list[int] = []
_lock = threading.Lock()


@task
def numbers() -> list[int]:
    return [1, 2, 3, 4]


@task
def square(x: int) -> int:
    with _lock:
        CALLS.append(x)
    if x in BROKEN:
        raise ValueError(f"{x} is broken")
    return x * x


@task
def add(values: list[int]) -> int:
    return sum(values)


def build() -> tuple[Flow, object, object]:
    """The flow, built afresh for each run (as an agent's flow process does)."""
    with Flow("squares") as flow:
        squares = square.map(numbers())
        total = add(squares)
    return flow, squares, total


def earlier_of(state: object) -> dict[str, Earlier]:
    return {t.slug: Earlier(s.type.value, s.result_ref) for t, s in state.result.items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_restart_reruns_only_the_failed_children(executor: str, tmp_path: Path) -> None:
    BROKEN.clear(), BROKEN.update({2, 4})
    CALLS.clear()
    flow, squares, _ = build()
    first = flow.run(results=str(tmp_path), executor=executor)
    failed = first.result[squares]
    assert failed.type is S.FAILED and failed.message == "2 of 4 children failed: square[1], square[3]"
    # What it stored: the children that succeeded, by index, for a restart.
    assert load(failed.result_ref) == PartialMap(4, {0: 1, 2: 9})

    BROKEN.clear()
    CALLS.clear()
    flow, squares, total = build()
    plan = plan_restart(flow, earlier_of(first))
    assert plan.rerun == ["square", "add"] and plan.children == {"square": (2, 4)}
    stream = EventStream()
    events: list = []
    stream.subscribe(events.extend)
    second = flow.run(results=str(tmp_path), executor=executor, initial_states=plan.reused, stream=stream)
    assert second.is_successful()
    assert sorted(CALLS) == [2, 4]  # only the children that failed ran again
    assert second.result[total].result == 30
    assert [c.type for c in second.result[squares].children] == [S.CACHED, S.SUCCESS, S.CACHED, S.SUCCESS]
    ran = {e.task for e in events if e.kind == "state" and e.state == "Running" and e.task}
    assert ran == {"square", "square[1]", "square[3]", "add"}
    reused = [e for e in events if e.kind == "state" and e.task == "square[0]"]
    assert [(e.state, e.message) for e in reused] == [("Cached", "reused: Success in an earlier run")]


def test_children_run_again_when_an_upstream_runs_again(tmp_path: Path) -> None:
    BROKEN.clear(), BROKEN.add(2)
    flow, squares, _ = build()
    first = flow.run(results=str(tmp_path))
    earlier = earlier_of(first)
    earlier["numbers"] = Earlier("Failed")  # as if the list itself had failed: its children may differ
    BROKEN.clear()
    CALLS.clear()
    flow, squares, _ = build()
    plan = plan_restart(flow, earlier)
    assert plan.children == {}
    assert flow.run(results=str(tmp_path), initial_states=plan.reused).is_successful()
    assert sorted(CALLS) == [1, 2, 3, 4]
