"""Writing run states: every change goes through ``decide`` and the side-effect tables.

``nbflow.core.states.decide`` is the one rule (accept, reject or acknowledge a
re-delivery); this module applies it to flow runs and task runs and keeps what
each state does to the run's row in one table per kind of run:

* a flow run is changed by compare-and-set on its ``version``
  (``UPDATE ... WHERE version = :seen``): of two writers that saw the same
  version exactly one wins, on SQLite and PostgreSQL alike;
* a task run is written only by the execution that owns its flow run: a record
  of any other execution is refused (a superseded process cannot overwrite
  the winner), and the row's own version guards concurrent writers.

Every accepted change is appended to the journal (``run_events``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from nbflow.core.record import StateRecord, StateResult, new_id
from nbflow.core.states import FINISHED_TYPES, StateType, Verdict, decide
from nbflow.server.auth import forget_run_token, new_run_token
from nbflow.server.db import PerDialect, checked_after, one_of
from nbflow.server.errors import RequestError, TryAgain
from nbflow.server.models import FlowRun, TaskRun, utcnow
from nbflow.server.services import concurrency, journal
from nbflow.server.services.taskstore import StaleRows, task_run_store

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from nbflow.server.services.taskstore import Seen, TaskRunStore

S = StateType
MAX_BATCH = 5000


# -- what each state does to the run's row -------------------------------------------------

Effect = Callable[[dict[str, Any], StateRecord, datetime], dict[str, Any]]


def _claim(row: dict[str, Any], change: StateRecord, now: datetime) -> dict[str, Any]:  # noqa: ARG001
    # The claim's resulting version numbers the execution that may now write the run.
    return {"agent_id": row["claimant"], "heartbeat": now, "execution": row["version"] + 1}


def _release(row: dict[str, Any], change: StateRecord, now: datetime) -> dict[str, Any]:  # noqa: ARG001
    return {"agent_id": None}


def _start(row: dict[str, Any], change: StateRecord, now: datetime) -> dict[str, Any]:
    if row["start_time"] is not None:
        return {}
    return {"start_time": datetime.fromtimestamp(change.timestamp, UTC) if change.task is not None else now}


def _end(row: dict[str, Any], change: StateRecord, now: datetime) -> dict[str, Any]:  # noqa: ARG001
    return {"end_time": datetime.fromtimestamp(change.timestamp, UTC) if change.task is not None else now}


FLOW_RUN_EFFECTS: dict[StateType, tuple[Effect, ...]] = {
    S.SUBMITTED: (_claim,),  # an agent claims the run
    S.SCHEDULED: (_release,),  # released or resubmitted: any agent may claim it again
    S.RUNNING: (_start,),
    **{t: (_end,) for t in FINISHED_TYPES},
}
TASK_RUN_EFFECTS: dict[StateType, tuple[Effect, ...]] = {
    S.RUNNING: (_start,),
    **{t: (_end,) for t in FINISHED_TYPES},
}


def _effects(
    table: dict[StateType, tuple[Effect, ...]], row: dict[str, Any], change: StateRecord
) -> dict[str, Any]:
    now = utcnow()
    out: dict[str, Any] = {}
    for effect in table.get(change.type, ()):
        out |= effect(row, change, now)
    return out


# -- flow runs -------------------------------------------------------------------------------


def server_change(run: FlowRun, state: StateType, message: str) -> StateRecord:
    """A state change the server makes itself (cancel, recovery, scheduling)."""
    return StateRecord(
        flow_run_id=run.id,
        state=state.value,
        transition_id=new_id(),
        timestamp=time.time(),
        previous=run.state,
        message=message,
        execution=run.execution,
    )


async def set_flow_run_state(
    session: AsyncSession,
    tenant_id: str,
    change: StateRecord,
    *,
    version: int | None,
    agent_id: str | None = None,
) -> StateResult:
    """Apply one flow-run state change (compare-and-set at ``version`` when given;
    ``agent_id`` names the agent a ``Submitted`` claim is for)."""
    from nbflow.server.services.runs import get_flow_run

    run = await get_flow_run(session, tenant_id, change.flow_run_id)
    recorded = bool(await journal.recorded_transitions(session, tenant_id, [change.transition_id]))
    decision = decide(
        StateType(run.state),
        change.type,
        recorded=recorded,
        version_seen=version,
        version_now=run.version,
        what="flow run",
    )
    if decision.verdict is Verdict.ACKNOWLEDGE:
        return StateResult(run.id, True, run.version, run.state)
    if decision.verdict is Verdict.REJECT:
        return StateResult(run.id, False, run.version, run.state, decision.reason)
    if change.type is S.SUBMITTED:  # a claim: a label of the run may have its limit of active runs
        refused = await concurrency.claim_refusal(session, tenant_id, run)
        if refused is not None:
            return StateResult(run.id, False, run.version, run.state, refused)
    seen = run.version
    row = {"version": seen, "start_time": run.start_time, "claimant": agent_id}
    values = {
        "state": change.state,
        "state_message": journal.storable(change.message),
        "version": seen + 1,
        "updated": utcnow(),
        **_effects(FLOW_RUN_EFFECTS, row, change),
    }
    token = None
    if change.type is S.SUBMITTED:  # a new execution: a token of its own, the old one dies
        token, values["run_token_hash"] = new_run_token(run.id)
        forget_run_token(run.run_token_hash)
    result = await session.execute(
        update(FlowRun).where(FlowRun.id == run.id, FlowRun.version == seen).values(**values)
    )
    await session.refresh(run)
    if result.rowcount != 1:  # another writer changed it between our read and our write
        return StateResult(
            run.id, False, run.version, run.state,
            f"stale version {seen}: the flow run is at version {run.version} ({run.state})",
        )  # fmt: skip
    change.execution = run.execution
    journal.append(session, tenant_id, [change])
    return StateResult(run.id, True, run.version, run.state, run_token=token)


# -- task runs -------------------------------------------------------------------------------


async def set_task_run_states(
    store: TaskRunStore, tenant_id: str, changes: list[StateRecord]
) -> list[StateResult]:
    """Apply task-run state changes in order, reading and writing through ``store``: a batch of
    1,000 states is a handful of round trips (two statements on PostgreSQL)."""
    if len(changes) > MAX_BATCH:
        raise RequestError(f"at most {MAX_BATCH} state changes per call, got {len(changes)}")
    if not changes:
        return []
    seen = await store.read(tenant_id, changes)
    results, written, new, accepted = _apply_task_changes(changes, tenant_id, seen)
    if seen.assumed and len(accepted) < len(changes):
        # A refusal or an acknowledgement is only ever given on what the database holds.
        seen = await store.read(tenant_id, changes, fresh=True)
        results, written, new, accepted = _apply_task_changes(changes, tenant_id, seen)
    if written:
        await store.write(tenant_id, written, new, accepted)
    return results


def _apply_task_changes(
    changes: list[StateRecord], tenant_id: str, seen: Seen
) -> tuple[list[StateResult], list[dict[str, Any]], set[str], list[StateRecord]]:
    """Each change decided in order on ``seen`` (whose rows it updates): the answers, the rows
    to store, which of them are new, and the changes to journal."""
    rows, recorded = seen.rows, set(seen.recorded)
    inserted: dict[str, dict[str, Any]] = {}
    changed: set[str] = set()
    accepted: list[StateRecord] = []
    results = []
    for change in changes:
        result = _apply_task_change(change, tenant_id, seen.runs, rows, recorded, inserted, changed)
        if result.ok and change.transition_id not in recorded:
            recorded.add(change.transition_id)
            accepted.append(change)
        results.append(result)
    return results, [rows[i] for i in changed], set(inserted), accepted


#: How often a batch is decided again when another writer moved one of its task rows meanwhile.
STALE_RETRIES = 5


async def record_task_run_states(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, changes: list[StateRecord]
) -> list[StateResult]:
    """``set_task_run_states`` through a store of its own (``taskstore.task_run_store``),
    decided again on the rows as they are now when a concurrent writer moved one of them."""
    for _ in range(STALE_RETRIES):
        try:
            async with task_run_store(sessions) as store:
                return await set_task_run_states(store, tenant_id, changes)
        except StaleRows:
            continue
    raise TryAgain(f"the task runs of this batch kept changing under {STALE_RETRIES} attempts; send it again")


# Built once: building a statement costs more than running it (see services/taskstore.py).
_OWNING_EXECUTIONS = PerDialect(
    lambda postgres: (
        select(FlowRun.id, FlowRun.execution)
        .where(
            one_of(FlowRun.id, "run_ids", postgres=postgres),
            checked_after(FlowRun.tenant_id) == bindparam("tenant_id"),
        )
        .order_by(FlowRun.id)
        .with_for_update(read=True)
    )
)


def _apply_task_change(
    change: StateRecord,
    tenant_id: str,
    runs: dict[str, int],
    rows: dict[str, dict[str, Any]],
    recorded: set[str],
    inserted: dict[str, dict[str, Any]],
    changed: set[str],
) -> StateResult:
    execution = runs.get(change.flow_run_id)
    task_run_id = change.task_run_id or ""
    if execution is None:
        return StateResult(task_run_id, False, 0, "", f"no flow run {change.flow_run_id!r} in this tenant")
    if not task_run_id or change.task is None:
        return StateResult(task_run_id, False, 0, "", "a task-run state needs task_run_id and task")
    row = rows.get(task_run_id)
    if row is not None and row["tenant_id"] != tenant_id:
        return StateResult(task_run_id, False, 0, "", f"task run id {task_run_id!r} is taken; make a new id")
    if row is not None and row["flow_run_id"] != change.flow_run_id:
        return StateResult(
            task_run_id, False, row["version"], row["state"], "task run belongs to another flow run"
        )
    current = StateType(row["state"]) if row is not None else S.PENDING
    decision = decide(
        current,
        change.type,
        recorded=change.transition_id in recorded,
        superseded=change.execution != execution,
        what="task run",
    )
    version, state = (row["version"], row["state"]) if row is not None else (0, "")
    if decision.verdict is Verdict.ACKNOWLEDGE:
        return StateResult(task_run_id, True, version, state)
    if decision.verdict is Verdict.REJECT:
        return StateResult(task_run_id, False, version, state, decision.reason)
    if row is None:
        row = {
            "id": task_run_id, "tenant_id": tenant_id, "flow_run_id": change.flow_run_id, "task_slug": change.task,
            "version": 0, "start_time": None, "end_time": None, "created": utcnow(),
        }  # fmt: skip
        rows[task_run_id] = inserted[task_run_id] = row
    row.update(
        state=change.state,
        state_message=journal.storable(change.message),
        attempt=change.attempt,
        version=row["version"] + 1,
        execution=change.execution,
        # Where the engine stored the result (a location and digest, never the data).
        result_ref=change.result_ref or row.get("result_ref"),
        **_effects(TASK_RUN_EFFECTS, row, change),
    )
    changed.add(task_run_id)
    return StateResult(task_run_id, True, row["version"], row["state"])


async def owning_executions(session: AsyncSession, tenant_id: str, run_ids: set[str]) -> dict[str, int]:
    """Each run's owning execution, for a write that records under it (runs of other tenants
    and unknown ids are left out). The rows stay share-locked to the commit (PostgreSQL's FOR
    SHARE; SQLite has one writer anyway): a claim or release of the run waits, so it never
    commits between this check and the write, and the feed never shows a superseded
    execution's record after the change that superseded it."""
    await session.flush()  # runs this transaction made as ORM objects are rows before we read them
    connection = await session.connection()
    found = await connection.execute(
        _OWNING_EXECUTIONS.on(connection), {"tenant_id": tenant_id, "run_ids": list(run_ids)}
    )
    return {run_id: execution for run_id, execution in found}


async def fail_open_task_runs(session: AsyncSession, run: FlowRun, message: str) -> None:
    """Close the task runs a dead execution left open as Failed (recovery)."""
    open_runs = (
        await session.execute(
            select(TaskRun).where(
                TaskRun.flow_run_id == run.id, TaskRun.state.not_in([s.value for s in FINISHED_TYPES])
            )
        )
    ).scalars()
    records = []
    for task_run in open_runs:
        record = StateRecord(
            flow_run_id=run.id, state=S.FAILED.value, transition_id=new_id(), timestamp=time.time(),
            task_run_id=task_run.id, task=task_run.task_slug, previous=task_run.state, message=message,
            attempt=task_run.attempt, execution=task_run.execution,
        )  # fmt: skip
        task_run.state = S.FAILED.value
        task_run.state_message = message
        task_run.version += 1
        task_run.end_time = utcnow()
        records.append(record)
    journal.append(session, run.tenant_id, records)
