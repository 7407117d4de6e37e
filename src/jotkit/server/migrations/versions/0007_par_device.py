"""Pushed authorization requests (RFC 9126) and the device authorization grant (RFC 8628):
``oauth_par_requests``, ``oauth_device_codes`` and the per-client
``require_pushed_authorization_requests`` flag (RFC 9126 §6).

Revision ID: 0007_par_device
Revises: 0005_revocation_feed
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_par_device"
down_revision = "0006_dpop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the client flag and create the two tables."""
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(
            sa.Column(
                "require_par", sa.Boolean, nullable=False, server_default=sa.false()
            )
        )
    op.create_table(
        "oauth_par_requests",
        sa.Column("uri_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=True),
    )
    op.create_index("ix_oauth_par_requests_expires_at", "oauth_par_requests", ["expires_at"])
    op.create_table(
        "oauth_device_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("user_code", sa.String(16), nullable=False, unique=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("interval", sa.Double, nullable=False),
        sa.Column("last_polled_at", sa.Double, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("sid", sa.String(128), nullable=True),
        sa.Column("auth_time", sa.Double, nullable=True),
        sa.Column("decided_at", sa.Double, nullable=True),
        sa.Column("redeemed_at", sa.Double, nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_oauth_device_codes_expires_at", "oauth_device_codes", ["expires_at"])


def downgrade() -> None:
    """Drop the tables and the client flag."""
    op.drop_index("ix_oauth_device_codes_expires_at", "oauth_device_codes")
    op.drop_table("oauth_device_codes")
    op.drop_index("ix_oauth_par_requests_expires_at", "oauth_par_requests")
    op.drop_table("oauth_par_requests")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("require_par")
