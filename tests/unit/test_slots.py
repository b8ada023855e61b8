"""The engine's side of concurrency limits: a tagged task waits for its slots (Scheduled, with the
reason), runs, and gives them back; a cancelled run stops waiting; untagged tasks never ask."""

from __future__ import annotations

import threading

from nbflow.core.flows import Flow
from nbflow.core.runner import FlowRunner
from nbflow.core.states import StateType
from nbflow.core.tasks import task

S = StateType


class CountingGate:
    """A gate that refuses ``refusals`` times, then grants; it records what it was asked."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.released: list[str] = []

    def acquire(self, task_run_id: str, task_slug: str, tags: tuple[str, ...]) -> tuple[bool, str]:
        self.asked.append((task_slug, tags))
        if self.refusals:
            self.refusals -= 1
            return False, "tag 'db' has 2 of 2 slots in use"
        return True, ""

    def release(self, task_run_id: str) -> None:
        self.released.append(task_run_id)


def states_of(runner: FlowRunner) -> list[tuple[str | None, str, str]]:
    seen: list[tuple[str | None, str, str]] = []
    runner.stream.subscribe(
        lambda batch: seen.extend((e.task, e.state, e.message) for e in batch if e.kind == "state")
    )
    return seen


def test_a_tagged_task_waits_scheduled_with_the_reason_then_runs_and_releases() -> None:
    @task(tags=["db"])
    def query() -> int:
        return 1

    @task
    def untagged() -> int:
        return 2

    with Flow("limited") as flow:
        query()
        untagged()
    gate = CountingGate(refusals=2)
    runner = FlowRunner(flow, gate=gate, echo=False)
    seen = states_of(runner)
    assert runner.run().is_successful()
    runner.stream.flush()
    assert gate.asked == [("query", ("db",))] * 3  # never for the untagged task
    assert gate.released == [runner.task_run_ids[flow.get_task("query")]]
    query_states = [(state, message) for slug, state, message in seen if slug == "query"]
    assert query_states == [
        ("Scheduled", "waiting for a concurrency slot: tag 'db' has 2 of 2 slots in use"),
        ("Running", ""),
        ("Success", ""),
    ]


def test_cancelling_the_run_stops_a_task_waiting_for_a_slot() -> None:
    @task(tags=["db"])
    def query() -> int:
        return 1

    with Flow("blocked") as flow:
        query()
    runner = FlowRunner(flow, gate=CountingGate(refusals=10**6), echo=False)
    threading.Timer(0.5, runner.cancel).start()
    state = runner.run()
    assert state.type is S.CANCELLED
    assert state.result["query"].message == "the run was cancelled while this task waited for a slot"
