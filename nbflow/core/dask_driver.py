"""The Dask driver: the graph goes to the cluster in a few batches; records stream back.

Every task to run becomes a Dask task of one graph, handed over in batches of the task
order (``client.get(graph, keys, sync=False)``, one ``update_graph`` each: 64 tasks, then
twice as many each time, at most ``BATCH_MOST``), so the cluster runs the first tasks
while this process builds the rest and the scheduler takes it in, as it runs raw Dask's
tasks while they are submitted one by one (in one batch a fan of 10,000 waited ~2 s for
the whole graph to be built, sent and taken in). Each task reads its upstream tasks'
outcomes by key, so the scheduler starts a task the moment its inputs exist and the data
never passes through this process. A task's trigger is decided on the worker, from its
upstream states. Workers send their records (states and log lines) as events of one
topic (``Worker.log_event``), batched; this process decodes them in the driver's thread,
not on the event loop that the client (and on a LocalCluster the scheduler) runs on,
re-emits them on the run's stream and learns from the final states that tasks finished.

This process holds futures only for what comes back or ends the graph: the results the
caller keeps, the residues of the others (``Task.residue``, computed on the cluster), and
the graph's sinks; and, until the batch reading them is sent, the results a later batch
reads (else the cluster drops one whose readers so far are done). It holds none in
between, so the cluster frees a result the moment its readers are done, as it does for
raw Dask. A task the cluster loses (its worker died too often, its outcome could not be
unpickled) errs, and Dask errs every task reading it, down to a future held here: that is
how a lost task is noticed; the scheduler then says which unfinished tasks erred, and why.
"""

from __future__ import annotations

import contextlib
import queue
import time
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

import msgpack

from nbflow.core.dask_worker import RemoteOutcome, dask_key, residue_of, run_task_remote
from nbflow.core.record import StateRecord, new_id, record_from_own_wire
from nbflow.core.states import StateType

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from nbflow.core.runner import FlowRunner
    from nbflow.core.states import State
    from nbflow.core.taskrun import RunInfo
    from nbflow.core.tasks import Task

S = StateType
#: A held future in one of these states will not finish ("lost" is not one: Dask recomputes lost data).
_GONE = frozenset({"error", "cancelled"})
LOOK_EVERY = 1.0
"""Seconds between looks at the held futures for one that will not finish (a lost task)."""
_FORGOTTEN = (None, "released", "forgotten")
ON_THEIR_WAY = 0.25
"""Seconds the driver gives records already sent to arrive before it ends lost tasks."""
BATCH_FIRST = 64
"""Tasks in the first batch of the graph sent to the cluster; each next batch twice the last."""
BATCH_MOST = 1024
"""Tasks in a batch at most: the scheduler takes a batch in at once, and meanwhile hears
nothing of the running tasks (with few tasks queued on them, the workers wait)."""


def run_on_dask(runner: FlowRunner, info: RunInfo) -> None:
    """Run the flow on the executor's ``distributed.Client``."""
    run = _DaskRun(runner)
    client = run.client
    arrive, close = _mailbox(run.inbox)
    client.subscribe_topic(run.topic, arrive)
    try:
        run.submit_all(info)
        run.follow()
        run.bring_back()
    except KeyboardInterrupt:  # Ctrl-C: cancel what the cluster has not finished
        runner.cancel("interrupted")
        run.cancel_unfinished()
    except Exception:  # e.g. a task that cannot be pickled, in a batch after others ran
        run.cancel_unfinished()
        raise
    finally:
        client.unsubscribe_topic(run.topic)
        _forget_topic(client, run.topic)
        run.take_records()  # what came after the last final state (a cancelled run's stragglers)
        close()


def _forget_topic(client: Any, topic: str) -> None:
    """Drop the run's topic on the scheduler: it keeps the last events of every topic (up to
    ``distributed.admin.low-level-log-length``, 1,000) and never drops a topic, so a cluster
    that outlives many runs (a team's) would keep each run's records until it stops.
    distributed has no public call for this; where its broker differs, the events stay."""
    with contextlib.suppress(Exception):  # the cluster may be gone (a run ended by its loss)
        client.run_on_scheduler(_drop_topic_on_scheduler, topic)


def _drop_topic_on_scheduler(topic: str, dask_scheduler: Any = None) -> bool:
    """Runs on the scheduler (``Client.run_on_scheduler``): forget ``topic``'s events."""
    topics = getattr(getattr(dask_scheduler, "_broker", None), "_topics", None)
    if not isinstance(topics, dict):
        return False
    return topics.pop(topic, None) is not None


def _mailbox(inbox: queue.SimpleQueue[bytes]) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """What the client calls with each batch of records of the run's topic (on its event
    loop, which on a LocalCluster also runs the scheduler: it only hands the batch over),
    and what closes it. The client keeps a topic's handler after ``unsubscribe_topic``
    (distributed never removes it), so the handler holds the inbox only, and not after the
    run: a handler holding the run kept every future it held, and with them its results
    on the cluster, for as long as the client lived."""
    box: list[queue.SimpleQueue[bytes] | None] = [inbox]

    def arrive(event: tuple[float, dict[str, Any]]) -> None:
        target = box[0]
        if target is not None:
            target.put(event[1]["records"])

    def close() -> None:
        box[0] = None

    return arrive, close


def client_of(runner: FlowRunner) -> Any:
    """The run's ``distributed.Client``."""
    return runner.executor.client  # type: ignore[attr-defined]


class _DaskRun:
    """One run's graph on the cluster: each submitted task's key and the submitted tasks it
    reads, the futures held (kept results, residues, sinks), and the records arriving."""

    def __init__(self, runner: FlowRunner) -> None:
        self.runner = runner
        self.client = client_of(runner)
        self.topic = f"nbflow-{runner.flow_run_id}-{new_id()}"
        self.inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()  # batches of records, packed
        self.keys: dict[Task, Any] = {}
        self.upstream: dict[Task, list[Task]] = {}
        # One future at most per task: of its result when the caller keeps it, else of its
        # residue when it has one, else of its result when no submitted task reads it.
        self.held: dict[Task, Any] = {}
        self.kept: list[Task] = []
        self.residues: list[Task] = []
        self.by_run_id: dict[str, Task] = {}
        self.pending: set[Task] = set()  # submitted, no final record yet
        self.watched: dict[Task, Any] = {}  # the held futures of pending tasks
        self.readers: dict[Task, list[Task]] = {}  # the submitted tasks reading each one
        self.residue_keys: dict[Task, Any] = {}
        self.batches: list[int] = []  # the tasks in each batch sent
        # Futures of results a later batch reads, held until that batch is sent.
        self.bridges: list[Any] = []

    # -- submitting ----------------------------------------------------------

    def submit_all(self, info: RunInfo) -> None:
        """One Dask task per task to run (a task of an earlier run is reused here), sent in
        batches of the task order, each batch twice the last (up to ``BATCH_MOST``): the
        cluster runs the first tasks while this process builds and the scheduler takes in
        the rest, as it runs raw Dask's tasks while they are submitted one by one."""
        from dask.task_spec import Task as DaskTask
        from dask.task_spec import TaskRef

        runner, keys = self.runner, self.keys
        flow, keep, downstream = runner.flow, runner.plan.keep, runner.plan.downstream
        batch: list[Task] = []
        graph: dict[Any, Any] = {}
        size = BATCH_FIRST
        for task in runner.order:
            if task in runner.initial_states:
                runner.finished(task, runner.reuse(task))
                continue
            run_id, constants = runner.start(task)
            edges = flow.upstream_edges(task)
            # An upstream task's outcome by key stays on the cluster; a reused task's state travels along.
            outcomes = [
                TaskRef(keys[e.upstream])
                if e.upstream in keys
                else RemoteOutcome(runner.states[e.upstream], [])
                for e in edges
            ]
            needed = frozenset(e.key for e in flow.downstream_edges(task) if e.key is not None)
            key = keys[task] = dask_key(task, task.slug or task.name, run_id)
            graph[key] = DaskTask(
                key, run_task_remote, task, run_id, [(e.key, e.upstream.slug or "") for e in edges], constants,
                info, needed, self.topic, task in runner.requested, *outcomes,
            )  # fmt: skip
            self.upstream[task] = [e.upstream for e in edges if e.upstream in keys]
            self.readers[task] = [d for d in downstream[task] if d not in runner.initial_states]
            self.by_run_id[run_id] = task
            if not keep(task) and task.has_residue():
                self.residue_keys[task] = residue = ("residue_of", key[1])
                graph[residue] = DaskTask(residue, residue_of, task, TaskRef(key))
            batch.append(task)
            if len(batch) >= size:
                self._send(graph, batch)
                batch, graph, size = [], {}, min(2 * size, BATCH_MOST)
        if batch:
            self._send(graph, batch)
        # The scheduler has every reader of the bridges now: it keeps each result until they are done.
        self.bridges.clear()

    def _send(self, graph: dict[Any, Any], batch: list[Task]) -> None:
        """One batch of the graph to the cluster (one ``update_graph``), with futures of what
        comes back or ends the graph, and of the results tasks of later batches read."""
        from dask.highlevelgraph import HighLevelGraph

        keep, keys = self.runner.plan.keep, self.keys
        wanted: dict[Any, Task] = {}
        bridges: list[Any] = []
        for task in batch:
            key = keys[task]
            if keep(task):
                wanted[key] = task
                self.kept.append(task)
            elif task in self.residue_keys:
                wanted[self.residue_keys[task]] = task
                self.residues.append(task)
            elif not self.readers[task]:
                wanted[key] = task
            if key not in wanted and any(d not in keys for d in self.readers[task]):
                bridges.append(key)  # read by a task not sent yet: the cluster must not drop it
        self.pending.update(batch)
        # As a HighLevelGraph: a plain dict would be tokenized whole (every task pickled once
        # more, in this process) to name the graph; this one is named by the run's topic.
        # ``fifo_timeout=0``: each batch a later generation, so the scheduler prefers the
        # earlier batches' tasks (each batch's own order restarts at zero).
        name = f"{self.topic}-{len(self.batches)}"
        futures = self.client.get(
            HighLevelGraph.from_collections(name, graph), [*wanted, *bridges], sync=False, fifo_timeout=0
        )
        self.batches.append(len(batch))
        held = dict(zip(wanted.values(), futures, strict=False))
        self.held.update(held)
        self.watched.update(held)
        self.bridges.extend(futures[len(wanted) :])

    # -- following -----------------------------------------------------------

    def follow(self) -> None:
        """Wait for every submitted task's final record (or its loss on the cluster, or a cancel)."""
        runner = self.runner
        looked = time.monotonic()
        while self.pending:
            if runner.cancel_event.is_set():
                self.cancel_unfinished()
                return
            try:
                self._take(self.inbox.get(timeout=0.1))
            except queue.Empty:
                pass
            if time.monotonic() - looked > LOOK_EVERY:
                # Held futures of finished tasks are no longer looked at (a fan holds thousands).
                self.watched = {t: f for t, f in self.watched.items() if t in self.pending}
                gone = {t: f for t, f in self.watched.items() if f.status in _GONE}
                if gone:
                    self._lost(gone)
                looked = time.monotonic()

    def take_records(self) -> None:
        """Re-emit the records that have arrived; a final state ends its task's wait."""
        while True:
            try:
                packed = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._take(packed)

    def _take(self, packed: bytes) -> None:
        runner = self.runner
        for wire in msgpack.unpackb(packed):
            record = record_from_own_wire(wire)
            runner.stream.emit(record)
            if isinstance(record, StateRecord) and record.task is not None and record.is_finished():
                task = self.by_run_id.get(record.task_run_id or "")
                if task in self.pending:
                    self.pending.discard(task)
                    runner.finished(task, record.to_state())

    def cancel_unfinished(self) -> None:
        """Ask the cluster to drop what has not finished (cancelling a held future drops the
        tasks only it was waiting for)."""
        self.client.cancel([self.held[t] for t in self.pending if t in self.held] + self.bridges)
        self.bridges.clear()

    def _lost(self, gone: dict[Task, Any]) -> None:
        """Held futures (of these tasks) will not finish: the unfinished tasks among them and
        above them that the cluster erred end Failed with their error, and those it dropped
        (it tells a task's end after its records, so a dropped task did not end) with why
        it dropped them; the others go on (a task of a dead worker that is still needed
        runs again elsewhere)."""
        suspects = self._above(gone) & self.pending
        keys = {self.keys[t]: t for t in suspects}
        try:
            fates = self.client.run_on_scheduler(_fates_on_scheduler, list(keys))
        except Exception:  # the scheduler is gone, and with it all it had
            fates = {}
        # Records the scheduler passed on before answering may still be on their way here.
        time.sleep(ON_THEIR_WAY)
        self.take_records()
        first = next(iter(gone.values()))
        dropped = (
            _error_of(first)
            if first.status == "cancelled"
            else RuntimeError("not run: the cluster dropped it when the tasks reading it were lost")
        )
        errors: dict[Any, BaseException] = {}
        for key, task in keys.items():
            if task not in self.pending:
                continue
            state, blame = fates.get(key, (None, None))
            if state == "erred":
                if blame not in errors:
                    from distributed import Future

                    errors[blame] = _error_of(Future(blame, self.client) if blame is not None else first)
                error = errors[blame]
            elif state in _FORGOTTEN:
                error = dropped
            else:  # waiting, running, or run again elsewhere
                continue
            self.pending.discard(task)
            self.runner.finished(task, self.runner.executor_failed(task, error, previous=S.PENDING))

    def _above(self, tasks: Iterable[Task]) -> set[Task]:
        """``tasks`` and every submitted task they read, directly or not."""
        seen: set[Task] = set()
        todo = list(tasks)
        while todo:
            task = todo.pop()
            if task not in seen:
                seen.add(task)
                todo.extend(self.upstream[task])
        return seen

    # -- bringing back -------------------------------------------------------

    def bring_back(self) -> None:
        """The results the caller keeps, and the residues of the others (``Task.residue``),
        from the cluster (the rest stays there, then goes)."""
        from distributed import wait

        runner, client = self.runner, self.client
        states = runner.states
        residues = {t: self.held[t] for t in self.residues if t in states and states[t].is_successful()}
        if residues:
            try:
                gathered = client.gather(list(residues.values()))
            except Exception:  # a worker holding one went away: the run's states stand without them
                gathered = [None] * len(residues)
            for task, residue in zip(residues, gathered, strict=True):
                states[task] = states[task].without_result(residue)
        # A final record can arrive before the client learns its future finished.
        with contextlib.suppress(CancelledError):  # a cancelled run: what finished still comes back
            wait([self.held[t] for t in self.kept])
        wanted = [t for t in self.kept if t in states and self.held[t].status == "finished"]
        for task, outcome in zip(wanted, client.gather([self.held[t] for t in wanted]), strict=True):
            state: State = outcome.state
            if state.type is states[task].type:
                states[task] = state


def _fates_on_scheduler(keys: list[Any], dask_scheduler: Any = None) -> dict[Any, tuple[str | None, Any]]:
    """On the scheduler: each key's state and, for an erred one, the key whose error it shares."""
    fates: dict[Any, tuple[str | None, Any]] = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        blame = getattr(ts, "exception_blame", None)
        fates[key] = (getattr(ts, "state", None), getattr(blame, "key", None))
    return fates


def _error_of(future: Any) -> BaseException:
    """What a failed future failed with (``CancelledError`` for a cancelled one)."""
    try:
        error = future.exception(timeout=5)
    except Exception as exc:
        return exc
    return error if error is not None else RuntimeError("the cluster lost this task")
