"""``/oauth/revoke`` (RFC 7009) and ``/oauth/introspect`` (RFC 7662).

Both are for confidential clients (the resource servers in ``JOTKIT_INTROSPECTION_CLIENTS``).
Each request runs three steps in this order: authenticate the client (RFC 6749 §2.3.1, HTTP
Basic; 401 ``invalid_client`` with a ``Basic`` challenge, failures throttled per address),
validate the form (400 ``invalid_request``, RFC 6749 §5.2), then act. ``token_type_hint`` only
orders the search (RFC 7009 §2.1, RFC 7662 §2.1).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from ..deps import client_info, service
from ..errors import ServiceError, describe_validation
from ..throttle import ClientAuthThrottle
from .models import NO_NUL, ErrorBody, IntrospectionResponse

__all__ = ["router"]


class _OAuthRoute(APIRoute):
    """A malformed form is 400 ``invalid_request`` (RFC 6749 §5.2), not FastAPI's 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler to turn validation errors into OAuth errors."""
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise ServiceError("invalid_request", describe_validation(exc)[1]) from None

        return run


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` value (RFC 6749 §2.3.1:
    both form-urlencoded, then joined by ``:``), or ``None`` when it is not well formed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip().encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(request: Request) -> str:
    """Authenticate the calling client before anything else (RFC 6749 §2.3.1); return its id.

    Callers are the resource servers of ``JOTKIT_INTROSPECTION_CLIENTS`` (HTTP Basic) or
    registered OAuth clients with their registered method (``docs/oauth.md``; public clients
    only for revocation of their own tokens, RFC 7009 §2.1). Failed attempts count against
    the client address (RFC 6749 §10.10: guessing); past the limit the answer is 429 with
    ``Retry-After`` whatever the credentials."""
    svc = service(request)
    header = request.headers.get("authorization")
    s = svc.settings
    credentials = basic_credentials(header) if header is not None else None
    ok = False
    if credentials is not None:
        client_id, secret = (c.encode("utf-8", "surrogatepass") for c in credentials)
        for known_id, known_secret in s.introspection_clients:
            id_ok = secrets.compare_digest(known_id.encode(), client_id)
            secret_ok = secrets.compare_digest(known_secret.encode(), secret)
            ok |= id_ok and secret_ok
    if ok:
        throttle = ClientAuthThrottle(
            svc.store.rate_limits, limit=s.client_auth_limit, window=s.client_auth_window,
            clear=request.app.state.client_auth_clear,
        )
        await throttle.check(client_info(request).ip, svc.clock.now())
        assert credentials is not None
        request.state.oauth_client = None
        return credentials[0]
    from ..oauth.routes import client_from_request

    form: dict[str, str] = {}
    try:  # FastAPI parsed (and cached) the form for the route's parameters
        items = (await request.form()).multi_items()
    except Exception:  # not a form: the route's validation answers
        items = []
    for name, value in items:
        if isinstance(value, str) and name not in form:
            form[name] = value
        else:  # a repeated parameter or a file: no client credentials from this form
            form = {}
            break
    client = await client_from_request(request, form)  # 401 invalid_client / 429
    if client.auth_method == "none" and request.url.path.endswith("/introspect"):
        raise ServiceError("invalid_client", "Public clients cannot introspect tokens.")
    request.state.oauth_client = client
    return client.client_id


Client = Annotated[str, Depends(authenticate_client)]
TokenField = Annotated[str, Form(min_length=1, max_length=16384, pattern=NO_NUL)]
HintField = Annotated[str | None, Form(max_length=64, pattern=NO_NUL)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorBody} for c in (400, 401, 413, 415, 429, 431, 503)
}
router = APIRouter(
    prefix="/oauth",
    tags=["oauth"],
    route_class=_OAuthRoute,
    responses=_ERRORS,
)
_BASIC: dict[str, Any] = {"security": [{"clientBasic": []}]}


@router.post(
    "/revoke",
    summary="Revoke a token (RFC 7009)",
    openapi_extra=_BASIC,
    response_class=Response,
    responses={200: {"description": "Revoked, or not a valid token (RFC 7009 §2.2)",
                     "content": {}}},
)
async def revoke(
    request: Request, _client: Client, token: TokenField, token_type_hint: HintField = None
) -> Response:
    """Revoke a refresh token (its whole session) or an access token (deny-listed until it
    expires), whatever ``token_type_hint`` says. Invalid or unknown tokens also get 200, as
    RFC 7009 §2.2 requires."""
    svc = service(request)
    client = request.state.oauth_client
    if token.count(".") == 2:  # an access token: of any audience this server issued
        from ..oauth.tokens import verify_access_token

        try:
            claims = await verify_access_token(svc, token)
        except ServiceError:
            claims = None
        if claims is not None and (client is None or claims.get("client_id") == client.client_id):
            await svc.deny_access_token(claims)
    elif client is None or await svc.refresh_token_client(token) == client.client_id:
        await svc.revoke_token(token, token_type_hint)  # RFC 7009 §2.1: only its own tokens
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


_INTROSPECT_FORM: dict[str, Any] = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object",
        "properties": {
            "token": {"type": "string", "minLength": 1, "maxLength": 16384, "pattern": NO_NUL},
            "token_type_hint": {"type": "string", "maxLength": 64, "pattern": NO_NUL},
        },
        "required": ["token"],
    }}},
}
_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "roles", "sid", "scope",
           "auth_time", "act", "cnf")


@router.post(
    "/introspect",
    summary="Introspect a token (RFC 7662)",
    openapi_extra={**_BASIC, "requestBody": _INTROSPECT_FORM},
    response_class=Response,
    responses={200: {"model": IntrospectionResponse,
                     "description": "RFC 7662 §2.2 introspection response"}},
)
async def introspect(request: Request) -> Response:
    """Whether the token is active right now (signature, expiry, deny-list, revoked-before
    marker) and its claims (RFC 7662 §2.2); ``{"active": false}`` for anything else.

    The hot path of resource servers: the form is read by :func:`.oauth.routes.read_form`
    (no repeated parameter, RFC 6749 §3.2) and the answer serialised directly, without
    FastAPI's form and response-model machinery."""
    # read (and cache) the body first: authenticate_client parses the form through
    # request.form(), which would otherwise consume the stream before read_form
    raw = await request.body()
    await authenticate_client(request)
    from ..oauth.routes import read_form

    form = (await read_form(request))[0] if raw else {}  # empty: no token
    token = form.get("token")
    if not token:
        raise ServiceError("invalid_request", "The token parameter is required.")
    hint = form.get("token_type_hint")
    if len(token) > 16384 or (hint is not None and len(hint) > 64):
        raise ServiceError("invalid_request", "token or token_type_hint is too long.")
    svc = service(request)
    body: dict[str, Any]
    if token.count(".") == 2:  # access tokens of every audience this server issues
        from ..oauth.tokens import verify_access_token

        try:
            claims = await verify_access_token(svc, token)
        except ServiceError:
            claims = None
        if claims is None:
            body = {"active": False}
        else:
            # RFC 9449 §6.2: a DPoP-bound token says so (and carries ``cnf``)
            body = {"active": True, "token_type": "DPoP" if "cnf" in claims else "access_token"}
            body.update((k, claims[k]) for k in _CLAIMS if claims.get(k) is not None)
            if claims.get("email") is not None:
                body["username"] = claims["email"]
    else:
        body = await svc.introspect(token, hint)
    return Response(
        json.dumps(body, separators=(",", ":")), media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
