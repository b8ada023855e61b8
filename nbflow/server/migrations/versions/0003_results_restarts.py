"""stored results and restarts: task_runs.result_ref, flow_runs.restart_of

A task run records where its result is stored and its digest (``result_ref``, the
reference ``nbflow.core.results`` makes; no data reaches the server), and a flow run
made by ``restartFlowRun`` names the run it restarts (``restart_of``). References can
be longer than a task slug, so ``run_events.result_ref`` widens to match.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MAX_REF = 1000  # nbflow.core.record.MAX_REF when this revision was written


def upgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(sa.Column("result_ref", sa.String(MAX_REF), nullable=True))
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("restart_of", sa.String(36), nullable=True))
        batch.create_index("ix_flow_runs_restart_of", ["restart_of"])
    with op.batch_alter_table("run_events") as batch:
        batch.alter_column("result_ref", type_=sa.String(MAX_REF), existing_type=sa.String(200))


def downgrade() -> None:
    with op.batch_alter_table("run_events") as batch:
        batch.alter_column("result_ref", type_=sa.String(200), existing_type=sa.String(MAX_REF))
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_index("ix_flow_runs_restart_of")
        batch.drop_column("restart_of")
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("result_ref")
