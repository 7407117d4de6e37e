"""Token exchange (RFC 8693): each client's exchange policy on ``oauth_clients``.

Three JSON-array columns, empty for existing clients (no exchange allowed):
``exchange_audiences`` (the audiences / resources it may exchange a subject token for),
``exchange_scopes`` (the scopes an exchanged token may carry; empty: the subject's) and
``exchange_actors`` (other clients whose client-credentials token it may present as
``actor_token``).

Revision ID: 0008
Revises: 0005_revocation_feed
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_token_exchange"
down_revision = "0007_par_device"
branch_labels = None
depends_on = None

_COLUMNS = ("exchange_audiences", "exchange_scopes", "exchange_actors")


def upgrade() -> None:
    """Add the three policy columns (``'[]'`` for existing rows)."""
    with op.batch_alter_table("oauth_clients") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    """Drop the policy columns."""
    with op.batch_alter_table("oauth_clients") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
