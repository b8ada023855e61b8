"""Flow runs: creation, the work queue, cancellation, heartbeats, and reading runs back.

State changes themselves are written by ``services/transitions.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from nbflow.core.mapping import count_states, parent_of
from nbflow.core.states import FAILED_TYPES, FINISHED_TYPES, StateType, state_types
from nbflow.core.tasks import parameter_values
from nbflow.server import limits
from nbflow.server.db import checked_after
from nbflow.server.errors import Conflict, NotFound, RequestError
from nbflow.server.models import Agent, Flow, FlowRun, FlowRunLabel, FlowVersion, RunEvent, TaskRun, utcnow
from nbflow.server.services import concurrency, journal
from nbflow.server.services.flows import latest_version
from nbflow.server.services.transitions import server_change, set_flow_run_state

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from nbflow.core.record import StateRecord

S = StateType


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
    context: dict[str, Any] | None = None,
) -> tuple[FlowRun, bool]:
    """(run, created). The same idempotency key for the same flow returns the same run."""
    idempotency_key = checked_idempotency_key(idempotency_key)
    if idempotency_key is not None:
        existing = await by_idempotency_key(session, flow.id, idempotency_key)
        if existing is not None:
            return existing, False
    version = version or await latest_version(session, flow.id)
    if version is None:
        raise NotFound(f"flow {flow.name!r} has no registered version")
    run = new_flow_run(
        tenant_id, flow, version, parameters=parameters, idempotency_key=idempotency_key,
        scheduled_start_time=scheduled_start_time, labels=labels, context=context,
    )  # fmt: skip
    if idempotency_key is None:  # nothing can collide: no savepoint (two round trips) needed
        session.add(run)
    else:
        try:
            async with session.begin_nested():
                session.add(run)
        except IntegrityError:
            # Another writer (a second scheduler replica) made it first: theirs is the run.
            existing = await by_idempotency_key(session, flow.id, idempotency_key)
            if existing is None:
                raise
            return existing, False
    # Only now, outside the savepoint: a rolled-back savepoint must not leave a journal entry.
    record_new_runs(session, tenant_id, [run])
    return run, True


def checked_idempotency_key(key: str | None) -> str | None:
    """An idempotency key as it is stored (``RequestError`` for a blank or over-long one)."""
    return None if key is None else limits.name(key, "the idempotency key")


def new_flow_run(
    tenant_id: str,
    flow: Flow,
    version: FlowVersion,
    *,
    parameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    scheduled_start_time: datetime | None = None,
    labels: list[str] | None = None,
    context: dict[str, Any] | None = None,
) -> FlowRun:
    """A new Scheduled run of ``version``, its parameters and labels checked; not yet added."""
    values = parameter_values(version.parameters, parameters, require_json=True)
    limits.json_value(values, "the run's parameters", largest=limits.MAX_PARAMETERS_BYTES)
    when = scheduled_start_time or utcnow()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return FlowRun(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        flow_id=flow.id,
        flow_version_id=version.id,
        parameters=values,
        context=limits.context_values(context) or None,  # nbflow.context.KEY in its tasks
        labels=limits.labels([*version.labels, *(labels or [])]),
        idempotency_key=idempotency_key,
        state=S.SCHEDULED.value,
        state_message=f"scheduled for {when.isoformat(timespec='seconds')}",
        version=1,
        execution=0,  # set here, not by the column default: the journal entry reads it
        resubmits=0,
        scheduled_start_time=when,
    )


def record_new_runs(session: AsyncSession, tenant_id: str, runs: list[FlowRun]) -> None:
    """The label rows and the journal's Scheduled entries of runs just added to ``session``."""
    session.add_all(FlowRunLabel(flow_run_id=run.id, label=label) for run in runs for label in run.labels)
    journal.append(session, tenant_id, [scheduled_entry(run) for run in runs])


def scheduled_entry(run: FlowRun) -> StateRecord:
    """The journal's entry of a new run: Scheduled, after nothing."""
    change = server_change(run, S.SCHEDULED, run.state_message)
    change.previous = None
    return change


async def by_idempotency_key(session: AsyncSession, flow_id: str, key: str) -> FlowRun | None:
    """The run of the flow an earlier call made with idempotency key ``key``, if any."""
    return (
        await session.execute(
            select(FlowRun).where(FlowRun.flow_id == flow_id, FlowRun.idempotency_key == key)
        )
    ).scalar_one_or_none()


async def get_flow_run(session: AsyncSession, tenant_id: str, run_id: str) -> FlowRun:
    """A run of the tenant by id; ``NotFound`` otherwise."""
    run = (
        await session.execute(
            select(FlowRun).where(FlowRun.id == run_id, checked_after(FlowRun.tenant_id) == tenant_id)
        )
    ).scalar_one_or_none()
    if run is None:
        raise NotFound(f"no flow run {run_id!r} in this tenant")
    return run


async def restart_flow_run(session: AsyncSession, tenant_id: str, run_id: str) -> FlowRun:
    """A new run of a failed (or cancelled) run's flow version, with its parameters, that
    names it in ``restart_of``: its flow process reuses the stored results of the tasks that
    succeeded and runs only the failed ones and their downstream."""
    old = await get_flow_run(session, tenant_id, run_id)
    if StateType(old.state) not in FAILED_TYPES | {S.CANCELLED}:
        raise Conflict(
            f"flow run {run_id!r} is {old.state}: only a failed or cancelled run restarts from "
            "failure; create a new run to run it again"
        )
    flow = await session.get(Flow, old.flow_id)
    version = await session.get(FlowVersion, old.flow_version_id)
    if flow is None or version is None:
        raise NotFound(f"the flow version of run {run_id!r} is gone; register the flow and create a new run")
    extra = [label for label in old.labels if label not in version.labels]
    run, _ = await create_flow_run(
        session, tenant_id, flow, parameters=old.parameters, labels=extra, version=version
    )
    run.restart_of = old.id
    run.state_message = f"restart of {old.id} from its failed tasks; {run.state_message}"
    return run


# -- queue, cancellation, heartbeats ------------------------------------------------------


async def runs_in_queue(
    session: AsyncSession, tenant_id: str, labels: list[str], *, limit: int = 10, now: datetime | None = None
) -> list[FlowRun]:
    """Scheduled runs that are due and whose labels the agent has (run labels ⊆ agent labels),
    oldest first. The label test is in the query: runs no agent can take never crowd out
    the ones this agent can."""
    now = now or utcnow()
    needs_more = select(FlowRunLabel.flow_run_id).where(
        FlowRunLabel.flow_run_id == FlowRun.id, FlowRunLabel.label.not_in(sorted(set(labels)))
    )
    query = (
        select(FlowRun)
        .where(
            FlowRun.tenant_id == tenant_id,
            FlowRun.state == S.SCHEDULED.value,
            FlowRun.scheduled_start_time <= now,
            ~needs_more.exists(),
        )
        .order_by(FlowRun.scheduled_start_time, FlowRun.id)
        .limit(limit)
    )
    full = await concurrency.full_labels(session, tenant_id)  # labels at their limit of active runs
    if full:
        blocked = select(FlowRunLabel.flow_run_id).where(
            FlowRunLabel.flow_run_id == FlowRun.id, FlowRunLabel.label.in_(full)
        )
        query = query.where(~blocked.exists())
    return list((await session.execute(query)).scalars())


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
        session, tenant_id, server_change(run, target, "cancelled by a user"), version=run.version
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
    if len(run_ids) > MAX_HEARTBEAT_RUNS:
        raise RequestError(
            f"at most {MAX_HEARTBEAT_RUNS} runs in one heartbeat, got {len(run_ids)}; send them in parts"
        )
    now = utcnow()
    alive = []
    # One statement per run, found by its primary key: an IN list's generic plan made while
    # flow_runs was young reads the table whole, and keeps doing so as it grows
    # (tests/integration/test_young_plans.py). An agent keeps few runs alive at once.
    for run_id in sorted(set(run_ids)):
        found = await session.execute(_HEARTBEAT, {"run_id": run_id, "tenant": tenant_id, "now": now})
        alive.extend(found.scalars())
    return alive


MAX_HEARTBEAT_RUNS = 1000
_HEARTBEAT = (
    update(FlowRun)
    .where(FlowRun.id == bindparam("run_id"), checked_after(FlowRun.tenant_id) == bindparam("tenant"))
    .values(heartbeat=bindparam("now"), updated=bindparam("now"))
    .returning(FlowRun)
    .execution_options(synchronize_session=False)
)


async def register_agent(session: AsyncSession, tenant_id: str, name: str, labels: list[str]) -> Agent:
    """Remember an agent (name and labels); returns the row."""
    agent = Agent(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        name=limits.name(name or "agent", "the agent's name"),
        labels=limits.labels(labels, "the agent's labels"),
    )
    session.add(agent)
    await session.flush()
    return agent


# -- reading --------------------------------------------------------------------------------


@dataclass
class RunFilter:
    """What ``list_flow_runs`` filters on."""

    flow_id: str | None = None
    flow_name: str | None = None
    states: list[str] | None = None
    scheduled_after: datetime | None = None
    scheduled_before: datetime | None = None


@dataclass(frozen=True)
class RunCursor:
    """Where a page of runs ends: the last run's scheduled time and id (runs are listed newest
    first, ties by id). The next page starts strictly after it, however many runs came since."""

    scheduled_start_time: datetime
    run_id: str

    def encode(self) -> str:
        """The opaque text a client passes back as ``after``."""
        return f"{self.scheduled_start_time.isoformat()}|{self.run_id}"

    @classmethod
    def decode(cls, text: str) -> RunCursor:
        """A cursor from ``encode``'s text, or a ``RequestError`` saying what to pass."""
        when, sep, run_id = text.partition("|")
        try:
            moment = datetime.fromisoformat(when)
        except ValueError:
            moment = None
        if not sep or not run_id or moment is None or moment.tzinfo is None:
            raise RequestError(f"after: {text[:80]!r} is not a cursor; pass a page's nextCursor as it came")
        return cls(moment, run_id)


async def list_flow_runs(
    session: AsyncSession,
    tenant_id: str,
    filters: RunFilter,
    *,
    limit: int = 50,
    offset: int = 0,
    after: RunCursor | None = None,
) -> tuple[list[FlowRun], int]:
    """(runs, total): newest first (ties by id), filtered; a page by ``offset`` or, cheaper at
    any depth, by key: the runs after ``after`` (the total counts every run that matches)."""
    # A flow's runs are found by the flow's index, the tenant checked on them: with the tenant
    # as a key beside the flow, a plan made while flow_runs was young walked the tenant's runs
    # in time order for one flow's (600 ms at 60,000 runs, benchmarks/young_plans.py).
    by_flow = filters.flow_name is not None or filters.flow_id is not None
    tenant = checked_after(FlowRun.tenant_id) if by_flow else FlowRun.tenant_id
    query = select(FlowRun).where(tenant == tenant_id)
    if filters.flow_name is not None:
        query = query.join(Flow, Flow.id == FlowRun.flow_id).where(Flow.name == filters.flow_name)
    if filters.flow_id is not None:
        query = query.where(FlowRun.flow_id == filters.flow_id)
    if filters.states:
        query = query.where(FlowRun.state.in_([t.value for t in state_types(filters.states)]))
    if filters.scheduled_after is not None:
        query = query.where(FlowRun.scheduled_start_time >= filters.scheduled_after)
    if filters.scheduled_before is not None:
        query = query.where(FlowRun.scheduled_start_time < filters.scheduled_before)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    if after is not None:
        # One row comparison: the (tenant, time, id) index walks straight to the page.
        query = query.where(
            tuple_(FlowRun.scheduled_start_time, FlowRun.id)
            < tuple_(after.scheduled_start_time, after.run_id)
        )
    newest_first = query.order_by(FlowRun.scheduled_start_time.desc(), FlowRun.id.desc())
    rows = (await session.execute(newest_first.limit(limit).offset(offset))).scalars()
    return list(rows), total


async def task_runs(session: AsyncSession, tenant_id: str, run_id: str) -> list[TaskRun]:
    """The task runs of a flow run, in the order they were created."""
    return list(
        (
            await session.execute(
                select(TaskRun)
                .where(TaskRun.flow_run_id == run_id, checked_after(TaskRun.tenant_id) == tenant_id)
                .order_by(TaskRun.created)
            )
        ).scalars()
    )


def map_index(slug: str) -> int | None:
    """The index of a mapped task's child (``clean[3]`` -> 3); ``None`` for any other task."""
    child = parent_of(slug)
    return child[1] if child is not None else None


def child_counts(rows: list[TaskRun]) -> dict[str, dict[str, int]]:
    """Each mapped task's children by state (the latest task run of each child counts)."""
    latest: dict[str, tuple[str, str]] = {}  # child slug -> (parent slug, state), later rows win
    for row in rows:
        child = parent_of(row.task_slug)
        if child is not None:
            latest[row.task_slug] = (child[0], row.state)
    by_parent: dict[str, list[str]] = {}
    for parent, state in latest.values():
        by_parent.setdefault(parent, []).append(state)
    return {parent: count_states(states) for parent, states in by_parent.items()}


async def state_history(
    session: AsyncSession, tenant_id: str, *, flow_run_id: str | None = None, task_run_id: str | None = None
) -> list[RunEvent]:
    """The state changes of a flow run (its own, not its tasks') or of one task run, in order."""
    query = select(RunEvent).where(checked_after(RunEvent.tenant_id) == tenant_id, RunEvent.kind == "state")
    if task_run_id is not None:
        query = query.where(RunEvent.task_run_id == task_run_id)
    else:
        query = query.where(RunEvent.flow_run_id == flow_run_id, RunEvent.task_run_id.is_(None))
    return list((await session.execute(query.order_by(RunEvent.position))).scalars())
