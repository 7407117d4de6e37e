"""DPoP authorization code binding (RFC 9449 §10): ``oauth_codes.dpop_jkt``.

The JWK SHA-256 thumbprint (RFC 7638) a code is bound to, from the ``dpop_jkt`` authorization
request parameter or the ``DPoP`` proof of a pushed authorization request (§10.1); NULL for
an unbound code (and for every code issued before this revision).

Revision ID: 0009_code_dpop_jkt
Revises: 0008_token_exchange
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_code_dpop_jkt"
down_revision = "0008_token_exchange"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``dpop_jkt`` column."""
    with op.batch_alter_table("oauth_codes") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop ``dpop_jkt``."""
    with op.batch_alter_table("oauth_codes") as batch:
        batch.drop_column("dpop_jkt")
