"""One task run: trigger, cache, attempts with retries and timeout, captured output.

``run_task`` is a plain function of picklable arguments so every executor can
call it: in this thread, on a pool thread, or in a Dask worker process. It
never raises for a task's own failure; it returns the final ``State``.
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

from nbflow.core import capture
from nbflow.core.cache import MISSING, ResultStore, cache_key
from nbflow.core.context import reset_context, set_context
from nbflow.core.events import LOG, STATE, Event
from nbflow.core.states import TRANSITIONS, State, StateTransitionError, StateType
from nbflow.core.triggers import all_successful, manual_only, trigger_name

if TYPE_CHECKING:
    from nbflow.core.tasks import Task

S = StateType
Emit = Callable[[Event], None]
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
        "cancel_event",
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
        cancel_event: threading.Event | None = None,
    ) -> None:
        self.flow_name = flow_name
        self.flow_run_id = flow_run_id
        self.parameters = parameters
        self.base_context = base_context
        self.cache_read = cache_read
        self.cache_root = cache_root
        self.echo = echo
        self.cancel_event = cancel_event

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "cancel_event"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.cancel_event = None

    def cancelled(self) -> bool:
        return self.cancel_event is not None and self.cancel_event.is_set()


class _DeadlineExceeded(Exception):
    """The task ran past its timeout (distinct from a TimeoutError the task raises itself)."""


class _Timeout(BaseException):
    """Injected into a task thread that overran its timeout, to stop it at the next bytecode."""


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
        # Threads cannot be killed; ask it to raise at its next Python bytecode.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident or 0), ctypes.py_object(_Timeout)
        )
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


def run_task(
    task: Task,
    task_run_id: str,
    incoming: list[Incoming],
    constants: Mapping[str, Any] | None,
    info: RunInfo,
    emit: Emit | None,
    *,
    initial: StateType = S.PENDING,
    check_trigger: bool = True,
    requested: bool = False,
) -> State:
    slug = task.slug or task.name
    flow_run_id = info.flow_run_id
    current = initial

    def advance(new: State) -> State:
        nonlocal current
        if new.type not in TRANSITIONS[current]:
            raise StateTransitionError(f"task {slug!r} cannot go from {current.value} to {new.type.value}")
        if emit is not None:
            emit(Event(STATE, flow_run_id, task_run_id, slug, state=new, previous=current))
        current = new.type
        return new

    # 1. Trigger: decided from the upstream tasks' final states.
    if check_trigger:
        decided = trigger_decision(task, incoming, requested=requested)
        if decided is not None:
            return advance(decided)

    inputs = task.collect_inputs(incoming)
    if constants:
        inputs = {**constants, **inputs}

    # 2. Cache: a fresh stored result for the same code, inputs and parameters.
    key: str | None = None
    store: ResultStore | None = None
    if task.cache_for is not None:
        key = cache_key(task.cache_source(), inputs, info.parameters)
        store = ResultStore(info.cache_root, flow=info.flow_name)
        if key is not None and info.cache_read:
            value = store.get(key, task.cache_for)
            if value is not MISSING:
                return advance(
                    State(S.CACHED, "restored from cache", result=value, result_ref=key, attempt=0)
                )

    # 3. Attempts, with captured output and the task's run context.
    def log(level: str, message: str) -> None:
        if emit is not None:
            emit(
                Event(
                    LOG, flow_run_id, task_run_id, slug, level=level, message=message, timestamp=time.time()
                )
            )

    output = capture.TaskOutput(log, echo=info.echo)
    ctx_token = set_context(
        {**info.base_context, "task_run_id": task_run_id, "task_name": task.name, "task_slug": slug}
    )
    out_token = capture.activate(output)
    attempt = 1
    try:
        while True:
            advance(State(S.RUNNING, attempt=attempt))
            try:
                if task.timeout is None:
                    value = task.run(**inputs)
                else:
                    value = _call_with_timeout(task.run, inputs, task.timeout)
            except Exception as exc:
                if isinstance(exc, _DeadlineExceeded):
                    final_type, message = S.TIMED_OUT, f"timed out after {task.timeout:g}s"
                    log("ERROR", f"attempt {attempt} {message}")
                else:
                    final_type, message = S.FAILED, f"{type(exc).__name__}: {exc}"
                    log("ERROR", _user_traceback(exc))
                if attempt <= task.retries:
                    delay = task.retry_delay
                    advance(
                        State(
                            S.RETRYING,
                            f"attempt {attempt} failed ({message}); retrying in {delay:g}s",
                            attempt=attempt,
                        )
                    )
                    if info.cancel_event is not None:
                        if info.cancel_event.wait(delay):
                            return advance(
                                State(S.CANCELLED, "run cancelled while waiting to retry", attempt=attempt)
                            )
                    elif delay:
                        time.sleep(delay)
                    attempt += 1
                    continue
                result = exc if final_type is S.FAILED else None
                return advance(State(final_type, message, result=result, attempt=attempt))
            if store is not None and key is not None:
                stored, dropped = task.portable_result(value)
                if dropped:
                    log("WARNING", f"not cached (cannot be pickled): {', '.join(dropped)}")
                problem = store.put(key, stored)
                if problem is not None:
                    log("WARNING", f"result not cached: {problem}")
                    key = None
            return advance(State(S.SUCCESS, result=value, result_ref=key, attempt=attempt))
    finally:
        capture.deactivate(out_token)
        reset_context(ctx_token)


class RemoteOutcome:
    """What a Dask worker sends back: the final state and the events it produced, in order."""

    __slots__ = ("state", "events")

    def __init__(self, state: State, events: list[Event]) -> None:
        self.state = state
        self.events = events


def run_task_remote(
    task: Task,
    task_run_id: str,
    incoming: list[tuple[str | None, str, RemoteOutcome]],
    constants: Mapping[str, Any] | None,
    info: RunInfo,
) -> RemoteOutcome:
    """``run_task`` inside a worker process: output captured, events collected for the driver."""
    import cloudpickle

    events: list[Event] = []
    capture.install()
    try:
        state = run_task(
            task,
            task_run_id,
            [(key, slug, outcome.state) for key, slug, outcome in incoming],
            constants,
            info,
            events.append,
            initial=S.SUBMITTED,
            check_trigger=False,
        )
    finally:
        capture.uninstall()
    if state.is_failed() and isinstance(state.result, BaseException):
        try:
            cloudpickle.dumps(state.result)
        except Exception:
            state.result = RuntimeError(state.message)
    elif state.is_successful():
        # The result travels back through the scheduler: leave out what cannot be pickled.
        state.result, dropped = task.portable_result(state.result)
        if dropped:
            events.append(
                Event(
                    LOG,
                    info.flow_run_id,
                    task_run_id,
                    task.slug,
                    level="WARNING",
                    message=f"outputs left on the worker (cannot be pickled): {', '.join(dropped)}",
                    timestamp=time.time(),
                )
            )
    return RemoteOutcome(state, events)
