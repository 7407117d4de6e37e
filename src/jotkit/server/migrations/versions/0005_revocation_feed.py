"""Revocation feed: the ``revocations.seq`` cursor is never handed out twice (issue 14).

On SQLite a plain ``INTEGER PRIMARY KEY`` may reuse the highest value once that row is
deleted (``purge``), which would let a feed reader's cursor skip new rows. The table is
rebuilt with ``AUTOINCREMENT`` (rows and indexes kept), which never reuses a value.
PostgreSQL's sequence never goes back already: nothing changes there.

Revision ID: 0005_revocation_feed
Revises: 0004_sso
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_revocation_feed"
down_revision = "0004_sso"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    """Copy ``revocations`` into a table with or without SQLite's ``AUTOINCREMENT``."""
    op.create_table(
        "revocations_rebuilt",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sqlite_autoincrement=autoincrement,
    )
    op.execute(
        "INSERT INTO revocations_rebuilt (seq, kind, value, at, expires_at) "
        "SELECT seq, kind, value, at, expires_at FROM revocations"
    )
    op.drop_index("ix_revocations_expires_at", "revocations")
    op.drop_index("ix_revocations_value", "revocations")
    op.drop_table("revocations")
    op.rename_table("revocations_rebuilt", "revocations")
    op.create_index("ix_revocations_value", "revocations", ["value"])
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])


def upgrade() -> None:
    """SQLite: rebuild ``revocations`` with ``AUTOINCREMENT``; other databases: nothing."""
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=True)


def downgrade() -> None:
    """SQLite: rebuild ``revocations`` without ``AUTOINCREMENT``."""
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=False)
