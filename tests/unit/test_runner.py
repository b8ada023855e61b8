from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

import nbflow
from nbflow import EventStream, Flow, FlowRunner, Parameter, State, StateType, Task, task

if TYPE_CHECKING:
    from nbflow.core.events import Event

S = StateType


def collect(stream: EventStream) -> list[Event]:
    events: list[Event] = []
    stream.subscribe(events.extend)
    return events


def task_states(events: list[Event], slug: str) -> list[str]:
    return [e.state for e in events if e.kind == "state" and e.task == slug]


def test_failing_twice_then_succeeding_ends_success_after_three_attempts() -> None:
    attempts: list[int] = []

    @task(retries=2, retry_delay=0)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)} lost the connection")
        return "data"

    stream = EventStream()
    events = collect(stream)
    flow = Flow("retry", tasks=[flaky])
    state = flow.run(stream=stream)
    final = state.result[flaky]
    assert final.type is S.SUCCESS and final.result == "data" and final.attempt == 3
    assert task_states(events, "flaky") == [
        "Running",
        "Retrying",
        "Running",
        "Retrying",
        "Running",
        "Success",
    ]
    retrying = [e.to_state() for e in events if e.kind == "state" and e.type is S.RETRYING]
    assert "attempt 1 failed (ConnectionError: attempt 1 lost the connection)" in retrying[0].message
    errors = [e.message for e in events if e.kind == "log" and e.level == "ERROR"]
    assert len(errors) == 2 and "ConnectionError" in errors[0] and "in flaky" in errors[0]


def test_retries_exhausted_ends_failed_with_the_error() -> None:
    @task(retries=1, retry_delay=0.01)
    def broken() -> None:
        raise ValueError("bad row 7")

    state = Flow("f", tasks=[broken]).run()
    final = state.result[broken]
    assert final.type is S.FAILED and final.attempt == 2
    assert final.message == "ValueError: bad row 7"
    assert isinstance(final.result, ValueError)
    assert state.is_failed() and "1 of 1 task failed: broken (Failed)" in state.message


def test_retry_delay_is_waited() -> None:
    calls: list[float] = []

    @task(retries=1, retry_delay=0.3)
    def slow_retry() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("once")

    Flow("d", tasks=[slow_retry]).run()
    assert calls[1] - calls[0] >= 0.3


def test_hung_task_ends_timed_out_and_the_run_goes_on() -> None:
    stop = threading.Event()

    @task(timeout=0.2)
    def hangs() -> None:
        while not stop.is_set():  # pure-Python loop: the runner can stop it
            pass

    @task
    def independent() -> int:
        return 42

    flow = Flow("t", tasks=[hangs, independent])
    started = time.monotonic()
    state = flow.run()
    elapsed = time.monotonic() - started
    stop.set()
    assert state.result[hangs].type is S.TIMED_OUT
    assert state.result[hangs].message == "timed out after 0.2s"
    assert state.result[independent].result == 42
    assert state.is_failed()
    assert elapsed < 5


def test_timeout_is_retried_like_a_failure() -> None:
    calls: list[int] = []

    @task(timeout=0.2, retries=1, retry_delay=0)
    def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1)
        return "ok"

    state = Flow("t", tasks=[slow_then_fast]).run()
    assert state.result[slow_then_fast].type is S.SUCCESS
    assert state.result[slow_then_fast].attempt == 2


def test_a_task_raising_timeout_error_itself_is_failed_not_timed_out() -> None:
    @task(timeout=5)
    def raises_timeout() -> None:
        raise TimeoutError("socket timed out")

    state = Flow("t", tasks=[raises_timeout]).run()
    assert state.result[raises_timeout].type is S.FAILED
    assert state.result[raises_timeout].message == "TimeoutError: socket timed out"


def test_context_values_inside_a_task() -> None:
    seen: dict = {}

    @task
    def inspect_context(region: str) -> None:
        ctx = nbflow.context
        seen.update(
            flow_name=ctx.flow_name,
            flow_run_id=ctx.flow_run_id,
            task_run_id=ctx.task_run_id,
            task_name=ctx.task_name,
            parameters=ctx.parameters,
            scheduled_start_time=ctx.scheduled_start_time,
            today=ctx.today,
            yesterday=ctx.yesterday,
            date=ctx.date,
            logger=ctx.logger,
            region=region,
        )

    with Flow("ctx") as flow:
        inspect_context(Parameter("region", default="eu"))
    when = datetime.fromisoformat("2024-03-01T06:00:00+00:00")
    runner = FlowRunner(flow, parameters={"region": "us"}, scheduled_start_time=when)
    state = runner.run()
    assert state.is_successful()
    assert seen["flow_name"] == "ctx"
    assert seen["flow_run_id"] == runner.flow_run_id
    assert seen["task_run_id"] == runner.task_run_ids[flow.get_task("inspect_context")]
    assert seen["task_name"] == "inspect_context"
    assert seen["parameters"] == {"region": "us"}
    assert seen["scheduled_start_time"] == when
    assert seen["date"] == when
    assert (seen["today"], seen["yesterday"]) == ("2024-03-01", "2024-02-29")
    assert isinstance(seen["logger"], logging.Logger)
    assert seen["region"] == "us"


def test_context_outside_a_run_is_usable() -> None:
    assert nbflow.context.flow_run_id is None
    assert nbflow.context.parameters == {}
    assert len(nbflow.context.today) == 10
    with pytest.raises(AttributeError, match="nbflow.context has no 'nope'; available: flow_name"):
        _ = nbflow.context.nope


def test_print_and_logging_become_log_records_of_the_task_run(capsys: pytest.CaptureFixture[str]) -> None:
    @task
    def chatty() -> int:
        print("reading 3 files")
        print("part", end="")
        print("ial line")
        logging.getLogger("my.lib").warning("disk almost full")
        nbflow.context.logger.info("done with %d rows", 3)
        return 3

    @task
    def quiet(x: int) -> int:
        return x

    stream = EventStream()
    events = collect(stream)
    with Flow("logs") as flow:
        quiet(chatty())
    state = flow.run(stream=stream, echo=False)
    logs = [(e.task, e.level, e.message) for e in events if e.kind == "log"]
    assert logs == [
        ("chatty", "INFO", "reading 3 files"),
        ("chatty", "INFO", "partial line"),
        ("chatty", "WARNING", "disk almost full"),
        ("chatty", "INFO", "done with 3 rows"),
    ]
    assert state.is_successful()
    assert len({e.task_run_id for e in events if e.task == "chatty"}) == 1
    assert "reading 3 files" not in capsys.readouterr().out  # echo=False keeps the terminal clean


def test_echo_passes_output_through() -> None:
    import io
    import sys

    @task
    def hello() -> None:
        print("hello from task")

    buffer = io.StringIO()
    old = sys.stdout
    sys.stdout = buffer
    try:
        Flow("e", tasks=[hello]).run(echo=True)
    finally:
        sys.stdout = old
    assert "hello from task" in buffer.getvalue()


def test_parallel_threads_keep_their_output_apart() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def make(name: str) -> Task:
        def body() -> None:
            barrier.wait()
            for i in range(50):
                print(f"{name} line {i}")

        return Task(body, name=name)

    stream = EventStream()
    events = collect(stream)
    flow = Flow("p", tasks=[make("left"), make("right")])
    state = flow.run(executor="threads", stream=stream, echo=False)
    assert state.is_successful()
    for name in ("left", "right"):
        lines = [e.message for e in events if e.kind == "log" and e.task == name]
        assert lines == [f"{name} line {i}" for i in range(50)]


def test_threads_run_independent_branches_in_parallel() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def branch(i: int) -> Task:
        # Each branch can only finish when all three run at the same time.
        return Task(lambda: barrier.wait() is not None, name=f"branch{i}")

    flow = Flow("par", tasks=[branch(i) for i in range(3)])
    state = flow.run(executor="threads")
    assert state.is_successful()


def fan_of(leaves: list[Task]) -> Flow:
    """A root task whose result every leaf takes as ``x``."""
    flow = Flow("fan")
    root = flow.add_task(Task(lambda: 1, name="root"))
    for leaf in leaves:
        flow.add_edge(root, leaf, key="x")
    return flow


def test_threads_run_the_tasks_queued_behind_a_slow_one() -> None:
    # Forty tasks ready at once: a thread takes several of them together. The first
    # waits until all the others ran: it can only finish if they do not wait for it.
    others_ran = threading.Event()
    ran: list[int] = []

    def leaf(i: int) -> Task:
        def body(x: int) -> bool:
            if i == 0:
                return others_ran.wait(5)
            ran.append(i)
            if len(ran) == 39:
                others_ran.set()
            return True

        return Task(body, name=f"leaf{i}")

    flow = fan_of([leaf(i) for i in range(40)])
    state = flow.run(executor=nbflow.ThreadExecutor(max_workers=2), echo=False)
    assert state.is_successful()
    assert state.result["leaf0"].result is True  # it did not give up waiting


def test_threads_start_as_work_waits_until_every_thread_runs() -> None:
    # Threads start one by one while work waits for them: tasks that wait (on I/O, here on
    # each other) still get all six, however the first thread took its share of them.
    barrier = threading.Barrier(6, timeout=5)
    names: set[str] = set()

    def leaf(i: int) -> Task:
        def body(x: int) -> bool:
            names.add(threading.current_thread().name)
            return barrier.wait() is not None

        return Task(body, name=f"leaf{i}")

    flow = fan_of([leaf(i) for i in range(6)])
    state = flow.run(executor=nbflow.ThreadExecutor(max_workers=6), echo=False)
    assert state.is_successful(), state.message
    assert len(names) == 6


def test_cancelling_threads_keeps_the_states_of_the_tasks_that_ran() -> None:
    # Tasks nothing waits for are recorded in groups: a cancel must not lose those that ran.
    runner: FlowRunner

    def leaf(i: int) -> Task:
        def body(x: int) -> int:
            if i == 50:
                runner.cancel()
            return i

        return Task(body, name=f"leaf{i}")

    flow = fan_of([leaf(i) for i in range(200)])
    runner = FlowRunner(flow, executor=nbflow.ThreadExecutor(max_workers=1), echo=False)
    state = runner.run()
    assert state.type is S.CANCELLED
    assert [state.result[f"leaf{i}"].result for i in range(50)] == list(range(50))
    assert all(state.result[f"leaf{i}"].type is S.SUCCESS for i in range(50))
    assert state.result["leaf50"].type is S.CANCELLED  # it ran into the cancel it made
    assert all(state.result[f"leaf{i}"].type is S.CANCELLED for i in range(51, 200))
    assert "149 of 201 tasks did not run" in state.message


def test_events_of_a_run_are_ordered_and_framed_by_flow_states() -> None:
    @task
    def a() -> int:
        return 1

    @task
    def b(x: int) -> int:
        return x + 1

    with Flow("ev") as flow:
        b(a())
    stream = EventStream()
    events = collect(stream)
    flow.run(stream=stream)
    flow_states = [e.state for e in events if e.task is None]
    assert flow_states == ["Running", "Success"]
    assert events[0].task is None and events[-1].task is None
    order = [(e.task, e.state) for e in events if e.task]
    assert order == [("a", "Running"), ("a", "Success"), ("b", "Running"), ("b", "Success")]
    assert all(e.to_wire()["flow_run_id"] == events[0].flow_run_id for e in events)


def test_state_and_log_handlers_observe_the_stream() -> None:
    seen: list[tuple[str, str | None, str]] = []
    flow_seen: list[str] = []
    log_seen: list[str] = []

    def on_task(t: Task, old: State | None, new: State) -> None:
        seen.append((t.name, old.type.value if old else None, new.type.value))

    @task(state_handlers=[on_task])
    def watched() -> None:
        print("hi")

    flow = Flow(
        "h",
        tasks=[watched],
        state_handlers=[lambda f, old, new: flow_seen.append(new.type.value)],
        log_handlers=[lambda event: log_seen.append(event.message)],
    )
    flow.run()
    assert seen == [("watched", None, "Running"), ("watched", "Running", "Success")]
    assert flow_seen == ["Running", "Success"]
    assert log_seen == ["hi"]


def test_a_failing_handler_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    def bad_handler(t: Task, old: State | None, new: State) -> None:
        raise RuntimeError("handler bug")

    @task(state_handlers=[bad_handler])
    def fine() -> int:
        return 1

    state = Flow("h", tasks=[fine]).run()
    assert state.is_successful()
    assert "observer" in caplog.text


def test_cancel_stops_tasks_not_yet_started() -> None:
    started = threading.Event()
    release = threading.Event()

    @task
    def first() -> int:
        started.set()
        release.wait(5)
        return 1

    @task
    def second(x: int) -> int:
        return x + 1

    with Flow("c") as flow:
        second(first())
    runner = FlowRunner(flow, executor="threads")
    result: list[State] = []
    thread = threading.Thread(target=lambda: result.append(runner.run()))
    thread.start()
    assert started.wait(5)
    runner.cancel()
    release.set()
    thread.join(5)
    state = result[0]
    assert state.type is S.CANCELLED
    # It was running: it is stopped and recorded Cancelled (and nothing of it is cached).
    assert state.result["first"].type is S.CANCELLED
    assert state.result["second"].type is S.CANCELLED
    assert "1 of 2 tasks did not run" in state.message


def test_keyboard_interrupt_cancels_the_run() -> None:
    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    @task
    def later(x: object) -> None:
        return None

    with Flow("k") as flow:
        later(interrupted())
    state = flow.run()
    assert state.type is S.CANCELLED
    assert state.message.startswith("interrupted")


def test_targets_run_only_the_task_and_its_upstream() -> None:
    ran: list[str] = []

    def make(name: str) -> Task:
        return Task(lambda **_: ran.append(name), name=name)

    flow = Flow("t")
    a, b, c, d = (make(n) for n in "abcd")
    flow.add_edge(a, b)
    flow.add_edge(b, c)
    flow.add_edge(a, d)
    state = flow.run(targets=["b"])
    assert ran == ["a", "b"]
    assert set(state.result.by_slug()) == {"a", "b"}


def test_initial_states_reuse_earlier_results_and_rerun_the_rest() -> None:
    calls: list[str] = []
    fail = {"on": True}

    @task
    def load() -> int:
        calls.append("load")
        return 10

    @task
    def transform(x: int) -> int:
        calls.append("transform")
        if fail["on"]:
            raise ValueError("bug")
        return x * 2

    with Flow("r") as flow:
        out = transform(load())
    first = flow.run()
    assert first.is_failed()
    fail["on"] = False
    keep = {t: s for t, s in first.result.items() if s.is_successful()}
    second = flow.run(initial_states=keep)
    assert second.result[out].result == 20
    assert calls == ["load", "transform", "transform"]


def test_flow_run_with_schedule_waits_for_the_next_time() -> None:
    from nbflow import IntervalSchedule

    @task
    def tick() -> float:
        return time.time()

    flow = Flow("sched", tasks=[tick], schedule=IntervalSchedule(1))
    stream = EventStream()
    events = collect(stream)
    state = flow.run(stream=stream)
    ran_at = state.result[tick].result
    scheduled = [e.to_state() for e in events if e.task is None and e.type is S.SCHEDULED][0]
    assert scheduled.start_time is not None
    assert ran_at >= scheduled.start_time
    assert float(scheduled.start_time).is_integer()  # on the 1-second grid
    immediate = flow.run(run_on_schedule=False)
    assert immediate.is_successful()


def test_schedule_parameter_defaults_apply_to_scheduled_runs() -> None:
    from nbflow import IntervalSchedule

    @task
    def echo(region: str) -> str:
        return region

    with Flow("sp", schedule=IntervalSchedule(1, parameter_defaults={"region": "apac"})) as flow:
        out = echo(Parameter("region", default="eu"))
    assert flow.run().result[out].result == "apac"
    assert flow.run(run_on_schedule=False).result[out].result == "eu"


def test_an_executor_built_on_local_sees_every_task_run_through_submit() -> None:
    from nbflow.core.executors import LocalExecutor

    class Timing(LocalExecutor):
        def __init__(self) -> None:
            self.submitted: list[str] = []

        def submit(self, fn, *args):  # type: ignore[no-untyped-def]
            self.submitted.append(args[0].slug)
            return super().submit(fn, *args)

    @task
    def first():
        return 1

    @task
    def second(x):
        return x + 1

    with Flow("timed") as flow:
        second(first())
    executor = Timing()
    state = flow.run(executor=executor)
    assert state.is_successful()
    assert executor.submitted == ["first", "second"]
