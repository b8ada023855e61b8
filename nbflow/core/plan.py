"""The plan of one flow run: which task may start when, and which results may go.

A ``Plan`` counts, for each task, the upstream tasks still running (a task is
ready at zero) and the downstream tasks still to finish (a finished task's
result is released at zero, unless the caller keeps it). Every driver
(sequential, threads, a generic executor, Dask) asks the same plan; the
threads driver asks it from several threads, so its two methods hold a lock.
"""

from __future__ import annotations

import heapq
import threading
from typing import TYPE_CHECKING

from nbflow.core.errors import NbflowError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from nbflow.core.flows import Flow
    from nbflow.core.tasks import Task


class Plan:
    """Ready tasks in task order, and releasable results, of the tasks in ``order``."""

    def __init__(self, flow: Flow, order: Sequence[Task], keep: Callable[[Task], bool]) -> None:
        self.order = list(order)
        self.position = {t: i for i, t in enumerate(self.order)}
        inside = self.position
        self.upstream = {t: [u for u in flow.upstream_tasks(t) if u in inside] for t in self.order}
        self.downstream = {t: [d for d in flow.downstream_tasks(t) if d in inside] for t in self.order}
        self.waiting = {t: len(ups) for t, ups in self.upstream.items()}
        self.consumers = {t: len(downs) for t, downs in self.downstream.items()}
        self.keep = keep
        self._ready = [self.position[t] for t, n in self.waiting.items() if n == 0]
        heapq.heapify(self._ready)
        self._lock = threading.Lock()

    def take(self) -> Task | None:
        """The next ready task (the earliest in task order), or ``None``."""
        with self._lock:
            return self.order[heapq.heappop(self._ready)] if self._ready else None

    def take_some(self, most: int) -> list[Task]:
        """Up to ``most`` ready tasks, earliest in task order first (a thread's share)."""
        ready, order = self._ready, self.order
        with self._lock:
            return [order[heapq.heappop(ready)] for _ in range(min(most, len(ready)))]

    def done(self, task: Task) -> list[Task]:
        """``task`` finished: the tasks whose results nothing needs any more (its own when
        no downstream task reads it). Tasks it was the last upstream of become ready."""
        releasable = []
        with self._lock:
            for down in self.downstream[task]:
                self.waiting[down] -= 1
                if self.waiting[down] == 0:
                    heapq.heappush(self._ready, self.position[down])
            for up in (*self.upstream[task], task):
                if up is not task:
                    self.consumers[up] -= 1
                if self.consumers[up] == 0 and not self.keep(up):
                    releasable.append(up)
        return releasable

    def has_ready(self) -> bool:
        """True while some task is ready to start."""
        return bool(self._ready)

    def ready_count(self) -> int:
        """How many tasks are ready to start."""
        return len(self._ready)


def keeper(
    keep: str | Iterable[Task] | Callable[[Task], bool], flow: Flow, order: Sequence[Task]
) -> Callable[[Task], bool]:
    """Which results a run keeps past their last reader: ``"all"`` (``Flow.run()``: the caller
    reads them), ``"none"`` (headless, exported and agent runs: nobody reads them after),
    ``"terminal"`` (the tasks nothing reads: what a pipeline produces), the given tasks, or
    the caller's rule (the kernel keeps what the notebook's variables will hold)."""
    if callable(keep):
        return keep
    if keep == "all":
        return _always
    if keep == "none":
        return _never
    if keep == "terminal":
        inside = set(order)
        return frozenset(
            t for t in order if not any(d in inside for d in flow.downstream_tasks(t))
        ).__contains__
    if isinstance(keep, str):
        raise NbflowError(f"keep must be 'all', 'none', 'terminal' or a list of tasks, got {keep!r}")
    return frozenset(keep).__contains__


def _always(task: Task) -> bool:  # noqa: ARG001
    return True


def _never(task: Task) -> bool:  # noqa: ARG001
    return False
