"""Alembic's environment: migrates over the connection `central.db.schema.migrate` opened
(and began a transaction on), never one of its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from central.db.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through central.db.schema.migrate")
# Batch mode lets later revisions alter SQLite tables (by copying them).
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
