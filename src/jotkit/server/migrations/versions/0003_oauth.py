"""OAuth 2.1 / OpenID Connect provider: clients, authorization codes, grants, used client
assertion ``jti`` values, and ``refresh_families.client_id``.

Revision ID: 0003_oauth
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_oauth"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the OAuth tables and add the nullable ``client_id`` (NULL: first-party)."""
    with op.batch_alter_table("refresh_families") as batch:
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=True),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("post_logout_redirect_uris", sa.Text, nullable=False),
        sa.Column("grant_types", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("first_party", sa.Boolean, nullable=False),
        sa.Column("backchannel_logout_uri", sa.Text, nullable=True),
        sa.Column("jwks_uri", sa.Text, nullable=True),
        sa.Column("jwks", sa.Text, nullable=True),
        sa.Column("id_token_signed_response_alg", sa.String(16), nullable=False),
        sa.Column("default_audience", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
    )
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("nonce", sa.Text, nullable=True),
        sa.Column("auth_time", sa.Double, nullable=False),
        sa.Column("sid", sa.String(128), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("redeemed_at", sa.Double, nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_oauth_codes_expires_at", "oauth_codes", ["expires_at"])
    op.create_table(
        "oauth_grants",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("sid", sa.String(128), nullable=False),
        sa.Column("auth_time", sa.Double, nullable=False),
        sa.Column("nonce", sa.Text, nullable=True),
    )
    for column in ("client_id", "user_id", "sid"):
        op.create_index(f"ix_oauth_grants_{column}", "oauth_grants", [column])
    op.create_table(
        "oauth_assertions",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    op.create_index("ix_oauth_assertions_expires_at", "oauth_assertions", ["expires_at"])


def downgrade() -> None:
    """Drop the OAuth tables and ``refresh_families.client_id``."""
    for table in ("oauth_assertions", "oauth_grants", "oauth_codes", "oauth_clients"):
        op.drop_table(table)
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("client_id")
