"""Server hooks: which run states notify whom, and the deliveries they make.

A hook names a flow (or every flow of the tenant), a scope (flow runs or task runs),
states (``Failed``, ``TimedOut``, ...; ``Late``: a run still not started ``late_minutes``
after its scheduled time) and a target (a webhook URL, or email addresses).

Nothing here runs in a state write. ``find_events`` reads the tenant's run events after
the hook cursor (``run_events`` positions follow commit order, so nothing committed is
skipped) and records one ``hook_deliveries`` row per (hook, event): the unique
``(hook_id, event_key)`` makes a hook fire once per state change, even with two server
replicas reading the same events. ``hookloop.py`` delivers the rows.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from nbflow.core.states import StateType
from nbflow.server import limits
from nbflow.server.errors import NotFound, RequestError
from nbflow.server.models import Flow, FlowRun, RunEvent, Tenant, utcnow
from nbflow.server.services.flows import get_flow
from nbflow.server.teammodels import Hook, HookCursor, HookDelivery

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

KINDS = ("webhook", "email")
SCOPES = ("flow_run", "task_run")
LATE = "Late"
_STATES = {s.value.lower(): s.value for s in StateType} | {LATE.lower(): LATE}
_NOT_STARTED = (StateType.SCHEDULED.value, StateType.PENDING.value)
BATCH = 1000
MAX_LATE_MINUTES = 60 * 24 * 366


def _states(values: list[str], scope: str, late_minutes: int | None) -> list[str]:
    chosen = []
    for value in values:
        state = _STATES.get(value.strip().lower())
        if state is None:
            raise RequestError(f"unknown state {value!r}; use one of: {', '.join(_STATES.values())}")
        chosen.append(state)
    if not chosen:
        raise RequestError("a hook needs at least one state, e.g. Failed")
    if LATE in chosen:
        if scope != "flow_run":
            raise RequestError("Late is a state of flow runs: a task-run hook cannot use it")
        if not late_minutes or not 1 <= late_minutes <= MAX_LATE_MINUTES:
            raise RequestError(
                f"a Late hook needs late_minutes from 1 to {MAX_LATE_MINUTES}: how late a run may be"
            )
    return sorted(set(chosen))


def _target(kind: str, target: str, smtp_host: str | None) -> str:
    target = limits.name(target, "the hook's target", longest=limits.MAX_LOCATION)
    if kind == "webhook":
        if not target.startswith(("http://", "https://")):
            raise RequestError(f"a webhook target is an http(s) URL, got {target!r}")
        return target
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    if not addresses or not all("@" in a and " " not in a for a in addresses):
        raise RequestError(f"an email target is one or more addresses (a@b.org, c@d.org), got {target!r}")
    if not smtp_host:
        raise RequestError("this server sends no email: start it with --smtp-host (and --smtp-from)")
    return ", ".join(addresses)


async def add_hook(
    session: AsyncSession,
    tenant_id: str,
    *,
    name: str,
    kind: str,
    target: str,
    states: list[str],
    scope: str = "flow_run",
    flow_name: str | None = None,
    late_minutes: int | None = None,
    smtp_host: str | None = None,
) -> tuple[Hook, Flow | None]:
    """A new hook; it fires for state changes committed from now on."""
    if kind not in KINDS:
        raise RequestError(f"unknown hook kind {kind!r}; use {' or '.join(KINDS)}")
    if scope not in SCOPES:
        raise RequestError(f"unknown hook scope {scope!r}; use {' or '.join(SCOPES)}")
    chosen = _states(states, scope, late_minutes)
    flow = await get_flow(session, tenant_id, name=flow_name) if flow_name else None
    position = (
        await session.execute(select(Tenant.feed_position).where(Tenant.id == tenant_id))
    ).scalar_one()
    hook = Hook(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        flow_id=flow.id if flow else None,
        name=limits.name(name, "the hook's name"),
        kind=kind,
        target=_target(kind, target, smtp_host),
        scope=scope,
        states=chosen,
        late_minutes=late_minutes if LATE in chosen else None,
        since_position=position,
    )
    session.add(hook)
    await session.flush()
    return hook, flow


async def remove_hook(session: AsyncSession, tenant_id: str, hook_id: str) -> None:
    """Remove a hook (by id or name) and its deliveries."""
    hook = await get_hook(session, tenant_id, hook_id)
    await session.execute(delete(Hook).where(Hook.id == hook.id))


async def get_hook(session: AsyncSession, tenant_id: str, hook_id: str) -> Hook:
    """A hook of the tenant by id or name; ``NotFound`` otherwise."""
    query = select(Hook).where(Hook.tenant_id == tenant_id, (Hook.id == hook_id) | (Hook.name == hook_id))
    hooks = list((await session.execute(query)).scalars())
    if len(hooks) != 1:
        what = "several hooks are" if hooks else "no hook is"
        raise NotFound(f"{what} named {hook_id!r} in this tenant; `nbflow hooks list` shows their ids")
    return hooks[0]


async def list_hooks(session: AsyncSession, tenant_id: str) -> list[tuple[Hook, str | None]]:
    """The tenant's hooks with their flow's name (``None``: every flow)."""
    query = (
        select(Hook, Flow.name)
        .outerjoin(Flow, Flow.id == Hook.flow_id)
        .where(Hook.tenant_id == tenant_id)
        .order_by(Hook.created)
    )
    return [(hook, flow_name) for hook, flow_name in (await session.execute(query)).all()]


async def list_deliveries(
    session: AsyncSession, tenant_id: str, *, hook_id: str | None = None, limit: int = 50
) -> list[tuple[HookDelivery, str]]:
    """Recent deliveries (newest first) with their hook's name."""
    query = select(HookDelivery, Hook.name).join(Hook, Hook.id == HookDelivery.hook_id)
    query = query.where(HookDelivery.tenant_id == tenant_id)
    if hook_id is not None:
        query = query.where(HookDelivery.hook_id == (await get_hook(session, tenant_id, hook_id)).id)
    query = query.order_by(HookDelivery.created.desc()).limit(max(1, min(limit, 1000)))
    return [(row, name) for row, name in (await session.execute(query)).all()]


def payload(
    hook: Hook, *, flow_name: str, flow_run_id: str, task: str | None, state: str, message: str
) -> dict[str, Any]:
    """The JSON a hook sends: Slack-compatible ``text`` first, then the fields."""
    what = f"task {task!r} of flow run" if task else "flow run"
    text = f"nbflow: {what} {flow_run_id} of flow {flow_name!r} is {state}"
    if message:
        text += f": {message}"
    return {
        "text": text,
        "hook": hook.name,
        "flow": flow_name,
        "flow_run_id": flow_run_id,
        "task": task,
        "state": state,
        "message": message,
    }


def _insert_ignoring_duplicates(session: AsyncSession, rows: list[dict[str, Any]]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(HookDelivery).values(rows).on_conflict_do_nothing(index_elements=["hook_id", "event_key"])


def _delivery(hook: Hook, event_key: str, body: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": str(uuid.uuid4()), "tenant_id": hook.tenant_id, "hook_id": hook.id, "event_key": event_key,
        "flow_run_id": body["flow_run_id"], "task_slug": body["task"], "state": body["state"], "payload": body,
        "status": "pending", "attempts": 0, "next_attempt": now, "last_error": "", "created": now,
    }  # fmt: skip


async def record(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert deliveries; one already recorded for the same (hook, event) is left alone."""
    for start in range(0, len(rows), 200):
        await session.execute(_insert_ignoring_duplicates(session, rows[start : start + 200]))


async def find_events(session: AsyncSession, tenant_id: str, hooks: list[Hook]) -> int:
    """Record deliveries for the tenant's state events after its cursor; the events read."""
    cursor = await session.get(HookCursor, tenant_id)
    if cursor is None:
        cursor = HookCursor(tenant_id=tenant_id, position=min(h.since_position for h in hooks))
        session.add(cursor)
    watched = {s for h in hooks for s in h.states if s != LATE}
    query = (
        select(
            RunEvent.position,
            RunEvent.flow_run_id,
            RunEvent.task,
            RunEvent.state,
            RunEvent.message,
            RunEvent.transition_id,
            FlowRun.flow_id,
            Flow.name,
        )  # fmt: skip
        .join(FlowRun, FlowRun.id == RunEvent.flow_run_id)
        .join(Flow, Flow.id == FlowRun.flow_id)
        .where(RunEvent.tenant_id == tenant_id, RunEvent.position > cursor.position, RunEvent.kind == "state")
        .order_by(RunEvent.position)
        .limit(BATCH)
    )
    events = (await session.execute(query)).all()
    rows = []
    for position, run_id, task, state, message, transition_id, flow_id, flow_name in events:
        if state not in watched:
            continue
        for hook in hooks:
            scope = "task_run" if task else "flow_run"
            if (
                position > hook.since_position
                and hook.scope == scope
                and state in hook.states
                and hook.flow_id in (None, flow_id)
            ):
                body = payload(
                    hook, flow_name=flow_name, flow_run_id=run_id, task=task, state=state, message=message
                )
                rows.append(_delivery(hook, f"state:{transition_id}", body))
    await record(session, rows)
    if events:
        cursor.position = events[-1][0]
    return len(events)


async def find_late_runs(session: AsyncSession, hooks: list[Hook]) -> None:
    """Record a ``Late`` delivery for each run still not started ``late_minutes`` after its time."""
    now = utcnow()
    rows = []
    for hook in hooks:
        if LATE not in hook.states or not hook.late_minutes:
            continue
        query = (
            select(FlowRun.id, FlowRun.scheduled_start_time, Flow.name)
            .join(Flow, Flow.id == FlowRun.flow_id)
            .where(
                FlowRun.tenant_id == hook.tenant_id,
                FlowRun.state.in_(_NOT_STARTED),
                FlowRun.scheduled_start_time < now - timedelta(minutes=hook.late_minutes),
                FlowRun.created >= hook.created,
            )
            .limit(BATCH)
        )
        if hook.flow_id is not None:
            query = query.where(FlowRun.flow_id == hook.flow_id)
        for run_id, when, flow_name in (await session.execute(query)).all():
            late = int((now - when).total_seconds() // 60)
            message = (
                f"not started {late} minutes after its scheduled time {when.isoformat(timespec='seconds')}"
            )
            body = payload(
                hook, flow_name=flow_name, flow_run_id=run_id, task=None, state=LATE, message=message
            )
            rows.append(_delivery(hook, f"late:{run_id}", body))
    await record(session, rows)


async def test_delivery(session: AsyncSession, hook: Hook) -> str:
    """Record a delivery of a test message for ``hook`` (``nbflow hooks test``); its id."""
    body = {
        **payload(hook, flow_name="(test)", flow_run_id="-", task=None, state="Test", message=""),
        "text": f"nbflow: a test of hook {hook.name!r} ({hook.kind} to {hook.target})",
    }
    row = _delivery(hook, f"test:{uuid.uuid4()}", body)
    await record(session, [row])
    return row["id"]


async def tenants_with_hooks(session: AsyncSession) -> dict[str, list[Hook]]:
    """Every hook, by tenant (the loop's work list)."""
    hooks = (await session.execute(select(Hook).order_by(Hook.created))).scalars()
    by_tenant: dict[str, list[Hook]] = {}
    for hook in hooks:
        by_tenant.setdefault(hook.tenant_id, []).append(hook)
    return by_tenant
