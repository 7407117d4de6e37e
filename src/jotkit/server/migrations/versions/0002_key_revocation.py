"""Emergency key withdrawal: ``signing_keys.revoked_at`` (``jotkit keys revoke``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``revoked_at`` column (NULL: the key is not revoked)."""
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("revoked_at", sa.Double, nullable=True))


def downgrade() -> None:
    """Drop ``revoked_at``."""
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("revoked_at")
