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
from collections import deque
from typing import TYPE_CHECKING, Any

from nbflow.core.executors import Executor, ThreadExecutor
from nbflow.core.states import StateType
from nbflow.core.taskrun import TaskCancelled, interrupt_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbflow.core.runner import FlowRunner
    from nbflow.core.states import State
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


# The most ready tasks one thread takes at once. A share spares the shared lock a visit per
# task when thousands of short tasks are ready together; it is small so that a thread never
# holds back much work, and an idle thread takes from others' shares anyway.
_SHARE = 16
RAMP = 0.0005
"""Seconds work waits for the running threads before the main thread starts another."""


class _ThreadCrew:
    """Worker threads that take ready tasks from the plan until none is left or running.

    Every visit to the crew's lock can cost a thread switch once several threads are busy:
    a thread that loses the GIL while it holds the lock makes the others queue behind it,
    and then each hand-over of the lock waits for the GIL as well. So a thread visits the
    lock as seldom as it can: when many tasks are ready it takes a share of several (a
    small fraction of what is ready, so the others get theirs); a finished task that other
    tasks wait for is recorded at once (they may become ready), one that nothing waits for
    is recorded with the thread's next visit; sleeping threads are woken only when there
    are some. A thread with nothing to do takes a task from another thread's share (a
    ``deque``: its owner and a taker may pop it from either end at once), so tasks queued
    behind a slow one do not wait for it.

    Threads start when work has waited for them (up to ``size``): the main thread starts
    one more whenever tasks taken by nobody are still there ``RAMP`` seconds after a thread
    asked for help. On two cores a third thread for tasks of a few µs made a fan of 100
    take three times as long (each thread's start and its turns at the GIL and the lock);
    tasks that wait on I/O get their threads within a few milliseconds. A chain runs on one
    thread.
    """

    def __init__(self, runner: FlowRunner, info: RunInfo, size: int) -> None:
        self.runner = runner
        self.info = info
        self.size = size
        self.cond = threading.Condition(threading.Lock())
        self.shares: dict[int, deque[Task]] = {}  # thread id -> tasks it took and has not started
        self.running: dict[int, Task] = {}  # thread id -> the task it runs (for ``interrupt``)
        self.held = 0  # tasks taken from the plan and not yet recorded finished
        self.sleeping = 0  # threads waiting for work
        self.over = threading.Event()  # every task ran: the main thread stops waiting
        self.wake = threading.Event()  # for the main thread: the run is over, or work waits for a thread
        self.error: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def start(self, count: int) -> None:
        """Start up to ``count`` more worker threads (under the lock)."""
        for _ in range(min(count, self.size - len(self.threads))):
            thread = threading.Thread(target=self.work, name=f"nbflow-task-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def waiting(self) -> int:
        """Tasks ready or taken that no thread has started (under the lock)."""
        return self.runner.plan.ready_count() + sum(len(share) for share in self.shares.values())

    def grow(self) -> None:
        """Start one more thread if work still waits for one; ask again for the next (main thread)."""
        with self.cond:
            if self.sleeping or len(self.threads) >= self.size or self.over.is_set():
                return
            if self.waiting():
                self.start(1)
                if len(self.threads) < self.size:
                    self.wake.set()

    def end(self) -> None:
        """Every task ran (under the lock): wake whoever waits."""
        self.over.set()
        self.wake.set()
        self.cond.notify_all()

    def started(self) -> list[threading.Thread]:
        """The threads started so far."""
        with self.cond:
            return list(self.threads)

    def work(self) -> None:
        """One worker thread's loop."""
        share: deque[Task] = deque()
        finished: list[tuple[Task, State]] = []  # run, not yet recorded
        try:
            self._work(share, finished)
        except TaskCancelled:
            # Meant for a task, it landed between two: the run is being cancelled.
            if not self.runner.cancel_event.is_set():
                self._fail(TaskCancelled("a worker thread was interrupted outside a task"))
        except BaseException as exc:  # an engine bug must end the run, not hang it
            self._fail(exc)
        finally:
            if finished:  # what ran counts even when the run stops (the rest ends Cancelled)
                with self.cond:
                    self._record(finished)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.runner.cancel_event.set()
        self.wake.set()
        with self.cond:
            self.cond.notify_all()

    def _work(self, share: deque[Task], finished: list[tuple[Task, State]]) -> None:
        runner, info = self.runner, self.info
        downstream, initial, cancel = runner.plan.downstream, runner.initial_states, runner.cancel_event
        running = self.running
        me = threading.get_ident()
        with self.cond:
            self.shares[me] = share
        while True:
            try:
                task = share.popleft()
            except IndexError:  # nothing of its own left (or another thread took the last one)
                if not self._visit(share, finished):
                    return
                continue
            # Marked running before the cancel check: ``interrupt`` (after the cancel) then
            # either finds this thread or the check sees the cancel.
            running[me] = task
            if cancel.is_set():
                del running[me]
                return
            state = runner.reuse(task) if task in initial else runner.run_here(task, info)
            del running[me]
            finished.append((task, state))
            if downstream[task] and not self._visit(share, finished):
                return

    def _visit(self, share: deque[Task], finished: list[tuple[Task, State]]) -> bool:
        """Record what this thread finished and, when its share is empty, find it a task:
        False when it should stop (every task ran, or the run is cancelled)."""
        plan, cancel, cond = self.runner.plan, self.runner.cancel_event, self.cond
        with cond:
            if finished:
                self._record(finished)
            while not share:
                if cancel.is_set():
                    return False
                ready = plan.ready_count()
                if ready:
                    taken = plan.take_some(min(_SHARE, max(1, ready // (2 * self.size))))
                    share.extend(taken)
                    self.held += len(taken)
                elif not self._take_from_another(share):
                    if self.held == 0:  # nothing ready, nothing running: the run is over
                        self.end()
                        return False
                    self.sleeping += 1
                    cond.wait(0.5)
                    self.sleeping -= 1
            # Work for others: ready tasks, and this share beyond the task it starts now (a
            # chain's next task is its own: waking a thread for it would only cost).
            spare = plan.ready_count() + len(share) - 1
            if spare > 0:
                if self.sleeping:
                    cond.notify(min(spare, self.sleeping))
                    spare -= self.sleeping
                if spare > 0 and len(self.threads) < self.size:
                    self.wake.set()  # the main thread starts another if the work still waits
            return True

    def _record(self, finished: list[tuple[Task, State]]) -> None:
        """Record finished tasks in the plan (under the lock): their downstream may become ready."""
        runner = self.runner
        for task, state in finished:
            runner.finished(task, state)
        self.held -= len(finished)
        finished.clear()

    def _take_from_another(self, share: deque[Task]) -> bool:
        """Move the last task of the fullest other share to this one (under the lock)."""
        fullest = max(self.shares.values(), key=len)
        if fullest is share:
            return False
        try:
            share.append(fullest.pop())
        except IndexError:  # its owner took it meanwhile
            return False
        return True

    def interrupt(self) -> None:
        """Stop the task runs in progress (they end Cancelled)."""
        with self.cond:
            for thread_id in list(self.running):
                interrupt_thread(thread_id, TaskCancelled)
            self.cond.notify_all()


def run_on_threads(runner: FlowRunner, info: RunInfo) -> None:
    """Independent branches in parallel; the threads schedule for themselves."""
    executor = runner.executor
    assert isinstance(executor, ThreadExecutor)
    size = min(executor.workers(), max(1, len(runner.order)))
    crew = _ThreadCrew(runner, info, size)
    # Ctrl-C may come at any point once a thread may run a task, starting it included: the
    # handler below is what stops a task already running.
    try:
        with crew.cond:
            crew.start(1)
            if runner.plan.ready_count() > 1:
                crew.wake.set()
        # ``wake`` ends the wait as soon as the last task is recorded or work waits for a
        # thread; the timeout is for noticing a cancel from another thread, and threads
        # that stopped on an error.
        while not crew.over.is_set():
            if crew.wake.wait(0.1):
                crew.wake.clear()
                if not crew.over.wait(RAMP):  # the running threads may take the work meanwhile
                    crew.grow()
            if runner.cancel_event.is_set():
                crew.interrupt()
                break
            if not any(t.is_alive() for t in crew.started()):
                break
        _join(crew.started())
    except KeyboardInterrupt:  # Ctrl-C: stop what runs, record it, then finish
        runner.cancel("interrupted")
        crew.interrupt()
        _join(crew.started())
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
