"""running flows as a team: per-run context, secrets, server hooks, concurrency limits

``flow_runs.context``: a run's own ``nbflow.context`` values (``-c key=value``).

Revision ID: 0004
Revises: 0002 (the lead re-chains it after 0003 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("context")
