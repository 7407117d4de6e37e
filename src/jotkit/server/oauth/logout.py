"""Ending SSO sessions: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and
back-channel logout (OpenID Connect Back-Channel Logout 1.0).

:func:`end_sso_session` is the one path: it marks the session ended, revokes the refresh
families issued in it, and queues a logout token for each client that took part in it and
registered a ``backchannel_logout_uri``. Deliveries are persisted (``backchannel_deliveries``)
and sent at once by a background task; a failed POST is retried with a bounded exponential
backoff (1 s, 2 s, 4 s ... at most 5 min, at most :data:`MAX_ATTEMPTS` attempts) by the
service's background loop, on whichever instance gets there first (a compare-and-set claim).
Metrics: ``jotkit_backchannel_logout_total{result="delivered"|"retry"|"failed"}``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

import jotkit

from ..sessions import ID_TOKEN_ALG, AuthService
from ..store.sso import DeliveryRecord
from . import sso
from .clients import ClientRecord
from .pages import form_fields, message_page, page_response

__all__ = [
    "BACKCHANNEL_EVENT",
    "MAX_ATTEMPTS",
    "deliver_due",
    "end_sso_session",
    "id_token_hint_claims",
    "logout_token",
    "router",
]

_log = logging.getLogger("jotkit.server.oauth")
router = APIRouter(include_in_schema=False)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_ATTEMPTS = 6
MAX_BACKOFF = 300.0
LOGOUT_TOKEN_TTL = 120
_TIMEOUT = 5.0
_tasks: set[asyncio.Task[None]] = set()  # strong references to running delivery tasks


def backoff(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4, ... <= 300."""
    return float(min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1)))


def logout_token(svc: AuthService, client: ClientRecord, sub: str, sid: str, now: float) -> str:
    """A Logout Token (Back-Channel Logout 1.0 §2.4): ``typ: logout+jwt``, ``iss``, ``aud``,
    ``iat``, ``exp``, ``jti``, ``sub``, ``sid`` and the ``events`` claim; never a ``nonce``."""
    return jotkit.encode(
        {"sid": sid, "events": {BACKCHANNEL_EVENT: {}}},
        _id_token_key(svc, client, now),
        issuer=svc.issuer,
        audience=client.client_id,
        subject=sub,
        expires_in=LOGOUT_TOKEN_TTL,
        jti=secrets.token_urlsafe(16),
        headers={"typ": "logout+jwt"},
        now=now,
    )


def _id_token_key(svc: AuthService, client: ClientRecord, now: float) -> jotkit.Key:
    """The key the client's ID tokens are signed with (its registered
    ``id_token_signed_response_alg``, RS256 by default); the logout token uses the same, as
    the client already verifies ID tokens with it."""
    if client.id_token_signed_response_alg == ID_TOKEN_ALG:
        return svc.id_keyring.signing_key(now)
    return svc.keyring.signing_key(now)


def published_keys(svc: AuthService, now: float) -> jotkit.KeySet:
    """Every published verification key: the access-token ring and the ID-token ring."""
    keys = list(jotkit.KeySet.from_jwks(svc.keyring.jwks(now)))
    if svc.id_keyring is not svc.keyring:
        keys += list(jotkit.KeySet.from_jwks(svc.id_keyring.jwks(now)))
    return jotkit.KeySet(keys)


async def end_sso_session(svc: AuthService, sid: str, *, reason: str = "logout") -> int:
    """End SSO session ``sid``: revoke its refresh families and queue back-channel logout
    tokens to the clients that took part. Returns the number of deliveries queued."""
    now = svc.clock.now()
    session = await svc.store.sso.get_session(sid)
    clients = await svc.store.sso.end_session(sid, now)
    if session is None:
        return 0
    await _revoke_families(svc, sid)
    svc.audit.event("sso_logout", user_id=session.user_id, session_id=sid, reason=reason)
    records: list[DeliveryRecord] = []
    for client_id in clients:
        client = await svc.store.clients.get(client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        records.append(
            DeliveryRecord(
                id=secrets.token_hex(16),
                client_id=client_id,
                uri=client.backchannel_logout_uri,
                logout_token=logout_token(svc, client, session.user_id, sid, now),
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    await svc.store.sso.add_deliveries(records)
    if records:
        task = asyncio.get_running_loop().create_task(_deliver(svc, records))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    return len(records)


async def _revoke_families(svc: AuthService, sid: str) -> None:
    """Revoke the refresh families issued in the SSO session (their tokens carry ``sid``)."""
    for family_id in await svc.store.sso.families_of_session(sid):
        await svc.revoke_family(family_id, "sso_logout")


async def deliver_due(svc: AuthService) -> int:
    """Send every delivery that is due (the background loop calls this); return how many
    were attempted."""
    due = await svc.store.sso.due_deliveries(svc.clock.now())
    await _deliver(svc, due)
    return len(due)


async def _deliver(svc: AuthService, records: list[DeliveryRecord]) -> None:
    import httpx

    if not records:
        return
    async with httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False) as http:
        await asyncio.gather(*(_attempt(svc, http, r) for r in records))


async def _attempt(svc: AuthService, http: Any, record: DeliveryRecord) -> None:
    """One POST (Back-Channel Logout 1.0 §2.5): 200 or 204 is delivered."""
    now = svc.clock.now()
    if not await svc.store.sso.claim_delivery(record.id, record.attempts, now + 60.0):
        return  # another task or instance took this attempt
    attempts = record.attempts + 1
    error: str | None = None
    try:
        response = await http.post(
            record.uri,
            data={"logout_token": record.logout_token},
            headers={"Cache-Control": "no-store"},
        )
        if response.status_code not in (200, 204):
            error = f"HTTP {response.status_code}"
    except Exception as exc:  # network errors of any kind are retried
        error = f"{type(exc).__name__}: {exc}"[:200]
    metrics = svc.metrics
    if error is None:
        await svc.store.sso.settle_delivery(
            record.id, delivered_at=svc.clock.now(), next_attempt_at=None, error=None
        )
        metrics.backchannel_logout.labels(result="delivered").inc()
        return
    if attempts >= MAX_ATTEMPTS:
        await svc.store.sso.settle_delivery(
            record.id, delivered_at=None, next_attempt_at=None, error=error
        )
        metrics.backchannel_logout.labels(result="failed").inc()
        _log.warning("back-channel logout to %s failed for good: %s", record.client_id, error)
        return
    await svc.store.sso.settle_delivery(
        record.id, delivered_at=None, next_attempt_at=now + backoff(attempts), error=error
    )
    metrics.backchannel_logout.labels(result="retry").inc()


# -- RP-initiated logout ---------------------------------------------------------------------
LOGOUT_PATH = "/oauth/logout"
_CARRY = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")


async def id_token_hint_claims(
    svc: AuthService, hint: str, *, client_id: str | None = None
) -> dict[str, Any] | None:
    """The claims of a valid ``id_token_hint``: signed by this issuer's published keys, for
    a registered client (``client_id`` when given: the authorization endpoint, OpenID Connect
    Core §3.1.2.1). An expired ID token is accepted (RP-Initiated Logout 1.0 §2: the hint
    names the session, it grants nothing) for as long as an SSO session may live."""
    now = svc.clock.now()
    try:
        _header, unverified = jotkit.decode_unverified(hint)
    except jotkit.InvalidToken:
        return None
    aud = unverified.get("aud")
    candidates = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id is not None:
        candidates = [a for a in candidates if a == client_id]
    known = [a for a in candidates if isinstance(a, str) and await svc.store.clients.get(a)]
    if not known:
        return None
    keys = published_keys(svc, now)
    algorithms = sorted({k.alg for k in keys if k.alg})
    try:
        return jotkit.decode(
            hint,
            keys,
            algorithms=algorithms,
            issuer=svc.issuer,
            audience=known,
            require=("exp", "iat", "sub", "aud"),
            leeway=svc.settings.sso_session_ttl,
            now=now,
        )
    except jotkit.InvalidToken:
        return None


async def _params(request: Request) -> dict[str, str]:
    if request.method == "POST":
        pairs = await form_fields(request, 16) or []  # a file: no parameters
    else:
        pairs = list(request.query_params.multi_items())
    out: dict[str, str] = {}
    for k, v in pairs:
        if len(v) > 8192 or "\x00" in v:
            continue
        out.setdefault(k, v)
    return out


async def _target(
    svc: AuthService, params: dict[str, str], claims: dict[str, Any] | None
) -> str | None:
    """The ``post_logout_redirect_uri`` when it is registered (exact string) for the client
    named by the hint's ``aud`` or by ``client_id``; else None (no redirect)."""
    uri = params.get("post_logout_redirect_uri")
    if not uri:
        return None
    client_id = params.get("client_id")
    if claims is not None:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud or [])
        if client_id is not None and client_id not in auds:
            return None
        client_id = client_id or (auds[0] if auds else None)
    if not client_id:
        return None
    client = await svc.store.clients.get(client_id)
    if client is None or uri not in client.post_logout_redirect_uris:
        return None
    return uri


def _done(svc: AuthService, request: Request, target: str | None, state: str | None) -> Response:
    if target is None:
        response: Response = message_page(
            request, "Signed out", f"You have signed out of {svc.settings.brand_name}."
        )
    else:
        from .authorize import redirect_to_client

        response = redirect_to_client(target, {"state": state})
    sso.clear_session_cookie(svc, response)
    return response


@router.api_route(LOGOUT_PATH, methods=["GET", "POST"])
async def end_session_endpoint(request: Request) -> Response:
    """The end-session endpoint (RP-Initiated Logout 1.0 §2). With a valid ``id_token_hint``
    for this browser's session the session ends at once; otherwise the user confirms on a
    CSRF-protected page first (a cross-site link cannot sign anyone out)."""
    svc: AuthService = request.app.state.service
    params = await _params(request)
    session = await sso.current_session(svc, request)
    hint = params.get("id_token_hint")
    claims = await id_token_hint_claims(svc, hint) if hint else None
    if hint and claims is None:
        return message_page(
            request, "Cannot sign out", "The sign-out request is not valid (id_token_hint).",
            status=400,
        )
    target = await _target(svc, params, claims)
    if params.get("post_logout_redirect_uri") and target is None:
        return message_page(
            request, "Cannot sign out",
            "The address to return to after signing out is not registered.", status=400,
        )
    state = params.get("state")
    confirmed = params.get("decision") == "logout"
    if session is None:
        return _done(svc, request, target, state)
    hint_matches = claims is not None and (
        claims.get("sid") == session.sid
        or (claims.get("sid") is None and claims.get("sub") == session.user_id)
    )
    if confirmed:
        if not sso.logout_csrf_valid(
            request.app.state.sso_csrf, params.get("csrf_token", ""), session.sid
        ):
            return message_page(
                request, "Cannot sign out", "This sign-out form was not sent by this site.",
                status=403,
            )
    elif params.get("decision") == "stay":
        return message_page(request, "Still signed in", "You are still signed in.")
    elif not hint_matches:
        user = await svc.store.users.get(session.user_id)
        return page_response(
            request,
            "logout.html",
            title="Sign out?",
            form_targets=[target] if target else [],
            action=LOGOUT_PATH,
            email=user.email if user else None,
            csrf_token=sso.logout_csrf(request.app.state.sso_csrf, session.sid),
            carry=[(k, params[k]) for k in _CARRY if k in params],
        )
    await end_sso_session(svc, session.sid)
    return _done(svc, request, target, state)

