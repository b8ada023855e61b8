"""Executors run task-run functions: in order, on threads, or on a Dask cluster.

The runner only needs ``submit`` and ``next_done``: each executor funnels
completions into a queue, so waiting costs O(1) per finished task even with
10,000 tasks in flight (``concurrent.futures.wait`` would rescan them all).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import NbflowError

if TYPE_CHECKING:
    from collections.abc import Callable


class Executor:
    """Base class. ``synchronous`` executors run a task inside ``submit``."""

    name = "executor"
    synchronous = False
    #: Tasks run in other processes: inputs/outputs are pickled, events shipped back.
    remote = False

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``fn(*args)``; returns a handle ``next_done`` and ``result`` understand."""
        raise NotImplementedError

    def next_done(self, timeout: float) -> list[Any]:
        """Handles of finished submissions; waits up to ``timeout`` for the first."""
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        """The value of a finished submission (raises what the executor raised)."""
        return handle.result()

    def cancel(self, handle: Any) -> bool:  # noqa: ARG002
        """Try to stop a submission that has not started; True if it will not run."""
        return False

    def interrupt(self) -> None:
        """Ask the task runs in progress to stop (the run was cancelled); they end Cancelled."""
        return None

    def describe(self) -> str:
        """How the run's Running message names this executor."""
        return self.name


class _QueuedExecutor(Executor):
    """Completion callbacks put finished futures on ``_done``; ``next_done`` drains it."""

    _done: queue.SimpleQueue[Any]

    def next_done(self, timeout: float) -> list[Any]:
        try:
            first = self._done.get(timeout=timeout)
        except queue.Empty:
            return []
        done = [first]
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done


class LocalExecutor(Executor):
    """Sequential, in this process and thread: the simplest and fastest for small work.

    ``submit`` runs the task inline and returns its result as the handle, so a
    subclass that overrides ``submit`` (to time, trace or wrap each task run)
    sees every task run of a sequential flow.
    """

    name = "local"
    synchronous = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` now; the handle is its return value."""
        return fn(*args)

    def result(self, handle: Any) -> Any:
        """The value ``submit`` returned."""
        return handle


class ThreadExecutor(_QueuedExecutor):
    """Independent branches run in parallel on a thread pool (opt-in: `local` is the default)."""

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._done: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self._running: dict[object, int] = {}  # submission -> the pool thread running it

    def __enter__(self) -> ThreadExecutor:
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="nbflow-task")
        self._done = queue.SimpleQueue()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            # Don't wait: a timed-out task may still hold a thread we cannot stop.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Start ``fn(*args)`` on the pool; its future is the handle."""
        assert self._pool is not None, "use the executor as a context manager"
        token = object()

        def tracked() -> Any:
            self._running[token] = threading.get_ident()
            try:
                return fn(*args)
            finally:
                self._running.pop(token, None)

        future = self._pool.submit(tracked)
        future.add_done_callback(self._done.put)
        return future

    def workers(self) -> int:
        """How many threads run tasks at once (``max_workers``, else the pool's own default)."""
        return self.max_workers or min(32, (os.cpu_count() or 1) + 4)

    def interrupt(self) -> None:
        """Raise ``TaskCancelled`` in every pool thread running a task (at its next bytecode)."""
        from nbflow.core.taskrun import TaskCancelled, interrupt_thread

        for thread_id in list(self._running.values()):
            interrupt_thread(thread_id, TaskCancelled)

    def cancel(self, handle: Future) -> bool:
        """Cancel a submission that has not started."""
        return handle.cancel()

    def describe(self) -> str:
        """``threads (max_workers=...)``."""
        return f"threads (max_workers={self.max_workers or 'auto'})"


class DaskExecutor(_QueuedExecutor):
    """Tasks run on a ``distributed`` cluster: an existing one by address, or a LocalCluster."""

    name = "dask"
    remote = True

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        processes: bool = True,
        cluster_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self._given_client = client
        self.client: Any = None
        self._cluster: Any = None
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def __enter__(self) -> DaskExecutor:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise NbflowError(
                "the dask executor needs dask.distributed: pip install 'nbflow[dask]'"
            ) from None
        self._done = queue.SimpleQueue()
        if self._given_client is not None:
            self.client = self._given_client
        elif self.address:
            try:
                self.client = Client(self.address, timeout="5s")
            except OSError as exc:
                raise NbflowError(
                    f"cannot reach the Dask scheduler at {self.address}: {exc}; "
                    "check the address or start one with `dask scheduler`"
                ) from None
        else:
            # Our own short-lived cluster: its workers' shutdown races ("failed to communicate
            # with scheduler during heartbeat") are noise; task errors reach the user as events.
            # The scheduler serves HTTP (health, metrics) even without a dashboard, on 8787 unless
            # told otherwise, and warns into the user's cell when another cluster holds that port.
            options = {
                "dashboard_address": None,
                "scheduler_kwargs": {"dashboard_address": ":0"},
                "silence_logs": logging.CRITICAL,
                **self.cluster_kwargs,
            }
            self._cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=self.processes,
                **options,
            )
            self.client = Client(self._cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._given_client is None and self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self.client = self._cluster = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` to the cluster (impure: every call runs); its future is the handle."""
        future = self.client.submit(fn, *args, pure=False)
        future.add_done_callback(self._done.put)
        return future

    def cancel(self, handle: Any) -> bool:
        """Ask the cluster to drop a submission."""
        handle.cancel()
        return True

    def describe(self) -> str:
        """``dask (address)`` or ``dask (LocalCluster(n workers))``."""
        where = self.address or f"LocalCluster({self.n_workers} workers)"
        return f"dask ({where})"


EXECUTORS: dict[str, Callable[[], Executor]] = {
    "local": LocalExecutor,
    "threads": ThreadExecutor,
    "dask": DaskExecutor,
}


def resolve_executor(executor: str | Executor | None, *, dask_address: str | None = None) -> Executor:
    """The one executor factory: an ``Executor`` as is, or one made from its name
    (``dask_address`` points the ``dask`` executor at a running scheduler)."""
    if executor is None:
        return LocalExecutor()
    if isinstance(executor, Executor):
        return executor
    name = str(executor).strip().lower()
    if name == "dask" and dask_address:
        return DaskExecutor(address=dask_address)
    factory = EXECUTORS.get(name)
    if factory is None:
        raise NbflowError(
            f"unknown executor {executor!r}; use one of: {', '.join(EXECUTORS)}, "
            "or an Executor instance such as DaskExecutor(address='tcp://...')"
        )
    return factory()
