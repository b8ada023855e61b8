"""one run record: run_events replaces the three history tables

The flow-run states, task-run states and logs become rows of one table,
``run_events``, numbered per tenant in commit order (the live feed's order);
runs get an ``execution`` number (records of a superseded execution are
refused); task runs no longer keep the writer's timestamp (re-delivery is
recognised by the transition id); flow versions may be private (logs and
failure details stay on the agent).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("feed_position", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("flow_versions") as batch:
        batch.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("execution", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("run_token_hash", sa.String(64), nullable=True))
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(sa.Column("execution", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_column("last_timestamp")
    op.create_table(
        "run_events",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column(
            "flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("task_run_id", sa.String(64), nullable=True),
        sa.Column("task", sa.String(200), nullable=True),
        sa.Column("state", sa.String(20), nullable=True),
        sa.Column("previous", sa.String(20), nullable=True),
        sa.Column("level", sa.String(10), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("transition_id", sa.String(64), nullable=True),
        sa.Column("execution", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("result_ref", sa.String(200), nullable=True),
        sa.Column("start_time", sa.Float(), nullable=True),
        sa.UniqueConstraint("tenant_id", "position"),
        sa.UniqueConstraint("tenant_id", "transition_id"),
        sa.UniqueConstraint("flow_run_id", "execution", "seq"),
    )
    op.create_index("ix_run_events_run_position", "run_events", ["flow_run_id", "position"])
    op.create_index("ix_run_events_task_run_id", "run_events", ["task_run_id"])
    op.create_table(
        "flow_run_labels",
        sa.Column(
            "flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("label", sa.String(200), primary_key=True),
    )
    _copy_labels()
    _copy_history()
    op.drop_table("flow_run_states")
    op.drop_table("task_run_states")
    op.drop_table("logs")


def _copy_labels() -> None:
    """Each run's labels as rows, so the work queue can filter on them in SQL."""
    bind = op.get_bind()
    runs = sa.table("flow_runs", sa.column("id"), sa.column("labels", sa.JSON))
    rows = [
        {"flow_run_id": r.id, "label": label}
        for r in bind.execute(sa.select(runs))
        for label in set(r.labels or [])
    ]
    if rows:
        bind.execute(
            sa.insert(sa.table("flow_run_labels", sa.column("flow_run_id"), sa.column("label"))), rows
        )


def _copy_history() -> None:
    """Old history rows become run events, numbered per tenant in time order."""
    bind = op.get_bind()
    meta = sa.MetaData()
    flow_states = sa.Table("flow_run_states", meta, autoload_with=bind)
    task_states = sa.Table("task_run_states", meta, autoload_with=bind)
    logs = sa.Table("logs", meta, autoload_with=bind)
    rows: list[dict] = []
    for r in bind.execute(sa.select(flow_states)).mappings():
        rows.append(_state_row(r, f"migrated-flow-{r['id']}", task_run_id=None, task=None, attempt=0))
    for r in bind.execute(sa.select(task_states)).mappings():
        rows.append(
            _state_row(
                r,
                f"migrated-task-{r['id']}",
                task_run_id=r["task_run_id"],
                task=r["task_slug"],
                attempt=r["attempt"],
            )
        )
    for r in bind.execute(sa.select(logs)).mappings():
        rows.append(
            {"tenant_id": r["tenant_id"], "kind": "log", "flow_run_id": r["flow_run_id"], "task_run_id": r["task_run_id"],
             "task": r["task_slug"], "state": None, "previous": None, "level": r["level"], "message": r["message"],
             "attempt": 0, "timestamp": r["timestamp"], "transition_id": None, "execution": 0, "seq": r["seq"],
             "result_ref": None, "start_time": None}
        )  # fmt: skip
    rows.sort(key=lambda row: (row["timestamp"], row["kind"] == "log"))
    last: dict[str, int] = defaultdict(int)
    for row in rows:
        last[row["tenant_id"]] += 1
        row["position"] = last[row["tenant_id"]]
    if rows:
        events = sa.table("run_events", *(sa.column(name) for name in rows[0]))
        for start in range(0, len(rows), 1000):
            bind.execute(sa.insert(events), rows[start : start + 1000])
    tenants = sa.table("tenants", sa.column("id"), sa.column("feed_position"))
    for tenant_id, position in last.items():
        bind.execute(sa.update(tenants).where(tenants.c.id == tenant_id).values(feed_position=position))


def _state_row(
    r: sa.RowMapping, transition_id: str, *, task_run_id: str | None, task: str | None, attempt: int
) -> dict:
    return {
        "tenant_id": r["tenant_id"], "kind": "state", "flow_run_id": r["flow_run_id"], "task_run_id": task_run_id,
        "task": task, "state": r["state"], "previous": None, "level": None, "message": r["message"] or "",
        "attempt": attempt, "timestamp": r["timestamp"], "transition_id": transition_id, "execution": 0,
        "seq": None, "result_ref": None, "start_time": None,
    }  # fmt: skip


def downgrade() -> None:
    raise NotImplementedError("nbflow does not downgrade its database; restore a backup instead")
