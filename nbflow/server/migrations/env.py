"""Alembic environment: runs on the connection the server hands over (see db.migrate)."""

from __future__ import annotations

from alembic import context

from nbflow.server.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("nbflow migrations run through nbflow.server.db.migrate(), which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
