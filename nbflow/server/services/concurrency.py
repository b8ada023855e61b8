"""Concurrency limits: at most N task runs with a tag run at once, across all agents; and
at most N active flow runs with a label (``kind`` label, checked at the claim).

A flow process asks ``acquire`` before a tagged task runs; the slots it gets are leased
to the task run *and* the execution of its flow run. A slot is stale, and is taken back
by the next ``acquire`` of its tag, when that execution no longer runs the run: the run
finished, was claimed again, or its heartbeats stopped for ``heartbeat_timeout`` (a
killed agent). ``acquire`` first bumps each limit row it needs (in tag order): that write
locks the row (PostgreSQL) or the database (SQLite), so two acquirers of one tag count
and insert one after the other and never both take the last slot.

A label limit is checked when an agent claims a run (``claim_refusal``, called by the
claim's transaction after the same row bump, so two claims of one label count one after
the other), and the work queue leaves out runs whose label is full (``full_labels``), so
agents wait on the long-poll instead of claiming in vain. A run whose agent died holds
its place until recovery ends it after the heartbeat timeout.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, or_, select, update

from nbflow.core.states import ACTIVE_TYPES
from nbflow.server import limits
from nbflow.server.errors import Conflict, NotFound, RequestError
from nbflow.server.models import FlowRun, FlowRunLabel, utcnow
from nbflow.server.teammodels import ConcurrencyLimit, ConcurrencySlot

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

_ACTIVE = tuple(s.value for s in ACTIVE_TYPES)
MAX_LIMIT = 100_000
TAG, LABEL = "tag", "label"
KINDS = (TAG, LABEL)


async def set_limit(
    session: AsyncSession, tenant_id: str, tag: str, limit: int, *, kind: str = TAG
) -> ConcurrencyLimit:
    """Create or change the limit of ``tag`` (``kind`` label: of flow runs with that label)."""
    tag = limits.name(tag, f"the {kind}")
    if kind not in KINDS:
        raise RequestError(f"a limit is on a tag (task runs) or a label (flow runs), not {kind!r}")
    if not 0 <= limit <= MAX_LIMIT:
        raise RequestError(f"a limit is a whole number from 0 to {MAX_LIMIT}, got {limit}")
    row = await _get(session, tenant_id, tag, kind)
    if row is None:
        row = ConcurrencyLimit(
            id=str(uuid.uuid4()), tenant_id=tenant_id, kind=kind, tag=tag, limit=limit, turns=0
        )
        session.add(row)
    else:
        row.limit = limit
    await session.flush()
    return row


async def delete_limit(session: AsyncSession, tenant_id: str, tag: str, *, kind: str = TAG) -> None:
    """Remove the limit of ``tag`` (its slots go with it)."""
    row = await _get(session, tenant_id, tag, kind)
    if row is None:
        raise NotFound(f"no concurrency limit on {kind} {tag!r}; `nbflow limits list` shows them")
    await session.delete(row)


async def list_limits(
    session: AsyncSession, tenant_id: str, *, heartbeat_timeout: float
) -> list[tuple[ConcurrencyLimit, list[ConcurrencySlot], int]]:
    """Every limit with the slots held now (stale ones left out) and how many are in use
    (for a label: its active flow runs)."""
    rows = list(
        (
            await session.execute(
                select(ConcurrencyLimit)
                .where(ConcurrencyLimit.tenant_id == tenant_id)
                .order_by(ConcurrencyLimit.kind.desc(), ConcurrencyLimit.tag)
            )
        ).scalars()
    )
    held: dict[str, list[ConcurrencySlot]] = {row.id: [] for row in rows}
    if rows:
        query = (
            select(ConcurrencySlot)
            .join(FlowRun, FlowRun.id == ConcurrencySlot.flow_run_id)
            .where(ConcurrencySlot.limit_id.in_(held), ~_stale(heartbeat_timeout))
            .order_by(ConcurrencySlot.acquired)
        )
        for slot in (await session.execute(query)).scalars():
            held[slot.limit_id].append(slot)
    labels = [row.tag for row in rows if row.kind == LABEL]
    active = await _active_with_labels(session, tenant_id, labels) if labels else {}
    return [
        (row, held[row.id], active.get(row.tag, 0) if row.kind == LABEL else len(held[row.id]))
        for row in rows
    ]


def _stale(heartbeat_timeout: float):  # type: ignore[no-untyped-def]
    """SQL: the slot's execution no longer runs its run (the query joins ``flow_runs``)."""
    return or_(
        FlowRun.state.not_in(_ACTIVE),
        FlowRun.execution != ConcurrencySlot.execution,
        FlowRun.heartbeat < utcnow() - timedelta(seconds=heartbeat_timeout),
    )


async def acquire(
    session: AsyncSession,
    tenant_id: str,
    *,
    flow_run_id: str,
    task_run_id: str,
    task_slug: str,
    tags: list[str],
    heartbeat_timeout: float,
) -> tuple[bool, str]:
    """(granted, why not): a slot of every limited tag in ``tags`` for the task run, or none."""
    from nbflow.server.services.runs import get_flow_run  # runs.py imports this module

    run = await get_flow_run(session, tenant_id, flow_run_id)
    if run.state not in _ACTIVE:
        raise Conflict(f"flow run {flow_run_id} is {run.state}: only running runs take slots")
    wanted = limits.labels(tags, "tags")  # clean, unique, sorted, at most MAX_LABELS
    rows = await _lock_limits(session, tenant_id, wanted)
    if not rows:
        return True, ""
    counts, mine = await _in_use(session, rows, task_run_id, heartbeat_timeout)
    full = [row for row in rows if row.id not in mine and counts.get(row.id, 0) >= row.limit]
    if full:
        return False, "; ".join(
            f"tag {row.tag!r} has {counts.get(row.id, 0)} of {row.limit} slots in use" for row in full
        )
    now = utcnow()
    for row in rows:
        if row.id not in mine:
            session.add(
                ConcurrencySlot(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant_id,
                    limit_id=row.id,
                    flow_run_id=flow_run_id,
                    execution=run.execution,
                    task_run_id=task_run_id,
                    task_slug=task_slug,
                    acquired=now,
                )  # fmt: skip
            )
    await session.flush()
    return True, ""


async def _lock_limits(
    session: AsyncSession, tenant_id: str, tags: list[str], kind: str = TAG
) -> list[ConcurrencyLimit]:
    """The limits of ``tags``, each row written first: the lock that serialises their acquirers."""
    if not tags:
        return []
    mine = (ConcurrencyLimit.tenant_id == tenant_id, ConcurrencyLimit.kind == kind)
    for tag in tags:  # one at a time, in tag order: two acquirers never lock in opposite orders
        await session.execute(
            update(ConcurrencyLimit)
            .where(*mine, ConcurrencyLimit.tag == tag)
            .values(turns=ConcurrencyLimit.turns + 1)
        )
    query = select(ConcurrencyLimit).where(*mine, ConcurrencyLimit.tag.in_(tags))
    return list((await session.execute(query)).scalars())


async def _active_with_labels(
    session: AsyncSession, tenant_id: str, labels: list[str], *, besides: str | None = None
) -> dict[str, int]:
    """How many active flow runs carry each of ``labels`` (not counting run ``besides``)."""
    query = (
        select(FlowRunLabel.label, func.count())
        .join(FlowRun, FlowRun.id == FlowRunLabel.flow_run_id)
        .where(FlowRun.tenant_id == tenant_id, FlowRun.state.in_(_ACTIVE), FlowRunLabel.label.in_(labels))
        .group_by(FlowRunLabel.label)
    )
    if besides is not None:
        query = query.where(FlowRun.id != besides)
    return {label: count for label, count in (await session.execute(query)).all()}


async def claim_refusal(session: AsyncSession, tenant_id: str, run: FlowRun) -> str | None:
    """Why an agent may not claim ``run`` now (a label of it has its limit of active runs), or
    ``None``. Called in the claim's transaction; the limit rows are locked first."""
    labels = sorted(set(run.labels or []))
    if not labels:
        return None
    limited = select(ConcurrencyLimit.tag).where(
        ConcurrencyLimit.tenant_id == tenant_id,
        ConcurrencyLimit.kind == LABEL,
        ConcurrencyLimit.tag.in_(labels),
    )
    # Most claims meet no label limit: one read, and no lock taken.
    limited_labels = sorted((await session.execute(limited)).scalars())
    rows = await _lock_limits(session, tenant_id, limited_labels, LABEL) if limited_labels else []
    if not rows:
        return None
    active = await _active_with_labels(session, tenant_id, [r.tag for r in rows], besides=run.id)
    full = [r for r in rows if active.get(r.tag, 0) >= r.limit]
    if not full:
        return None
    return "; ".join(
        f"label {r.tag!r} has {active.get(r.tag, 0)} of {r.limit} flow runs active" for r in full
    )


async def full_labels(session: AsyncSession, tenant_id: str) -> list[str]:
    """The labels whose limit of active flow runs is reached (the queue leaves their runs out)."""
    query = select(ConcurrencyLimit.tag, ConcurrencyLimit.limit).where(
        ConcurrencyLimit.tenant_id == tenant_id, ConcurrencyLimit.kind == LABEL
    )
    label_limits = dict((await session.execute(query)).all())
    if not label_limits:
        return []
    active = await _active_with_labels(session, tenant_id, list(label_limits))
    return sorted(label for label, most in label_limits.items() if active.get(label, 0) >= most)


async def _in_use(
    session: AsyncSession, rows: list[ConcurrencyLimit], task_run_id: str, heartbeat_timeout: float
) -> tuple[dict[str, int], set[str]]:
    """After freeing stale slots: slots in use per limit, and the limits this task run holds."""
    ids = [row.id for row in rows]
    stale = (
        select(ConcurrencySlot.id)
        .join(FlowRun, FlowRun.id == ConcurrencySlot.flow_run_id)
        .where(ConcurrencySlot.limit_id.in_(ids), _stale(heartbeat_timeout))
    )
    await session.execute(delete(ConcurrencySlot).where(ConcurrencySlot.id.in_(stale)))
    counted = await session.execute(
        select(ConcurrencySlot.limit_id, func.count())
        .where(ConcurrencySlot.limit_id.in_(ids))
        .group_by(ConcurrencySlot.limit_id)
    )
    held = await session.execute(
        select(ConcurrencySlot.limit_id).where(
            ConcurrencySlot.limit_id.in_(ids), ConcurrencySlot.task_run_id == task_run_id
        )
    )
    return {limit_id: count for limit_id, count in counted.all()}, set(held.scalars())


async def release(session: AsyncSession, tenant_id: str, *, flow_run_id: str, task_run_id: str) -> int:
    """Give back the task run's slots; how many."""
    done = await session.execute(
        delete(ConcurrencySlot).where(
            ConcurrencySlot.tenant_id == tenant_id,
            ConcurrencySlot.flow_run_id == flow_run_id,
            ConcurrencySlot.task_run_id == task_run_id,
        )
    )
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


async def _get(session: AsyncSession, tenant_id: str, tag: str, kind: str) -> ConcurrencyLimit | None:
    query = select(ConcurrencyLimit).where(
        ConcurrencyLimit.tenant_id == tenant_id, ConcurrencyLimit.kind == kind, ConcurrencyLimit.tag == tag
    )
    return (await session.execute(query)).scalar_one_or_none()
