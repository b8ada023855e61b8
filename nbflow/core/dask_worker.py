"""What runs on a Dask worker: one task run, its records streamed to the driver in batches.

``run_task_remote`` is what the Dask driver submits for each task. It receives its
upstream tasks' outcomes (Dask resolves their keys on the cluster), decides the
trigger, runs the task and returns a ``RemoteOutcome`` that stays on the cluster
for the downstream tasks. Its records go to the driver as events of the run's
topic (``Worker.log_event``): what a task records while it runs leaves at most every
``FLUSH_EVERY`` seconds, one message per run however many records meanwhile; what is
left when it ends leaves before it returns, so the scheduler has a task's final state
on its way to the driver before it hears that the task finished (the driver holds no
future of a task in the middle of the graph, and learns of its end only from it)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import msgpack
from dask.sizeof import sizeof
from distributed.protocol import dask_deserialize, dask_serialize
from distributed.protocol.serialize import pickle_dumps, pickle_loads

from nbflow.core import capture
from nbflow.core.mapping import ChildSpec, child_slug, run_child
from nbflow.core.record import LogRecord
from nbflow.core.states import State, StateType
from nbflow.core.taskrun import TaskRun

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from nbflow.core.events import Event
    from nbflow.core.taskrun import RunInfo
    from nbflow.core.tasks import Task

S = StateType
FLUSH_EVERY = 0.05
"""Seconds a record waits at most on the worker before it travels to the driver."""


class RemoteOutcome:
    """A task run's final state (with its result) as it stays on the cluster for its readers;
    ``events``: a mapped child's records (wire form), forwarded by its parent."""

    __slots__ = ("state", "events")

    def __init__(self, state: State, events: list[dict[str, Any]]) -> None:
        self.state = state
        self.events = events


@sizeof.register(RemoteOutcome)
def _outcome_size(outcome: RemoteOutcome) -> int:
    """What an outcome weighs is its result's (and its children's records'): Dask reads it to
    run a task where its inputs are and to decide when to spill. Without this Dask takes
    an outcome holding a 100 MB array for 40 bytes and moves it between workers freely."""
    return sizeof(outcome.state.result) + sizeof(outcome.events)


@dask_serialize.register(RemoteOutcome)
def _outcome_to_frames(
    outcome: RemoteOutcome, context: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """An outcome travels as one pickle of protocol 5 whatever the connection says, its
    result's buffers (a NumPy or pandas result's memory) out of band, as frames that point
    into that memory. Pickled whole with the connection's protocol, an outcome pickled its
    result in band when that protocol was 4 (the scheduler's connections), and gathering a
    100 MB result through the scheduler cost its worker two copies of it. One pickle, not
    Dask's serialization of each part: that cost a fan of 10,000 no-op tasks 2 s more
    than raw Dask to gather its results (headers built, packed and read per part)."""
    return pickle_dumps((outcome.state, outcome.events), context={**(context or {}), "pickle-protocol": 5})


@dask_deserialize.register(RemoteOutcome)
def _outcome_from_frames(header: dict[str, Any], frames: list[Any]) -> RemoteOutcome:
    state, events = pickle_loads(header, frames)
    return RemoteOutcome(state, events)


class _Outbox:
    """This worker process's records on their way to the drivers: while a task runs, a record
    after a quiet spell leaves at once, then at most one message per run's topic every
    ``FLUSH_EVERY`` seconds (a long task's log lines show as it goes); what is pending when
    a task run ends leaves before it returns (``run_task_remote``)."""

    def __init__(self) -> None:
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.sending = threading.Lock()
        self.wake = threading.Event()
        self.worker: Any = None
        self.thread: threading.Thread | None = None

    def emitter(self, topic: str) -> Callable[[Event], None]:
        """What a task run emits its records to."""
        self._start()

        def emit(record: Event) -> None:
            wire = record.to_wire()
            with self.lock:
                self.pending.setdefault(topic, []).append(wire)
            self.wake.set()

        return emit

    def forward(self, topic: str, wires: list[dict[str, Any]]) -> None:
        """Records made elsewhere (a mapped task's children), sent with this process's own."""
        with self.lock:
            self.pending.setdefault(topic, []).extend(wires)
        self.wake.set()

    def _start(self) -> None:
        from distributed import get_worker

        with self.lock:
            self.worker = get_worker()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._flush_forever, name="nbflow-records", daemon=True)
                self.thread.start()

    def _flush_forever(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            self.flush()
            time.sleep(FLUSH_EVERY)  # what arrives meanwhile leaves together in the next message

    def flush(self) -> None:
        """Send what is pending, a message per topic (from any thread: one at a time, so the
        records of a task run leave in the order it made them)."""
        with self.sending:
            with self.lock:
                batches, self.pending = self.pending, {}
                worker = self.worker
            for topic, records in batches.items():
                # Packed here: as a Python list of dicts a batch is sized, encoded and decoded
                # record by record by this worker, the scheduler and the driver's event loop.
                worker.log_event(topic, {"records": msgpack.packb(records)})


_outbox = _Outbox()


def dask_key(task: Task, slug: str, task_run_id: str) -> tuple[str, str]:
    """The Dask key of one task run: ``(group, "slug-task run id")``.

    Dask groups tasks by their key's first part (its "task prefix") and its workers walk
    their counts per prefix on every task transition: a prefix per task made a flow of
    10,000 tasks quadratic on the workers (a fan of 10,000 took 5x raw dask). The group is
    what Dask's own keys use, the function's name (the task's name for a task without a
    function), so a large flow has as few prefixes as it has kinds of work."""
    return (getattr(task.fn, "__name__", None) or task.name, f"{slug}-{task_run_id}")


def residue_of(task: Task, outcome: RemoteOutcome) -> Any:
    """What the driver keeps of a released result (``Task.residue``), computed on the cluster
    (``None`` for a task that did not succeed: the driver keeps nothing of it)."""
    return task.residue(outcome.state.result) if outcome.state.is_successful() else None


def run_task_remote(
    task: Task,
    task_run_id: str,
    inputs: list[tuple[str | None, str]],
    constants: Mapping[str, Any] | None,
    info: RunInfo,
    needed: frozenset[str],
    topic: str,
    requested: bool,
    *outcomes: RemoteOutcome,
) -> RemoteOutcome:
    """One task run on a worker: trigger, cache, attempts; records to ``topic``.
    ``inputs``: each upstream edge's key and task slug, with ``outcomes`` (Dask resolves their
    keys to the upstream tasks' outcomes); ``needed``: the outputs downstream tasks read (they
    must pickle to reach them)."""
    upstream = [(key, slug, outcome.state) for (key, slug), outcome in zip(inputs, outcomes, strict=True)]
    emit = _outbox.emitter(topic)
    run = TaskRun(
        task, task_run_id, upstream, constants, info, emit,
        requested=requested, needed=needed, children=_children_on_cluster(topic),
    )  # fmt: skip
    capture.install()
    try:
        state = _ready_to_travel(task, run.run(), run.log)
    finally:
        capture.uninstall()
        # Worker.log_event queues on the worker's loop, which hears of the task's end after
        # this returns: the scheduler gets the records first, then the end.
        _outbox.flush()
    return RemoteOutcome(state, [])


def _ready_to_travel(task: Task, state: State, log: Callable[[str, str], None]) -> State:
    """The state as it can leave this worker: an exception that cannot be pickled becomes a
    ``RuntimeError`` with its message; outputs that cannot be pickled stay here, said in the log."""
    import cloudpickle

    if state.is_failed() and isinstance(state.result, BaseException):
        try:
            cloudpickle.dumps(state.result)
        except Exception:
            state.result = RuntimeError(state.message)
    elif state.is_successful():
        state.result, dropped = task.portable_result(state.result)
        if dropped:
            log("WARNING", f"outputs left on the worker (cannot be pickled): {', '.join(dropped)}")
    return state


def _children_on_cluster(topic: str) -> Callable[..., list[State]]:
    """A mapped task's children as Dask tasks, submitted in one batch from the parent's worker
    (``worker_client`` secedes the parent from the worker's pool while it waits). A child
    returns its records with its state and the parent forwards them before its own final
    state, so the driver never sees the parent end before its children."""

    def run(task: Task, specs: list[ChildSpec], info: RunInfo, emit: Any) -> list[State]:  # noqa: ARG001
        from distributed import worker_client

        slug = task.slug or task.name
        with worker_client() as client:
            futures = client.map(
                run_child_remote, specs, task=task, info=info, pure=False,
                key=[dask_key(task, child_slug(slug, s.index), s.task_run_id) for s in specs],
            )  # fmt: skip
            outcomes: list[RemoteOutcome] = client.gather(futures)
        for outcome in outcomes:
            _outbox.forward(topic, outcome.events)
        return [outcome.state for outcome in outcomes]

    return run


def run_child_remote(spec: ChildSpec, *, task: Task, info: RunInfo) -> RemoteOutcome:
    """One child of a mapped task on a worker; its records travel back with its state."""
    wires: list[dict[str, Any]] = []

    def emit(record: Event) -> None:
        wires.append(record.to_wire())

    capture.install()
    try:
        state = run_child(task, spec, info, emit)

        def log(level: str, message: str) -> None:
            slug = child_slug(task.slug or task.name, spec.index)
            emit(
                LogRecord(
                    info.flow_run_id, level, message, time.time(), spec.task_run_id, slug, info.execution
                )
            )

        return RemoteOutcome(_ready_to_travel(task, state, log), wires)
    finally:
        capture.uninstall()
