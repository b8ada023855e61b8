"""The Dask driver: the whole graph goes to the cluster at once; records stream back.

Every task is submitted up front with its upstream tasks' *futures* as arguments,
so the scheduler starts each task the moment its inputs exist and the data never
passes through this process. A task's trigger is decided on the worker, from
its upstream states. Workers send their records (states and log lines) as events
of one topic (``Worker.log_event``), batched; this process re-emits them on the
run's stream and learns from the final states that tasks finished. A finished
task's future is dropped as soon as its final state is here (unless the caller keeps it), so the cluster frees
its data once the tasks reading it are done. Only the results the caller keeps
come back, at the end.
"""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any

from nbflow.core.dask_worker import RemoteOutcome, dask_key, residue_of, run_task_remote
from nbflow.core.record import StateRecord, new_id, record_from_wire
from nbflow.core.states import State, StateType

if TYPE_CHECKING:
    from nbflow.core.runner import FlowRunner
    from nbflow.core.taskrun import RunInfo
    from nbflow.core.tasks import Task

S = StateType
_GONE = frozenset({"error", "cancelled", "lost"})


def run_on_dask(runner: FlowRunner, info: RunInfo) -> None:
    """Run the flow on the executor's ``distributed.Client``."""
    client = client_of(runner)
    topic = f"nbflow-{runner.flow_run_id}-{new_id()}"
    finals: queue.SimpleQueue[StateRecord] = queue.SimpleQueue()

    def arrive(event: tuple[float, dict[str, Any]]) -> None:
        for wire in event[1].get("records", ()):
            record = record_from_wire(wire)
            runner.stream.emit(record)
            if isinstance(record, StateRecord) and record.task is not None and record.is_finished():
                finals.put(record)

    client.subscribe_topic(topic, arrive)
    futures: dict[Task, Any] = {}
    residues: dict[Task, Any] = {}
    try:
        _submit_all(runner, info, client, topic, futures)
        _follow(runner, futures, finals, residues)
        _bring_back(runner, client, futures, residues)
    except KeyboardInterrupt:  # Ctrl-C: cancel what the cluster has not finished
        runner.cancel("interrupted")
        client.cancel(list(futures.values()))
    finally:
        client.unsubscribe_topic(topic)


def _submit_all(runner: FlowRunner, info: RunInfo, client: Any, topic: str, futures: dict[Task, Any]) -> None:
    flow = runner.flow
    for task in runner.order:
        if task in runner.initial_states:
            runner.finished(task, runner.reuse(task))
            continue
        run_id, constants = runner.start(task)
        incoming = [
            # A future keeps the data on the cluster; a reused task sends its state along.
            (
                e.key,
                e.upstream.slug or "",
                futures.get(e.upstream) or RemoteOutcome(runner.states[e.upstream], []),
            )
            for e in flow.upstream_edges(task)
        ]
        needed = frozenset(e.key for e in flow.downstream_edges(task) if e.key is not None)
        futures[task] = client.submit(
            run_task_remote, task, run_id, incoming, constants, info, needed, topic, task in runner.requested,
            key=dask_key(task, task.slug or task.name, run_id), pure=False,
        )  # fmt: skip


def _follow(
    runner: FlowRunner,
    futures: dict[Task, Any],
    finals: queue.SimpleQueue[StateRecord],
    residues: dict[Task, Any],
) -> None:
    """Wait for every submitted task's final record (or its future's failure, or a cancel)."""
    by_run_id = {runner.task_run_ids[t]: t for t in futures}
    pending = set(futures)
    keep = runner.plan.keep
    while pending:
        if runner.cancel_event.is_set():
            client_of(runner).cancel([futures[t] for t in pending])
            return
        try:
            record = finals.get(timeout=0.1)
        except queue.Empty:
            _check_lost(runner, futures, pending)
            continue
        task = by_run_id.get(record.task_run_id or "")
        if task is None or task not in pending:
            continue
        pending.discard(task)
        runner.finished(task, record.to_state())
        if not keep(task):
            # Its state is here and every reader is submitted: the cluster keeps the data
            # until those readers finish, then frees it (as raw dask does). Holding the future
            # until this process hears they finished kept a result or two more alive.
            future = futures.pop(task)
            if task.has_residue() and runner.states[task].is_successful():
                residues[task] = client_of(runner).submit(residue_of, task, future, pure=False)


def _check_lost(runner: FlowRunner, futures: dict[Task, Any], pending: set[Task]) -> None:
    """Tasks whose future failed without a final record (a worker died, a pickling error)."""
    for task in [t for t in pending if futures[t].status in _GONE]:
        future = futures[task]
        try:
            error: BaseException = future.exception(timeout=5)
        except Exception as exc:
            error = exc
        pending.discard(task)
        runner.finished(task, runner.executor_failed(task, error, previous=S.PENDING))
        # Its readers never ran (their input is missing): they end as their trigger says.


def client_of(runner: FlowRunner) -> Any:
    """The run's ``distributed.Client``."""
    return runner.executor.client  # type: ignore[attr-defined]


def _bring_back(runner: FlowRunner, client: Any, futures: dict[Task, Any], residues: dict[Task, Any]) -> None:
    """The results the caller keeps, and the residues of the others (``Task.residue``), from
    the cluster (the rest stays there, then goes)."""
    if residues:
        try:
            gathered = client.gather(list(residues.values()))
        except Exception:  # a worker holding one went away: the run's states stand without them
            gathered = [None] * len(residues)
        for task, residue in zip(residues, gathered, strict=True):
            runner.states[task] = runner.states[task].without_result(residue)
    from distributed import wait

    kept = [t for t in futures if runner.plan.keep(t)]
    # A final record can arrive before the client learns its future finished.
    wait([futures[t] for t in kept])
    wanted = [t for t in kept if futures[t].status == "finished"]
    for task, outcome in zip(wanted, client.gather([futures[t] for t in wanted]), strict=True):
        state: State = outcome.state
        if state.type is runner.states[task].type:
            runner.states[task] = state
