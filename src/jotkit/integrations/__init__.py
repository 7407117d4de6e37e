"""Resource-server integrations: verify access tokens in FastAPI, Starlette, Flask and Django.

The framework adapters live in :mod:`jotkit.integrations.fastapi`,
:mod:`jotkit.integrations.starlette`, :mod:`jotkit.integrations.flask` and
:mod:`jotkit.integrations.django` (with DRF classes in ``.django.drf``; install
``jotkit[fastapi]``, ``jotkit[starlette]``, ``jotkit[flask]`` or ``jotkit[django]``).
All of them delegate to the one :class:`TokenVerifier` defined here, so
tokens are checked and errors are rendered (RFC 6750 §3) identically.
"""

from __future__ import annotations

from jotkit.integrations._replay import RedisReplayCache, ReplayCacheUnavailable
from jotkit.integrations._verifier import (
    DEFAULT_COOKIE_NAME,
    BearerError,
    Claims,
    DpopReplayCache,
    Introspection,
    ReplayCache,
    RevocationStatus,
    RevocationSubscriber,
    TokenVerifier,
    check_grants,
    claim_roles,
    claim_scopes,
)

__all__ = [
    "DEFAULT_COOKIE_NAME",
    "BearerError",
    "Claims",
    "DpopReplayCache",
    "Introspection",
    "RedisReplayCache",
    "ReplayCache",
    "ReplayCacheUnavailable",
    "RevocationStatus",
    "RevocationSubscriber",
    "TokenVerifier",
    "check_grants",
    "claim_roles",
    "claim_scopes",
]
