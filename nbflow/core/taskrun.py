"""One task run: trigger, inputs, cache, attempts (retries, timeout, captured output), store.

``run_task`` is a plain function of picklable arguments so every executor can
call it: in this thread, on a pool thread, or in a Dask worker process. It
never raises for a task's own failure; it returns the final ``State``. The
steps are the methods of ``TaskRun``, in the order ``TaskRun.run`` calls them.
"""

from __future__ import annotations

import contextvars
import ctypes
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.core import capture, secrets
from nbflow.core.cache import MISSING, ResultStore, cache_key
from nbflow.core.context import reset_context, set_context
from nbflow.core.mapping import ChildRunner, run_children_inline, run_mapped, threaded_children
from nbflow.core.record import LogRecord, state_change
from nbflow.core.slots import SlotGate, release_slots, wait_for_slots
from nbflow.core.states import State, StateType
from nbflow.core.triggers import all_successful, manual_only, trigger_name

if TYPE_CHECKING:
    from nbflow.core.events import Event
    from nbflow.core.mapping import PartialMap
    from nbflow.core.tasks import Task

S = StateType
Emit = Callable[["Event"], None]
#: (input key or None, upstream slug, upstream final state)
Incoming = tuple[str | None, str, State]

# Leading frames of nbflow itself are cut from task tracebacks: the user wants their own code.
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


class RunInfo:
    """What every task run of one flow run shares. Picklable (for Dask) but the cancel event."""

    __slots__ = (
        "flow_name",
        "flow_run_id",
        "parameters",
        "base_context",
        "cache_read",
        "cache_root",
        "echo",
        "execution",
        "cancel_event",
        "gate",
        "map_workers",
        "results",
    )

    def __init__(
        self,
        *,
        flow_name: str,
        flow_run_id: str,
        parameters: Mapping[str, Any],
        base_context: Mapping[str, Any],
        cache_read: bool = True,
        cache_root: str | None = None,
        echo: bool = True,
        execution: int = 0,
        cancel_event: threading.Event | None = None,
        gate: SlotGate | None = None,
        map_workers: int = 1,
        results: str | None = None,
    ) -> None:
        self.flow_name = flow_name
        self.flow_run_id = flow_run_id
        self.parameters = parameters
        self.base_context = base_context
        self.cache_read = cache_read
        self.cache_root = cache_root
        self.echo = echo
        self.execution = execution
        self.cancel_event = cancel_event
        #: where tagged tasks get concurrency slots (the agent's flow process); None: no limits
        self.gate = gate
        # Threads a mapped task's children may run on at once (1: one after the other).
        self.map_workers = map_workers
        # Where every task run's result is written (``core.results``); None: nowhere.
        self.results = results

    def __getstate__(self) -> dict[str, Any]:
        # The cancel event and the gate (a server client) stay in the process that made them.
        return {k: getattr(self, k) for k in self.__slots__ if k not in ("cancel_event", "gate")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.cancel_event = None
        self.gate = None

    def cancelled(self) -> bool:
        """True once the flow run was asked to stop."""
        return self.cancel_event is not None and self.cancel_event.is_set()


class _DeadlineExceeded(Exception):
    """The task ran past its timeout (distinct from a TimeoutError the task raises itself)."""


class _Timeout(BaseException):
    """Injected into a task thread that overran its timeout, to stop it at the next bytecode."""


class TaskCancelled(BaseException):
    """Injected into a running task's thread when its flow run is cancelled (e.g. Ctrl-C)."""


class TaskExit(Exception):
    """The task called ``sys.exit()``: a failure of the task, never the end of the process."""

    def __init__(self, code: object) -> None:
        super().__init__(f"the task called sys.exit({code!r}); return or raise an exception instead")


def interrupt_thread(thread_id: int, exception: type[BaseException] = TaskCancelled) -> None:
    """Ask a thread to raise ``exception`` at its next Python bytecode (threads cannot be killed)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))


def _call_with_timeout(fn: Callable[..., Any], inputs: Mapping[str, Any], timeout: float) -> Any:
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(fn, **inputs)
        except BaseException as exc:  # noqa: BLE001 - carried back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="nbflow-timeout", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        interrupt_thread(thread.ident or 0, _Timeout)
        raise _DeadlineExceeded
    if "error" in box:
        raise box["error"]
    return box["value"]


def _user_traceback(exc: BaseException) -> str:
    """The traceback without nbflow's own frames, so it points at the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def trigger_decision(task: Task, incoming: list[Incoming], *, requested: bool = False) -> State | None:
    """The final state of a task its trigger keeps from running, or ``None`` if it runs.
    ``requested``: the run was asked for this very task, so ``manual_only`` lets it run."""
    if requested and task.trigger is manual_only:
        return trigger_decision(task.copy(trigger=all_successful), incoming)
    if task.trigger is all_successful:
        # The common case, without building anything: every upstream plainly succeeded.
        for _, _, state in incoming:
            if state.type is not S.SUCCESS and state.type is not S.CACHED:
                break
        else:
            return None
    upstream = {up_slug: state for _, up_slug, state in incoming}
    trigger = task.trigger
    if not trigger(upstream.values()):
        failed = [s for s, st in upstream.items() if st.is_failed()]
        name = trigger_name(trigger)
        if failed:
            return State(S.TRIGGER_FAILED, f"trigger {name} not met: upstream {', '.join(failed)} failed")
        if name == "manual_only":
            return State(S.SKIPPED, "manual_only trigger: run this task explicitly")
        return State(S.SKIPPED, f"trigger {name} not met by the upstream states")
    if trigger is all_successful and task.skip_on_upstream_skip:
        skipped = [s for s, st in upstream.items() if st.type is S.SKIPPED]
        if skipped:
            return State(S.SKIPPED, f"upstream {', '.join(skipped)} skipped")
    return None


class TaskRun:
    """One run of one task, step by step (the shape of Prefect 1's task runner)."""

    def __init__(
        self,
        task: Task,
        task_run_id: str,
        incoming: list[Incoming],
        constants: Mapping[str, Any] | None,
        info: RunInfo,
        emit: Emit | None,
        *,
        initial: StateType = S.PENDING,
        requested: bool = False,
        needed: frozenset[str] | None = None,
        children: ChildRunner | None = None,
    ) -> None:
        self.task = task
        # Outputs that must travel to other processes (downstream tasks on Dask): None = no travel.
        self.needed = needed
        self.slug = task.slug or task.name
        self.task_run_id = task_run_id
        self.incoming = incoming
        self.constants = constants
        self.info = info
        self.emit = emit
        self.current = initial
        self.requested = requested
        self.cache_key: str | None = None
        self.store: ResultStore | None = None
        # A mapped task's child (``mapping.run_child``): its element's inputs and index.
        self.given_inputs: dict[str, Any] | None = None
        self.index: int | None = None
        self.children = children

    def run(self, *, check_trigger: bool = True) -> State:
        """trigger -> inputs -> cache -> attempts (which store the result); the final state.
        A mapped task's parent run maps instead (``mapping.run_mapped``)."""
        if self.task.map_keys and self.index is None:
            children = self.children or (
                threaded_children(self.info.map_workers) if self.info.map_workers > 1 else run_children_inline
            )
            return run_mapped(self, children, check_trigger=check_trigger)
        if check_trigger:
            decided = trigger_decision(self.task, self.incoming, requested=self.requested)
            if decided is not None:
                return self.advance(decided)
        inputs = self.inputs()
        cached = self.read_cache(inputs)
        if cached is not None:
            return self.advance(self.stored(cached))
        gate = self.info.gate
        if gate is None or not self.task.tags:
            return self.attempts(inputs)
        if not wait_for_slots(
            gate,
            self.task_run_id,
            self.slug,
            tuple(self.task.tags),
            waiting=lambda reason: self.advance(State(S.SCHEDULED, reason)),
            cancel_event=self.info.cancel_event,
        ):
            return self.advance(State(S.CANCELLED, "the run was cancelled while this task waited for a slot"))
        try:
            return self.attempts(inputs)
        finally:
            release_slots(gate, self.task_run_id)

    def advance(self, new: State) -> State:
        """Move to ``new`` (checked against the transition table) and emit the change."""
        if new.message:
            new.message = secrets.mask(new.message)  # an error's text may hold a secret's value
        record = state_change(
            self.info.flow_run_id,
            self.task_run_id,
            self.slug,
            self.current,
            new,
            execution=self.info.execution,
        )
        if self.emit is not None:
            self.emit(record)
        self.current = new.type
        return new

    def log(self, level: str, message: str) -> None:
        """Emit one log line of this task run."""
        if self.emit is not None:
            self.emit(
                LogRecord(
                    self.info.flow_run_id,
                    level,
                    secrets.mask(message),
                    time.time(),
                    task_run_id=self.task_run_id,
                    task=self.slug,
                    execution=self.info.execution,
                )
            )

    def report(self, level: str, message: str) -> None:
        """An engine-made log line: into the task run's log and to the ``nbflow.task`` logger."""
        self.log(level, message)
        capture.forward(
            level,
            secrets.mask(f"task {self.slug!r}: {message}"),
            flow_name=self.info.flow_name,
            flow_run_id=self.info.flow_run_id,
            task_run_id=self.task_run_id,
            task_slug=self.slug,
        )

    def inputs(self) -> dict[str, Any]:
        """The task's keyword inputs: upstream results, then constants bound in the flow."""
        if self.given_inputs is not None:
            return self.given_inputs
        inputs = self.task.collect_inputs(self.incoming)
        return {**self.constants, **inputs} if self.constants else inputs

    def read_cache(self, inputs: Mapping[str, Any]) -> State | None:
        """A ``Cached`` state when a fresh result for the same code, inputs and parameters is
        stored; also prepares the key the attempts store their result under."""
        task = self.task
        if task.cache_for is None:
            return None
        self.cache_key = cache_key(task.cache_source(), inputs, self.info.parameters)
        self.store = ResultStore(self.info.cache_root, flow=self.info.flow_name)
        if self.cache_key is None or not self.info.cache_read:
            return None
        value = self.store.get(self.cache_key, task.cache_for)
        if value is MISSING:
            return None
        return State(S.CACHED, "restored from cache", result=value, result_ref=self.cache_key)

    def attempts(self, inputs: Mapping[str, Any]) -> State:
        """Run attempts with the task's run context and captured output until one succeeds,
        the retries are used up, or the run is cancelled while waiting to retry."""
        output = capture.TaskOutput(self.log, echo=self.info.echo)
        ctx_token = set_context(
            {
                **self.info.base_context,
                "task_run_id": self.task_run_id,
                "task_name": self.task.name,
                "task_slug": self.slug,
                "map_index": self.index,
            }
        )
        out_token = capture.activate(output)
        try:
            attempt = 1
            while True:
                self.advance(State(S.RUNNING, attempt=attempt))
                try:
                    value = self.call(inputs)
                except Exception as exc:
                    final = self.failure(exc, attempt)
                    if final is not None:
                        return final
                    attempt += 1
                    continue
                except (TaskCancelled, KeyboardInterrupt) as stop:
                    # Stopped while running (the run was cancelled, or Ctrl-C in this very thread):
                    # record it and tell the runner, which starts nothing more.
                    if isinstance(stop, KeyboardInterrupt) and self.info.cancel_event is not None:
                        self.info.cancel_event.set()
                    return self.advance(State(S.CANCELLED, "stopped while running", attempt=attempt))
                return self.finished(value, attempt)
        finally:
            capture.deactivate(out_token)
            reset_context(ctx_token)

    def call(self, inputs: Mapping[str, Any]) -> Any:
        """One attempt: the task's code, bounded by its timeout."""
        task = self.task
        try:
            if task.timeout is None:
                return task.run(**inputs)
            return _call_with_timeout(task.run, inputs, task.timeout)
        except SystemExit as exc:
            raise TaskExit(exc.code) from None

    def finished(self, value: Any, attempt: int) -> State:
        """The attempt succeeded: Success, unless an output downstream tasks need cannot travel
        to them (Dask), or the run was cancelled meanwhile (then nothing is cached)."""
        if self.info.cancelled():
            return self.advance(
                State(S.CANCELLED, "the run was cancelled while this task ran", attempt=attempt)
            )
        if self.needed:
            _, dropped = self.task.portable_result(value)
            stuck = sorted(set(dropped) & self.needed)
            if stuck:
                message = (
                    f"output {', '.join(map(repr, stuck))} cannot be pickled, so the tasks that read it "
                    "cannot receive it on other workers; make it picklable or compute it where it is used"
                )
                return self.advance(State(S.FAILED, message, attempt=attempt))
        success = State(S.SUCCESS, result=value, result_ref=self.save(value), attempt=attempt)
        return self.advance(self.stored(success))

    def stored(self, state: State, *, partial: PartialMap | None = None) -> State:
        """``state`` with its result written to the run's result store (if it has one) and
        ``result_ref`` naming it; a result that cannot be stored is said in the log. A mapped
        task that did not succeed stores ``partial`` instead: its succeeded children's results."""
        storing = state.is_successful() or partial is not None
        if self.info.results is None or not storing or self.index is not None:
            return state  # a mapped child's result is stored once, in its parent's list
        from nbflow.core.errors import StorageError
        from nbflow.core.results import ResultStore

        value, dropped = self.task.portable_result(state.result) if partial is None else (partial, [])
        if dropped:
            self.log("WARNING", f"not stored (cannot be pickled): {', '.join(dropped)}")
        try:
            state.result_ref = ResultStore(self.info.results).save(
                self.info.flow_run_id, self.slug, self.task_run_id, value
            )
        except StorageError as exc:
            self.log("WARNING", f"result not stored: {exc}")
        return state

    def failure(self, exc: Exception, attempt: int) -> State | None:
        """Log a failed attempt; ``None`` to try again (after the retry delay), else the final state."""
        task = self.task
        if isinstance(exc, _DeadlineExceeded):
            final_type, message = S.TIMED_OUT, f"timed out after {task.timeout:g}s"
            self.report("ERROR", f"attempt {attempt} {message}")
        else:
            final_type, message = S.FAILED, f"{type(exc).__name__}: {exc}"
            self.report("ERROR", _user_traceback(exc))
        if attempt > task.retries:
            result = exc if final_type is S.FAILED else None
            return self.advance(State(final_type, message, result=result, attempt=attempt))
        delay = task.retry_delay
        self.advance(
            State(
                S.RETRYING, f"attempt {attempt} failed ({message}); retrying in {delay:g}s", attempt=attempt
            )
        )
        cancel = self.info.cancel_event
        if cancel is not None:
            if cancel.wait(delay):
                return self.advance(
                    State(S.CANCELLED, "run cancelled while waiting to retry", attempt=attempt)
                )
        elif delay:
            time.sleep(delay)
        return None

    def save(self, value: Any) -> str | None:
        """Store a successful result in the cache (cached tasks only); its key, or ``None``."""
        if self.store is None or self.cache_key is None:
            return None
        stored, dropped = self.task.portable_result(value)
        if dropped:
            self.report("WARNING", f"not cached (cannot be pickled): {', '.join(dropped)}")
        problem = self.store.put(self.cache_key, stored)
        if problem is not None:
            self.report("WARNING", f"result not cached: {problem}")
            return None
        return self.cache_key


def run_task(*call: Any, check_trigger: bool = True, **options: Any) -> State:
    """Run one task to its final state, as every executor calls it: ``TaskRun(*call, **options)``
    (task, task run id, incoming, constants, info, emit; then ``TaskRun``'s keywords)."""
    return TaskRun(*call, **options).run(check_trigger=check_trigger)
