"""Mapping: one task run per element of its mapped inputs (Prefect 1's ``task.map``).

``task.map(items, factor=unmapped(2))`` inside ``with Flow(...)`` adds one node, a
*mapped* task: its inputs not wrapped in ``unmapped`` are mapped. When it runs, the
parent run (``run_mapped``) reads its inputs once, checks the mapped ones have one
length, and runs one child per element, named ``slug[i]``: each child is a full task
run (trigger, cache, retries, timeout) with element ``i`` of every mapped input. The
parent's result is the children's results in order (``Task.combine_mapped``) and its
state carries the children's final states (``State.children``), so a task mapped over
a mapped task decides each child's trigger from the matching upstream child.

Children run where the executor can run them in parallel: inline (local), on a thread
pool (threads), or as Dask tasks submitted from the parent's worker (``dask_worker``).

A mapped task that did not succeed stores a ``PartialMap`` (its succeeded children's results
by index) where a successful one stores its result; a restart (``core.restart``) sets
``Task.reused_children`` from it, and ``run_mapped`` then records those children ``Cached``
with their earlier results and runs only the others.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from nbflow.core.errors import GraphError
from nbflow.core.states import State, StateType

if TYPE_CHECKING:
    from nbflow.core.taskrun import Incoming, RunInfo, TaskRun
    from nbflow.core.tasks import Task

S = StateType
_CHILD = re.compile(r"^(?P<parent>.+)\[(?P<index>\d+)\]$")


class unmapped:  # noqa: N801 - spelled like Prefect's, as users know it
    """An input of ``task.map(...)`` passed whole to every child instead of mapped over."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


def child_slug(slug: str, index: int) -> str:
    """The name of child ``index`` of mapped task ``slug``: ``slug[index]``."""
    return f"{slug}[{index}]"


def parent_of(slug: str) -> tuple[str, int] | None:
    """``("clean", 3)`` for ``"clean[3]"``; ``None`` for a task that is not a mapped child."""
    if not slug.endswith("]"):
        return None
    match = _CHILD.match(slug)
    return (match["parent"], int(match["index"])) if match else None


def split_arguments(task_name: str, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """``task.map``'s arguments unwrapped, and the names of the mapped ones. A mapped plain
    value must be a sequence; at least one input must be mapped."""
    values: dict[str, Any] = {}
    mapped: set[str] = set()
    for key, value in arguments.items():
        if isinstance(value, unmapped):
            values[key] = value.value
            continue
        values[key] = value
        mapped.add(key)
        from nbflow.core.tasks import Task

        if not isinstance(value, Task) and not _mappable(value):
            raise GraphError(
                f"task {task_name!r}: cannot map over {key}={value!r:.60} (a {type(value).__name__}); "
                f"pass a list or tuple (sets have no order), or unmapped({key}) to give it whole to every child"
            )
    if not mapped:
        raise GraphError(f"task {task_name!r}: .map(...) needs at least one input that is not unmapped(...)")
    return values, frozenset(mapped)


def _mappable(value: Any) -> TypeGuard[Sequence[Any]]:
    """A list, tuple, array...: sized and indexable, but not text or a mapping."""
    return (
        isinstance(value, Sized)
        and hasattr(type(value), "__getitem__")
        and not isinstance(value, str | bytes | Mapping)
    )


@dataclass(frozen=True)
class PartialMap:
    """What a mapped task that did not succeed stores: the results of its children that
    succeeded, by index, out of ``count`` children (a restart reuses them)."""

    count: int
    results: dict[int, Any]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child run as it travels to where it runs: its index, id, trigger view and inputs."""

    index: int
    task_run_id: str
    incoming: list[Incoming]
    inputs: dict[str, Any]


#: Runs the children (in order of ``specs``) and returns their final states in that order.
ChildRunner = Callable[["Task", Sequence[ChildSpec], "RunInfo", Any], list[State]]


def run_children_inline(task: Task, specs: Sequence[ChildSpec], info: RunInfo, emit: Any) -> list[State]:
    """One child after the other in this thread (the local executor)."""
    return [run_child(task, spec, info, emit) for spec in specs]


def threaded_children(workers: int) -> ChildRunner:
    """Children on a pool of ``workers`` threads (the threads executor). A cancelled run
    drops the children not started and stops the running ones (they end Cancelled)."""

    def run(task: Task, specs: Sequence[ChildSpec], info: RunInfo, emit: Any) -> list[State]:
        if workers <= 1 or len(specs) <= 1:
            return run_children_inline(task, specs, info, emit)
        from nbflow.core.taskrun import TaskCancelled, interrupt_thread

        threads: dict[int, int] = {}  # child index -> the pool thread running it

        def child(spec: ChildSpec) -> State:
            threads[spec.index] = threading.get_ident()
            try:
                return run_child(task, spec, info, emit)
            finally:
                threads.pop(spec.index, None)

        pool = ThreadPoolExecutor(min(workers, len(specs)), thread_name_prefix="nbflow-map")
        futures: list[Future[State]] = []
        try:
            try:
                futures.extend(pool.submit(child, spec) for spec in specs)
                pending = set(futures)
                # Short waits: the parent's thread notices a cancel (or is interrupted itself).
                while pending and not info.cancelled():
                    _, pending = wait(pending, timeout=0.1)
            except (TaskCancelled, KeyboardInterrupt) as stop:  # the run is being stopped
                if isinstance(stop, KeyboardInterrupt) and info.cancel_event is not None:
                    info.cancel_event.set()
            if not all(future.done() for future in futures) or len(futures) < len(specs):
                for future in futures:
                    future.cancel()
                for thread_id in list(threads.values()):
                    interrupt_thread(thread_id, TaskCancelled)
        finally:
            _stopping(pool.shutdown)
        # Every child gets its final state, even if a stop request lands meanwhile.
        states: dict[int, State] = {}
        while len(states) < len(specs):
            for i, spec in enumerate(specs):
                if i not in states:
                    future = futures[i] if i < len(futures) else None
                    states[i] = _stopping(lambda f=future, c=spec: _outcome(f, task, c, info, emit))
        return [states[i] for i in range(len(specs))]

    return run


def _stopping(step: Callable[[], Any]) -> Any:
    """``step()``, run to its end even when the run's stop request (an exception injected into
    this thread) arrives meanwhile: the parent is stopping already and must finish recording."""
    from nbflow.core.taskrun import TaskCancelled

    while True:
        try:
            return step()
        except (TaskCancelled, KeyboardInterrupt):
            continue


def _outcome(future: Future[State] | None, task: Task, spec: ChildSpec, info: RunInfo, emit: Any) -> State:
    """A child's final state; one the cancel kept from starting (or stopped outside its
    attempts) is recorded Cancelled now."""
    if future is not None and not future.cancelled():
        try:
            return future.result()
        except BaseException:  # noqa: BLE001 - stopped between steps: it ends Cancelled below
            pass
    return run_child(task, spec, info, emit)


def run_child(task: Task, spec: ChildSpec, info: RunInfo, emit: Any) -> State:
    """One child: a full task run named ``slug[i]`` with its own inputs (trigger, cache,
    retries, timeout all per child). Not started once the flow run is cancelled."""
    from nbflow.core.taskrun import TaskRun

    run = TaskRun(task, spec.task_run_id, spec.incoming, None, info, emit)
    run.slug = child_slug(task.slug or task.name, spec.index)
    run.index = spec.index
    if info.cancelled():
        return run.advance(State(S.CANCELLED, "the flow run was cancelled before this child started"))
    run.given_inputs = spec.inputs
    return run.run()


def run_mapped(parent: TaskRun, children: ChildRunner, *, check_trigger: bool = True) -> State:
    """The parent run of a mapped task: trigger (on its unmapped upstream), inputs, lengths,
    then every child through ``children``; the final state collects them."""
    from nbflow.core.record import new_id
    from nbflow.core.taskrun import TaskCancelled, trigger_decision

    task = parent.task
    keys = task.map_keys
    # Upstream mapped tasks feeding a mapped input are judged per child, not here.
    per_child = [k in keys and st.children is not None for k, _, st in parent.incoming]
    whole = [inc for inc, child in zip(parent.incoming, per_child, strict=True) if not child]
    if check_trigger:
        decided = trigger_decision(task, whole, requested=parent.requested)
        if decided is not None:
            return parent.advance(decided)
    inputs = parent.inputs()
    lengths = {}
    for key in sorted(keys):
        value = inputs.get(key)
        if not _mappable(value):
            return parent.advance(
                State(S.FAILED, f"cannot map over input {key!r}: it is a {type(value).__name__}, not a list")
            )
        lengths[key] = len(value)
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        return parent.advance(State(S.FAILED, f"mapped inputs differ in length: {sizes}"))
    count = next(iter(lengths.values()))
    parent.advance(State(S.RUNNING, f"mapping {count} children", attempt=1))
    specs = [
        ChildSpec(
            i,
            new_id(),
            [
                (k, child_slug(s, i), _child_state(st, i)) if child else (k, s, st)
                for (k, s, st), child in zip(parent.incoming, per_child, strict=True)
            ],
            {k: (v[i] if k in keys else v) for k, v in inputs.items()},
        )
        for i in range(count)
    ]
    try:
        states = _run_or_reuse(task, specs, children, parent)
    except (TaskCancelled, KeyboardInterrupt) as stop:  # the run was cancelled while children ran
        if isinstance(stop, KeyboardInterrupt) and parent.info.cancel_event is not None:
            parent.info.cancel_event.set()
        return parent.advance(State(S.CANCELLED, "stopped while its children ran", attempt=1))
    final = mapped_final(task, states)
    if final.is_successful():
        return parent.advance(parent.stored(final))
    done = {i: task.portable_result(s.result)[0] for i, s in enumerate(states) if s.is_successful()}
    partial = PartialMap(len(states), done) if done else None  # a restart reuses these children
    return parent.advance(parent.stored(final, partial=partial))


def _run_or_reuse(task: Task, specs: list[ChildSpec], children: ChildRunner, parent: TaskRun) -> list[State]:
    """Every child's final state, in order: the ones an earlier run finished (a restart:
    ``Task.reused_children``) are recorded ``Cached`` with their results, the rest run."""
    from nbflow.core.taskrun import TaskRun

    reused = task.reused_children or {}
    by_index: dict[int, State] = {}
    for spec in specs:
        if spec.index in reused:
            run = TaskRun(task, spec.task_run_id, spec.incoming, None, parent.info, parent.emit)
            run.slug, run.index = child_slug(task.slug or task.name, spec.index), spec.index
            earlier = State(S.CACHED, "reused: Success in an earlier run", result=reused[spec.index])
            by_index[spec.index] = run.advance(earlier)
    to_run = [spec for spec in specs if spec.index not in by_index]
    ran = children(task, to_run, parent.info, parent.emit) if to_run else []
    by_index.update((spec.index, state) for spec, state in zip(to_run, ran, strict=True))
    return [by_index[spec.index] for spec in specs]


def _child_state(upstream: State, index: int) -> State:
    """Child ``index`` of a mapped upstream task (a missing one counts as not run)."""
    children = upstream.children or ()
    if index < len(children):
        return children[index]
    return State(S.TRIGGER_FAILED, "the mapped upstream task has no child at this index")


def mapped_final(task: Task, states: Sequence[State]) -> State:
    """The parent's final state from its children's: Failed if one failed, Cancelled if one
    was cancelled, else Success; the result is the children's results in order."""
    slug = task.slug or task.name
    combined = task.combine_mapped([s.result if s.is_successful() else None for s in states])
    kept = tuple(s.without_result() for s in states)
    counts = child_counts(kept)
    summary = ", ".join(f"{n} {name.lower()}" for name, n in counts.items()) or "none"
    failed = [child_slug(slug, i) for i, s in enumerate(states) if s.is_failed()]
    if failed:
        names = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        kind = S.FAILED
        message = f"{len(failed)} of {len(states)} children failed: {names}"
    elif any(s.is_cancelled() for s in states):
        kind, message = S.CANCELLED, f"cancelled: {len(states)} children ({summary})"
    else:
        kind, message = S.SUCCESS, f"{len(states)} children: {summary}"
    return State(kind, message, result=combined, attempt=1, children=kept)


def child_counts(states: Iterable[State]) -> dict[str, int]:
    """How many children are in each state, e.g. ``{"Success": 8, "Failed": 2}``."""
    return count_states(state.type.value for state in states)


def count_states(names: Iterable[str]) -> dict[str, int]:
    """How many of the state ``names`` are each state, in order of first appearance."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts
