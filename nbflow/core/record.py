"""The run record: every state change and log line of a run, and their one wire form.

This module owns the record. Every hop uses these two classes and nothing
else: the engine emits them on its ``EventStream``; ``core.runview`` folds
them; the agent's reporter spools ``to_wire()`` dicts; the server's GraphQL
inputs are subclasses of the wire dataclasses and its services store and
replay them; the live feed sends ``to_wire()`` of what it stored; the widget
folds them; the TypeScript types are generated from here
(``python -m nbflow.core.typescript``).

Identity and de-duplication:

* ``transition_id`` is made by whoever makes the state change (the engine for
  task and flow states, the server for its own) and is unique: a re-delivered
  change is recognised because its transition id is already recorded.
* ``execution`` numbers the executions of one flow run (the server's claim of
  it); ``seq`` numbers log lines within one execution. ``(flow_run_id,
  execution, seq)`` is unique, so a resubmitted run keeps every line.

Wire form (JSON, snake_case)::

    {"kind": "state", "flow_run_id": "...", "task_run_id": "..." | null, "task": "clean" | null,
     "state": "Running", "previous": "Pending" | null, "message": "", "attempt": 1,
     "timestamp": 1716200000.1, "transition_id": "...", "execution": 0,
     "result_ref": null, "start_time": null}
    {"kind": "log", "flow_run_id": "...", "task_run_id": "..." | null, "task": "clean" | null,
     "level": "INFO", "message": "cleaned 3 rows", "timestamp": 1716200000.2,
     "execution": 0, "seq": 7}

``task`` is the task's slug, or ``None`` for the flow run itself.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from nbflow.core.errors import RecordError
from nbflow.core.states import FINISHED_TYPES, State, StateType, check_transition

if TYPE_CHECKING:
    from collections.abc import Mapping

STATE = "state"
LOG = "log"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# -- ids ---------------------------------------------------------------------------------

_id_lock = threading.Lock()
_id_prefix = ""
_id_counter = 0


def _reseed() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = 0


_reseed()
# A forked child (an agent's warm flow process) must not repeat its parent's ids.
os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A unique id for a run, task run or transition: 64 random bits per process plus a
    counter (a tenth of the cost of a random UUID; unique across processes and forks)."""
    global _id_counter
    with _id_lock:
        _id_counter += 1
        n = _id_counter
    return f"{_id_prefix}-{n:x}"


# -- the records ---------------------------------------------------------------------------


MAX_ID = 36
"""Longest run, task-run or transition id (a UUID's length; ``new_id`` makes shorter ones)."""
MAX_NAME = 200
"""Longest task slug."""
MAX_REF = 1000
"""Longest result reference (a stored result's location and digest, ``core.results``)."""
MAX_MESSAGE = 100_000
"""Longest message of a record the server stores; ``cut`` makes longer ones fit."""
_ID = {"max": MAX_ID}
_NAME = {"max": MAX_NAME}


@dataclass
class StateWire:
    """The wire fields of a state change (GraphQL inputs subclass this)."""

    flow_run_id: str = field(metadata=_ID)
    state: str
    transition_id: str = field(metadata=_ID)
    timestamp: float
    task_run_id: str | None = field(default=None, metadata=_ID)
    task: str | None = field(default=None, metadata=_NAME)
    previous: str | None = None
    message: str = ""
    attempt: int = 0
    execution: int = 0
    result_ref: str | None = field(default=None, metadata={"max": MAX_REF})
    start_time: float | None = None


@dataclass
class StateRecord(StateWire):
    """One state change of a flow run (``task is None``) or a task run.

    ``value`` is the engine's ``State`` (with the result) in the process that
    made it; it never travels: ``to_wire()`` leaves it out and ``from_wire``
    rebuilds a ``State`` without a result.
    """

    kind: ClassVar[str] = STATE
    value: State | None = field(default=None, repr=False, compare=False)

    @property
    def type(self) -> StateType:
        """The state as a ``StateType``."""
        # A dict look-up: the server asks this a few times per state change it applies, and
        # an enum's call by value costs ten times as much.
        return _STATE_TYPES.get(self.state) or StateType(self.state)

    def to_state(self) -> State:
        """The ``State`` (the engine's own object where this process made the change)."""
        if self.value is not None:
            return self.value
        return State(
            self.type,
            self.message,
            attempt=self.attempt,
            timestamp=self.timestamp,
            result_ref=self.result_ref,
            start_time=self.start_time,
        )

    def is_finished(self) -> bool:
        """True for a final state (Success, Failed, Cancelled, ...)."""
        return self.state in _FINISHED

    def to_wire(self) -> dict[str, Any]:
        """The JSON form every other process receives."""
        return {"kind": STATE, **{f.name: getattr(self, f.name) for f in STATE_FIELDS}}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StateRecord:
        """Validate and read a state change; ``RecordError`` names what is wrong."""
        values = _read(data, _STATE_RULES, "state change")
        for name in ("state", "previous"):
            if values[name] is not None and values[name] not in _STATE_NAMES:
                raise RecordError(
                    f"state change: unknown {name} {values[name]!r}; states: {', '.join(STATE_NAMES)}"
                )
        return cls(**values)


@dataclass
class LogRecord:
    """One log line of a flow run or task run (``print``, ``logging``, tracebacks)."""

    kind: ClassVar[str] = LOG
    flow_run_id: str = field(metadata=_ID)
    level: str
    message: str
    timestamp: float
    task_run_id: str | None = field(default=None, metadata=_ID)
    task: str | None = field(default=None, metadata=_NAME)
    execution: int = 0
    seq: int = 0

    def to_wire(self) -> dict[str, Any]:
        """The JSON form every other process receives."""
        return {"kind": LOG, **asdict(self)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LogRecord:
        """Validate and read a log line; ``RecordError`` names what is wrong."""
        values = _read(data, _LOG_RULES, "log line")
        level = str(values["level"]).upper()
        if level not in LEVELS:
            raise RecordError(f"log line: unknown level {values['level']!r}; levels: {', '.join(LEVELS)}")
        values["level"] = level
        return cls(**values)


Record = StateRecord | LogRecord


def cut(text: str, by: str, longest: int = MAX_MESSAGE) -> str:
    """``text`` within ``longest`` characters: the start kept, the cut said in a marker
    naming who cut it (``by``: "the agent", "the server"), never silently dropped."""
    if len(text) <= longest:
        return text
    keep = longest - 80  # room for the marker
    return text[:keep] + f"\n… [{len(text) - keep} more characters cut by {by}]"


@dataclass
class StateResult:
    """The answer to one proposed state change: accepted (or acknowledged) or not and why,
    and the run's version and state now. The server makes it; the client reads it."""

    id: str
    ok: bool
    version: int
    state: str
    error: str | None = None
    #: For an accepted claim (Submitted): the token its execution reports with, shown once.
    run_token: str | None = None


STATE_FIELDS = tuple(fields(StateWire))
LOG_FIELDS = tuple(fields(LogRecord))
STATE_NAMES: tuple[str, ...] = tuple(t.value for t in StateType)
_STATE_NAMES = frozenset(STATE_NAMES)
_STATE_TYPES = {t.value: t for t in StateType}
_FINISHED = frozenset(t.value for t in FINISHED_TYPES)


def record_from_wire(data: Mapping[str, Any]) -> Record:
    """A state change or a log line, by its ``kind``."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == STATE:
        return StateRecord.from_wire(data)
    if kind == LOG:
        return LogRecord.from_wire(data)
    raise RecordError(f"a record needs kind 'state' or 'log', got {kind!r}")


def record_from_own_wire(data: dict[str, Any]) -> Record:
    """A record this engine made (``to_wire``) and sent itself between its own processes (a
    Dask worker of the run to its driver): read as is, its fields not checked one by one
    again. The driver reads two records per task and checking them was most of its work
    per record (18 µs of 20); records from anywhere else go through ``record_from_wire``."""
    values = dict(data)
    if values.pop("kind") == STATE:
        return StateRecord(**values)
    return LogRecord(**values)


# Field type (as annotated) -> (accepted Python types, how an error message names it).
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"),
    "str | None": ((str, type(None)), "a string or null"),
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "float | None": ((int, float, type(None)), "a number or null"),
}
_REQUIRED = object()
_Rules = tuple[tuple[str, Any, frozenset[type], tuple[type, ...], str, int | None], ...]


def _rules(spec: tuple[Any, ...]) -> _Rules:
    """Each field's check, worked out once: (name, default, exact types, accepted types,
    description, longest). A server reads every state change and log line through these."""
    rules = []
    for f in spec:
        allowed, described = _TYPES[str(f.type)]
        default = f.default if f.default is not MISSING else _REQUIRED
        rules.append((f.name, default, frozenset(allowed), allowed, described, f.metadata.get("max")))
    return tuple(rules)


_STATE_RULES = _rules(STATE_FIELDS)
_LOG_RULES = _rules(LOG_FIELDS)


def _read(data: Mapping[str, Any], rules: _Rules, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError(f"a {what} must be a JSON object, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for name, default, exact, allowed, described, longest in rules:
        value = data.get(name, _REQUIRED)
        if value is _REQUIRED:
            if default is _REQUIRED:
                raise RecordError(f"{what}: missing field {name!r}")
            values[name] = default
            continue
        kind = type(value)
        # What JSON gives passes with a glance; anything else (a bool, a subclass, a wrong
        # type, a string too long, a number not finite) gets the full check and its error.
        if (
            kind not in exact
            or (kind is str and longest is not None and len(value) > longest)
            or (kind is float and not math.isfinite(value))
        ):
            _check(what, name, value, allowed, described, longest)
        values[name] = value
    return values


def _check(
    what: str, name: str, value: object, allowed: tuple[type, ...], described: str, longest: int | None
) -> None:
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise RecordError(f"{what}: field {name!r} must be {described}, got {value!r:.80}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{what}: field {name!r} must be a finite number, got {value!r}")
    if longest is not None and isinstance(value, str) and len(value) > longest:
        raise RecordError(f"{what}: field {name!r} is longer than {longest} characters")


# -- the one place the engine changes a state ------------------------------------------------


def state_change(
    flow_run_id: str,
    task_run_id: str | None,
    task: str | None,
    previous: StateType | None,
    new: State,
    *,
    execution: int = 0,
) -> StateRecord:
    """Check ``previous -> new`` against the transition table and make the record
    (with a fresh transition id). Raises ``StateTransitionError`` when the table forbids it."""
    check_transition(previous, new.type, what=f"task {task!r}" if task is not None else "the flow run")
    return StateRecord(
        flow_run_id=flow_run_id,
        state=new.type.value,
        transition_id=new_id(),
        timestamp=new.timestamp,
        task_run_id=task_run_id,
        task=task,
        previous=previous.value if previous is not None else None,
        message=new.message,
        attempt=new.attempt,
        execution=execution,
        result_ref=new.result_ref,
        start_time=new.start_time,
        value=new,
    )
