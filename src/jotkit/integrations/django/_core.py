"""Plain Django: the middleware, the ``@require_token`` decorator and the error response.

Both read the bearer token (RFC 6750 §2.1, or the configured cookie) and delegate
every decision to the shared :class:`~jotkit.integrations.TokenVerifier`, so the
status, ``WWW-Authenticate`` challenge (RFC 6750 §3) and JSON body are the same as in
the FastAPI, Starlette and Flask adapters. The verified claims land in ``request.auth``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from jotkit.integrations._verifier import (
    BearerError,
    Claims,
    TokenVerifier,
    check_grants,
    uses_dpop,
)
from jotkit.integrations.django._settings import get_verifier, middleware_required

__all__ = ["JotkitMiddleware", "bearer_error_response", "get_claims", "require_token"]

_F = TypeVar("_F", bound=Callable[..., Any])
_STATE = "_jotkit_checked"


@dataclass(frozen=True, slots=True)
class _Checked:
    """What the middleware found: the claims, or None for a request without a token."""

    claims: Claims | None


def bearer_error_response(error: BearerError, realm: str | None = None) -> HttpResponse:
    """Render a :class:`BearerError` as the shared JSON response (RFC 6750 §3).

    The body is byte-for-byte the one the Starlette and FastAPI adapters send (compact
    UTF-8 JSON), with ``WWW-Authenticate``, ``Cache-Control: no-store`` and, on 503,
    ``Retry-After``.
    """
    body = json.dumps(error.body(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    response = HttpResponse(
        body.encode("utf-8"), status=error.status, content_type="application/json"
    )
    for name, value in error.headers(realm).items():
        response[name] = value
    return response


def _missing() -> BearerError:
    return BearerError(401, None, "A bearer access token is required", reason="missing_token")


def _credentials(request: HttpRequest, verifier: TokenVerifier) -> tuple[str | None, Any]:
    cookies = request.COOKIES if verifier.cookie_name else None
    return request.headers.get("Authorization"), cookies


def _set(request: Any, claims: Claims | None) -> None:
    setattr(request, _STATE, _Checked(claims))
    request.auth = claims


def get_claims(request: HttpRequest) -> Claims | None:
    """The claims jotkit verified for ``request`` (also ``request.auth``), else None."""
    checked = getattr(request, _STATE, None)
    return checked.claims if isinstance(checked, _Checked) else None


def dpop_arguments(request: HttpRequest) -> dict[str, Any]:
    """The DPoP proof(s), method and URL of a request that uses the DPoP scheme (RFC 9449
    §7), as :meth:`TokenVerifier.authenticate` takes them; nothing for other requests. A
    compact proof has no comma, so repeated ``DPoP`` headers (joined by the server) show."""
    if not uses_dpop(request.headers.get("Authorization")):
        return {}
    raw = request.headers.get("DPoP") or ""
    return {"dpop": [p.strip() for p in raw.split(",") if p.strip()],
            "method": request.method or "GET", "url": request.build_absolute_uri()}


def add_dpop_nonce(verifier: TokenVerifier, request: HttpRequest, response: Any) -> Any:
    """Add the verifier's current ``DPoP-Nonce`` to the response of a DPoP request when it
    requires nonces (RFC 9449 §9), unless the response has one."""
    if verifier.dpop_nonce is not None and isinstance(response, HttpResponseBase) and uses_dpop(
        request.headers.get("Authorization")
    ):
        for name, value in verifier.dpop_nonce_headers().items():
            response.setdefault(name, value)
    return response


def authenticate_or_none(
    verifier: TokenVerifier, request: HttpRequest, required: bool,
    scopes: tuple[str, ...] = (), roles: tuple[str, ...] = (),
) -> Claims | None:
    """Verify the request's token (bearer, cookie or DPoP) and the verifier's and these
    scopes and roles; None when it sent no credentials at all and they are optional."""
    try:
        return verifier.authenticate(*_credentials(request, verifier), scopes=scopes,
                                     roles=roles, **dpop_arguments(request))
    except BearerError as exc:
        if exc.error is None and not required:
            return None
        raise


async def aauthenticate_or_none(
    verifier: TokenVerifier, request: HttpRequest, required: bool,
    scopes: tuple[str, ...] = (), roles: tuple[str, ...] = (),
) -> Claims | None:
    """The async :func:`authenticate_or_none`."""
    try:
        return await verifier.aauthenticate(
            *_credentials(request, verifier), scopes=scopes, roles=roles,
            **dpop_arguments(request),
        )
    except BearerError as exc:
        if exc.error is None and not required:
            return None
        raise


class JotkitMiddleware:
    """Verify the bearer token of every request; the claims go to ``request.auth``.

    A request without any token passes with ``request.auth = None`` (unless
    ``JOTKIT["REQUIRED"]``); a token that is sent must be valid, otherwise the request
    is answered 401/400 per RFC 6750 §3 before any view runs. Works under WSGI and ASGI.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        """Wrap the next handler (Django calls this once per process)."""
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        """Authenticate, then call the next handler (or its coroutine under ASGI)."""
        if self.is_async:
            return self._acall(request)
        verifier = get_verifier()
        try:
            claims = authenticate_or_none(verifier, request, middleware_required())
        except BearerError as exc:
            return bearer_error_response(exc, verifier.realm)
        _set(request, claims)
        return add_dpop_nonce(verifier, request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        verifier = get_verifier()
        try:
            claims = await aauthenticate_or_none(verifier, request, middleware_required())
        except BearerError as exc:
            return bearer_error_response(exc, verifier.realm)
        _set(request, claims)
        response = await cast(Awaitable[Any], self.get_response(request))
        return cast(HttpResponseBase, add_dpop_nonce(verifier, request, response))


def _request_of(args: tuple[Any, ...]) -> HttpRequest:
    for arg in args[:2]:  # a function view (request, ...) or a method (self, request, ...)
        if isinstance(arg, HttpRequest):
            return arg
    raise TypeError("require_token(): the view receives no HttpRequest")


def _grants_of_checked(
    request: HttpRequest, scopes: tuple[str, ...], roles: tuple[str, ...], optional: bool
) -> tuple[bool, Claims | None]:
    """(True, claims) when the middleware already verified this request."""
    checked = getattr(request, _STATE, None)
    if not isinstance(checked, _Checked):
        return False, None
    if checked.claims is None:
        if optional:
            return True, None
        raise _missing()
    check_grants(checked.claims, scopes, roles)
    return True, checked.claims


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
    """Protect a Django view (sync or async) with a bearer access token (RFC 6750, RFC 9068).

    All ``scopes`` and at least one of ``roles`` are required (403
    ``insufficient_scope``, RFC 6750 §3.1). The claims are in ``request.auth``.
    ``optional=True`` lets requests without any token through with
    ``request.auth = None``; a token that is sent must still be valid. ``verifier``
    defaults to the one of ``settings.JOTKIT``; with that default the middleware's
    verification is reused when :class:`JotkitMiddleware` is installed (the decorator
    works without it). Usable bare: ``@require_token``.
    """
    need_scopes = tuple(scopes)
    need_roles = tuple(roles)

    def decorator(view: _F) -> _F:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                request = _request_of(args)
                v = verifier if verifier is not None else get_verifier()
                try:
                    done, claims = (False, None)
                    if verifier is None:
                        done, claims = _grants_of_checked(request, need_scopes, need_roles,
                                                          optional)
                    if not done:
                        claims = await aauthenticate_or_none(v, request, not optional,
                                                             need_scopes, need_roles)
                except BearerError as exc:
                    return bearer_error_response(exc, v.realm)
                _set(request, claims)
                return add_dpop_nonce(v, request, await view(*args, **kwargs))

            return cast(_F, awrapper)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = _request_of(args)
            v = verifier if verifier is not None else get_verifier()
            try:
                done, claims = (False, None)
                if verifier is None:
                    done, claims = _grants_of_checked(request, need_scopes, need_roles, optional)
                if not done:
                    claims = authenticate_or_none(v, request, not optional, need_scopes,
                                                  need_roles)
            except BearerError as exc:
                return bearer_error_response(exc, v.realm)
            _set(request, claims)
            return add_dpop_nonce(v, request, view(*args, **kwargs))

        return cast(_F, wrapper)

    if func is not None:
        return decorator(func)
    return decorator
