"""runs listed newest first by key, and the next run to fall due: two indexes

(tenant, scheduled time, id): without it a tenant's list of runs sorts every run
it has on each page; with it the first page and every keyset page
(``flowRuns(after:)``) read only their rows. (state, scheduled time): the queue
watch's "when does the next waiting run fall due", across tenants.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_flow_runs_tenant_time", "flow_runs", ["tenant_id", "scheduled_start_time", "id"])
    op.create_index("ix_flow_runs_state_time", "flow_runs", ["state", "scheduled_start_time"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_state_time", table_name="flow_runs")
    op.drop_index("ix_flow_runs_tenant_time", table_name="flow_runs")
