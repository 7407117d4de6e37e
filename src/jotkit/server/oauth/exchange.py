"""Token exchange (RFC 8693): a service that received a user's access token gets a narrower
token for another service, on the user's behalf (delegation, §1.1).

The grant ``urn:ietf:params:oauth:grant-type:token-exchange`` (§2.1) takes:

* ``subject_token`` (type ``urn:ietf:params:oauth:token-type:access_token``): an access token
  this server issued, verified in full (signature, ``typ``, ``iss``, ``exp``, withdrawn keys,
  deny-list, the user's revoked-before marker), bound to a user session, and meant for the
  authenticated client: its ``aud`` names the client's ``client_id`` or registered audience,
  or it was issued to the client itself;
* optionally ``actor_token`` (same type): a client-credentials token of the authenticated
  client, or of a client its policy lists in ``exchange_actors``;
* ``audience`` (once) and ``resource`` (repeatable, RFC 8707): the targets, each one of the
  client's ``exchange_audiences`` (else ``invalid_target``, §2.2.2);
* ``scope``: no wider than the subject token's scope and the client's ``exchange_scopes``
  (else ``invalid_scope``); absent: that intersection.

The issued token is an RFC 9068 access token for the targets with the subject's ``sub``,
``sid`` and ``auth_time``, ``client_id`` the exchanging client, an ``exp`` no later than the
subject's, and an ``act`` claim naming the actor (§4.1), the subject's own ``act`` nested
inside it (a delegation chain). It is recorded for the subject's refresh family, so logging
out the session, logging out everywhere, ``users disable`` or a refresh-token reuse
deny-lists it with the subject token, at this server and on the revocation feed. Invalid or
unacceptable subject and actor tokens are ``invalid_request`` (§2.2.2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ServiceError
from ..store.base import AccessTokenRecord
from .clients import TOKEN_EXCHANGE, ClientRecord
from .dpop import token_type
from .grants import TokenRequest, parse_scope
from .tokens import access_token_claims, sign_access_token, verify_access_token

__all__ = ["ACCESS_TOKEN_TYPE", "MAX_ACT_DEPTH", "TOKEN_EXCHANGE", "exchange_token"]

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 §3
MAX_ACT_DEPTH = 5  # actors in one chain (the new one included)
_MAX_TARGET = 2000


def _bad(description: str) -> ServiceError:
    return ServiceError("invalid_request", description)


async def _verified(req: TokenRequest, token: str, name: str) -> dict[str, Any]:
    """A token of this server, verified as at its own endpoints (RFC 8693 §2.2.2: invalid
    for any reason is ``invalid_request``)."""
    if len(token) > 16384:
        raise _bad(f"The {name} is too large.")
    try:
        return await verify_access_token(req.service, token)
    except ServiceError as exc:
        raise _bad(f"The {name} is not a valid access token of this server ({exc.code}).") \
            from None


def _token_type(form: Mapping[str, str], name: str) -> None:
    value = form.get(name)
    if not value:
        raise _bad(f"The {name} parameter is required.")
    if value != ACCESS_TOKEN_TYPE:
        raise _bad(f"{name} must be {ACCESS_TOKEN_TYPE}.")


def _aud(claims: dict[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    return (aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str))


def _meant_for(client: ClientRecord, subject: dict[str, Any]) -> bool:
    """Whether the subject token was issued for the exchanging client (RFC 8693 §5: the
    server decides whether the client may use the subject token): its ``aud`` names the
    client's ``client_id`` or explicitly registered audience, or it was issued to it."""
    own = {client.client_id, *((client.default_audience,) if client.default_audience else ())}
    return subject.get("client_id") == client.client_id or not own.isdisjoint(_aud(subject))


def _targets(req: TokenRequest) -> tuple[str, ...]:
    """The ``audience`` and ``resource`` values (RFC 8693 §2.1), each allowed by policy."""
    audience = req.form.get("audience")
    requested = [*req.resources, *((audience,) if audience is not None else ())]
    if not requested:
        raise _bad("Name the target service with audience or resource (RFC 8693 §2.1).")
    allowed = req.client.exchange_audiences
    for target in requested:
        if not target or len(target) > _MAX_TARGET or target not in allowed:
            raise ServiceError(
                "invalid_target", f"This client may not exchange tokens for {target[:80]!r}."
            )
    return tuple(dict.fromkeys(requested))


def _scope(req: TokenRequest, subject: dict[str, Any]) -> tuple[str, ...]:
    """The requested scope within the subject's scope and the client's policy; absent: that
    intersection (RFC 6749 §3.3 via RFC 8693 §2.1)."""
    held = str(subject.get("scope") or "").split()
    policy = req.client.exchange_scopes
    allowed = [s for s in held if not policy or s in policy]
    requested = parse_scope(req.form.get("scope"))
    if requested is None:
        return tuple(allowed)
    wider = [s for s in requested if s not in allowed]
    if wider:
        raise ServiceError(
            "invalid_scope", f"Scope {wider[0][:80]!r} exceeds the subject token or policy."
        )
    return requested


async def _actor(req: TokenRequest) -> str:
    """The acting party (RFC 8693 §4.1): the ``sub`` of a verified ``actor_token`` that is a
    client-credentials token of this client or of one its policy allows; without an actor
    token, the authenticated client itself."""
    form, client = req.form, req.client
    token = form.get("actor_token")
    if token is None:
        if "actor_token_type" in form:  # §2.1: only with an actor_token
            raise _bad("actor_token_type must not be sent without an actor_token.")
        return client.client_id
    if not token:
        raise _bad("The actor_token parameter is empty.")
    _token_type(form, "actor_token_type")
    claims = await _verified(req, token, "actor_token")
    actor = claims["sub"]
    if actor != claims["client_id"] or "sid" in claims:
        raise _bad("The actor_token must be a client-credentials token of the actor.")
    if actor != client.client_id and actor not in client.exchange_actors:
        raise _bad("This client may not act for the actor_token's client.")
    return str(actor)


def _act(actor: str, subject: dict[str, Any]) -> dict[str, Any]:
    """The ``act`` claim (RFC 8693 §4.1): the current actor, the subject's prior ``act``
    nested inside it (informational only, §4.1)."""
    act: dict[str, Any] = {"sub": actor}
    prior = subject.get("act")
    if prior is None:
        return act
    depth, node = 1, prior
    while isinstance(node, dict):
        depth += 1
        node = node.get("act")
    if not isinstance(prior, dict) or node is not None:
        raise _bad("The subject token's act claim is malformed.")
    if depth > MAX_ACT_DEPTH:
        raise _bad(f"The delegation chain is too long (at most {MAX_ACT_DEPTH} actors).")
    act["act"] = prior
    return act


async def exchange_token(req: TokenRequest) -> dict[str, Any]:
    """RFC 8693 §2.1-§2.2: exchange a user's access token for a narrower one for another
    service, naming the actor in ``act``; the response carries ``issued_token_type``."""
    svc, client, form = req.service, req.client, req.form
    if client.auth_method == "none":
        raise ServiceError("unauthorized_client", "Public clients cannot exchange tokens.")
    subject_token = form.get("subject_token")
    if not subject_token:
        raise _bad("The subject_token parameter is required.")
    _token_type(form, "subject_token_type")
    requested_type = form.get("requested_token_type")
    if requested_type is not None and requested_type != ACCESS_TOKEN_TYPE:
        raise _bad(f"Only {ACCESS_TOKEN_TYPE} can be issued.")
    targets = _targets(req)
    subject = await _verified(req, subject_token, "subject_token")
    sid = subject.get("sid")
    if not isinstance(sid, str):
        raise _bad("The subject_token is not bound to a user session.")
    if not _meant_for(client, subject):
        raise _bad("The subject_token was not issued for this client.")
    scope = _scope(req, subject)
    actor = await _actor(req)
    act = _act(actor, subject)
    bound = await svc.store.sessions.access_token(subject["jti"])
    if bound is None or bound.user_id != subject["sub"]:
        raise _bad("The subject_token is not bound to a user session.")
    now = svc.clock.now()
    exp = min(float(int(now) + int(svc.settings.access_ttl)), float(subject["exp"]))
    claims = access_token_claims(
        svc, sub=subject["sub"], client_id=client.client_id, audience=targets, scope=scope,
        now=now, exp=exp, sid=sid, auth_time=_auth_time(subject), jkt=req.dpop_jkt,
    )
    claims["act"] = act
    # recorded for the subject's family first: a revoked session records nothing
    if not await svc.store.sessions.record_access_token(
        AccessTokenRecord(claims["jti"], bound.family_id, subject["sub"], float(claims["exp"]))
    ):
        raise _bad("The subject_token's session has been revoked.")
    access = sign_access_token(svc, claims, now)
    svc.audit.event("token_exchanged", client_id=client.client_id, user_id=subject["sub"],
                    session_id=bound.family_id, actor=actor)
    return _response(access, claims["exp"] - claims["iat"], scope, req.dpop_jkt)


def _auth_time(subject: dict[str, Any]) -> float | None:
    value = subject.get("auth_time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _response(
    access: str, expires_in: int, scope: Sequence[str], jkt: str | None
) -> dict[str, Any]:
    """RFC 8693 §2.2.1: ``access_token``, ``issued_token_type``, ``token_type`` (``DPoP`` when
    the request's proof bound the token, RFC 9449 §5), ``expires_in`` and ``scope``."""
    body: dict[str, Any] = {
        "access_token": access,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": token_type(jkt),
        "expires_in": expires_in,
    }
    if scope:
        body["scope"] = " ".join(scope)
    return body
