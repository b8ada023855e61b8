"""Creating one flow run on request (``createFlowRun``): one rule, two ways to store it.

What a new run is stays ``runs.new_flow_run`` (its parameters checked against the version,
its labels, its Scheduled state) and ``runs.scheduled_entry`` (its journal entry). Where it
is stored:

* SQLite: a session's transaction (``runs.create_flow_run``): the flow and its newest
  version, the run, a savepoint when it has an idempotency key, the journal at the commit;
* PostgreSQL: the driver's pooled connection (``pgdriver.pooled_driver``) and two statements
  with no transaction block around them. One reads the flow and its newest version; one
  stores the run, its label rows and its journal entry, atomic on its own (the journal's
  counter taken last, as every writer takes it). Five round trips become two, and the ORM's
  unit of work is not needed for one row.

An idempotency key that an earlier run of the flow holds is a conflict the insert skips (the
journal then appends nothing and the counter does not move); that earlier run is read back
and returned, as on SQLite.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbflow.server.errors import NotFound, RequestError
from nbflow.server.models import Flow, FlowRun, FlowVersion, utcnow
from nbflow.server.pgdriver import Positional, pooled_driver
from nbflow.server.services import journal
from nbflow.server.services.flows import FLOW_AND_LATEST, get_flow_and_latest_version
from nbflow.server.services.runs import (
    by_idempotency_key,
    checked_idempotency_key,
    create_flow_run,
    new_flow_run,
    scheduled_entry,
)

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass
class CreatedRun:
    """A run ``createFlowRun`` answers with: the run, its flow, the version it was made of
    (``None`` for an earlier call's run whose version is no longer the newest), and whether
    this call made it."""

    run: FlowRun
    flow: Flow
    version: FlowVersion | None
    created: bool


@dataclass
class RunRequest:
    """What a caller asks a new run to be: the flow (by id or name) and the run's options."""

    flow_id: str | None
    flow_name: str | None
    parameters: Any = None
    idempotency_key: str | None = None
    scheduled_start_time: datetime | None = None
    labels: list[str] | None = None
    context: Any = None

    def __post_init__(self) -> None:
        if self.flow_id is None and self.flow_name is None:
            raise RequestError("give a flow id or a flow name")
        if self.parameters is not None and not isinstance(self.parameters, dict):
            raise RequestError("parameters must be a JSON object of name: value")


async def create_requested_run(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, request: RunRequest
) -> CreatedRun:
    """Make the run ``request`` asks for (or find the one an earlier call with the same
    idempotency key made), committed when this returns."""
    if sessions.kw["bind"].dialect.name == "postgresql":
        return await create_on_postgres(sessions, tenant_id, request)
    return await create_in_session(sessions, tenant_id, request)


async def create_in_session(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, request: RunRequest
) -> CreatedRun:
    """``create_requested_run`` in one session's transaction (any database)."""
    async with sessions.begin() as session:
        flow, version = await get_flow_and_latest_version(
            session, tenant_id, flow_id=request.flow_id, name=request.flow_name
        )
        run, created = await create_flow_run(
            session, tenant_id, flow, parameters=request.parameters, idempotency_key=request.idempotency_key,
            scheduled_start_time=request.scheduled_start_time, labels=request.labels, version=version,
            context=request.context,
        )  # fmt: skip
    return CreatedRun(run, flow, _own_version(run, version), created)


def _own_version(run: FlowRun, version: FlowVersion | None) -> FlowVersion | None:
    # An earlier call's run (the same idempotency key) may be of an older version.
    return version if version is not None and run.flow_version_id == version.id else None


# -- PostgreSQL -------------------------------------------------------------------------------

_FIND = {by: Positional(query) for by, query in FLOW_AND_LATEST.items()}
_FIND_COLUMNS = [(column.table.name, column.name) for column in FLOW_AND_LATEST["id"].selected_columns]
_RUN_COLUMNS = list(FlowRun.__table__.columns)


def _store_statement() -> Positional:
    # In the order its locks are taken: the run (a unique-key conflict, an earlier run with
    # this idempotency key, skips it), its labels, then the tenant's journal counter, moved
    # only if the run was stored, and the journal's entry.
    names = ", ".join(column.name for column in _RUN_COLUMNS)
    values = ", ".join(f":run_{column.name}" for column in _RUN_COLUMNS)
    taken, appended = journal.postgres_append(after="run", only_if_any=True)
    return Positional(
        f"WITH run AS (INSERT INTO flow_runs ({names}) VALUES ({values}) ON CONFLICT DO NOTHING RETURNING id), "
        "labels AS (INSERT INTO flow_run_labels (flow_run_id, label) "
        "SELECT run.id, l.label FROM run, unnest(CAST(:labels AS VARCHAR[])) AS l(label)), "
        f"{taken}, appended AS ({appended}) "
        "SELECT count(*) FROM run"
    )


_STORE = _store_statement()


async def create_on_postgres(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, request: RunRequest
) -> CreatedRun:
    """``create_requested_run`` in two statements on PostgreSQL's driver connection."""
    engine = sessions.kw["bind"]
    dialect = engine.dialect
    key = checked_idempotency_key(request.idempotency_key)
    by, wanted = ("id", request.flow_id) if request.flow_id is not None else ("name", request.flow_name)
    async with pooled_driver(engine) as driver:
        found = await driver.fetchrow(_FIND[by].sql, *_FIND[by].args({"tenant": tenant_id, "key": wanted}))
        if found is None:
            raise NotFound(f"no flow {wanted!r} in this tenant")
        flow, version = _flow_and_version(found, dialect)
        if version is None:
            raise NotFound(f"flow {flow.name!r} has no registered version")
        run = new_flow_run(
            tenant_id, flow, version, parameters=request.parameters, idempotency_key=key,
            scheduled_start_time=request.scheduled_start_time, labels=request.labels, context=request.context,
        )  # fmt: skip
        run.created = run.updated = utcnow()  # the columns' defaults, which no flush applies here
        entries = journal.rows_of(tenant_id, [scheduled_entry(run)])
        values: dict[str, Any] = {}
        for parameter, attribute, process in _run_binders(dialect):
            value = getattr(run, attribute)  # as SQLAlchemy binds it: JSON as text, times in UTC
            values[parameter] = process(value) if process is not None else value
        values |= {
            "labels": run.labels,
            "tenant": tenant_id,
            "n": len(entries),
            **journal.journal_columns(entries),
        }
        stored = await driver.fetchval(_STORE.sql, *_STORE.args(values))
    if stored:
        return CreatedRun(run, flow, version, True)
    # Skipped: an earlier call made the run with this key (the only unique key a new id
    # can meet). Read it back as SQLite's path does.
    async with sessions() as session:
        existing = await by_idempotency_key(session, flow.id, key) if key is not None else None
    if existing is None:
        raise RequestError("the run could not be stored: try again")
    return CreatedRun(existing, flow, _own_version(existing, version), False)


@functools.cache
def _run_binders(dialect: Any) -> list[tuple[str, str, Any]]:
    """(parameter, attribute, SQLAlchemy's bind processor or None) of each run column."""
    return [(f"run_{c.name}", c.key, c.type.bind_processor(dialect)) for c in _RUN_COLUMNS]


@functools.cache
def _find_readers(dialect: Any) -> list[tuple[str, str, Any]]:
    """(table, column, SQLAlchemy's result processor or None) of each ``_FIND`` column."""
    tables = {"flows": Flow.__table__, "flow_versions": FlowVersion.__table__}
    return [
        (table, name, tables[table].c[name].type.result_processor(dialect, None))
        for table, name in _FIND_COLUMNS
    ]


def _flow_and_version(row: Any, dialect: Any) -> tuple[Flow, FlowVersion | None]:
    """The flow and version objects (not in any session) of a ``FLOW_AND_LATEST`` row."""
    fields: dict[str, dict[str, Any]] = {"flows": {}, "flow_versions": {}}
    for (table, name, process), value in zip(_find_readers(dialect), row, strict=True):
        fields[table][name] = process(value) if process is not None and value is not None else value
    flow = Flow(**fields["flows"])
    versions = fields["flow_versions"]
    return flow, (FlowVersion(**versions) if versions["id"] is not None else None)
