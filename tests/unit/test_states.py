from __future__ import annotations

import itertools

import pytest

from nbflow.core.errors import NbflowError, StateTransitionError
from nbflow.core.states import (
    FAILED_TYPES,
    FINISHED_TYPES,
    SUCCESSFUL_TYPES,
    TRANSITIONS,
    State,
    StateType,
    check_transition,
    state_types,
)

S = StateType

# The full table, written out independently of the implementation: every
# (from, to) pair below is allowed, every other pair must raise.
ALLOWED = {
    None: {"Scheduled", "Pending"},
    "Scheduled": {"Pending", "Submitted", "Running", "Cancelling", "Cancelled", "Failed"},
    "Pending": {
        "Scheduled",
        "Submitted",
        "Running",
        "Cached",
        "Skipped",
        "TriggerFailed",
        "Cancelling",
        "Cancelled",
        "Failed",
    },
    "Submitted": {"Scheduled", "Pending", "Running", "Cached", "Cancelling", "Cancelled", "Failed"},
    "Running": {
        "Scheduled",
        "Success",
        "Cached",
        "Skipped",
        "Failed",
        "Retrying",
        "TimedOut",
        "Cancelling",
        "Cancelled",
    },
    "Retrying": {"Running", "Cancelling", "Cancelled", "Failed"},
    "Cancelling": {"Cancelled", "Failed"},
    "Success": set(),
    "Cached": set(),
    "Skipped": set(),
    "Failed": set(),
    "TriggerFailed": set(),
    "TimedOut": set(),
    "Cancelled": set(),
}

PAIRS = [(old, new) for old in [None, *S] for new in S]


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{o}->{n}" for o, n in PAIRS])
def test_every_transition_is_allowed_or_raises(old: StateType | None, new: StateType) -> None:
    allowed = new.value in ALLOWED[old.value if old else None]
    if allowed:
        check_transition(old, new)
    else:
        with pytest.raises(StateTransitionError) as info:
            check_transition(old, new, what="task 'load'")
        message = str(info.value)
        assert "task 'load'" in message
        assert new.value in message


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == {None, *S}


def test_finished_states_are_terminal_and_partitioned() -> None:
    for finished in FINISHED_TYPES:
        assert TRANSITIONS[finished] == frozenset()
    assert SUCCESSFUL_TYPES.isdisjoint(FAILED_TYPES)
    assert FINISHED_TYPES == SUCCESSFUL_TYPES | FAILED_TYPES | {S.CANCELLED}


def test_state_predicates_and_dict() -> None:
    state = State(S.TIMED_OUT, "timed out after 1s", attempt=2)
    assert state.is_failed() and state.is_finished() and not state.is_successful()
    data = state.to_dict()
    assert data["state"] == "TimedOut"
    assert data["attempt"] == 2
    assert "result" not in data  # data never leaves the process through to_dict
    assert repr(state) == "<TimedOut, 'timed out after 1s'>"


def test_error_message_lists_allowed_targets() -> None:
    with pytest.raises(
        StateTransitionError, match="from Retrying it may go to: Cancelled, Cancelling, Failed, Running"
    ):
        check_transition(S.RETRYING, S.SUCCESS)


def test_state_names_parse_case_insensitively() -> None:
    assert state_types(["failed", "TRIGGER_FAILED", "timed-out"]) == [S.FAILED, S.TRIGGER_FAILED, S.TIMED_OUT]
    with pytest.raises(NbflowError, match="unknown state 'bogus'; known states: Scheduled"):
        state_types(["bogus"])


def test_no_duplicate_pairs_in_expectations() -> None:
    # Guard the hand-written table itself: every name in it is a real state.
    names = {s.value for s in S}
    for targets in ALLOWED.values():
        assert targets <= names
    assert len(list(itertools.product([None, *S], S))) == len(PAIRS)
