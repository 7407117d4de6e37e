"""Alembic environment: always runs on a connection handed in by jotkit (see __init__)."""

from __future__ import annotations

from alembic import context

from jotkit.server.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable when run by the alembic CLI
    raise RuntimeError("run migrations with `jotkit db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
