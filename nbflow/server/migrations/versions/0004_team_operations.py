"""running flows as a team: per-run context, secrets, server hooks, concurrency limits

``flow_runs.context``: a run's own ``nbflow.context`` values (``-c key=value``);
``secrets``: values encrypted with the server's Fernet key; ``hooks``,
``hook_cursors``, ``hook_deliveries``: notifications on run states and each
delivery's record; ``concurrency_limits``, ``concurrency_slots``: tag limits
(and flow-run limits per label) and the slots leased to running task runs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _tenant() -> sa.Column:
    return sa.Column(
        "tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        _when("created"),
        _when("updated"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_index("ix_secrets_tenant_id", "secrets", ["tenant_id"])
    op.create_table(
        "hooks",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column("flow_id", sa.String(36), sa.ForeignKey("flows.id", ondelete="CASCADE"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("target", sa.String(1000), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("states", sa.JSON(), nullable=False),
        sa.Column("late_minutes", sa.Integer(), nullable=True),
        sa.Column("since_position", sa.BigInteger(), nullable=False, server_default="0"),
        _when("created"),
    )
    op.create_index("ix_hooks_tenant_id", "hooks", ["tenant_id"])
    op.create_table(
        "hook_cursors",
        sa.Column(
            "tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("hook_id", sa.String(36), sa.ForeignKey("hooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("flow_run_id", sa.String(36), nullable=False),
        sa.Column("task_slug", sa.String(200), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _when("next_attempt"),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        _when("created"),
        _when("delivered", nullable=True),
        sa.UniqueConstraint("hook_id", "event_key"),
    )
    op.create_index("ix_hook_deliveries_tenant_id", "hook_deliveries", ["tenant_id"])
    op.create_index("ix_hook_deliveries_hook_id", "hook_deliveries", ["hook_id"])
    op.create_index("ix_hook_deliveries_due", "hook_deliveries", ["status", "next_attempt"])
    op.create_table(
        "concurrency_limits",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column("kind", sa.String(10), nullable=False, server_default="tag"),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("turns", sa.BigInteger(), nullable=False, server_default="0"),
        _when("created"),
        sa.UniqueConstraint("tenant_id", "kind", "tag"),
    )
    op.create_index("ix_concurrency_limits_tenant_id", "concurrency_limits", ["tenant_id"])
    op.create_table(
        "concurrency_slots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column(
            "limit_id",
            sa.String(36),
            sa.ForeignKey("concurrency_limits.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("execution", sa.Integer(), nullable=False),
        sa.Column("task_run_id", sa.String(64), nullable=False),
        sa.Column("task_slug", sa.String(200), nullable=False),
        _when("acquired"),
        sa.UniqueConstraint("limit_id", "task_run_id"),
    )
    op.create_index("ix_concurrency_slots_tenant_id", "concurrency_slots", ["tenant_id"])
    op.create_index("ix_concurrency_slots_limit_id", "concurrency_slots", ["limit_id"])
    op.create_index("ix_concurrency_slots_flow_run_id", "concurrency_slots", ["flow_run_id"])


def downgrade() -> None:
    raise NotImplementedError("nbflow does not downgrade its database; restore a backup instead")
