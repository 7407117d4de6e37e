"""``/auth/*``: login, refresh, logout, me and sessions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette._utils import get_route_path
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from ..csrf import cookie_names
from ..deps import (
    BEARER_SECURITY,
    authenticate,
    check_csrf,
    client_info,
    csrf_signer,
    require_auth,
    service_dependency,
)
from ..errors import ServiceError, error_response
from ..sessions import AuthService, IssuedTokens, hash_refresh_token
from .models import (
    SESSION_ID,
    ErrorBody,
    LoginRequest,
    MeResponse,
    RefreshRequest,
    SessionItem,
    StatusResponse,
    TokenResponse,
)

__all__ = ["ME_PATH", "ME_ROUTE", "MeRoute", "me", "me_body", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429)
}
router = APIRouter(prefix="/auth", tags=["auth"], responses=_ERRORS)
Claims = Annotated[dict[str, Any], Depends(require_auth)]
Service = Annotated[AuthService, Depends(service_dependency)]
_PRIVATE = {"Cache-Control": "no-store"}


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _token_body(
    request: Request, svc: AuthService, issued: IssuedTokens, response: Response
) -> TokenResponse:
    _no_store(response)
    if not svc.settings.cookie_mode:
        return TokenResponse(
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            refresh_token=issued.refresh_token,
        )
    s = svc.settings
    names = cookie_names(s.cookie_secure)
    csrf = csrf_signer(request).issue(issued.session_id)
    common: dict[str, Any] = {"secure": s.cookie_secure, "samesite": s.cookie_samesite}
    response.set_cookie(
        names.access,
        issued.access_token,
        max_age=issued.expires_in,
        path="/",
        httponly=True,
        **common,
    )
    response.set_cookie(
        names.refresh,
        issued.refresh_token,
        max_age=int(s.refresh_absolute_ttl),
        path=names.refresh_path,
        httponly=True,
        **common,
    )
    response.set_cookie(
        names.csrf,
        csrf,
        max_age=int(s.refresh_absolute_ttl),
        path="/",
        httponly=False,
        **common,
    )
    return TokenResponse(expires_in=issued.expires_in, csrf_token=csrf)


def _clear_cookies(svc: AuthService, response: Response) -> None:
    if not svc.settings.cookie_mode:
        return
    common: dict[str, Any] = {
        "secure": svc.settings.cookie_secure,
        "samesite": svc.settings.cookie_samesite,
    }
    names = cookie_names(svc.settings.cookie_secure)
    response.delete_cookie(names.access, path="/", httponly=True, **common)
    response.delete_cookie(names.refresh, path=names.refresh_path, httponly=True, **common)
    response.delete_cookie(names.csrf, path="/", **common)


# /auth/me is the hot path. ``create_app`` serves GET through :class:`MeRoute`, the
# first route of the app; the FastAPI route below stays registered behind it, so the OpenAPI
# document lists /auth/me with its response model and other methods get the usual 405.
ME_ROUTE: dict[str, Any] = {
    "response_model": MeResponse,
    "openapi_extra": BEARER_SECURITY,
    "summary": "Current user",
    "tags": ["auth"],
    "responses": _ERRORS,
    "methods": ["GET"],
}
ME_PATH = "/auth/me"
_ME_HEADERS = ((b"cache-control", b"no-store"),)  # then content-length, content-type
_JSON = (b"content-type", b"application/json")


def me_body(claims: dict[str, Any]) -> bytes:
    """The ``MeResponse`` JSON of verified access-token claims."""
    return json.dumps(
        {
            "id": claims["sub"],
            "email": claims.get("email"),
            "roles": claims.get("roles", []),
            "session": {
                "id": claims["sid"],
                "authenticated_at": claims.get("auth_time"),
                "token_issued_at": int(claims["iat"]),
                "token_expires_at": int(claims["exp"]),
            },
        },
        separators=(",", ":"),
    ).encode()


async def me(request: Request) -> Response:
    """The user's id, email and roles, and the session of the presented token."""
    claims = await require_auth(request)
    return Response(me_body(claims), media_type="application/json", headers=_PRIVATE)


class MeRoute(BaseRoute):
    """``GET /auth/me`` as a plain ASGI route, ahead of every other route.

    It answers exactly what the FastAPI route :func:`me` answers (same authentication call,
    :func:`~jotkit.server.deps.authenticate`; same body, :func:`me_body`; same headers; a
    :class:`ServiceError` becomes :func:`error_response`, as the app's exception handler
    does, RFC 6750 §3), without FastAPI's per-request work: the ``Request`` object,
    dependency solving, the exit stacks and the exception-handling wrapper. The app's
    middleware (``_Edge``: security headers, status metrics, the last-resort 5xx) wraps it
    as it wraps every route. Other methods (``HEAD`` included: the FastAPI route answers it
    405) do not match it and reach the FastAPI route."""

    path_format = ME_PATH  # the route template, as FastAPI's telemetry reads it

    def __init__(self, service: AuthService) -> None:
        self.service = service

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Full match for an HTTP GET of ``/auth/me`` (below any root path)."""
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and get_route_path(scope) == ME_PATH
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Not reversible by name (the FastAPI route behind it is)."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate the bearer token and send the body, or the RFC 6750 error."""
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            claims = await authenticate(
                self.service, header, lambda: Request(scope, receive, send)
            )
        except ServiceError as exc:
            await error_response(exc)(scope, receive, send)
            return
        body = me_body(claims)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_ME_HEADERS, (b"content-length", str(len(body)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": body})


@router.post(
    "/login",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    summary="Log in with email and password",
)
async def login(
    body: LoginRequest, request: Request, response: Response, svc: Service
) -> TokenResponse:
    """Check the credentials and open a session: a short-lived access JWT (RFC 9068) and
    an opaque refresh token. Failures never reveal whether the email exists; repeated
    failures are throttled (429 with ``Retry-After``)."""
    issued = await svc.login(body.email, body.password, client_info(request))
    return _token_body(request, svc, issued, response)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    summary="Rotate a refresh token",
)
async def refresh(
    request: Request, response: Response, svc: Service, body: RefreshRequest | None = None
) -> TokenResponse:
    """Spend the refresh token and return a new access token and refresh token. Presenting
    a spent token again revokes the whole session (reuse detection). In cookie mode the
    token comes from the refresh cookie and the ``X-CSRF-Token`` header is required."""
    token = body.refresh_token if body is not None else None
    if token is None and svc.settings.cookie_mode:
        token = request.cookies.get(cookie_names(svc.settings.cookie_secure).refresh)
        if token:
            found = await svc.store.sessions.find_refresh(hash_refresh_token(token))
            if found is None:
                raise ServiceError("invalid_grant", "Unknown refresh token.")
            check_csrf(request, found[1].id)  # the CSRF token is bound to this session
    if not token:
        raise ServiceError("invalid_request", "refresh_token is required.")
    issued = await svc.refresh(token, client_info(request))
    return _token_body(request, svc, issued, response)


@router.post(
    "/logout",
    response_model=StatusResponse,
    openapi_extra=BEARER_SECURITY,
    summary="End this session",
)
async def logout(claims: Claims, response: Response, svc: Service) -> StatusResponse:
    """Revoke this session's refresh family and deny-list the presented access token."""
    await svc.logout(claims)
    _no_store(response)
    _clear_cookies(svc, response)
    return StatusResponse(status="logged_out")


@router.post(
    "/logout-all",
    response_model=StatusResponse,
    openapi_extra=BEARER_SECURITY,
    summary="End every session of the user",
)
async def logout_all(claims: Claims, response: Response, svc: Service) -> StatusResponse:
    """Revoke all sessions of the user and reject every access token issued before now."""
    await svc.logout_all(claims)
    _no_store(response)
    _clear_cookies(svc, response)
    return StatusResponse(status="logged_out")


@router.get(
    "/sessions",
    response_model=list[SessionItem],
    openapi_extra=BEARER_SECURITY,
    summary="List active sessions",
)
async def sessions(claims: Claims, svc: Service) -> list[SessionItem]:
    """The user's active sessions (one per login), newest first."""
    families = await svc.list_sessions(claims["sub"])
    return [
        SessionItem(
            id=f.id,
            user_agent=f.user_agent,
            client_ip=f.client_ip,
            created_at=f.created_at,
            last_used_at=f.last_used_at,
            expires_at=min(f.idle_expires_at, f.absolute_expires_at),
            current=f.id == claims["sid"],
        )
        for f in families
    ]


@router.delete(
    "/sessions/{session_id}",
    response_model=StatusResponse,
    openapi_extra=BEARER_SECURITY,
    summary="End one session",
)
async def end_session(
    session_id: Annotated[str, Path(min_length=1, max_length=64, pattern=SESSION_ID)],
    claims: Claims,
    svc: Service,
) -> StatusResponse:
    """Revoke one of the user's sessions and its outstanding access tokens."""
    if not await svc.end_session(claims["sub"], session_id):
        raise ServiceError("not_found", "No such active session.")
    return StatusResponse(status="ended")
