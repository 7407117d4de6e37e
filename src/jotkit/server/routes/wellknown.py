"""``/.well-known/*``: the JWK Set (RFC 7517 §5) and server metadata (RFC 8414 §2, OpenID
Connect Discovery 1.0 §3); the first-party ``/auth/*`` endpoints are listed as extensions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from ..deps import service
from ..oauth.discovery import provider_metadata

__all__ = ["router"]

router = APIRouter(tags=["discovery"])


@router.get(
    "/.well-known/jwks.json",
    summary="Public signing keys (JWK Set)",
    response_class=Response,
    responses={
        200: {
            "description": "The JWK Set (RFC 7517 §5)",
            "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
        },
        304: {"description": "Not modified (``If-None-Match``)"},
    },
)
async def jwks(request: Request) -> Response:
    """Every key that may have signed a still-valid token, plus a key about to start
    signing. Cacheable for ``jwks_max_age`` seconds (``Cache-Control``, ``ETag``)."""
    svc = service(request)
    now = svc.clock.now()
    doc = svc.keyring.jwks(now)
    if svc.id_keyring is not svc.keyring:  # the RS256 ID-token keys (docs/oauth.md)
        doc = {"keys": [*doc["keys"], *svc.id_keyring.jwks(now)["keys"]]}  # type: ignore[misc]
    body = json.dumps(doc, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": f"public, max-age={svc.settings.jwks_max_age}",
        "ETag": etag,
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/jwk-set+json", headers=headers)


def _metadata(request: Request) -> dict[str, Any]:
    svc = service(request)
    base = svc.issuer
    return {
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "login_endpoint": f"{base}/auth/login",
        "refresh_endpoint": f"{base}/auth/refresh",
        "logout_endpoint": f"{base}/auth/logout",
        "me_endpoint": f"{base}/auth/me",
        "sessions_endpoint": f"{base}/auth/sessions",
        "token_types_supported": ["at+jwt"],
        "audience": svc.settings.audience,
    } | provider_metadata(svc) | (
        {"service_documentation": f"{base}/docs"} if svc.settings.docs else {}
    )


@router.get("/.well-known/openid-configuration", summary="Server metadata")
async def openid_configuration(request: Request) -> Response:
    """Issuer, JWKS URI, endpoints and algorithms (OpenID Discovery-style)."""
    return _json_cached(request, _metadata(request))


@router.get("/.well-known/oauth-authorization-server", summary="Server metadata (RFC 8414)")
async def oauth_metadata(request: Request) -> Response:
    """The same document at the RFC 8414 location."""
    return _json_cached(request, _metadata(request))


def _json_cached(request: Request, doc: dict[str, Any]) -> Response:
    svc = service(request)
    return Response(
        json.dumps(doc, separators=(",", ":")),
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={svc.settings.jwks_max_age}"},
    )
