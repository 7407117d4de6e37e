"""Pydantic request/response models (they document the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..passwords import MAX_PASSWORD_LENGTH

# Every free-text string the service accepts refuses NUL (PostgreSQL text cannot hold it, and
# no email, password or token contains one): a 4xx at validation, on every backend.
NO_NUL = r"^[^\x00]*$"
# Session (refresh-family) ids are ``secrets.token_urlsafe`` values.
SESSION_ID = r"^[A-Za-z0-9_-]+$"

__all__ = [
    "NO_NUL",
    "SESSION_ID",
    "ErrorBody",
    "IntrospectionResponse",
    "LoginRequest",
    "MeResponse",
    "RefreshRequest",
    "SessionInfo",
    "SessionItem",
    "StatusResponse",
    "TokenResponse",
]


class ErrorBody(BaseModel):
    """Every error response (RFC 6749 §5.2 style)."""

    error: str
    error_description: str
    reason: str | None = None


class LoginRequest(BaseModel):
    """Credentials for ``POST /auth/login``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    email: str = Field(
        min_length=3, max_length=320, pattern=NO_NUL, examples=["demo@example.com"]
    )
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH, pattern=NO_NUL)


class RefreshRequest(BaseModel):
    """``POST /auth/refresh`` body (optional in cookie mode)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    refresh_token: str = Field(min_length=1, max_length=512, pattern=NO_NUL)


class TokenResponse(BaseModel):
    """Tokens from login/refresh (RFC 6749 §5.1). In cookie mode the tokens travel in
    HttpOnly cookies and the body carries the CSRF token instead."""

    access_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    csrf_token: str | None = None


class SessionInfo(BaseModel):
    """The session the presented access token belongs to."""

    id: str
    authenticated_at: int | None = None
    token_issued_at: int
    token_expires_at: int


class MeResponse(BaseModel):
    """``GET /auth/me``."""

    id: str
    email: str | None
    roles: list[str]
    session: SessionInfo


class SessionItem(BaseModel):
    """One active session (refresh-token family)."""

    id: str
    user_agent: str | None
    client_ip: str | None
    created_at: float
    last_used_at: float
    expires_at: float
    current: bool


class StatusResponse(BaseModel):
    """A plain acknowledgement."""

    status: str


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2: ``active`` and, for an active token, its metadata."""

    active: bool
    token_type: str | None = None
    sub: str | None = None
    sid: str | None = None
    iss: str | None = None
    aud: str | list[str] | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    client_id: str | None = None
    username: str | None = None
    roles: list[str] | None = None
    scope: str | None = None
    auth_time: int | None = None
    cnf: dict[str, str] | None = None  # RFC 9449 §6.2: {"jkt": ...} of a DPoP-bound token
