"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 22:26:03.499679
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nbflow.server.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("last_seen", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agents_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", nbflow.server.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "flows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("schedule_active", sa.Boolean(), nullable=False),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flows_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "flow_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("structure", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("storage", sa.JSON(), nullable=False),
        sa.Column("max_resubmits", sa.Integer(), nullable=False),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["flow_id"], ["flows.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow_id", "fingerprint"),
        sa.UniqueConstraint("flow_id", "version"),
    )
    with op.batch_alter_table("flow_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_versions_flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_versions_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("flow_version_id", sa.String(length=36), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_message", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scheduled_start_time", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("start_time", nbflow.server.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_time", nbflow.server.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("heartbeat", nbflow.server.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resubmits", sa.Integer(), nullable=False),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["flow_id"], ["flows.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["flow_version_id"], ["flow_versions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow_id", "idempotency_key"),
    )
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index("ix_flow_runs_flow_time", ["flow_id", "scheduled_start_time"], unique=False)
        batch_op.create_index(
            "ix_flow_runs_queue", ["tenant_id", "state", "scheduled_start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_runs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "flow_run_states",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_run_states_flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run_states_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "logs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_run_id", sa.String(length=36), nullable=True),
        sa.Column("task_slug", sa.String(length=200), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow_run_id", "seq"),
    )
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logs_flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_logs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "task_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_slug", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_message", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_timestamp", sa.Float(), nullable=False),
        sa.Column("start_time", nbflow.server.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_time", nbflow.server.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created", nbflow.server.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_runs_flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index("ix_task_runs_run_slug", ["flow_run_id", "task_slug"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_runs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "task_run_states",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_slug", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["task_run_id"], ["task_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_run_states_flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run_states_task_run_id"), ["task_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run_states_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_run_states_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_task_run_states_task_run_id"))
        batch_op.drop_index(batch_op.f("ix_task_run_states_flow_run_id"))

    op.drop_table("task_run_states")
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_runs_tenant_id"))
        batch_op.drop_index("ix_task_runs_run_slug")
        batch_op.drop_index(batch_op.f("ix_task_runs_flow_run_id"))

    op.drop_table("task_runs")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logs_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_logs_flow_run_id"))

    op.drop_table("logs")
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_run_states_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run_states_flow_run_id"))

    op.drop_table("flow_run_states")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_runs_tenant_id"))
        batch_op.drop_index("ix_flow_runs_queue")
        batch_op.drop_index("ix_flow_runs_flow_time")

    op.drop_table("flow_runs")
    with op.batch_alter_table("flow_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_versions_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_flow_versions_flow_id"))

    op.drop_table("flow_versions")
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flows_tenant_id"))

    op.drop_table("flows")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))

    op.drop_table("api_keys")
    op.drop_table("tenants")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agents_tenant_id"))

    op.drop_table("agents")
