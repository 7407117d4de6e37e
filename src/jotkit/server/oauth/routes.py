"""``POST /oauth/token`` (RFC 6749 §3.2) and ``/oauth/userinfo`` (OpenID Connect Core §5.3).

The token endpoint runs three steps: parse the form (``application/x-www-form-urlencoded``,
no repeated parameter except ``resource``, RFC 6749 §3.2 / RFC 8707 §2), authenticate the
client (:func:`.clients.authenticate`; failures throttled per address like the other
``/oauth/*`` endpoints), then look the grant up in :data:`.grants.GRANTS`. Errors are RFC 6749
§5.2 objects rendered by the service's one error table.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from ..deps import client_info, service
from ..errors import ServiceError
from ..routes.models import ErrorBody
from ..routes.oauth import basic_credentials
from ..throttle import ClientAuthThrottle
from .clients import (
    DEVICE_CODE_GRANT,
    ClientAuthError,
    ClientCache,
    ClientRecord,
    authenticate,
)
from .dpop import DpopGate
from .grants import GRANTS, TokenRequest
from .tokens import verify_access_token

__all__ = ["ClientCache", "client_from_request", "read_form", "router"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorBody} for c in (400, 401, 413, 415, 429, 503)
}
_MULTI = frozenset({"resource"})
_FORM = "application/x-www-form-urlencoded"

router = APIRouter(prefix="/oauth", tags=["oauth"], responses=_ERRORS)


async def read_form(request: Request) -> tuple[dict[str, str], tuple[str, ...]]:
    """The form parameters (single-valued) and the ``resource`` values (RFC 8707 §2).

    400 ``invalid_request`` for another content type, bad UTF-8, NUL characters or a repeated
    parameter (RFC 6749 §3.2)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != _FORM:
        raise ServiceError("invalid_request", f"Use Content-Type: {_FORM}.")
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          errors="strict", max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise ServiceError("invalid_request", "The form body is not valid.") from None
    form: dict[str, str] = {}
    resources: list[str] = []
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise ServiceError("invalid_request", "Parameters must not contain NUL characters.")
        if name in _MULTI:
            resources.append(value)
            continue
        if name in form:
            raise ServiceError("invalid_request", f"The {name} parameter is repeated.")
        form[name] = value
    return form, tuple(resources)


async def client_from_request(
    request: Request, form: dict[str, str], endpoint: str = "/oauth/token"
) -> ClientRecord:
    """Authenticate the registered client of an ``/oauth/*`` request (RFC 6749 §2.3); 401
    ``invalid_client`` with a Basic challenge on failure, 429 past the throttle. A client
    assertion's ``aud`` may be the issuer, the token endpoint or ``endpoint`` (RFC 9126 §2)."""
    svc = service(request)
    s = svc.settings
    throttle = ClientAuthThrottle(
        svc.store.rate_limits, limit=s.client_auth_limit, window=s.client_auth_window,
        clear=request.app.state.client_auth_clear,
    )
    ip, now = client_info(request).ip, svc.clock.now()
    await throttle.check(ip, now)
    header = request.headers.get("authorization")
    basic = basic_credentials(header) if header is not None else None
    if header is not None and basic is None:
        await throttle.failed(ip, now)
        raise ServiceError("invalid_client", "The Authorization header is not HTTP Basic.")
    base = svc.issuer
    try:
        return await authenticate(
            svc,
            basic=basic,
            form=form,
            endpoints=tuple(dict.fromkeys((f"{base}/oauth/token", base, base + endpoint))),
            jwks_clients=request.app.state.oauth_jwks,
            cache=request.app.state.oauth_clients,
        )
    except ClientAuthError as exc:
        await throttle.failed(ip, now)
        svc.audit.event("client_auth_failed", reason=exc.reason, ip=ip)
        raise ServiceError("invalid_client", exc.description) from None


@router.post(
    "/token",
    summary="Token endpoint (RFC 6749 §3.2)",
    response_class=Response,
    responses={200: {"description": "Access token response (RFC 6749 §5.1)"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_FORM: {"schema": {"type": "object", "properties": {
                "grant_type": {"type": "string",
                               "enum": ["authorization_code", "refresh_token",
                                        "client_credentials", DEVICE_CODE_GRANT]},
                "device_code": {"type": "string"},
                "code": {"type": "string"}, "redirect_uri": {"type": "string"},
                "code_verifier": {"type": "string"}, "refresh_token": {"type": "string"},
                "scope": {"type": "string"}, "resource": {"type": "string"},
                "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                "client_assertion_type": {"type": "string"},
                "client_assertion": {"type": "string"},
            }, "required": ["grant_type"]}}},
        }
    },
)
async def token(request: Request) -> Response:
    """Exchange a grant for tokens: ``authorization_code`` (PKCE S256 required),
    ``refresh_token`` (rotated; bound to its client) or ``client_credentials``."""
    form, resources = await read_form(request)
    svc = service(request)
    gate: DpopGate = request.app.state.dpop
    proof = await gate.check(svc, request)  # RFC 9449 §5: before client auth (nonce retry)
    client = await client_from_request(request, form)
    if proof is None and client.dpop_bound_access_tokens:
        raise ServiceError("invalid_dpop_proof", "This client must use DPoP (RFC 9449 §5.2).")
    grant_type = form.get("grant_type")
    if not grant_type:
        raise ServiceError("invalid_request", "The grant_type parameter is required.")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise ServiceError("unsupported_grant_type", f"Unsupported grant_type {grant_type[:40]!r}.")
    if grant_type not in client.grant_types:
        raise ServiceError("unauthorized_client", f"This client may not use {grant_type}.")
    body = await grant(
        TokenRequest(svc, client, form, resources, client_info(request),
                     dpop_jkt=None if proof is None else proof.jkt)
    )
    headers = dict(_NO_STORE)
    if proof is not None:
        headers.update(gate.response_headers(svc.clock.now()))
    return Response(
        json.dumps(body, separators=(",", ":")),
        media_type="application/json",
        headers=headers,
    )


async def _bearer(request: Request) -> tuple[str, bool]:
    """The access token and whether it came with the DPoP scheme (RFC 9449 §7.1)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        kind = scheme.lower()
        if kind not in ("bearer", "dpop") or not value.strip() or " " in value.strip():
            raise ServiceError("missing_token", "Use the Bearer or DPoP authentication scheme.")
        return value.strip(), kind == "dpop"
    if request.method == "POST":  # RFC 6750 §2.2 form-encoded body parameter
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == _FORM:
            form, _ = await read_form(request)
            if form.get("access_token"):
                return form["access_token"], False
    raise ServiceError("missing_token")


async def _sender_constrained(request: Request, token: str, dpop: bool,
                              claims: dict[str, Any]) -> None:
    """RFC 9449 §7.1: a token bound to a key (``cnf.jkt``) needs the DPoP scheme and a proof
    of that key for this request (``ath``); the DPoP scheme needs a bound token."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not dpop:
        if jkt is not None:
            raise ServiceError("dpop_invalid_token", "This token is DPoP-bound: use the DPoP "
                               "scheme with a proof (RFC 9449 §7.2).")
        return
    if not isinstance(jkt, str):
        raise ServiceError("dpop_invalid_token", "The token is not bound to a DPoP key.")
    gate: DpopGate = request.app.state.dpop
    if await gate.check(service(request), request, access_token=token, jkt=jkt,
                        resource=True) is None:
        raise ServiceError("dpop_invalid_proof", "The DPoP header is required (RFC 9449 §7.1).")


async def _userinfo(request: Request) -> Response:
    svc = service(request)
    token, dpop = await _bearer(request)
    try:
        claims = await verify_access_token(svc, token)
    except ServiceError as exc:
        if dpop and exc.spec.error == "invalid_token":  # answer in the scheme used (§7.1)
            raise ServiceError("dpop_invalid_token", exc.description) from None
        raise
    await _sender_constrained(request, token, dpop, claims)
    scope = str(claims.get("scope", "")).split()
    if "openid" not in scope or claims["sub"] == claims.get("client_id"):
        raise ServiceError("insufficient_scope", "The token was not granted the openid scope.")
    user = await svc.store.users.get(claims["sub"])
    if user is None or user.disabled:
        raise ServiceError("invalid_token", "The user no longer exists.")
    body: dict[str, Any] = {"sub": user.id}
    if "email" in scope:
        body["email"] = user.email
        body["email_verified"] = False  # jotkit does not verify addresses
    if "profile" in scope:
        body["updated_at"] = int(user.created_at)  # the only profile claim jotkit holds
    return Response(
        json.dumps(body, separators=(",", ":")), media_type="application/json",
        headers=_NO_STORE,
    )


async def userinfo(request: Request) -> Response:
    """Claims about the user of a bearer or DPoP access token (GET or POST; with POST a bearer
    token may also come as the ``access_token`` form parameter, RFC 6750 §2.2; a DPoP-bound
    token needs ``Authorization: DPoP`` and a proof, RFC 9449 §7.1), by granted scope:
    ``sub`` always, ``email`` and ``email_verified`` with ``email``, ``updated_at`` with
    ``profile`` (OpenID Connect Core §5.3)."""
    return await _userinfo(request)


# One route serves both methods, so a 405 lists both in ``Allow`` (RFC 9110 §15.5.6). The
# OpenAPI document gets one operation per method, each with its own operationId, from two
# schema-only routes behind it: the first route matches every GET and POST, so they never run.
router.add_api_route("/userinfo", userinfo, methods=["GET", "POST"], include_in_schema=False)
for _method in ("GET", "POST"):
    router.add_api_route(
        "/userinfo",
        userinfo,
        methods=[_method],
        operation_id=f"userinfo_{_method.lower()}",
        summary="UserInfo (OpenID Connect Core §5.3)",
        response_class=Response,
        responses={200: {"description": "The user's claims (JSON)"}},
        openapi_extra={"security": [{"bearerAuth": []}]},
    )
