"""Starlette / ASGI integration: an authentication backend and middleware.

::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from jotkit.integrations.starlette import JotkitAuthMiddleware, requires_token

    @requires_token(scopes=["orders:read"])
    async def orders(request):
        return JSONResponse({"sub": request.user.claims["sub"]})

    app = Starlette(routes=[...], middleware=[Middleware(JotkitAuthMiddleware, verifier=v)])

The middleware works with any ASGI app. Requests without a token pass as
anonymous (``request.user.is_authenticated`` is False) unless
``required=True``; a token that is sent must be valid, otherwise the request
is answered 401 per RFC 6750 §3 with the shared JSON body.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.datastructures import Headers
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jotkit.integrations._verifier import (
    BearerError,
    Claims,
    TokenVerifier,
    check_grants,
    claim_scopes,
    uses_dpop,
)

__all__ = [
    "JotkitAuthBackend",
    "JotkitAuthMiddleware",
    "JotkitUser",
    "bearer_error_response",
    "requires_token",
]

_F = TypeVar("_F", bound=Callable[..., Awaitable[Response]])
_SCOPE_KEY = "jotkit.verifier"


class JotkitUser(BaseUser):
    """An authenticated subject; ``claims`` are the verified token claims."""

    def __init__(self, claims: Claims) -> None:
        """Wrap verified claims."""
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        """Always True."""
        return True

    @property
    def display_name(self) -> str:
        """The ``sub`` claim (RFC 7519 §4.1.2)."""
        return str(self.claims.get("sub", ""))

    @property
    def identity(self) -> str:
        """The ``sub`` claim (RFC 7519 §4.1.2)."""
        return str(self.claims.get("sub", ""))


class JotkitAuthenticationError(AuthenticationError):
    """Carries a :class:`BearerError` through Starlette's authentication middleware."""

    def __init__(self, error: BearerError, realm: str | None) -> None:
        super().__init__(error.description)
        self.bearer_error = error
        self.realm = realm


def bearer_error_response(error: BearerError, realm: str | None = None) -> JSONResponse:
    """Render a :class:`BearerError` as the shared JSON response (RFC 6750 §3)."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers(realm))


def _on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    if isinstance(exc, JotkitAuthenticationError):
        return bearer_error_response(exc.bearer_error, exc.realm)
    return bearer_error_response(BearerError(401, "invalid_token", str(exc) or "Unauthorized"))


class JotkitAuthBackend(AuthenticationBackend):
    """Starlette authentication backend verifying bearer access tokens (RFC 6750 §2)."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        required: bool = False,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> None:
        """``required`` rejects requests without a token; scopes/roles apply to all."""
        self.verifier = verifier
        self.required = required
        self.scopes = tuple(scopes)
        self.roles = tuple(roles)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """Return credentials and a :class:`JotkitUser`, or None for anonymous requests."""
        verifier = self.verifier
        cookies: Mapping[str, str] | None = conn.cookies if verifier.cookie_name else None
        try:
            try:
                authorization = conn.headers.get("authorization")
                dpop: dict[str, Any] = {}
                if uses_dpop(authorization):  # RFC 9449 §7: the proof of a bound token
                    dpop = {"dpop": conn.headers.getlist("dpop"), "url": str(conn.url),
                            "method": conn.scope.get("method", "GET")}
                claims = await verifier.aauthenticate(
                    authorization, cookies, scopes=self.scopes, roles=self.roles, **dpop
                )
            except BearerError as exc:
                if exc.error is None and not self.required:
                    return None
                raise
        except BearerError as exc:
            raise JotkitAuthenticationError(exc, verifier.realm) from None
        return AuthCredentials(sorted(claim_scopes(claims))), JotkitUser(claims)


class JotkitAuthMiddleware(AuthenticationMiddleware):
    """ASGI middleware: ``AuthenticationMiddleware`` + :class:`JotkitAuthBackend`.

    Sets ``scope["user"]`` (a :class:`JotkitUser`) and ``scope["auth"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        required: bool = False,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> None:
        """Wrap ``app``; see :class:`JotkitAuthBackend` for the options."""
        super().__init__(
            app,
            backend=JotkitAuthBackend(verifier, required=required, scopes=scopes, roles=roles),
            on_error=_on_error,
        )
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Expose the verifier to :func:`requires_token`, then authenticate. A request with
        the DPoP scheme gets the verifier's current ``DPoP-Nonce`` on its response when the
        verifier requires nonces (RFC 9449 §9)."""
        if scope["type"] in ("http", "websocket"):
            scope[_SCOPE_KEY] = self.verifier
        if scope["type"] == "http" and self.verifier.dpop_nonce is not None and uses_dpop(
            Headers(scope=scope).get("authorization")
        ):
            send = _with_headers(send, self.verifier.dpop_nonce_headers())
        await super().__call__(scope, receive, send)


def _with_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """``send`` adding ``headers`` to the response start unless the response has them."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message = dict(message)
            message["headers"] = [*message.get("headers", []),
                                  *(h for h in extra if h[0] not in present)]
        await send(message)

    return wrapped


def requires_token(
    *, scopes: Iterable[str] = (), roles: Iterable[str] = (), realm: str | None = None
) -> Callable[[_F], _F]:
    """Decorate an async Starlette endpoint: 401 without a valid token, 403 without grants.

    Needs :class:`JotkitAuthMiddleware` in front. All ``scopes`` are required,
    and at least one of ``roles`` (RFC 6750 §3.1). ``realm`` defaults to the
    middleware verifier's realm.
    """
    need_scopes = tuple(scopes)
    need_roles = tuple(roles)

    def decorator(func: _F) -> _F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("requires_token() decorates async endpoints")

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Response:
            request = next((a for a in (*args, *kwargs.values()) if isinstance(a, Request)), None)
            if request is None:
                raise TypeError("requires_token(): the endpoint receives no Request")
            verifier = request.scope.get(_SCOPE_KEY)
            the_realm = realm
            if the_realm is None and isinstance(verifier, TokenVerifier):
                the_realm = verifier.realm
            user = request.scope.get("user")
            if not isinstance(user, JotkitUser):
                return bearer_error_response(
                    BearerError(
                        401, None, "A bearer access token is required", reason="missing_token"
                    ),
                    the_realm,
                )
            try:
                check_grants(user.claims, need_scopes, need_roles)
            except BearerError as exc:
                return bearer_error_response(exc, the_realm)
            return await func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
