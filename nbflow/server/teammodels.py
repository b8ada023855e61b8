"""Tables for running flows as a team: secrets, hooks and their deliveries, concurrency limits
and the slots leased under them (migration 0004). Same ``Base`` as ``models.py``."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy reads the annotations at runtime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nbflow.server.models import Base, UTCDateTime, utcnow


class Secret(Base):
    """A named secret of a tenant, its value encrypted at rest (``secretbox.py``)."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    ciphertext: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Hook(Base):
    """Call a webhook or send an email when a flow run (or task run) of a flow, or of any flow
    of the tenant, reaches one of ``states`` (``Late``: still not started ``late_minutes``
    after its scheduled time)."""

    __tablename__ = "hooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[str | None] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))  # webhook | email
    target: Mapped[str] = mapped_column(String(1000))  # the URL, or the addresses
    scope: Mapped[str] = mapped_column(String(10))  # flow_run | task_run
    states: Mapped[list[Any]] = mapped_column(JSON)
    late_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The tenant's feed position when the hook was made: earlier events never fire it.
    since_position: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HookCursor(Base):
    """How far the hook loop has read a tenant's run events."""

    __tablename__ = "hook_cursors"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class HookDelivery(Base):
    """One event a hook fired for, and how its delivery went (``event_key`` makes it once)."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (
        UniqueConstraint("hook_id", "event_key"),
        Index("ix_hook_deliveries_due", "status", "next_attempt"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    hook_id: Mapped[str] = mapped_column(ForeignKey("hooks.id", ondelete="CASCADE"), index=True)
    event_key: Mapped[str] = mapped_column(String(200))
    flow_run_id: Mapped[str] = mapped_column(String(36))
    task_slug: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConcurrencyLimit(Base):
    """``kind`` tag: at most ``limit`` task runs with ``tag`` run at once, across all agents of
    the tenant; ``kind`` label: at most ``limit`` flow runs with the label ``tag`` are active."""

    __tablename__ = "concurrency_limits"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "tag"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="tag")  # tag | label
    tag: Mapped[str] = mapped_column(String(200))
    limit: Mapped[int] = mapped_column(Integer)
    # Bumped by every acquire: the row lock that serialises acquirers of one tag.
    turns: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConcurrencySlot(Base):
    """A slot of a limit, leased to one task run of one execution of a flow run."""

    __tablename__ = "concurrency_slots"
    __table_args__ = (UniqueConstraint("limit_id", "task_run_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    limit_id: Mapped[str] = mapped_column(ForeignKey("concurrency_limits.id", ondelete="CASCADE"), index=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"), index=True)
    execution: Mapped[int] = mapped_column(Integer)
    task_run_id: Mapped[str] = mapped_column(String(64))
    task_slug: Mapped[str] = mapped_column(String(200))
    acquired: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
