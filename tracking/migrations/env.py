"""Alembic environment: migrates the connection handed over by ``tracking.store.migrate``."""

from __future__ import annotations

from alembic import context

from tracking.schema import metadata, postgresql_options

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI directly
    raise SystemExit("Run migrations with: python -m tracking migrate --url URL")

if connection.dialect.name == "postgresql":
    postgresql_options()  # what autogenerate compares with
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
