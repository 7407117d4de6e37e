"""Request helpers shared by the routes: the service handle, client info, authentication."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import Request

from .csrf import CookieNames, CsrfSigner, cookie_names
from .errors import ServiceError
from .sessions import CLIENT_ID, AuthService, ClientInfo

__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "authenticate",
    "check_csrf",
    "client_info",
    "cookies",
    "csrf_signer",
    "require_auth",
    "service",
    "service_dependency",
]

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BEARER_SECURITY: dict[str, Any] = {"security": [{"bearerAuth": []}]}


def service(request: Request) -> AuthService:
    """The app's :class:`AuthService`."""
    svc: AuthService = request.app.state.service
    return svc


async def service_dependency(request: Request) -> AuthService:
    """:func:`service` as a FastAPI dependency. A coroutine: FastAPI runs a plain ``def``
    dependency in its thread pool, one thread hand-off per request for an attribute read."""
    svc: AuthService = request.app.state.service
    return svc


def client_info(request: Request) -> ClientInfo:
    """Client address and user agent. Behind ``JOTKIT_TRUSTED_PROXIES`` the address is the
    right-most ``X-Forwarded-For`` entry that is not a trusted proxy (uvicorn's
    ``ProxyHeadersMiddleware``, installed by ``create_app``); otherwise the TCP peer."""
    ip = request.client.host if request.client else "unknown"
    return ClientInfo(ip=ip[:64], user_agent=request.headers.get("user-agent", "")[:512])


def cookies(request: Request) -> CookieNames:
    """The cookie names of this service (``__Host-`` prefixed when cookies are Secure)."""
    return cookie_names(service(request).settings.cookie_secure)


def csrf_signer(request: Request) -> CsrfSigner:
    """The app's CSRF token signer (cookie mode)."""
    signer: CsrfSigner = request.app.state.csrf
    return signer


def check_csrf(request: Request, session_id: str) -> None:
    """Signed double-submit check (OWASP): the ``X-CSRF-Token`` header must equal the CSRF
    cookie, and be a token this service issued for ``session_id``."""
    cookie = request.cookies.get(cookies(request).csrf, "")
    header = request.headers.get(CSRF_HEADER, "")
    same = secrets.compare_digest(
        cookie.encode("utf-8", "surrogateescape"), header.encode("utf-8", "surrogateescape")
    )
    if not (cookie and same and csrf_signer(request).valid(header, session_id)):
        raise ServiceError("csrf_failed", "Missing or wrong X-CSRF-Token header.")


async def require_auth(request: Request) -> dict[str, Any]:
    """Authenticate the request by ``Authorization: Bearer`` (RFC 6750 §2.1) or, in cookie
    mode, by the access cookie plus a CSRF header on unsafe methods; return the claims."""
    svc: AuthService = request.app.state.service
    return await authenticate(svc, request.headers.get("authorization"), lambda: request)


async def authenticate(
    svc: AuthService, header: str | None, request: Callable[[], Request]
) -> dict[str, Any]:
    """:func:`require_auth` over the ``Authorization`` header value (``None`` if absent);
    ``request`` builds the request only when the cookie is needed (cookie mode, no header).
    The one rule for both ``require_auth`` and the ``/auth/me`` fast route (RFC 6750 §2.1,
    RFC 9449 §7.2)."""
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise ServiceError("missing_token", "Use the Bearer authentication scheme.")
        token = token.strip()
        if not token or " " in token:
            raise ServiceError("malformed", "The Authorization header has no single token.")
        claims = await svc.authenticate(token)
        if "cnf" in claims:  # RFC 9449 §7.2: a DPoP-bound token is no bearer token
            raise ServiceError("dpop_invalid_token", "A DPoP-bound token is not accepted here.")
        return _first_party(claims)
    if svc.settings.cookie_mode:
        req = request()
        cookie = req.cookies.get(cookie_names(svc.settings.cookie_secure).access)
        if cookie:
            claims = _first_party(await svc.authenticate(cookie))
            if req.method not in SAFE_METHODS:
                check_csrf(req, str(claims["sid"]))
            return claims
    raise ServiceError("missing_token")


def _first_party(claims: dict[str, Any]) -> dict[str, Any]:
    """The account API (``/auth/*``, ``/oauth/consents``) is the first-party login's: a token
    an OAuth client obtained for the same audience (``client_id`` other than the login's) would
    otherwise read the user's profile and sessions, revoke other clients' consents and log the
    user out everywhere, beyond what the user consented to (RFC 6749 §3.3, RFC 9068 §4)."""
    if claims.get("client_id") != CLIENT_ID:
        raise ServiceError(
            "wrong_client",
            "This API takes the first-party login's tokens only; an OAuth client's token "
            "goes to /oauth/userinfo or to a resource server.",
        )
    return claims
