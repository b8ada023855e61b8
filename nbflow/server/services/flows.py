"""Registering flows (metadata only) and reading them back."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select

from nbflow.core.errors import NbflowError, ScheduleError
from nbflow.core.schedules import Schedule
from nbflow.core.states import StateType
from nbflow.server import limits
from nbflow.server.errors import NotFound, RequestError
from nbflow.server.models import Flow, FlowRun, FlowVersion

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SCHEDULE_KEY_PREFIX = "schedule:"
_STRUCTURE_KEYS = {"name", "tasks", "edges", "parameters", "schedule"}


@dataclass
class FlowSpec:
    """What registration sends: the graph, parameters, schedule, labels and a storage reference."""

    name: str
    structure: dict[str, Any]
    schedule: dict[str, Any] | None
    labels: list[str]
    storage: dict[str, Any]
    max_resubmits: int = 0
    private: bool = False


def validate_spec(spec: FlowSpec) -> Schedule | None:
    """Check a registration; the parsed schedule, or ``RequestError`` naming the problem."""
    spec.name = limits.name(spec.name, "the flow name")
    spec.labels = limits.labels(spec.labels)
    limits.json_value(spec.structure, "the flow's structure", largest=limits.MAX_STRUCTURE_BYTES)
    structure = spec.structure
    if not isinstance(structure, dict) or not isinstance(structure.get("tasks"), list):
        raise RequestError("structure must be a flow's structure(): an object with a list of 'tasks'")
    unknown = set(structure) - _STRUCTURE_KEYS
    if unknown:
        raise RequestError(
            f"structure has unknown fields {sorted(unknown)}; allowed: {sorted(_STRUCTURE_KEYS)}"
        )
    slugs = set()
    for task in structure["tasks"]:
        if not isinstance(task, dict) or not isinstance(task.get("slug"), str):
            raise RequestError("every task in structure.tasks needs a string 'slug'")
        slugs.add(task["slug"])
    for edge in structure.get("edges", []):
        if (
            not isinstance(edge, dict)
            or edge.get("upstream") not in slugs
            or edge.get("downstream") not in slugs
        ):
            raise RequestError(f"edge {edge!r} refers to a task that is not in structure.tasks")
    storage = spec.storage
    if not isinstance(storage, dict) or not {"kind", "location", "sha256"} <= set(storage):
        raise RequestError("storage must give kind, location and sha256 of the flow's code")
    if not isinstance(storage["sha256"], str) or len(storage["sha256"]) != 64:
        raise RequestError("storage.sha256 must be the 64-character hex SHA-256 of the flow's code")
    limits.name(str(storage["kind"]), "storage.kind")
    limits.name(str(storage["location"]), "storage.location", longest=limits.MAX_LOCATION)
    if storage.get("results") is not None:
        limits.name(str(storage["results"]), "storage.results", longest=limits.MAX_LOCATION)
    if spec.max_resubmits < 0:
        raise RequestError("max_resubmits must be 0 or more")
    if spec.schedule is None:
        return None
    try:
        schedule = Schedule.from_dict(spec.schedule)
        if not schedule.next(1):
            raise ScheduleError(f"{schedule.describe()} has no run time after now (its end date has passed)")
    except (NbflowError, KeyError, TypeError, ValueError) as exc:
        raise RequestError(f"invalid schedule: {exc}") from None
    return schedule


def fingerprint(spec: FlowSpec) -> str:
    """Same structure + schedule + labels + code hash = same version."""
    payload = {
        "structure": spec.structure,
        "schedule": spec.schedule,
        "labels": sorted(spec.labels),
        "sha256": spec.storage["sha256"],
        "max_resubmits": spec.max_resubmits,
        "private": spec.private,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def register_flow(
    session: AsyncSession, tenant_id: str, spec: FlowSpec
) -> tuple[Flow, FlowVersion, bool]:
    """(flow, version, created): registering the same thing twice returns the same version."""
    validate_spec(spec)
    flow = (
        await session.execute(select(Flow).where(Flow.tenant_id == tenant_id, Flow.name == spec.name))
    ).scalar_one_or_none()
    if flow is None:
        flow = Flow(id=str(uuid.uuid4()), tenant_id=tenant_id, name=spec.name, schedule_active=True)
        session.add(flow)
        await session.flush()
    fp = fingerprint(spec)
    existing = (
        await session.execute(
            select(FlowVersion).where(FlowVersion.flow_id == flow.id, FlowVersion.fingerprint == fp)
        )
    ).scalar_one_or_none()
    if existing is not None:
        return flow, existing, False
    latest = await latest_version(session, flow.id)
    last_number = (
        await session.execute(select(func.max(FlowVersion.version)).where(FlowVersion.flow_id == flow.id))
    ).scalar_one()
    version = FlowVersion(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        flow_id=flow.id,
        version=(last_number or 0) + 1,
        fingerprint=fp,
        structure=spec.structure,
        parameters=list(spec.structure.get("parameters") or []),
        schedule=spec.schedule,
        labels=sorted(set(spec.labels)),
        storage=spec.storage,
        max_resubmits=spec.max_resubmits,
        private=spec.private,
    )
    session.add(version)
    await session.flush()
    if latest is not None and latest.schedule != spec.schedule:
        # The schedule changed: future runs of the old schedule go; the scheduler makes new ones.
        await delete_future_scheduled_runs(session, flow.id)
    return flow, version, True


async def latest_version(session: AsyncSession, flow_id: str) -> FlowVersion | None:
    """The newest version of a flow, or ``None``."""
    return (await session.execute(_LATEST_VERSION, {"flow": flow_id})).scalar_one_or_none()


async def get_flow(
    session: AsyncSession, tenant_id: str, *, flow_id: str | None = None, name: str | None = None
) -> Flow:
    """A flow of the tenant by id or name; ``NotFound`` otherwise."""
    flow, _ = await _find_flow(session, _FLOW, tenant_id, flow_id, name)
    return flow


async def get_flow_and_latest_version(
    session: AsyncSession, tenant_id: str, *, flow_id: str | None = None, name: str | None = None
) -> tuple[Flow, FlowVersion | None]:
    """``get_flow`` and its newest version (``None`` before the first), in one query."""
    return await _find_flow(session, FLOW_AND_LATEST, tenant_id, flow_id, name)


async def _find_flow(
    session: AsyncSession,
    queries: dict[str, Any],
    tenant_id: str,
    flow_id: str | None,
    name: str | None,
) -> tuple[Flow, FlowVersion | None]:
    if flow_id is None and name is None:
        raise RequestError("give a flow id or a flow name")
    query, key = (queries["id"], flow_id) if flow_id is not None else (queries["name"], name)
    found = (await session.execute(query, {"tenant": tenant_id, "key": key})).first()
    if found is None:
        raise NotFound(f"no flow {flow_id or name!r} in this tenant")
    return found[0], (found[1] if len(found) > 1 else None)


async def list_flows(
    session: AsyncSession, tenant_id: str, *, limit: int = 100, offset: int = 0
) -> list[Flow]:
    """The tenant's flows by name, paginated."""
    return list(
        (
            await session.execute(
                select(Flow)
                .where(Flow.tenant_id == tenant_id)
                .order_by(Flow.name)
                .limit(limit)
                .offset(offset)
            )
        ).scalars()
    )


async def versions(session: AsyncSession, flow_id: str) -> list[FlowVersion]:
    """Every version of a flow, oldest first."""
    return list(
        (
            await session.execute(
                select(FlowVersion).where(FlowVersion.flow_id == flow_id).order_by(FlowVersion.version)
            )
        ).scalars()
    )


async def get_version(session: AsyncSession, tenant_id: str, version_id: str) -> FlowVersion:
    """A version of the tenant by id; ``NotFound`` otherwise."""
    row = (
        await session.execute(
            select(FlowVersion).where(FlowVersion.id == version_id, FlowVersion.tenant_id == tenant_id)
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no flow version {version_id!r} in this tenant")
    return row


async def delete_future_scheduled_runs(session: AsyncSession, flow_id: str) -> int:
    """Delete the runs a schedule made that have not started; how many."""
    result = await session.execute(
        delete(FlowRun).where(
            FlowRun.flow_id == flow_id,
            FlowRun.state == StateType.SCHEDULED.value,
            FlowRun.idempotency_key.like(f"{SCHEDULE_KEY_PREFIX}%"),
            FlowRun.scheduled_start_time > datetime.now(UTC),
        )
    )
    return result.rowcount or 0


async def set_schedule_active(session: AsyncSession, tenant_id: str, flow_id: str, active: bool) -> Flow:
    """Turn a flow's schedule on or off (off deletes its future runs)."""
    flow = await get_flow(session, tenant_id, flow_id=flow_id)
    flow.schedule_active = active
    if not active:
        await delete_future_scheduled_runs(session, flow.id)
    return flow


# The queries every createFlowRun makes, built once (building a statement costs more than
# running it: see services/transitions.py).
def _newest_version(column: Any, flow_id: Any) -> Any:
    """``column`` of the flow's newest version (``flow_id``: a parameter or the outer query's flow)."""
    return select(column).where(FlowVersion.flow_id == flow_id).order_by(FlowVersion.version.desc()).limit(1)


_LATEST_VERSION = _newest_version(FlowVersion, bindparam("flow"))
_NEWEST_VERSION_ID = _newest_version(FlowVersion.id, Flow.id).correlate(Flow).scalar_subquery()


def _by_key(*entities: Any) -> dict[str, Any]:
    """The query of a flow by id and by name (with ``entities``' columns)."""
    base = select(*entities).where(Flow.tenant_id == bindparam("tenant"))
    if len(entities) > 1:  # the newest version beside it (none before the first)
        base = base.outerjoin(FlowVersion, FlowVersion.id == _NEWEST_VERSION_ID)
    return {"id": base.where(Flow.id == bindparam("key")), "name": base.where(Flow.name == bindparam("key"))}


_FLOW = _by_key(Flow)
#: A flow and its newest version, by id (``["id"]``) or name (``["name"]``) of ``:tenant``
#: (``:key``); ``services/runcreate.py`` runs it on the driver's connection too.
FLOW_AND_LATEST = _by_key(Flow, FlowVersion)
