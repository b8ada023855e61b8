"""Mapping in the engine: ``task.map(...)`` and ``unmapped(...)`` on the local and threads executors."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nbflow import (
    EventStream,
    Flow,
    GraphError,
    Parameter,
    StateType,
    ThreadExecutor,
    context,
    task,
    unmapped,
)
from nbflow.core.mapping import child_counts, parent_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mapping_helpers import double, parse, scale, total  # noqa: E402

if TYPE_CHECKING:
    from nbflow.core.events import Event

S = StateType
EXECUTORS = ["local", "threads"]


def collect(stream: EventStream) -> list[Event]:
    events: list[Event] = []
    stream.subscribe(events.extend)
    return events


def states_of(events: list[Event], slug: str) -> list[str]:
    return [e.state for e in events if e.kind == "state" and e.task == slug]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_mapped_task_runs_once_per_element_in_order_and_collects_a_list(executor: str) -> None:
    with Flow("scale") as flow:
        scaled = scale.map(Parameter("xs", default=[1, 2, 3, 4]), factor=unmapped(10))
        summed = total(scaled)
    stream = EventStream()
    events = collect(stream)
    state = flow.run(executor=executor, stream=stream)
    assert state.is_successful(), state.message
    assert state.result[scaled].result == [10, 20, 30, 40]
    assert state.result[summed].result == 100
    parent = state.result[scaled]
    assert parent.message == "4 children: 4 success"
    assert child_counts(parent.children or ()) == {"Success": 4}
    for i in range(4):
        assert states_of(events, f"scale[{i}]") == ["Running", "Success"]
    assert states_of(events, "scale") == ["Running", "Success"]
    # The parent counts as one task of the flow (parameters are inputs, not tasks).
    assert state.message == "all 2 tasks finished: 2 success"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_one_failing_child_retries_alone(executor: str) -> None:
    calls: dict[int, int] = {}
    lock = threading.Lock()

    @task(retries=2, retry_delay=0)
    def fetch(page: int) -> str:
        with lock:
            calls[page] = calls.get(page, 0) + 1
        if page == 2 and calls[page] == 1:
            raise ConnectionError("page 2: connection reset")
        return f"page-{page}"

    with Flow("pages") as flow:
        pages = fetch.map([0, 1, 2, 3])
    stream = EventStream()
    events = collect(stream)
    state = flow.run(executor=executor, stream=stream)
    assert state.result[pages].result == ["page-0", "page-1", "page-2", "page-3"]
    assert calls == {0: 1, 1: 1, 2: 2, 3: 1}
    assert states_of(events, "fetch[2]") == ["Running", "Retrying", "Running", "Success"]
    assert states_of(events, "fetch[1]") == ["Running", "Success"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failed_child_fails_the_parent_and_triggers_decide_per_child(executor: str) -> None:
    with Flow("parse") as flow:
        numbers = parse.map(["1", "x", "3"])
        doubled = double.map(numbers)
        summed = total(numbers)
    stream = EventStream()
    events = collect(stream)
    state = flow.run(executor=executor, stream=stream)
    assert state.type is S.FAILED
    parsed = state.result[numbers]
    assert parsed.type is S.FAILED and parsed.message == "1 of 3 children failed: parse[1]"
    # Mapped over a mapped task: each child follows its own upstream child.
    assert states_of(events, "double[0]") == ["Running", "Success"]
    assert states_of(events, "double[1]") == ["TriggerFailed"]
    assert states_of(events, "double[2]") == ["Running", "Success"]
    assert state.result[doubled].type is S.FAILED
    assert state.result[doubled].result == [2, None, 6]
    # A plain task reading the whole list follows the parent.
    assert state.result[summed].type is S.TRIGGER_FAILED


def test_each_child_is_cached_on_its_own_inputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ran: list[int] = []

    @task(cache_for=3600)
    def slow_square(x: int) -> int:
        ran.append(x)
        return x * x

    def build(items: list[int]) -> Flow:
        with Flow("squares") as flow:
            slow_square.map(items)
        return flow

    from nbflow import FlowRunner

    first = FlowRunner(build([1, 2, 3]), cache_root=str(tmp_path)).run()
    assert first.is_successful() and sorted(ran) == [1, 2, 3]
    ran.clear()
    stream = EventStream()
    events = collect(stream)
    second = FlowRunner(build([1, 2, 4]), cache_root=str(tmp_path), stream=stream).run()
    assert ran == [4]
    assert states_of(events, "slow_square[0]") == ["Cached"]
    assert states_of(events, "slow_square[2]") == ["Running", "Success"]
    (parent,) = second.result.values()
    assert parent.result == [1, 4, 16]
    assert parent.message == "3 children: 2 cached, 1 success"


def test_children_run_in_parallel_on_the_threads_executor() -> None:
    # Three children meet at a barrier: run one after the other, the first would wait alone.
    barrier = threading.Barrier(3, timeout=60)

    @task
    def meet(i: int) -> int:
        barrier.wait()
        return i

    with Flow("meet") as flow:
        met = meet.map([0, 1, 2])
    state = flow.run(executor=ThreadExecutor(max_workers=3))
    assert state.result[met].result == [0, 1, 2], state.result[met].message


def test_children_see_their_index_and_slug_in_the_context() -> None:
    @task
    def where(x: str) -> tuple[str, int]:
        return context.task_slug, context.map_index

    with Flow("ctx") as flow:
        seen = where.map(["a", "b"])
    assert flow.run().result[seen].result == [("where[0]", 0), ("where[1]", 1)]


def test_mapped_inputs_of_different_lengths_fail_with_both_sizes() -> None:
    with Flow("uneven") as flow:
        scaled = scale.map([1, 2, 3], factor=Parameter("factors", default=[1, 2]))
    state = flow.run()
    assert state.result[scaled].type is S.FAILED
    assert state.result[scaled].message == "mapped inputs differ in length: factor has 2, x has 3"


def test_mapping_over_an_upstream_result_that_is_not_a_list_fails_clearly() -> None:
    @task
    def one() -> int:
        return 1

    with Flow("scalar") as flow:
        scaled = scale.map(one(), factor=unmapped(2))
    state = flow.run()
    assert state.result[scaled].message == "cannot map over input 'x': it is a int, not a list"


def test_mapping_over_an_empty_list_succeeds_with_an_empty_list() -> None:
    with Flow("empty") as flow:
        scaled = scale.map(Parameter("xs", default=[]), factor=unmapped(2))
        summed = total(scaled)
    state = flow.run()
    assert state.result[scaled].result == [] and state.result[summed].result == 0


def test_bad_map_calls_are_graph_errors_naming_the_task() -> None:
    with Flow("bad"), pytest.raises(GraphError, match=r"'scale': \.map\(\.\.\.\) needs at least one input"):
        scale.map(unmapped([1]), factor=unmapped(2))
    with Flow("bad"), pytest.raises(GraphError, match="cannot map over x='abc'"):
        scale.map("abc", factor=unmapped(2))


def test_map_outside_a_flow_calls_the_function_per_element() -> None:
    assert scale.map([1, 2], factor=unmapped(3)) == [3, 6]


def test_the_structure_names_the_mapped_inputs() -> None:
    with Flow("s") as flow:
        scale.map([1], factor=unmapped(2))
    (entry,) = flow.structure()["tasks"]
    assert entry["options"]["map"] == ["x"]


def test_child_slugs_parse_back_to_their_parent() -> None:
    assert parent_of("clean[12]") == ("clean", 12)
    assert parent_of("clean") is None
    assert parent_of("a[b]") is None


def test_the_run_view_shows_a_mapped_task_as_one_node_with_child_counts() -> None:
    from nbflow.core.runview import RunView

    @task
    def parse(text: str) -> int:
        return int(text)

    with Flow("parse") as flow:
        parse.map(["1", "x", "3", "4"])
    stream = EventStream()
    view = RunView()
    stream.subscribe(view.observe)
    flow.run(stream=stream)
    snapshot = view.snapshot(["parse"])["tasks"]["parse"]
    assert snapshot["state"] == "Failed"
    assert snapshot["children"] == {"Success": 3, "Failed": 1}
    assert view.detail("parse")["children"] == {"Success": 3, "Failed": 1}
    assert view.detail("parse[1]")["state"] == "Failed"
    assert "ValueError" in view.detail("parse[1]")["logs"][0]["message"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancelling_a_run_stops_a_mapped_task_and_its_children(executor: str) -> None:
    from nbflow import FlowRunner

    started = threading.Semaphore(0)
    running = 3 if executor == "threads" else 1  # children that run at once

    @task
    def slow(i: int) -> int:
        started.release()
        while True:  # Python code, so the cancel can stop it (a wait in C cannot be interrupted)
            time.sleep(0.01)

    with Flow("slow") as flow:
        mapped = slow.map(list(range(20)))
    stream = EventStream()
    events = collect(stream)
    runner = FlowRunner(flow, executor=ThreadExecutor(max_workers=3) if executor == "threads" else executor,
                        stream=stream)  # fmt: skip

    def cancel_when_started() -> None:
        for _ in range(running):  # every pool thread is busy: the cancel lands while children run
            started.acquire(timeout=60)
        runner.cancel("stop")
        if executor == "local":  # the local executor runs in this thread: interrupt it like Ctrl-C
            from nbflow.core.taskrun import interrupt_thread

            interrupt_thread(main, KeyboardInterrupt)

    main = threading.get_ident()
    threading.Thread(target=cancel_when_started, daemon=True).start()
    state = runner.run()
    assert state.type is S.CANCELLED
    assert state.result[mapped].type is S.CANCELLED
    finals = {e.task: e.state for e in events if e.kind == "state" and e.task and e.task.startswith("slow[")}
    assert len(finals) == 20 and set(finals.values()) == {"Cancelled"}
