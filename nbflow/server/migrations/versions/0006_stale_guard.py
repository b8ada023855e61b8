"""the task-run writer's guard on PostgreSQL: a function that aborts a statement whose rows moved

``nbflow_unless_stale(ok)`` returns true, or raises SQLSTATE ``NB001`` when ``ok`` is false.
A task-run write (``services/taskstore.py``) checks in its one statement that the runs and
rows it decided on are as it read them; a check that fails aborts the whole statement, so
nothing of it is stored and the writer reads again. SQLite has no such writer: nothing to do.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STALE = "NB001"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION nbflow_unless_stale(ok boolean) RETURNS boolean "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NOT ok THEN RAISE EXCEPTION 'rows moved since they were read' USING ERRCODE = '{STALE}'; END IF; "
        "RETURN true; END $$"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS nbflow_unless_stale(boolean)")
