"""The run record: wire form round trips, validation, the one transition rule, ids, numbering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbflow import EventStream, Flow, task
from nbflow.core.errors import StateTransitionError
from nbflow.core.record import (
    STATE_NAMES,
    LogRecord,
    RecordError,
    StateRecord,
    new_id,
    record_from_own_wire,
    record_from_wire,
    state_change,
)
from nbflow.core.states import TRANSITIONS, State, StateType, Verdict, decide
from nbflow.core.typescript import typescript

REPO = Path(__file__).resolve().parents[2]
S = StateType

ids = st.text("abcdef0123456789-", min_size=1, max_size=36)
maybe_ids = st.none() | ids
text = st.text(max_size=200)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)

state_records = st.builds(
    StateRecord,
    flow_run_id=ids,
    state=st.sampled_from(STATE_NAMES),
    transition_id=ids,
    timestamp=finite,
    task_run_id=maybe_ids,
    task=st.none() | st.text(max_size=50),
    previous=st.none() | st.sampled_from(STATE_NAMES),
    message=text,
    attempt=st.integers(0, 100),
    execution=st.integers(0, 10**6),
    result_ref=st.none() | st.text(max_size=60),
    start_time=st.none() | finite,
)
log_records = st.builds(
    LogRecord,
    flow_run_id=ids,
    level=st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    message=text,
    timestamp=finite,
    task_run_id=maybe_ids,
    task=st.none() | st.text(max_size=50),
    execution=st.integers(0, 10**6),
    seq=st.integers(0, 10**9),
)


@given(st.one_of(state_records, log_records))
def test_every_record_survives_its_wire_form(record: StateRecord | LogRecord) -> None:
    wire = json.loads(json.dumps(record.to_wire()))
    assert record_from_wire(wire) == record


@given(st.one_of(state_records, log_records))
def test_a_record_between_the_engines_own_processes_reads_back_the_same(
    record: StateRecord | LogRecord,
) -> None:
    """The Dask driver reads its workers' records without checking them again: the same
    record as the checked reading gives, through msgpack as they travel."""
    wire = msgpack.unpackb(msgpack.packb([record.to_wire()]))[0]
    back = record_from_own_wire(wire)
    assert back == record_from_wire(wire) == record
    assert type(back) is type(record)


VALID = {"flow_run_id": "run", "state": "Running", "transition_id": "t", "timestamp": 1.0}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({k: v for k, v in VALID.items() if k != "transition_id"}, "missing field 'transition_id'"),
        ({**VALID, "state": "Done"}, "unknown state 'Done'"),
        ({**VALID, "previous": "running"}, "unknown previous 'running'"),
        ({**VALID, "timestamp": True}, "field 'timestamp' must be a number, got True"),
        ({**VALID, "timestamp": float("nan")}, "must be a finite number"),
        ({**VALID, "attempt": "2"}, "field 'attempt' must be a whole number"),
        ({**VALID, "task": 3}, "field 'task' must be a string or null"),
        ({**VALID, "flow_run_id": "x" * 37}, "field 'flow_run_id' is longer than 36 characters"),
        ({**VALID, "kind": "log", "level": "LOUD", "message": "m"}, "unknown level 'LOUD'"),
        ({**VALID, "kind": "stat"}, "a record needs kind 'state' or 'log'"),
    ],
)
def test_a_malformed_record_is_refused_naming_the_field(data: dict, error: str) -> None:
    data = {"kind": "state", **data}
    with pytest.raises(RecordError, match=error):
        record_from_wire(data)


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(RecordError, match="a state change must be a JSON object, got list"):
        StateRecord.from_wire([])  # type: ignore[arg-type]


# -- the one transition rule ---------------------------------------------------------------

PAIRS = [(current, proposed) for current in [None, *StateType] for proposed in StateType]


@pytest.mark.parametrize(("current", "proposed"), PAIRS)
def test_decide_follows_the_table_for_every_pair(current: StateType | None, proposed: StateType) -> None:
    decision = decide(current, proposed)
    allowed = proposed in TRANSITIONS[current]
    assert decision.verdict is (Verdict.ACCEPT if allowed else Verdict.REJECT)
    if not allowed:
        start = current.value if current is not None else "a new run"
        assert decision.reason == f"a run cannot go from {start} to {proposed.value}"
    # A change already recorded is a re-delivery, whatever the run did since.
    assert decide(current, proposed, recorded=True).verdict is Verdict.ACKNOWLEDGE


def test_decide_rejects_a_lost_race_and_a_superseded_execution() -> None:
    stale = decide(S.SCHEDULED, S.SUBMITTED, version_seen=1, version_now=2, what="flow run")
    assert stale.verdict is Verdict.REJECT
    assert stale.reason == "stale version 1: the flow run is at version 2 (Scheduled)"
    zombie = decide(S.RUNNING, S.SUCCESS, superseded=True, what="task run")
    assert zombie.verdict is Verdict.REJECT and zombie.reason.startswith("superseded execution")
    # Recorded wins over both: the first delivery was applied, only its answer was lost.
    assert decide(S.SUCCESS, S.SUCCESS, recorded=True, superseded=True).verdict is Verdict.ACKNOWLEDGE


def test_the_engine_changes_states_in_one_place() -> None:
    change = state_change("run", "tr", "clean", S.PENDING, State(S.RUNNING, attempt=1), execution=3)
    assert (change.previous, change.state, change.execution, change.attempt) == ("Pending", "Running", 3, 1)
    assert change.value is not None and change.to_state() is change.value
    with pytest.raises(StateTransitionError, match="task 'clean' cannot go from Success to Running"):
        state_change("run", "tr", "clean", S.SUCCESS, State(S.RUNNING))


def test_every_state_change_of_a_run_has_its_own_transition_id() -> None:
    @task
    def one():
        return 1

    @task
    def two(x):
        print("hello")
        return x + 1

    with Flow("ids") as flow:
        two(one())
    records: list = []
    stream = EventStream()
    stream.subscribe(records.extend)
    flow.run(stream=stream, echo=False)
    states = [r for r in records if isinstance(r, StateRecord)]
    assert len({r.transition_id for r in states}) == len(states) == 6  # flow 2, tasks 2 each
    logs = [r for r in records if isinstance(r, LogRecord)]
    assert [r.seq for r in logs] == [1] and logs[0].message == "hello"


def test_log_lines_are_numbered_in_the_order_the_stream_delivers_them() -> None:
    stream = EventStream()
    seen: list = []
    stream.subscribe(seen.extend)
    for i in range(50):
        stream.emit(LogRecord("run", "INFO", f"line {i}", float(i)))
    stream.flush()
    stream.emit(LogRecord("run", "INFO", "later", 99.0))
    stream.flush()
    assert [r.seq for r in seen] == list(range(1, 52))
    assert [r.message for r in seen][:3] == ["line 0", "line 1", "line 2"]


def test_ids_are_unique_across_a_fork() -> None:
    before = new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: an agent's warm flow process would be one
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    after = new_id()
    assert len({before, child, after}) == 3
    assert child.split("-")[0] != before.split("-")[0]
    assert after.split("-")[0] == before.split("-")[0]


# -- the TypeScript form -------------------------------------------------------------------


def test_the_typescript_record_is_generated_from_the_python_one() -> None:
    committed = (REPO / "labextension" / "src" / "dag" / "record.ts").read_text()
    assert committed == typescript(), (
        "labextension/src/dag/record.ts is out of date: run "
        "`python -m nbflow.core.typescript > labextension/src/dag/record.ts`"
    )


def test_the_generator_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.core.typescript"], capture_output=True, text=True, check=True
    )
    assert done.stdout == typescript() and done.stderr == ""
    assert 'export const STATE_NAMES = ["Scheduled", "Pending"' in done.stdout
