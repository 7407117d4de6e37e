"""The pushed authorization request endpoint, ``POST /oauth/par`` (RFC 9126).

The client authenticates exactly as at the token endpoint (:func:`.routes.client_from_request`,
same methods and throttle; RFC 9126 §2), then its authorization request is validated by the
authorization endpoint's own steps (:func:`.authorize.validate`, nothing checked twice) and
stored under a ``request_uri`` (``urn:ietf:params:oauth:request_uri:`` + 256 random bits,
only its SHA-256 at rest) that lives ``JOTKIT_PAR_TTL`` seconds, is bound to the client and
is spent by its first use at ``/oauth/authorize`` (§4). Answers: 201 with ``request_uri`` and
``expires_in`` (§2.2), or a token-endpoint style error (§2.3).

A ``DPoP`` proof on the push (RFC 9449 §10.1; checked like the token endpoint's, nonce and
replay cache included) binds the authorization code to its key: its thumbprint is stored
as the request's ``dpop_jkt``, and a pushed ``dpop_jkt`` naming another key is refused
(``invalid_dpop_proof``).
"""

from __future__ import annotations

import json
import secrets

from fastapi import APIRouter, Request, Response

from ..deps import service
from ..errors import ServiceError
from ..store.base import ParRecord
from .authorize import REQUEST_URI_PREFIX, AuthzError, PageError, parse_request, validate
from .codes import hash_code
from .dpop import DpopGate
from .routes import client_from_request, read_form

__all__ = ["PAR_PATH", "router"]

PAR_PATH = "/oauth/par"
_CLIENT_AUTH = frozenset({"client_secret", "client_assertion", "client_assertion_type"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"

router = APIRouter(tags=["oauth"])


@router.post(
    PAR_PATH,
    summary="Pushed authorization request endpoint (RFC 9126 §2)",
    response_class=Response,
    status_code=201,
    responses={201: {"description": "request_uri and expires_in (RFC 9126 §2.2)"}},
    openapi_extra={"requestBody": {"required": True, "content": {_FORM: {"schema": {
        "type": "object",
        "properties": {name: {"type": "string"} for name in (
            "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
            "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint",
            "resource", "dpop_jkt", "client_secret", "client_assertion_type", "client_assertion",
        )},
        "required": ["response_type", "redirect_uri", "code_challenge"],
    }}}}},
)
async def pushed_authorization_request(request: Request) -> Response:
    """Validate and store an authorization request; answer its single-use ``request_uri``."""
    svc = service(request)
    form, resources = await read_form(request)
    gate: DpopGate = request.app.state.dpop
    proof = await gate.check(svc, request)  # RFC 9449 §10.1; before client auth (nonce retry)
    client = await client_from_request(request, form, PAR_PATH)
    if "request_uri" in form:  # RFC 9126 §2.1
        raise ServiceError("invalid_request", "request_uri must not be pushed.")
    form.setdefault("client_id", client.client_id)
    if proof is not None:  # RFC 9449 §10.1: the proof's key is the binding
        if form.get("dpop_jkt") and form["dpop_jkt"] != proof.jkt:
            raise ServiceError("invalid_dpop_proof", "dpop_jkt does not match the key of the "
                               "DPoP proof (RFC 9449 §10.1).")
        form["dpop_jkt"] = proof.jkt
    pairs = [(k, v) for k, v in form.items() if k not in _CLIENT_AUTH]
    pairs += [("resource", r) for r in resources]
    try:
        params = parse_request(pairs)
        if params.get("client_id") != [client.client_id]:
            raise PageError("client_id differs from the authenticated client.")
        req = await validate(svc, params, pushed=True)
    except PageError as exc:
        raise ServiceError("invalid_request", exc.description) from None
    except AuthzError as exc:
        raise ServiceError(exc.error, exc.description) from None
    now = svc.clock.now()
    ttl = svc.settings.par_ttl
    request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    await svc.store.par.create(
        ParRecord(hash_code(request_uri), client.client_id, req.raw, now, now + ttl)
    )
    svc.audit.event("par_pushed", client_id=client.client_id)
    body = {"request_uri": request_uri, "expires_in": int(ttl)}
    headers = dict(_NO_STORE)
    if proof is not None:
        headers.update(gate.response_headers(now))
    return Response(
        json.dumps(body, separators=(",", ":")), status_code=201,
        media_type="application/json", headers=headers,
    )
