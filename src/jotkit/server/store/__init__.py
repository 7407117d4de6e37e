"""Storage for the auth service: abstract interfaces (:mod:`.base`) and the SQL backend."""

from __future__ import annotations

from .base import (
    AccessTokenRecord,
    FamilyRecord,
    KeyRecord,
    KeyStore,
    RateLimiter,
    RefreshRecord,
    RevocationStore,
    RotateOutcome,
    RotateResult,
    SessionStore,
    Store,
    UserRecord,
    UserStore,
)

__all__ = [
    "AccessTokenRecord",
    "FamilyRecord",
    "KeyRecord",
    "KeyStore",
    "RateLimiter",
    "RefreshRecord",
    "RevocationStore",
    "RotateOutcome",
    "RotateResult",
    "SessionStore",
    "Store",
    "UserRecord",
    "UserStore",
]
