"""FastAPI integration: a dependency that yields verified access-token claims.

::

    from fastapi import Depends, FastAPI
    from jotkit.integrations import TokenVerifier
    from jotkit.integrations.fastapi import JotkitAuth, require_token

    app = FastAPI()
    JotkitAuth(app, TokenVerifier(jwks_client, issuer=ISS, audience="orders"))

    @app.get("/orders")
    async def orders(claims: dict = Depends(require_token(scopes=["orders:read"]))):
        ...

The dependency shows up in OpenAPI as an HTTP bearer security scheme
(``bearerFormat: JWT``). Failures are answered per RFC 6750 §3 by the
exception handler that :class:`JotkitAuth` installs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.responses import JSONResponse
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException as StarletteHTTPException

from jotkit.integrations._verifier import BearerError, Claims, TokenVerifier, uses_dpop

__all__ = [
    "BearerHTTPException",
    "JotkitAuth",
    "RequireToken",
    "install_error_handler",
    "require_token",
]

_STATE_ATTR = "jotkit_verifier"


class BearerHTTPException(StarletteHTTPException):
    """A :class:`BearerError` raised through FastAPI's exception machinery.

    With :class:`JotkitAuth` (or :func:`install_error_handler`) installed the
    body is the shared JSON shape; without it FastAPI's default handler still
    sends the right status and ``WWW-Authenticate`` header, with the
    description under ``detail``.
    """

    def __init__(self, error: BearerError, realm: str | None) -> None:
        super().__init__(error.status, detail=error.description, headers=error.headers(realm))
        self.bearer_error = error
        self.realm = realm


def _handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BearerHTTPException)
    err = exc.bearer_error
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers(exc.realm))


def _authorization(scope: Mapping[str, Any]) -> str | None:
    """The first ``Authorization`` header, read straight from the ASGI scope."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class RequireToken(SecurityBase):
    """The dependency object returned by :func:`require_token` (a bearer scheme)."""

    def __init__(
        self,
        verifier: TokenVerifier | None = None,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        scheme_name: str = "BearerJWT",
        description: str | None = None,
        optional: bool = False,
    ) -> None:
        """See :func:`require_token`."""
        self.verifier = verifier
        self.scopes = tuple(scopes)
        self.roles = tuple(roles)
        self.optional = optional
        self.model = HTTPBearerModel(bearerFormat="JWT", description=description)
        self.scheme_name = scheme_name

    def _resolve_verifier(self, request: Request) -> TokenVerifier:
        if self.verifier is not None:
            return self.verifier
        verifier = getattr(request.app.state, _STATE_ATTR, None)
        if not isinstance(verifier, TokenVerifier):
            raise RuntimeError(
                "require_token(): no verifier; pass verifier= or install JotkitAuth(app, verifier)"
            )
        return verifier

    async def __call__(self, request: Request, response: Response) -> Claims | None:
        """Verify the request's bearer or DPoP token (RFC 6750 §2, RFC 9449 §7) and return its
        claims; a DPoP request gets the verifier's current ``DPoP-Nonce`` (RFC 9449 §9) on
        the endpoint's response."""
        verifier = self._resolve_verifier(request)
        try:
            authorization = _authorization(request.scope)
            if (
                self.optional
                and not authorization
                and not (verifier.cookie_name and verifier.cookie_name in request.cookies)
            ):
                return None
            if uses_dpop(authorization):  # RFC 9449 §7: the proof of a bound token
                claims = await verifier.aauthenticate(
                    authorization, None, scopes=self.scopes, roles=self.roles,
                    dpop=request.headers.getlist("dpop"), method=request.method,
                    url=str(request.url),
                )
                response.headers.update(verifier.dpop_nonce_headers())
                return claims
            return await verifier.aauthenticate(
                authorization,
                request.cookies if verifier.cookie_name else None,
                scopes=self.scopes,
                roles=self.roles,
            )
        except BearerError as exc:
            raise BearerHTTPException(exc, verifier.realm) from None


def require_token(
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    verifier: TokenVerifier | None = None,
    optional: bool = False,
    scheme_name: str = "BearerJWT",
    description: str | None = None,
) -> RequireToken:
    """Build a dependency returning the verified claims (RFC 6750, RFC 9068).

    ``scopes`` must all be granted (``scope``/``scp`` claim); of ``roles`` at
    least one must be present (``roles`` claim). Missing scope/role: 403
    ``insufficient_scope``. ``verifier`` defaults to the one installed by
    :class:`JotkitAuth`. ``optional=True`` yields ``None`` when no token is
    sent (a token that is sent must still be valid).
    """
    return RequireToken(
        verifier,
        scopes=scopes,
        roles=roles,
        scheme_name=scheme_name,
        description=description,
        optional=optional,
    )


class JotkitAuth:
    """Install a :class:`TokenVerifier` on a FastAPI app and its RFC 6750 error handler."""

    def __init__(self, app: FastAPI | None = None, verifier: TokenVerifier | None = None) -> None:
        """Create the extension; ``app`` may be given now or later via :meth:`init_app`."""
        if verifier is None:
            raise TypeError("JotkitAuth needs a TokenVerifier")
        self.verifier = verifier
        if app is not None:
            self.init_app(app)

    def init_app(self, app: FastAPI) -> None:
        """Store the verifier on ``app.state`` and register the error handler."""
        setattr(app.state, _STATE_ATTR, self.verifier)
        install_error_handler(app)

    def require_token(
        self, *, scopes: Iterable[str] = (), roles: Iterable[str] = (), optional: bool = False
    ) -> RequireToken:
        """A :func:`require_token` dependency bound to this extension's verifier."""
        return require_token(scopes=scopes, roles=roles, verifier=self.verifier, optional=optional)


def install_error_handler(app: Any) -> None:
    """Answer :class:`BearerHTTPException` with the shared JSON body (RFC 6750 §3)."""
    app.add_exception_handler(BearerHTTPException, _handler)
