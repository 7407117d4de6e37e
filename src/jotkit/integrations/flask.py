"""Flask integration: an extension object, a decorator and ``current_claims``.

::

    from flask import Flask
    from jotkit.integrations import TokenVerifier
    from jotkit.integrations.flask import JotkitAuth, current_claims, require_token

    app = Flask(__name__)
    JotkitAuth(app, TokenVerifier(jwks_client, issuer=ISS, audience="reports"))

    @app.get("/reports")
    @require_token(scopes=["reports:read"])
    def reports():
        return {"sub": current_claims["sub"]}

Failures are answered per RFC 6750 §3 with the same JSON body as the
FastAPI and Starlette adapters. Keys are fetched with the JWKS client's sync
path (Flask views are synchronous).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast, overload

from flask import Flask, Response, after_this_request, current_app, g, jsonify, request
from werkzeug.local import LocalProxy

from jotkit.integrations._verifier import BearerError, Claims, TokenVerifier, uses_dpop

__all__ = ["JotkitAuth", "current_claims", "get_current_claims", "require_token"]

_F = TypeVar("_F", bound=Callable[..., Any])
_EXT = "jotkit"
_G_ATTR = "_jotkit_claims"


def get_current_claims() -> Claims | None:
    """The verified claims of the current request, or ``None`` if it sent no token."""
    return cast("Claims | None", g.get(_G_ATTR))


def _get_claims() -> Claims:
    claims = g.get(_G_ATTR)
    if claims is None:
        raise RuntimeError("current_claims is only set inside a @require_token view")
    return cast(Claims, claims)


current_claims: Claims = cast(Claims, LocalProxy(_get_claims))
"""The verified claims of the current request (inside a ``@require_token`` view)."""


def _error_response(error: BearerError, realm: str | None) -> Response:
    resp = jsonify(error.body())
    resp.status_code = error.status
    for name, value in error.headers(realm).items():
        resp.headers[name] = value
    return resp


class JotkitAuth:
    """Flask extension holding the :class:`TokenVerifier` of an app."""

    def __init__(self, app: Flask | None = None, verifier: TokenVerifier | None = None) -> None:
        """Create the extension; ``app`` may be given now or via :meth:`init_app`."""
        if verifier is None:
            raise TypeError("JotkitAuth needs a TokenVerifier")
        self.verifier = verifier
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension and an RFC 6750 error handler on ``app``."""
        app.extensions[_EXT] = self
        realm = self.verifier.realm

        def handle(exc: BearerError) -> Response:
            return _error_response(exc, realm)

        app.register_error_handler(BearerError, handle)

    def require_token(
        self, *, scopes: Iterable[str] = (), roles: Iterable[str] = (), optional: bool = False
    ) -> Callable[[_F], _F]:
        """A :func:`require_token` decorator bound to this extension's verifier."""
        return require_token(scopes=scopes, roles=roles, optional=optional, verifier=self.verifier)


def _verifier_of_app(explicit: TokenVerifier | None) -> TokenVerifier:
    if explicit is not None:
        return explicit
    ext = current_app.extensions.get(_EXT)
    if not isinstance(ext, JotkitAuth):
        raise RuntimeError("require_token(): install JotkitAuth(app, verifier) or pass verifier=")
    return ext.verifier


@overload
def require_token(func: _F, /) -> _F: ...


@overload
def require_token(
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    optional: bool = False,
    verifier: TokenVerifier | None = None,
) -> Callable[[_F], _F]: ...


def require_token(
    func: _F | None = None,
    /,
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    optional: bool = False,
    verifier: TokenVerifier | None = None,
) -> _F | Callable[[_F], _F]:
    """Protect a Flask view with a bearer access token (RFC 6750, RFC 9068).

    All ``scopes`` and at least one of ``roles`` are required (403
    ``insufficient_scope`` otherwise). The claims are available as
    :data:`current_claims`. ``optional=True`` lets requests without any token
    through (``current_claims`` then raises). Usable bare: ``@require_token``.
    """
    need_scopes = tuple(scopes)
    need_roles = tuple(roles)

    def decorator(view: _F) -> _F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            v = _verifier_of_app(verifier)
            cookies = request.cookies if v.cookie_name else None
            authorization = request.headers.get("Authorization")
            if (
                optional
                and not authorization
                and not (v.cookie_name and v.cookie_name in request.cookies)
            ):
                return view(*args, **kwargs)
            try:
                dpop: dict[str, Any] = {}
                if uses_dpop(authorization):  # RFC 9449 §7: the proof of a bound token
                    dpop = {"dpop": request.headers.getlist("DPoP"), "url": request.url,
                            "method": request.method}
                claims = v.authenticate(
                    authorization, cookies, scopes=need_scopes, roles=need_roles, **dpop
                )
            except BearerError as exc:
                return _error_response(exc, v.realm)
            setattr(g, _G_ATTR, claims)
            if dpop and v.dpop_nonce is not None:  # RFC 9449 §9: a fresh nonce on success
                nonce = v.dpop_nonce_headers()

                @after_this_request
                def add_nonce(response: Response) -> Response:
                    for name, value in nonce.items():
                        response.headers.setdefault(name, value)
                    return response

            return view(*args, **kwargs)

        return cast(_F, wrapper)

    if func is not None:
        return decorator(func)
    return decorator
