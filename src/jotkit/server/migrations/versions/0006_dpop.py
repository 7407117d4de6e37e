"""DPoP (RFC 9449): proofs already seen, refresh families bound to a key, and the
``dpop_bound_access_tokens`` client flag (§5.2).

Revision ID: 0006_dpop
Revises: 0005_revocation_feed
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_dpop"
down_revision = "0005_revocation_feed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``dpop_proofs``, ``dpop_bindings``; add the ``dpop_bound_access_tokens`` column."""
    op.create_table(
        "dpop_proofs",
        sa.Column("proof_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    op.create_index("ix_dpop_proofs_expires_at", "dpop_proofs", ["expires_at"])
    op.create_table(
        "dpop_bindings",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("jkt", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(
            sa.Column(
                "dpop_bound_access_tokens", sa.Boolean, nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    """Drop the DPoP tables and the client flag."""
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("dpop_bound_access_tokens")
    op.drop_table("dpop_bindings")
    op.drop_index("ix_dpop_proofs_expires_at", "dpop_proofs")
    op.drop_table("dpop_proofs")
