"""How a run drives its executor: one driver per kind of executor, all asking the run's ``Plan``.

* ``run_sequential``: the tasks in order, in this thread, through ``executor.submit``
  (``LocalExecutor`` runs each inline, so a subclass sees every task run).
* ``run_on_threads``: worker threads schedule for themselves: a thread that finishes a
  task takes the next ready one at once, so a chain runs on one thread without waking
  the main thread twice per task (``ThreadExecutor``).
* ``run_queued``: any other executor, through ``submit`` and ``next_done``.
* ``run_on_dask`` (in ``dask_driver.py``): the whole graph handed to the cluster.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from nbflow.core.executors import Executor, ThreadExecutor
from nbflow.core.states import StateType
from nbflow.core.taskrun import TaskCancelled, interrupt_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbflow.core.runner import FlowRunner
    from nbflow.core.taskrun import RunInfo
    from nbflow.core.tasks import Task

S = StateType


def driver_for(executor: Executor) -> Callable[[FlowRunner, RunInfo], None]:
    """The driver of ``executor`` (a subclass that overrides ``submit`` gets the generic one,
    so it sees every task run)."""
    if executor.remote and getattr(executor, "client", None) is not None:
        from nbflow.core.dask_driver import run_on_dask

        return run_on_dask
    if isinstance(executor, ThreadExecutor) and type(executor).submit is ThreadExecutor.submit:
        return run_on_threads
    if executor.synchronous:
        return run_sequential
    return run_queued


def run_sequential(runner: FlowRunner, info: RunInfo) -> None:
    """Each task in task order, one after the other."""
    executor = runner.executor
    cancel = runner.cancel_event
    initial = runner.initial_states
    for task in runner.order:
        if cancel.is_set():
            return
        if task in initial:
            runner.finished(task, runner.reuse(task))
            continue
        runner.finished(task, executor.result(runner.submit(task, info)))


class _ThreadCrew:
    """Worker threads that take ready tasks from the plan until none is left or running."""

    def __init__(self, runner: FlowRunner, info: RunInfo, size: int) -> None:
        self.runner = runner
        self.info = info
        self.size = size
        self.cond = threading.Condition()
        self.busy: dict[int, Task] = {}  # thread id -> the task it runs
        self.over = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> None:
        runner, plan = self.runner, self.runner.plan
        try:
            while (task := self._next()) is not None:
                if task in runner.initial_states:
                    state = runner.reuse(task)
                else:
                    state = runner.run_here(task, self.info)
                with self.cond:
                    del self.busy[threading.get_ident()]
                    runner.finished(task, state)
                    ready = plan.ready_count()
                    if ready > 1:  # this thread takes one; wake others only for the rest
                        self.cond.notify(ready - 1)
                    elif ready == 0 and not self.busy:
                        self.cond.notify_all()  # nothing left: let the others see it and leave
        except BaseException as exc:  # an engine bug must end the run, not hang it
            self.error = exc
            self.runner.cancel_event.set()
            with self.cond:
                self.cond.notify_all()

    def _next(self) -> Task | None:
        plan = self.runner.plan
        with self.cond:
            while True:
                if self.runner.cancel_event.is_set():
                    return None
                task = plan.take()
                if task is not None:
                    self.busy[threading.get_ident()] = task
                    return task
                if not self.busy:
                    self.over.set()
                    self.cond.notify_all()
                    return None
                self.cond.wait(0.5)

    def interrupt(self) -> None:
        """Stop the task runs in progress (they end Cancelled)."""
        with self.cond:
            for thread_id in list(self.busy):
                interrupt_thread(thread_id, TaskCancelled)
            self.cond.notify_all()


def run_on_threads(runner: FlowRunner, info: RunInfo) -> None:
    """Independent branches in parallel; the threads schedule for themselves."""
    executor = runner.executor
    assert isinstance(executor, ThreadExecutor)
    size = min(executor.workers(), max(1, len(runner.order)))
    crew = _ThreadCrew(runner, info, size)
    threads = [threading.Thread(target=crew.work, name=f"nbflow-task-{i}", daemon=True) for i in range(size)]
    for thread in threads:
        thread.start()
    try:
        while any(t.is_alive() for t in threads):
            if runner.cancel_event.wait(0.1):
                crew.interrupt()
                _join(threads)
                break
    except KeyboardInterrupt:  # Ctrl-C: stop what runs, record it, then finish
        runner.cancel("interrupted")
        crew.interrupt()
        _join(threads)
    if crew.error is not None:
        raise crew.error


def _join(threads: list[threading.Thread]) -> None:
    """Wait for the threads to record their end; a second Ctrl-C stops the waiting."""
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        return  # what still runs is recorded Cancelled by the runner's finish


def run_queued(runner: FlowRunner, info: RunInfo) -> None:
    """Any executor: submit ready tasks, collect finished ones (``next_done``)."""
    executor, plan = runner.executor, runner.plan
    running: dict[Any, Task] = {}
    try:
        while plan.has_ready() or running:
            while not runner.cancel_event.is_set() and (task := plan.take()) is not None:
                if task in runner.initial_states:
                    runner.finished(task, runner.reuse(task))
                    continue
                running[runner.submit(task, info)] = task
            if runner.cancel_event.is_set():
                break
            for handle in executor.next_done(0.1):
                task = running.pop(handle)
                runner.finished(task, _collect(runner, handle, task))
    except KeyboardInterrupt:  # Ctrl-C: stop what runs, record it, then finish
        runner.cancel("interrupted")
    _drain(runner, running)


def _collect(runner: FlowRunner, handle: Any, task: Task) -> Any:
    try:
        return runner.executor.result(handle)
    except Exception as exc:  # the executor itself failed
        return runner.executor_failed(task, exc, previous=S.PENDING)


def _drain(runner: FlowRunner, running: dict[Any, Task]) -> None:
    """After a cancel: drop what has not started, stop what runs, wait for it to end."""
    executor = runner.executor
    for handle, task in list(running.items()):
        if executor.cancel(handle):
            del running[handle]
            runner.finished(task, runner.cancelled(task, S.PENDING))
    executor.interrupt()
    try:
        while running:
            for handle in executor.next_done(0.1):
                task = running.pop(handle)
                runner.finished(task, _collect(runner, handle, task))
    except KeyboardInterrupt:
        return
