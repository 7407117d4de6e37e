"""``/auth/*``: login, refresh, logout, me and sessions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from ..csrf import cookie_names
from ..deps import (
    BEARER_SECURITY,
    check_csrf,
    client_info,
    csrf_signer,
    require_auth,
    service_dependency,
)
from ..errors import ServiceError
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

__all__ = ["router"]

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


# /auth/me is the hot path: ``create_app`` registers it directly on the app, ahead of the
# included routers (an included router adds a second round of route matching per request).
ME_ROUTE: dict[str, Any] = {
    "response_model": MeResponse,
    "openapi_extra": BEARER_SECURITY,
    "summary": "Current user",
    "tags": ["auth"],
    "responses": _ERRORS,
    "methods": ["GET"],
}


async def me(request: Request) -> Response:
    """The user's id, email and roles, and the session of the presented token."""
    # Hot path: authenticate without a sub-dependency and serialise directly (the response
    # model above documents the shape); both save FastAPI work on every request.
    claims = await require_auth(request)
    body = {
        "id": claims["sub"],
        "email": claims.get("email"),
        "roles": claims.get("roles", []),
        "session": {
            "id": claims["sid"],
            "authenticated_at": claims.get("auth_time"),
            "token_issued_at": int(claims["iat"]),
            "token_expires_at": int(claims["exp"]),
        },
    }
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        media_type="application/json",
        headers=_PRIVATE,
    )


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
