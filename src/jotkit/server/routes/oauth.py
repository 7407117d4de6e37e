"""``/oauth/revoke`` (RFC 7009) and ``/oauth/introspect`` (RFC 7662)."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Form, Request, Response

from ..deps import service
from ..errors import ServiceError
from .models import ErrorBody

__all__ = ["router"]

router = APIRouter(
    prefix="/oauth",
    tags=["oauth"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 413, 422)},
)
TokenField = Annotated[str, Form(min_length=1, max_length=16384)]
HintField = Annotated[str | None, Form(max_length=64)]


@router.post("/revoke", summary="Revoke a token (RFC 7009)")
async def revoke(
    request: Request, token: TokenField, token_type_hint: HintField = None
) -> Response:
    """Revoke a refresh token (its whole session) or an access token (deny-listed until it
    expires). Invalid or unknown tokens also get 200, as RFC 7009 §2.2 requires."""
    await service(request).revoke_token(token, token_type_hint)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


def _authenticate_client(request: Request) -> str:
    """HTTP Basic client authentication (RFC 6749 §2.3.1) against configured clients."""
    svc = service(request)
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise ServiceError("invalid_client", "HTTP Basic client authentication is required.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ServiceError("invalid_client", "Malformed Basic credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    ok = False
    for known_id, known_secret in svc.settings.introspection_clients:
        id_ok = secrets.compare_digest(known_id.encode(), client_id.encode())
        secret_ok = secrets.compare_digest(known_secret.encode(), secret.encode())
        ok |= bool(sep) and id_ok and secret_ok
    if not ok:
        raise ServiceError("invalid_client")
    return client_id


@router.post(
    "/introspect",
    summary="Introspect a token (RFC 7662)",
    openapi_extra={"security": [{"clientBasic": []}]},
)
async def introspect(
    request: Request, token: TokenField, token_type_hint: HintField = None
) -> dict[str, Any]:
    """For resource servers (HTTP Basic client credentials): whether the token is active
    right now (signature, expiry, deny-list, revoked-before marker) and its claims."""
    _authenticate_client(request)
    result = await service(request).introspect(token, token_type_hint)
    return result
