"""Single sign-on: SSO sessions, their participating clients, consents, back-channel logout
deliveries (issue 11, browser side).

Revision ID: 0004_sso
Revises: 0003_oauth
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sso"
down_revision = "0003_oauth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the four SSO tables."""
    op.create_table(
        "sso_sessions",
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("auth_time", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("ended_at", sa.Double, nullable=True),
    )
    op.create_index("ix_sso_sessions_user_id", "sso_sessions", ["user_id"])
    op.create_index("ix_sso_sessions_expires_at", "sso_sessions", ["expires_at"])
    op.create_table(
        "sso_participants",
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("joined_at", sa.Double, nullable=False),
    )
    op.create_table(
        "oauth_consents",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("granted_at", sa.Double, nullable=False),
    )
    op.create_table(
        "backchannel_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("logout_token", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
    )
    op.create_index(
        "ix_backchannel_deliveries_next_attempt_at", "backchannel_deliveries", ["next_attempt_at"]
    )


def downgrade() -> None:
    """Drop the SSO tables."""
    op.drop_index("ix_backchannel_deliveries_next_attempt_at", "backchannel_deliveries")
    op.drop_table("backchannel_deliveries")
    op.drop_table("oauth_consents")
    op.drop_table("sso_participants")
    op.drop_index("ix_sso_sessions_expires_at", "sso_sessions")
    op.drop_index("ix_sso_sessions_user_id", "sso_sessions")
    op.drop_table("sso_sessions")
