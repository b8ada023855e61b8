"""Flow runs and task runs: creation, versioned state changes, the work queue, cancellation.

Every state change is a compare-and-set on the row's ``version``
(``UPDATE ... WHERE id = :id AND version = :seen``): of two writers holding the
same version exactly one wins, on SQLite and PostgreSQL alike, with no locks.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from nbflow.core.states import FINISHED_TYPES, StateType, can_transition
from nbflow.server.errors import Conflict, NotFound, RequestError
from nbflow.server.models import (
    Agent,
    Flow,
    FlowRun,
    FlowRunState,
    FlowVersion,
    TaskRun,
    TaskRunState,
    utcnow,
)
from nbflow.server.services.flows import latest_version

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

S = StateType
MAX_BATCH = 5000


def _state(name: str) -> StateType:
    try:
        return StateType(name)
    except ValueError:
        raise RequestError(
            f"unknown state {name!r}; states: {', '.join(s.value for s in StateType)}"
        ) from None


def check_parameters(version: FlowVersion, given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``given``; unknown or missing names are an error naming the known ones."""
    given = dict(given or {})
    known = [p["name"] for p in version.parameters]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise RequestError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"this flow's parameters are: {', '.join(known) or '(none)'}"
        )
    values = {}
    for p in version.parameters:
        if p["name"] in given:
            values[p["name"]] = given[p["name"]]
        elif p.get("required"):
            raise RequestError(f"parameter {p['name']!r} is required")
        else:
            values[p["name"]] = p.get("default")
    try:
        json.dumps(values)
    except (TypeError, ValueError):
        raise RequestError("parameter values must be JSON") from None
    return values


async def create_flow_run(
    session: AsyncSession,
    tenant_id: str,
    flow: Flow,
    *,
    parameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    scheduled_start_time: datetime | None = None,
    labels: list[str] | None = None,
    version: FlowVersion | None = None,
) -> tuple[FlowRun, bool]:
    """(run, created). The same idempotency key for the same flow returns the same run."""
    if idempotency_key is not None:
        existing = await _by_idempotency_key(session, flow.id, idempotency_key)
        if existing is not None:
            return existing, False
    version = version or await latest_version(session, flow.id)
    if version is None:
        raise NotFound(f"flow {flow.name!r} has no registered version")
    values = check_parameters(version, parameters)
    when = scheduled_start_time or utcnow()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    run = FlowRun(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        flow_id=flow.id,
        flow_version_id=version.id,
        parameters=values,
        labels=sorted(set(version.labels) | set(labels or [])),
        idempotency_key=idempotency_key,
        state=S.SCHEDULED.value,
        state_message=f"scheduled for {when.isoformat(timespec='seconds')}",
        version=1,
        scheduled_start_time=when,
    )
    try:
        async with session.begin_nested():
            session.add(run)
            session.add(
                FlowRunState(
                    tenant_id=tenant_id,
                    flow_run_id=run.id,
                    state=run.state,
                    message=run.state_message,
                    timestamp=time.time(),
                )
            )
    except IntegrityError:
        # Another writer (a second scheduler replica) made it first: theirs is the run.
        existing = await _by_idempotency_key(session, flow.id, idempotency_key or "")
        if existing is None:
            raise
        return existing, False
    return run, True


async def _by_idempotency_key(session: AsyncSession, flow_id: str, key: str) -> FlowRun | None:
    return (
        await session.execute(
            select(FlowRun).where(FlowRun.flow_id == flow_id, FlowRun.idempotency_key == key)
        )
    ).scalar_one_or_none()


async def get_flow_run(session: AsyncSession, tenant_id: str, run_id: str) -> FlowRun:
    run = (
        await session.execute(select(FlowRun).where(FlowRun.id == run_id, FlowRun.tenant_id == tenant_id))
    ).scalar_one_or_none()
    if run is None:
        raise NotFound(f"no flow run {run_id!r} in this tenant")
    return run


@dataclass
class StateResult:
    id: str
    ok: bool
    version: int
    state: str
    error: str | None = None


@dataclass
class FlowRunStateUpdate:
    flow_run_id: str
    version: int
    state: str
    message: str = ""
    agent_id: str | None = None


async def set_flow_run_state(
    session: AsyncSession, tenant_id: str, update_: FlowRunStateUpdate
) -> StateResult:
    new = _state(update_.state)
    run = await get_flow_run(session, tenant_id, update_.flow_run_id)
    if (
        run.version == update_.version + 1
        and run.state == new.value
        and update_.agent_id is not None
        and run.agent_id == update_.agent_id
    ):
        # The same agent sending the same change again (its first answer was lost): already applied.
        # Anyone else at that version lost the race and is told so below.
        return StateResult(run.id, True, run.version, run.state)
    if run.version != update_.version:
        return StateResult(
            run.id,
            False,
            run.version,
            run.state,
            f"stale version {update_.version}: the run is at version {run.version} ({run.state})",
        )
    old = StateType(run.state)
    if not can_transition(old, new):
        return StateResult(
            run.id, False, run.version, run.state, f"a flow run cannot go from {old.value} to {new.value}"
        )
    now = utcnow()
    values: dict[str, Any] = {
        "state": new.value,
        "state_message": update_.message,
        "version": run.version + 1,
        "updated": now,
    }
    if new is S.SUBMITTED:
        values["agent_id"] = update_.agent_id
        values["heartbeat"] = now
    if new is S.RUNNING and run.start_time is None:
        values["start_time"] = now
    if new in FINISHED_TYPES:
        values["end_time"] = now
    if new is S.SCHEDULED:
        values["agent_id"] = None
    result = await session.execute(
        update(FlowRun).where(FlowRun.id == run.id, FlowRun.version == update_.version).values(**values)
    )
    if result.rowcount != 1:  # another writer changed it between our read and our write
        await session.refresh(run)
        return StateResult(
            run.id, False, run.version, run.state,
            f"stale version {update_.version}: the run is at version {run.version} ({run.state})",
        )  # fmt: skip
    session.add(
        FlowRunState(
            tenant_id=tenant_id,
            flow_run_id=run.id,
            state=new.value,
            message=update_.message,
            timestamp=time.time(),
        )
    )
    await session.refresh(run)
    return StateResult(run.id, True, run.version, run.state)


async def set_flow_run_states(
    session: AsyncSession, tenant_id: str, updates: list[FlowRunStateUpdate]
) -> list[StateResult]:
    if len(updates) > MAX_BATCH:
        raise RequestError(f"at most {MAX_BATCH} state updates per call, got {len(updates)}")
    return [await set_flow_run_state(session, tenant_id, u) for u in updates]


@dataclass
class TaskRunStateUpdate:
    task_run_id: str
    flow_run_id: str
    task_slug: str
    version: int
    state: str
    message: str = ""
    attempt: int = 0
    timestamp: float = field(default_factory=time.time)


async def set_task_run_states(
    session: AsyncSession, tenant_id: str, updates: list[TaskRunStateUpdate]
) -> list[StateResult]:
    """Apply task-run states in order. A re-delivered update (same state and time at the
    version just passed) is acknowledged, not applied twice. Rows are read in one query and
    written with bulk statements: a batch of 1,000 states is a handful of round trips."""
    if len(updates) > MAX_BATCH:
        raise RequestError(f"at most {MAX_BATCH} state updates per call, got {len(updates)}")
    if not updates:
        return []
    run_ids = {u.flow_run_id for u in updates}
    owned = set(
        (
            await session.execute(
                select(FlowRun.id).where(FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_ids))
            )
        ).scalars()
    )
    rows: dict[str, dict[str, Any]] = {}
    for r in (
        await session.execute(
            select(TaskRun.__table__).where(
                TaskRun.id.in_({u.task_run_id for u in updates}), TaskRun.tenant_id == tenant_id
            )
        )
    ).mappings():
        rows[r["id"]] = dict(r)
    inserted: dict[str, dict[str, Any]] = {}
    changed: set[str] = set()
    history: list[dict[str, Any]] = []
    results = []
    for u in updates:
        if u.flow_run_id not in owned:
            results.append(
                StateResult(u.task_run_id, False, 0, "", f"no flow run {u.flow_run_id!r} in this tenant")
            )
            continue
        new = _state(u.state)
        row = rows.get(u.task_run_id)
        if row is None:
            if u.version != 0:
                results.append(
                    StateResult(
                        u.task_run_id,
                        False,
                        0,
                        "",
                        f"stale version {u.version}: task run {u.task_run_id!r} does not exist yet (version 0)",
                    )
                )
                continue
            if not can_transition(S.PENDING, new):
                results.append(
                    StateResult(u.task_run_id, False, 0, "", f"a task run cannot start in {new.value}")
                )
                continue
            row = {
                "id": u.task_run_id, "tenant_id": tenant_id, "flow_run_id": u.flow_run_id, "task_slug": u.task_slug,
                "state": new.value, "state_message": u.message, "attempt": u.attempt, "version": 1,
                "last_timestamp": u.timestamp, "start_time": None, "end_time": None, "created": utcnow(),
            }  # fmt: skip
            rows[row["id"]] = inserted[row["id"]] = row
        else:
            if row["flow_run_id"] != u.flow_run_id:
                results.append(
                    StateResult(
                        row["id"], False, row["version"], row["state"], "task run belongs to another flow run"
                    )
                )
                continue
            if (
                u.version == row["version"] - 1
                and row["state"] == new.value
                and row["last_timestamp"] == u.timestamp
            ):
                results.append(StateResult(row["id"], True, row["version"], row["state"]))  # re-delivery
                continue
            if u.version != row["version"]:
                results.append(
                    StateResult(
                        row["id"],
                        False,
                        row["version"],
                        row["state"],
                        f"stale version {u.version}: the task run is at version {row['version']} ({row['state']})",
                    )
                )
                continue
            old = StateType(row["state"])
            if not can_transition(old, new):
                results.append(
                    StateResult(
                        row["id"],
                        False,
                        row["version"],
                        row["state"],
                        f"a task run cannot go from {old.value} to {new.value}",
                    )
                )
                continue
            row.update(
                state=new.value,
                state_message=u.message,
                attempt=u.attempt,
                version=row["version"] + 1,
                last_timestamp=u.timestamp,
            )
            if row["id"] not in inserted:
                changed.add(row["id"])
        _stamp_times(row, new, u.timestamp)
        history.append(
            {"tenant_id": tenant_id, "flow_run_id": u.flow_run_id, "task_run_id": row["id"], "task_slug": row["task_slug"],
             "state": new.value, "message": u.message, "attempt": u.attempt, "timestamp": u.timestamp}
        )  # fmt: skip
        results.append(StateResult(row["id"], True, row["version"], row["state"]))
    if inserted:
        await session.execute(insert(TaskRun.__table__), list(inserted.values()))
    for task_run_id in changed:
        # Guarded by the version read above: a concurrent writer makes this a no-op, not a lost update.
        row = rows[task_run_id]
        await session.execute(
            update(TaskRun.__table__)
            .where(TaskRun.id == task_run_id, TaskRun.version < row["version"])
            .values(
                {
                    k: row[k]
                    for k in (
                        "state",
                        "state_message",
                        "attempt",
                        "version",
                        "last_timestamp",
                        "start_time",
                        "end_time",
                    )
                }
            )
        )
    if history:
        await session.execute(insert(TaskRunState.__table__), history)
    return results


def _stamp_times(row: dict[str, Any], state: StateType, timestamp: float) -> None:
    when = datetime.fromtimestamp(timestamp, UTC)
    if state is S.RUNNING and row["start_time"] is None:
        row["start_time"] = when
    if state in FINISHED_TYPES:
        row["end_time"] = when


# -- queue, cancellation, heartbeats ------------------------------------------------------


async def runs_in_queue(
    session: AsyncSession, tenant_id: str, labels: list[str], *, limit: int = 10, now: datetime | None = None
) -> list[FlowRun]:
    """Scheduled runs that are due and whose labels the agent has (run labels ⊆ agent labels)."""
    now = now or utcnow()
    have = set(labels)
    candidates = (
        await session.execute(
            select(FlowRun)
            .where(
                FlowRun.tenant_id == tenant_id,
                FlowRun.state == S.SCHEDULED.value,
                FlowRun.scheduled_start_time <= now,
            )
            .order_by(FlowRun.scheduled_start_time)
            .limit(max(limit * 10, 100))
        )
    ).scalars()
    return [run for run in candidates if set(run.labels) <= have][:limit]


async def cancel_flow_run(session: AsyncSession, tenant_id: str, run_id: str) -> FlowRun:
    """Not started: Cancelled now. Claimed or running: Cancelling, and its agent stops it."""
    run = await get_flow_run(session, tenant_id, run_id)
    current = StateType(run.state)
    if current in FINISHED_TYPES:
        raise Conflict(f"flow run {run_id!r} already finished ({run.state})")
    if current is S.CANCELLING:
        return run
    target = S.CANCELLED if current in (S.SCHEDULED, S.PENDING) else S.CANCELLING
    result = await set_flow_run_state(
        session, tenant_id, FlowRunStateUpdate(run.id, run.version, target.value, "cancelled by a user")
    )
    if not result.ok:
        raise Conflict(f"could not cancel flow run {run_id!r}: {result.error}; try again")
    return await get_flow_run(session, tenant_id, run_id)


async def heartbeat(
    session: AsyncSession, tenant_id: str, run_ids: list[str], agent_id: str | None
) -> list[FlowRun]:
    """Mark runs alive; returns them so the agent sees cancellations."""
    if agent_id is not None:
        await session.execute(
            update(Agent).where(Agent.tenant_id == tenant_id, Agent.id == agent_id).values(last_seen=utcnow())
        )
    if not run_ids:
        return []
    await session.execute(
        update(FlowRun)
        .where(FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_ids))
        .values(heartbeat=utcnow())
    )
    return list(
        (
            await session.execute(
                select(FlowRun).where(FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_ids))
            )
        ).scalars()
    )


async def register_agent(session: AsyncSession, tenant_id: str, name: str, labels: list[str]) -> Agent:
    agent = Agent(id=str(uuid.uuid4()), tenant_id=tenant_id, name=name or "agent", labels=sorted(set(labels)))
    session.add(agent)
    await session.flush()
    return agent


# -- reading --------------------------------------------------------------------------------


@dataclass
class RunFilter:
    flow_id: str | None = None
    flow_name: str | None = None
    states: list[str] | None = None
    scheduled_after: datetime | None = None
    scheduled_before: datetime | None = None


async def list_flow_runs(
    session: AsyncSession, tenant_id: str, filters: RunFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[FlowRun], int]:
    query = select(FlowRun).where(FlowRun.tenant_id == tenant_id)
    if filters.flow_name is not None:
        query = query.join(Flow, Flow.id == FlowRun.flow_id).where(Flow.name == filters.flow_name)
    if filters.flow_id is not None:
        query = query.where(FlowRun.flow_id == filters.flow_id)
    if filters.states:
        query = query.where(FlowRun.state.in_([_state(s).value for s in filters.states]))
    if filters.scheduled_after is not None:
        query = query.where(FlowRun.scheduled_start_time >= filters.scheduled_after)
    if filters.scheduled_before is not None:
        query = query.where(FlowRun.scheduled_start_time < filters.scheduled_before)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await session.execute(
            query.order_by(FlowRun.scheduled_start_time.desc(), FlowRun.id).limit(limit).offset(offset)
        )
    ).scalars()
    return list(rows), total


async def task_runs(session: AsyncSession, tenant_id: str, run_id: str) -> list[TaskRun]:
    return list(
        (
            await session.execute(
                select(TaskRun)
                .where(TaskRun.tenant_id == tenant_id, TaskRun.flow_run_id == run_id)
                .order_by(TaskRun.created)
            )
        ).scalars()
    )


async def flow_run_states(session: AsyncSession, tenant_id: str, run_id: str) -> list[FlowRunState]:
    return list(
        (
            await session.execute(
                select(FlowRunState)
                .where(FlowRunState.tenant_id == tenant_id, FlowRunState.flow_run_id == run_id)
                .order_by(FlowRunState.id)
            )
        ).scalars()
    )


async def task_run_states(session: AsyncSession, tenant_id: str, task_run_id: str) -> list[TaskRunState]:
    return list(
        (
            await session.execute(
                select(TaskRunState)
                .where(TaskRunState.tenant_id == tenant_id, TaskRunState.task_run_id == task_run_id)
                .order_by(TaskRunState.id)
            )
        ).scalars()
    )
