"""The same flow gives the same results on local, threads and a real Dask cluster."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from nbflow import DaskExecutor, EventStream, Flow, FlowRunner, Parameter, StateType, task, triggers
from nbflow.core import dask_driver

pytestmark = pytest.mark.integration
S = StateType


def build_multi_branch_flow() -> Flow:
    @task
    def numbers(n: int) -> list[int]:
        return list(range(1, n + 1))

    @task
    def squares(xs: list[int]) -> list[int]:
        print(f"squaring {len(xs)} numbers in pid {os.getpid()}")
        return [x * x for x in xs]

    @task
    def cubes(xs: list[int]) -> list[int]:
        return [x**3 for x in xs]

    @task(retries=2, retry_delay=0)
    def evens(xs: list[int]) -> list[int]:
        return [x for x in xs if x % 2 == 0]

    @task
    def combine(sq: list[int], cu: list[int], ev: list[int]) -> dict[str, int]:
        return {"squares": sum(sq), "cubes": sum(cu), "evens": len(ev)}

    @task
    def broken(xs: list[int]) -> None:
        raise ValueError(f"cannot handle {len(xs)} numbers")

    @task(trigger=triggers.any_failed)
    def alert(x: object) -> str:
        return "alerted"

    @task
    def after_broken(x: object) -> str:
        return "never"

    with Flow("branches") as flow:
        nums = numbers(Parameter("n", default=10))
        combine(squares(nums), cubes(nums), evens(nums))
        b = broken(nums)
        alert(b)
        after_broken(b)
    return flow


def summarize(state: object) -> dict[str, tuple[str, object]]:
    out = {}
    for slug, st in state.result.by_slug().items():  # type: ignore[attr-defined]
        value = st.result if st.is_successful() else st.message
        out[slug] = (st.type.value, value)
    return out


@pytest.mark.slow
def test_same_results_on_local_threads_and_a_dask_local_cluster() -> None:
    flow = build_multi_branch_flow()
    results = {}
    logs = {}
    for name, executor in [
        ("local", "local"),
        ("threads", "threads"),
        ("dask", DaskExecutor(n_workers=2, processes=True)),
    ]:
        stream = EventStream()
        events: list = []
        stream.subscribe(events.extend)
        state = flow.run(parameters={"n": 12}, executor=executor, stream=stream, echo=False)
        assert state.type is S.FAILED  # broken fails, on purpose
        results[name] = summarize(state)
        logs[name] = [e.message for e in events if e.kind == "log" and e.task == "squares"]
    assert results["local"] == results["threads"] == results["dask"]
    expected = results["local"]
    assert expected["combine"] == ("Success", {"squares": 650, "cubes": 6084, "evens": 6})
    assert expected["broken"] == ("Failed", "ValueError: cannot handle 12 numbers")
    assert expected["alert"] == ("Success", "alerted")
    assert expected["after_broken"][0] == "TriggerFailed"
    # Output printed inside a Dask worker process comes back as the task's logs.
    assert len(logs["dask"]) == 1 and logs["dask"][0].startswith("squaring 12 numbers in pid ")
    assert logs["dask"][0] != f"squaring 12 numbers in pid {os.getpid()}"


def test_a_graph_sent_to_dask_in_batches_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver sends the graph in batches (here of one and two tasks): a task reads the
    outcomes of tasks of earlier batches, triggers and failures reach it across them."""

    flow = build_multi_branch_flow()
    expected = summarize(flow.run(parameters={"n": 12}, executor="local", echo=False))
    monkeypatch.setattr(dask_driver, "BATCH_FIRST", 1)
    monkeypatch.setattr(dask_driver, "BATCH_MOST", 2)
    state = flow.run(parameters={"n": 12}, executor=DaskExecutor(n_workers=1, processes=False), echo=False)
    assert summarize(state) == expected


def test_a_result_read_by_later_batches_is_kept_for_them_then_freed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fan sent in several batches: the root, in the first, finishes before the last
    batch reaches the scheduler; the driver holds its future until then (else the cluster
    drops it, its readers done), and lets go after, so the cluster frees it as for raw Dask."""
    from distributed import Client, LocalCluster

    from nbflow import Task

    @task
    def root() -> int:
        return 41

    def reader(x: int) -> int:
        return x + 1

    flow = Flow("fan")
    first = flow.add_task(root)
    readers = [Task(reader, name=f"r{i}") for i in range(40)]
    for r in readers:
        flow.add_edge(first, r, key="x")
    monkeypatch.setattr(dask_driver, "BATCH_FIRST", 4)
    monkeypatch.setattr(dask_driver, "BATCH_MOST", 8)
    stream = EventStream()
    events: list = []
    stream.subscribe(events.extend)
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        runner = FlowRunner(
            flow, executor=DaskExecutor(client=client), keep="terminal", stream=stream, echo=False
        )
        state = runner.run()
        graphs = [e for _, e in client.get_events("scheduler") if e.get("action") == "update-graph"]
        del runner
        held = _tasks_left_on(client)
    assert state.is_successful()
    assert len(graphs) == 6  # 41 tasks: 4, 8, 8, 8, 8, 5
    assert [state.result[r].result for r in readers] == [42] * 40
    running = [e for e in events if e.kind == "state" and e.task == "root" and e.state == "Running"]
    assert len(running) == 1  # the root ran once for all its readers
    assert held == []


def _tasks_left_on(client: object) -> list[str]:
    """The tasks the scheduler still has, once it had time to hear of futures let go."""
    held: list[str] = []
    for _ in range(100):
        held = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])  # type: ignore[attr-defined]
        if not held:
            break
        time.sleep(0.05)
    return held


def test_a_run_on_a_client_that_lives_on_leaves_nothing_on_the_cluster() -> None:
    """The client keeps a topic's handler after ``unsubscribe_topic``: a handler holding the
    run held its futures, so every run's kept results stayed on the cluster as long as the
    client lived (a notebook's). The results came back to this process; the cluster lets go."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        state = build_multi_branch_flow().run(executor=DaskExecutor(client=client), echo=False)
        assert summarize(state)["combine"] == ("Success", {"squares": 385, "cubes": 3025, "evens": 5})
        assert _tasks_left_on(client) == []
        # Nor its records: the scheduler keeps every topic's last 1,000 events unless told.
        build_multi_branch_flow().run(executor=DaskExecutor(client=client), echo=False)
        assert client.run_on_scheduler(_nbflow_topics) == []


def _nbflow_topics(dask_scheduler) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(topic for topic in dask_scheduler.get_events() if topic.startswith("nbflow-"))


_LOCK = threading.Lock()


def test_a_task_that_cannot_be_sent_in_a_later_batch_fails_the_run_and_nothing_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch that cannot be pickled raises out of the run, as the one graph did; the
    batches sent before it (already running) are cancelled, and the cluster keeps nothing."""
    from distributed import Client, LocalCluster

    from nbflow import Task

    def step(x: int) -> int:
        return x + 1

    flow = Flow("unsendable")
    previous = flow.add_task(Task(lambda: 0, name="start"))
    for i in range(6):
        previous = flow.add_task(Task(step, name=f"s{i}"))
        flow.add_edge(flow.get_task(f"s{i - 1}") if i else flow.get_task("start"), previous, key="x")
    flow.add_edge(previous, Task(lambda x: _LOCK, name="holds_a_lock"), key="x")  # pickled by value, lock too
    monkeypatch.setattr(dask_driver, "BATCH_FIRST", 2)
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(TypeError, match="serialize"):
            FlowRunner(flow, executor=DaskExecutor(client=client), echo=False).run()
        assert _tasks_left_on(client) == []


@pytest.mark.slow
def test_dask_executor_with_an_existing_cluster_address() -> None:
    from distributed import LocalCluster

    flow = build_multi_branch_flow()
    with LocalCluster(n_workers=2, processes=True, dashboard_address=None) as cluster:
        state = flow.run(executor=DaskExecutor(address=cluster.scheduler_address), echo=False)
        assert summarize(state)["combine"] == ("Success", {"squares": 385, "cubes": 3025, "evens": 5})
        # The executor did not own the cluster, so it is still up for the next run.
        again = flow.run(executor=DaskExecutor(address=cluster.scheduler_address), echo=False)
        assert summarize(again) == summarize(state)


def test_a_dask_run_says_nothing_when_another_cluster_holds_the_dashboard_port() -> None:
    """Another Dask cluster on the machine (port 8787 taken) must not put a warning into the
    user's cell: the run's own cluster serves its scheduler's HTTP on a free port."""
    import socket
    import warnings

    holder = socket.socket()
    with contextlib.suppress(OSError):  # taken already by someone else: the same situation
        holder.bind(("", 8787))
        holder.listen()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state = build_multi_branch_flow().run(executor=DaskExecutor(n_workers=1), echo=False)
        assert summarize(state)["combine"][0] == "Success"
        assert [str(w.message) for w in caught if "already in use" in str(w.message)] == []
    finally:
        holder.close()


def test_unreachable_dask_scheduler_is_a_clear_error() -> None:
    from nbflow.core.errors import NbflowError

    flow = build_multi_branch_flow()
    with pytest.raises(NbflowError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        flow.run(executor=DaskExecutor(address="tcp://127.0.0.1:1"))


def test_on_dask_an_output_that_cannot_travel_fails_its_task_not_the_reader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from notebook_helpers import write_notebook

    from nbflow.cells.ipynb import flow_from_notebook

    notebook = write_notebook(
        tmp_path / "handles.ipynb",
        [
            "%%task opener\nimport threading\nlock = threading.Lock()\ncount = 3",
            "%%task user\nwith lock:\n    used = count + 1",
            "%%task counter\ndoubled = count * 2",
        ],
    )
    flow, _ = flow_from_notebook(notebook).build()
    state = flow.run(executor=DaskExecutor(n_workers=1, processes=True))
    opener = state.result["opener"]
    assert opener.type is S.FAILED
    assert "output 'lock' cannot be pickled" in opener.message
    # The reader is not run into a NameError: its upstream failed, and it says so.
    assert state.result["user"].type is S.TRIGGER_FAILED
    assert "upstream opener failed" in state.result["user"].message


def test_sys_exit_on_dask_fails_the_task_without_killing_the_worker() -> None:
    import time

    @task
    def quits() -> None:
        import sys

        sys.exit(2)

    @task(trigger=triggers.all_finished)
    def after(upstream_tasks=None) -> str:  # type: ignore[no-untyped-def]
        return "after"

    with Flow("exits") as flow:
        after(upstream_tasks=[quits()])
    started = time.monotonic()
    state = flow.run(executor=DaskExecutor(n_workers=1, processes=True))
    assert state.result["quits"].type is S.FAILED
    assert "the task called sys.exit(2)" in state.result["quits"].message
    assert state.result["after"].result == "after"  # the same worker ran on: it was not killed
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_on_dask_task_runs_are_grouped_by_function_not_one_group_per_task() -> None:
    """Dask keeps counts per task group ("prefix") that its workers walk on every transition:
    a group per task made a flow of 10,000 tasks quadratic. Tasks of one function share one."""
    from distributed import Client, LocalCluster

    from nbflow import Task

    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def double(x: int) -> int:
        return 2 * x

    flow = Flow("many")
    previous = flow.add_task(Task(inc.fn, name="step0"))
    flow.set_constant(previous, "x", 0)
    for i in range(1, 30):
        step = Task(inc.fn, name=f"step{i}")
        flow.add_edge(previous, step, key="x")
        previous = step
    with flow:
        doubled = double.map([1, 2, 3, 4, 5, 6])
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        state = flow.run(executor=DaskExecutor(client=client), echo=False)
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert state.is_successful()
    assert state.result[previous].result == 30
    assert state.result[doubled].result == [2, 4, 6, 8, 10, 12]
    assert "inc" in prefixes and "double" in prefixes
    assert not [p for p in prefixes if p.startswith("step") or "[" in p], prefixes


def test_dask_weighs_an_outcome_by_its_result() -> None:
    """Dask places tasks next to their inputs and spills by size: an outcome holding an array
    weighs what the array does, not the 40 bytes of its wrapper."""
    import numpy as np
    from dask.sizeof import sizeof

    from nbflow.core.dask_worker import RemoteOutcome
    from nbflow.core.states import State

    array = np.ones(1_000_000)
    outcome = RemoteOutcome(State(S.SUCCESS, result=array), [])
    assert sizeof(outcome) >= array.nbytes
    assert sizeof(RemoteOutcome(State(S.SUCCESS, result=None), [])) < 1_000


def test_outcome_travels_without_copying_its_array_even_through_the_scheduler() -> None:
    """The scheduler's connections pickle with protocol 4 (no out-of-band buffers): an outcome
    pickled whole there cost its worker two copies of a large result when it was gathered."""
    import numpy as np
    from distributed.protocol import deserialize, serialize

    from nbflow.core.dask_worker import RemoteOutcome
    from nbflow.core.states import State

    array = np.arange(1_000_000, dtype=np.float64)
    records = [{"kind": "log", "message": "a child's line"}]
    outcome = RemoteOutcome(State(S.SUCCESS, "done", attempt=2, result=array), records)
    header, frames = serialize(outcome, context={"pickle-protocol": 4})
    assert any(
        isinstance(f, memoryview) and np.shares_memory(np.frombuffer(f, dtype=np.uint8), array)
        for f in frames
    )
    back = deserialize(header, frames)
    assert isinstance(back, RemoteOutcome)
    assert (back.state.type, back.state.message, back.state.attempt) == (S.SUCCESS, "done", 2)
    assert np.array_equal(back.state.result, array)
    assert back.events == records


def _die() -> None:
    os._exit(1)  # the worker process dies mid-task, as on an out-of-memory kill


@pytest.mark.parametrize("batch", [64, 1])  # the whole graph in one batch, and a batch per task
def test_on_dask_a_task_whose_worker_dies_fails_and_so_do_its_readers(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask
    import distributed  # noqa: F401  (its config first: leaving dask.config.set drops what it added)

    @task
    def source() -> int:
        return 1

    @task
    def before(x: int) -> int:
        return x + 10

    @task
    def dies(x: int) -> int:
        _die()
        return x

    @task
    def reads(x: int) -> int:
        return x + 1

    with Flow("lost") as flow:
        reads(dies(before(source())))
    monkeypatch.setattr(dask_driver, "BATCH_FIRST", batch)
    # One death is enough for Dask to give up on a task (by default it tries it four times).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        state = flow.run(executor=DaskExecutor(n_workers=2, processes=True), echo=False)
    assert state.is_failed()
    assert state.result["before"].result == 11  # it ended before: its result came back
    assert state.result["dies"].type is S.FAILED
    assert state.result["dies"].message.startswith("dask executor error: KilledWorker")
    assert state.result["reads"].type is S.FAILED  # Dask lost its input with it
    assert "KilledWorker" in state.result["reads"].message


@pytest.mark.parametrize("batch", [64, 1])
def test_cancelling_a_dask_run_drops_what_has_not_finished(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from nbflow import FlowRunner

    @task
    def quick() -> int:
        return 1

    @task
    def slow(x: int) -> int:
        import time

        time.sleep(60)
        return x

    @task
    def after(x: int) -> int:
        return x

    with Flow("stopped") as flow:
        done = quick()
        after(slow(done))
    monkeypatch.setattr(dask_driver, "BATCH_FIRST", batch)
    stream = EventStream()
    runner = FlowRunner(flow, executor=DaskExecutor(n_workers=1, processes=True), stream=stream, echo=False)

    def cancel_once_slow_runs(batch: list) -> None:  # type: ignore[type-arg]
        if any(e.kind == "state" and e.task == "slow" and e.state == "Running" for e in batch):
            threading.Thread(target=runner.cancel, args=("stop",), daemon=True).start()

    stream.subscribe(cancel_once_slow_runs)
    state = runner.run()
    assert state.type is S.CANCELLED
    assert state.result["quick"].result == 1
    assert state.result["slow"].type is S.CANCELLED
    assert state.result["after"].type is S.CANCELLED
