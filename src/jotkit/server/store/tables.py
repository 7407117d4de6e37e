"""SQLAlchemy Core table definitions (dialect-neutral: SQLite and PostgreSQL).

The Alembic migrations in :mod:`jotkit.server.migrations` create exactly these tables; a test
compares the migrated schema with this metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "access_tokens",
    "backchannel_deliveries",
    "dpop_bindings",
    "dpop_proofs",
    "metadata",
    "oauth_assertions",
    "oauth_clients",
    "oauth_codes",
    "oauth_consents",
    "oauth_device_codes",
    "oauth_grants",
    "oauth_par_requests",
    "rate_limits",
    "refresh_families",
    "refresh_tokens",
    "revocations",
    "signing_keys",
    "sso_participants",
    "sso_sessions",
    "users",
]

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

refresh_families = sa.Table(
    "refresh_families",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double, nullable=False),
    sa.Column("idle_expires_at", sa.Double, nullable=False),
    sa.Column("absolute_expires_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Column("revoke_reason", sa.String(32), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("client_ip", sa.String(64), nullable=True),
    sa.Column("client_id", sa.String(64), nullable=True),  # OAuth client (migration 0003_oauth)
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "family_id", sa.String(64), sa.ForeignKey("refresh_families.id"), nullable=False, index=True
    ),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("spent_at", sa.Double, nullable=True),
    sa.Column("spent_by", sa.String(64), nullable=True),
)

access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("family_id", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("exp", sa.Double, nullable=False, index=True),
)

revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("value", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    # never reuse a seq (migration 0005): it is the revocation feed's cursor
    sqlite_autoincrement=True,
)

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("window_start", sa.Double, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(128), primary_key=True),
    sa.Column("alg", sa.String(16), nullable=False),
    sa.Column("private_jwk", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("activate_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),  # jotkit keys revoke (migration 0002)
)

# -- OAuth 2.1 / OpenID Connect provider (migration 0003_oauth) --------------------------------
oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(128), nullable=True),
    sa.Column("auth_method", sa.String(32), nullable=False),
    sa.Column("redirect_uris", sa.Text, nullable=False),  # JSON arrays
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
    sa.Column("resources", sa.Text, nullable=False),  # JSON array (RFC 8707)
    # RFC 9449 §5.2 client metadata (migration 0006_dpop): the client must use DPoP
    sa.Column("dpop_bound_access_tokens", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(  # RFC 9126 §6 require_pushed_authorization_requests (migration 0007_par_device)
        "require_par", sa.Boolean, nullable=False, server_default=sa.false()
    ),
    # token-exchange policy (RFC 8693), JSON arrays (migration 0008)
    sa.Column("exchange_audiences", sa.Text, nullable=False, server_default="[]"),
    sa.Column("exchange_scopes", sa.Text, nullable=False, server_default="[]"),
    sa.Column("exchange_actors", sa.Text, nullable=False, server_default="[]"),
)

oauth_codes = sa.Table(
    "oauth_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),  # JSON arrays
    sa.Column("nonce", sa.Text, nullable=True),
    sa.Column("auth_time", sa.Double, nullable=False),
    sa.Column("sid", sa.String(128), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("redeemed_at", sa.Double, nullable=True),
    sa.Column("family_id", sa.String(64), nullable=True),
    sa.Column("dpop_jkt", sa.String(64), nullable=True),  # RFC 9449 §10 (migration 0009)
)

oauth_grants = sa.Table(
    "oauth_grants",
    metadata,
    sa.Column("family_id", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("sid", sa.String(128), nullable=False, index=True),
    sa.Column("auth_time", sa.Double, nullable=False),
    sa.Column("nonce", sa.Text, nullable=True),
)

oauth_assertions = sa.Table(
    "oauth_assertions",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

# -- single sign-on (migration 0004_sso) ---------------------------------------------------
sso_sessions = sa.Table(
    "sso_sessions",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),  # public id: ``sid`` of ID tokens
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 of cookie
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("auth_time", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("ended_at", sa.Double, nullable=True),
)

sso_participants = sa.Table(
    "sso_participants",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("joined_at", sa.Double, nullable=False),
)

oauth_consents = sa.Table(
    "oauth_consents",
    metadata,
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("scopes", sa.Text, nullable=False),  # space-separated, sorted
    sa.Column("granted_at", sa.Double, nullable=False),
)

backchannel_deliveries = sa.Table(
    "backchannel_deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("logout_token", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.Double, nullable=True, index=True),  # NULL: settled
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("delivered_at", sa.Double, nullable=True),
    sa.Column("last_error", sa.String(200), nullable=True),
)

# -- DPoP (migration 0006_dpop, RFC 9449) ---------------------------------------------------
dpop_proofs = sa.Table(  # proofs already seen (§11.1): SHA-256 of jkt + jti, until iat window
    "dpop_proofs",
    metadata,
    sa.Column("proof_hash", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

dpop_bindings = sa.Table(  # a public client's refresh family is bound to its DPoP key (§5)
    "dpop_bindings",
    metadata,
    sa.Column("family_id", sa.String(64), primary_key=True),
    sa.Column("jkt", sa.String(64), nullable=False),
)

# -- pushed authorization requests and device codes (migration 0007_par_device) -----------
oauth_par_requests = sa.Table(  # RFC 9126: a request_uri is known only by its SHA-256
    "oauth_par_requests",
    metadata,
    sa.Column("uri_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON list of [name, value] pairs
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("used_at", sa.Double, nullable=True),
)

oauth_device_codes = sa.Table(  # RFC 8628: a device_code is known only by its SHA-256
    "oauth_device_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("user_code", sa.String(16), nullable=False, unique=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),  # JSON arrays
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("interval", sa.Double, nullable=False),  # grows by 5 s per slow_down (§3.5)
    sa.Column("last_polled_at", sa.Double, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | approved | denied
    sa.Column("user_id", sa.String(36), nullable=True),
    sa.Column("sid", sa.String(128), nullable=True),
    sa.Column("auth_time", sa.Double, nullable=True),
    sa.Column("decided_at", sa.Double, nullable=True),
    sa.Column("redeemed_at", sa.Double, nullable=True),
    sa.Column("family_id", sa.String(64), nullable=True),
)
