"""Alembic environment: migrates the connection :func:`service.adapters.db.migrate` passes.

There is no alembic.ini: ``migrate`` builds the configuration in code and hands over a
connection already inside its transaction, so the whole upgrade commits or rolls back
as one.
"""

from __future__ import annotations

from alembic import context

from service.adapters.db_schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through service.adapters.db.migrate(engine)")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
