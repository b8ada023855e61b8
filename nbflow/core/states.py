"""Run states and the one table of allowed transitions.

Flow runs and task runs share the state machine. A run starts ``Scheduled``
(waiting for a time) or ``Pending`` (ready as soon as its upstream allows) and
ends in one of the finished states; finished states are terminal: a re-run is
a new run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import NbflowError, StateTransitionError

if TYPE_CHECKING:
    from collections.abc import Iterable


class StateType(StrEnum):
    """The states a flow run or task run can be in (the TypeScript list is generated from it)."""

    SCHEDULED = "Scheduled"
    PENDING = "Pending"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCESS = "Success"
    CACHED = "Cached"
    SKIPPED = "Skipped"
    FAILED = "Failed"
    TRIGGER_FAILED = "TriggerFailed"
    TIMED_OUT = "TimedOut"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"

    def __str__(self) -> str:
        return self.value


S = StateType

SUCCESSFUL_TYPES = frozenset({S.SUCCESS, S.CACHED, S.SKIPPED})
FAILED_TYPES = frozenset({S.FAILED, S.TRIGGER_FAILED, S.TIMED_OUT})
FINISHED_TYPES = SUCCESSFUL_TYPES | FAILED_TYPES | {S.CANCELLED}
ACTIVE_TYPES = frozenset({S.SUBMITTED, S.RUNNING, S.RETRYING, S.CANCELLING})

# Scheduled/Pending -> Failed covers runs that cannot start (bad parameters,
# missing code); Running/Submitted -> Scheduled is a resubmission after a lost
# agent; Cancelling ends Failed when the run crashed before it could stop.
TRANSITIONS: dict[StateType | None, frozenset[StateType]] = {
    None: frozenset({S.SCHEDULED, S.PENDING}),
    S.SCHEDULED: frozenset({S.PENDING, S.SUBMITTED, S.RUNNING, S.CANCELLING, S.CANCELLED, S.FAILED}),
    S.PENDING: frozenset(
        {
            S.SCHEDULED,
            S.SUBMITTED,
            S.RUNNING,
            S.CACHED,
            S.SKIPPED,
            S.TRIGGER_FAILED,
            S.CANCELLING,
            S.CANCELLED,
            S.FAILED,
        }
    ),
    S.SUBMITTED: frozenset(
        {S.SCHEDULED, S.PENDING, S.RUNNING, S.CACHED, S.CANCELLING, S.CANCELLED, S.FAILED}
    ),
    S.RUNNING: frozenset(
        {
            S.SCHEDULED,
            S.SUCCESS,
            S.CACHED,
            S.SKIPPED,
            S.FAILED,
            S.RETRYING,
            S.TIMED_OUT,
            S.CANCELLING,
            S.CANCELLED,
        }
    ),
    S.RETRYING: frozenset({S.RUNNING, S.CANCELLING, S.CANCELLED, S.FAILED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.FAILED}),
    **{finished: frozenset() for finished in FINISHED_TYPES},
}


def check_transition(old: StateType | None, new: StateType, *, what: str = "run") -> None:
    """Raise ``StateTransitionError`` naming both states when the table forbids the move."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(t.value for t in TRANSITIONS[old])) or "nothing (finished)"
        start = old.value if old is not None else "a new run"
        raise StateTransitionError(
            f"{what} cannot go from {start} to {new.value}; from {start} it may go to: {allowed}"
        )


class Verdict(StrEnum):
    """What a writer does with a proposed state change."""

    ACCEPT = "accept"  # apply it
    REJECT = "reject"  # refuse it, saying why
    ACKNOWLEDGE = "acknowledge"  # already recorded (a re-delivery): answer ok, apply nothing


@dataclass(frozen=True, slots=True)
class Decision:
    """A ``Verdict`` and, for a rejection, the reason the writer reports."""

    verdict: Verdict
    reason: str = ""


def decide(
    current: StateType | None,
    proposed: StateType,
    *,
    recorded: bool = False,
    version_seen: int | None = None,
    version_now: int | None = None,
    superseded: bool = False,
    what: str = "run",
) -> Decision:
    """The one rule every writer of run states follows (flow runs and task runs alike).

    * ``recorded``: this transition id is stored already, so it is a re-delivery
      (the writer's first answer was lost) -> acknowledge, even if the run moved on.
    * ``superseded``: the change comes from an execution that no longer owns the run
      (a resubmitted or stolen run) -> reject, so a zombie cannot overwrite the winner.
    * ``version_seen != version_now``: a compare-and-set lost a race -> reject.
    * a move the transition table forbids -> reject.
    """
    if recorded:
        return Decision(Verdict.ACKNOWLEDGE)
    start = current.value if current is not None else "a new run"
    if superseded:
        return Decision(Verdict.REJECT, f"superseded execution: the {what} is run by a newer execution now")
    if version_seen is not None and version_seen != version_now:
        return Decision(
            Verdict.REJECT,
            f"stale version {version_seen}: the {what} is at version {version_now} ({start})",
        )
    if proposed not in TRANSITIONS[current]:
        return Decision(Verdict.REJECT, f"a {what} cannot go from {start} to {proposed.value}")
    return Decision(Verdict.ACCEPT)


class State:
    """One state of a flow run or task run.

    ``result`` holds the value in the process that ran the task; ``result_ref``
    names where it is stored (the cache key), which is all a server ever sees.
    """

    __slots__ = ("type", "message", "timestamp", "attempt", "result", "result_ref", "start_time", "children")

    def __init__(
        self,
        type: StateType,
        message: str = "",
        *,
        result: Any = None,
        result_ref: str | None = None,
        attempt: int = 0,
        timestamp: float | None = None,
        start_time: float | None = None,
        children: tuple[State, ...] | None = None,
    ) -> None:
        self.type = type
        self.message = message
        self.result = result
        self.result_ref = result_ref
        self.attempt = attempt
        self.timestamp = time.time() if timestamp is None else timestamp
        # Only Scheduled states carry a start time: when the run should begin.
        self.start_time = start_time
        # A mapped task's final state: its children's final states in order (no results:
        # the parent's result holds them); how a task mapped over it decides each child.
        self.children = children

    @property
    def name(self) -> str:
        """The state's name, e.g. ``Success``."""
        return self.type.value

    def is_finished(self) -> bool:
        """True for a final state."""
        return self.type in FINISHED_TYPES

    def is_successful(self) -> bool:
        """True for Success, Cached and Skipped."""
        return self.type in SUCCESSFUL_TYPES

    def is_failed(self) -> bool:
        """True for Failed, TriggerFailed and TimedOut."""
        return self.type in FAILED_TYPES

    def is_cancelled(self) -> bool:
        """True for Cancelled."""
        return self.type is S.CANCELLED

    def is_skipped(self) -> bool:
        """True for Skipped."""
        return self.type is S.SKIPPED

    def is_cached(self) -> bool:
        """True for Cached."""
        return self.type is S.CACHED

    def is_running(self) -> bool:
        """True for Running."""
        return self.type is S.RUNNING

    def is_scheduled(self) -> bool:
        """True for Scheduled."""
        return self.type is S.SCHEDULED

    def without_result(self, residue: Any = None) -> State:
        """The same state with only ``residue`` for its result (what a run keeps once nothing
        reads the result: see ``Task.residue``)."""
        return State(
            self.type,
            self.message,
            result=residue,
            result_ref=self.result_ref,
            attempt=self.attempt,
            timestamp=self.timestamp,
            start_time=self.start_time,
            children=self.children,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (never the result value, only its reference)."""
        return {
            "state": self.type.value,
            "message": self.message,
            "timestamp": self.timestamp,
            "attempt": self.attempt,
            "result_ref": self.result_ref,
            "start_time": self.start_time,
        }

    def __repr__(self) -> str:
        msg = f", {self.message!r}" if self.message else ""
        return f"<{self.type.value}{msg}>"


def state_types(names: Iterable[str]) -> list[StateType]:
    """Parse state names given by a user (case-insensitive, e.g. ``failed``)."""
    by_lower = {t.value.lower(): t for t in StateType}
    out = []
    for name in names:
        key = name.strip().lower().replace("_", "").replace("-", "")
        if key not in by_lower:
            known = ", ".join(t.value for t in StateType)
            raise NbflowError(f"unknown state {name!r}; known states: {known}")
        out.append(by_lower[key])
    return out
