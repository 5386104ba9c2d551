"""Alembic's environment: migrations run on the connection `gateway.migrations.upgrade` hands over."""

from __future__ import annotations

from alembic import context

from gateway.audit import AuditRow

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run privgate's migrations with `privgate db upgrade` (gateway.migrations.upgrade)")
# target_metadata lets `command.revision(config(connection), autogenerate=True)` diff the models;
# SQLite alters tables in batch mode
context.configure(
    connection=connection,
    target_metadata=AuditRow.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
