"""``/.well-known/*``: the JWK Set (RFC 7517 §5) and server metadata (RFC 8414 §2)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from ..deps import service

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
    body = json.dumps(svc.keyring.jwks(svc.clock.now()), separators=(",", ":")).encode()
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
        "userinfo_endpoint": f"{base}/auth/me",
        "sessions_endpoint": f"{base}/auth/sessions",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        "introspection_endpoint": f"{base}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "access_token_signing_alg_values_supported": list(svc.keyring.algorithms(svc.clock.now())),
        "token_types_supported": ["at+jwt"],
        "audience": svc.settings.audience,
    } | ({"service_documentation": f"{base}/docs"} if svc.settings.docs else {})


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
