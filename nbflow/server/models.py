"""The database of states: SQLAlchemy 2 ORM models (SQLite and PostgreSQL).

Everything a tenant owns carries ``tenant_id``; every query filters on it.
``run_events`` is the run record as stored: every state change and log line
of every run, one row each, numbered by a per-tenant ``position`` in the
order transactions committed (see ``services/journal.py``), which the live
feed follows. ``flow_runs`` and ``task_runs`` hold each run's current state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from nbflow.core.record import MAX_REF

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
AutoId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store as UTC (naive on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (
            value.astimezone(UTC) if dialect.name != "sqlite" else value.astimezone(UTC).replace(tzinfo=None)
        )

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:  # noqa: ARG002
        """Read back as an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base of nbflow's tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    """A team: everything else belongs to one."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last position given to one of this tenant's run events (the live feed's order).
    feed_position: Mapped[int] = mapped_column(BigInteger, default=0)


class ApiKey(Base):
    """An API key (stored as its hash) with a tenant and a role."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Flow(Base):
    """A version group: every registration of one flow name in one tenant."""

    __tablename__ = "flows"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    schedule_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    versions: Mapped[list[FlowVersion]] = relationship(
        back_populates="flow", order_by="FlowVersion.version", lazy="raise"
    )


class FlowVersion(Base):
    """One registered structure: metadata only, never code or data."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "version"), UniqueConstraint("flow_id", "fingerprint"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    structure: Mapped[dict[str, Any]] = mapped_column(JSON)
    parameters: Mapped[list[Any]] = mapped_column(JSON)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    storage: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_resubmits: Mapped[int] = mapped_column(Integer, default=0)
    # Private flows keep log lines and failure details on the agent; the server gets states only.
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    flow: Mapped[Flow] = relationship(back_populates="versions", lazy="raise")


class FlowRun(Base):
    """One run of a flow version: its current state, claim and heartbeat."""

    __tablename__ = "flow_runs"
    __table_args__ = (
        UniqueConstraint("flow_id", "idempotency_key"),
        Index("ix_flow_runs_queue", "tenant_id", "state", "scheduled_start_time"),
        Index("ix_flow_runs_flow_time", "flow_id", "scheduled_start_time"),
        # Lists of runs, newest first, and their keyset pages (services/runs.py: list_flow_runs).
        Index("ix_flow_runs_tenant_time", "tenant_id", "scheduled_start_time", "id"),
        # The next waiting run to fall due, across tenants (services/queuewatch.py).
        Index("ix_flow_runs_state_time", "state", "scheduled_start_time"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    flow_version_id: Mapped[str] = mapped_column(ForeignKey("flow_versions.id", ondelete="CASCADE"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The run's own nbflow.context values (-c key=value); None when it set none.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    state_message: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    scheduled_start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The version the current claim left: records of any other execution are refused.
    execution: Mapped[int] = mapped_column(Integer, default=0)
    # SHA-256 of the current execution's run token (see auth.new_run_token).
    run_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resubmits: Mapped[int] = mapped_column(Integer, default=0)
    # The failed run this one restarts (``restartFlowRun``): it reuses that run's stored results.
    restart_of: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FlowRunLabel(Base):
    """One label a flow run needs: an agent takes the run only if it has every one."""

    __tablename__ = "flow_run_labels"
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(200), primary_key=True)


class TaskRun(Base):
    """One run of one task: its current state (the history is in ``run_events``).

    A resubmitted flow run runs its tasks again under new task-run ids: (run, slug) repeats.
    """

    __tablename__ = "task_runs"
    __table_args__ = (Index("ix_task_runs_run_slug", "flow_run_id", "task_slug"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"), index=True)
    task_slug: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    state_message: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    execution: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Where its result is stored and its digest (``core.results``): never the data itself.
    result_ref: Mapped[str | None] = mapped_column(String(MAX_REF), nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RunEvent(Base):
    """The run record as stored: one state change (``kind='state'``) or log line (``'log'``).

    ``transition_id`` is unique (a re-delivered state change is recognised by it);
    ``(flow_run_id, execution, seq)`` is unique for log lines (a re-delivered line is
    skipped, and a resubmitted run's new execution keeps its own lines).
    """

    __tablename__ = "run_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "position"),
        UniqueConstraint("tenant_id", "transition_id"),
        UniqueConstraint("flow_run_id", "execution", "seq"),
        Index("ix_run_events_run_position", "flow_run_id", "position"),
    )
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    task_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    task: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    previous: Mapped[str | None] = mapped_column(String(20), nullable=True)
    level: Mapped[str | None] = mapped_column(String(10), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    timestamp: Mapped[float] = mapped_column(Float)
    transition_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    execution: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result_ref: Mapped[str | None] = mapped_column(String(MAX_REF), nullable=True)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)


class Agent(Base):
    """An agent that said hello: its labels and when it was last heard from."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[list[Any]] = mapped_column(JSON)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
