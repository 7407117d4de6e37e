"""The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6; OAuth 2.1 §4), a registry keyed
by ``grant_type``: the route authenticates the client, checks the client may use the grant,
then calls the grant with a :class:`TokenRequest`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ServiceError
from ..sessions import ClientInfo, hash_refresh_token
from ..store.base import ConsumeOutcome, FamilyRecord, PollOutcome, UserRecord
from .clients import DEVICE_CODE_GRANT, TOKEN_EXCHANGE, ClientRecord, select_resources
from .codes import hash_code, verifier_matches
from .dpop import token_type
from .tokens import access_token_claims, sign_access_token, sign_id_token

if TYPE_CHECKING:
    from ..sessions import AuthService

__all__ = ["GRANTS", "TokenRequest", "parse_scope"]

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One token-endpoint request after client authentication."""

    service: AuthService
    client: ClientRecord
    form: Mapping[str, str]
    resources: tuple[str, ...]  # RFC 8707: ``resource`` may repeat
    caller: ClientInfo
    dpop_jkt: str | None = None  # RFC 9449 §5: the DPoP proof's key; tokens get bound to it


def parse_scope(value: str | None) -> tuple[str, ...] | None:
    """A ``scope`` parameter as an ordered tuple (RFC 6749 §3.3); None when absent."""
    if value is None:
        return None
    items = tuple(dict.fromkeys(value.split(" ")))
    if not value or any(not _SCOPE_TOKEN.match(i) for i in items):
        raise ServiceError("invalid_scope", "The scope parameter is malformed.")
    return items


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise ServiceError("invalid_request", f"The {name} parameter is required.")
    return value


def _resources(req: TokenRequest, granted: Sequence[str] = ()) -> tuple[str, ...]:
    try:
        return select_resources(
            req.client, req.service.settings.audience, req.resources, granted
        )
    except ValueError as exc:
        raise ServiceError("invalid_target", str(exc)) from None


def _token_response(
    access: str, expires_in: int, scope: Sequence[str], *, dpop_jkt: str | None = None,
    **extra: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": token_type(dpop_jkt),
        "expires_in": expires_in,
    }
    if scope:
        body["scope"] = " ".join(scope)
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _wants_refresh(client: ClientRecord, scope: Sequence[str]) -> bool:
    """Refresh tokens go only to clients registered for the grant, and only with
    ``offline_access`` or to first-party clients (OpenID Connect Core §11)."""
    return "refresh_token" in client.grant_types and (
        "offline_access" in scope or client.first_party
    )


def _check_user(user: UserRecord | None) -> UserRecord:
    if user is None or user.disabled:
        raise ServiceError("invalid_grant", "The user is no longer active.")
    return user


def _new_family(req: TokenRequest, now: float) -> FamilyRecord:
    """The refresh family a redemption opens (its ``user_id`` is filled by the store)."""
    s = req.service.settings
    return FamilyRecord(
        id=secrets.token_urlsafe(16),
        user_id="",
        created_at=now,
        last_used_at=now,
        idle_expires_at=now + min(s.refresh_idle_ttl, s.refresh_absolute_ttl),
        absolute_expires_at=now + s.refresh_absolute_ttl,
        user_agent=req.caller.user_agent[:512] or None,
        client_ip=req.caller.ip[:64] or None,
        client_id=req.client.client_id,
    )


async def authorization_code(req: TokenRequest) -> dict[str, Any]:
    """RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5-4.6): a code is redeemed once, by the client it
    was issued to, with the same redirect URI, a verifier matching its S256 challenge and, for
    a code bound to a key (``dpop_jkt``, RFC 9449 §10), a DPoP proof by that key. A second
    redemption revokes everything the first one issued (RFC 6749 §4.1.2)."""
    svc, client, form = req.service, req.client, req.form
    code = _required(form, "code")
    redirect_uri = _required(form, "redirect_uri")
    verifier = form.get("code_verifier")
    if not verifier:
        raise ServiceError("invalid_request", "PKCE: the code_verifier parameter is required.")
    if not _CODE_RE.match(code):
        raise ServiceError("invalid_grant", "The authorization code is invalid.")
    now = svc.clock.now()
    s = svc.settings
    family = _new_family(req, now)
    refresh = secrets.token_urlsafe(32)
    # The winner's access token is recorded with the redemption: a concurrent replay that
    # revokes the grant deny-lists it too (RFC 6749 §4.1.2), and exactly one request wins.
    jti, exp = secrets.token_urlsafe(16), float(int(now) + int(s.access_ttl))
    result = await svc.store.codes.consume(
        hash_code(code), now, family, hash_refresh_token(refresh), access=(jti, exp)
    )
    stored = result.code
    if result.outcome is ConsumeOutcome.REPLAYED and stored is not None:
        if stored.family_id is not None:
            await svc.revoke_grant(stored.family_id, "code_replay")
        svc.audit.event("code_replay", client_id=client.client_id, user_id=stored.user_id)
        raise ServiceError("invalid_grant", "The authorization code was already used.")
    if result.outcome is not ConsumeOutcome.REDEEMED or stored is None:
        raise ServiceError("invalid_grant", "The authorization code is invalid or expired.")
    family_id = stored.family_id or family.id
    problem = None
    if stored.client_id != client.client_id:
        problem = "The authorization code was issued to another client."
    elif stored.redirect_uri != redirect_uri:
        problem = "redirect_uri differs from the authorization request."
    elif not verifier_matches(verifier, stored.code_challenge):
        problem = "PKCE verification failed (code_verifier)."
    elif stored.dpop_jkt is not None and req.dpop_jkt != stored.dpop_jkt:
        problem = ("The authorization code is bound to a DPoP key (dpop_jkt): send a DPoP "
                   "proof made with that key (RFC 9449 §10).")
    if problem is not None:  # the code is spent: revoke the grant it opened
        await svc.revoke_grant(family_id, "code_misuse")
        svc.audit.event("code_rejected", client_id=client.client_id, reason=problem)
        raise ServiceError("invalid_grant", problem)
    active = result.user_active  # read with the code by the store (else read here)
    if active is None:
        user = await svc.store.users.get(stored.user_id)
        active = user is not None and not user.disabled
    try:
        if not active:
            raise ServiceError("invalid_grant", "The user is no longer active.")
        audience = _resources(req, stored.resource)
    except ServiceError:
        await svc.revoke_grant(family_id, "code_misuse")
        raise
    svc.audit.event("code_redeemed", client_id=client.client_id, user_id=stored.user_id,
                    session_id=family_id)
    return await _user_tokens(
        req, stored.user_id, stored.scope, audience, now=now, jti=jti, exp=exp, sid=stored.sid,
        auth_time=stored.auth_time, nonce=stored.nonce, family_id=family_id, refresh=refresh,
    )


async def _user_tokens(
    req: TokenRequest, user_id: str, scope: tuple[str, ...], audience: Sequence[str], *,
    now: float, jti: str, exp: float, sid: str | None, auth_time: float | None, nonce: str | None,
    family_id: str, refresh: str,
) -> dict[str, Any]:
    """The answer of a grant that a user approved (a code or a device code): an access token
    (RFC 9068, bound to the DPoP key when a proof came, RFC 9449 §5), an ID token with
    ``openid`` (OpenID Connect Core §3.1.3.3), and the refresh token the store recorded when
    the client may have one. A public client's refresh family is bound to its DPoP key."""
    svc, client = req.service, req.client
    claims = access_token_claims(
        svc, sub=user_id, client_id=client.client_id, audience=audience, scope=scope,
        now=now, jti=jti, exp=exp, sid=sid, auth_time=auth_time, jkt=req.dpop_jkt,
    )
    access = sign_access_token(svc, claims, now)
    refresh_issued = _wants_refresh(client, scope)
    if refresh_issued and req.dpop_jkt is not None and client.auth_method == "none":
        await svc.store.dpop.bind(family_id, req.dpop_jkt)  # RFC 9449 §5: public clients
    id_token = None
    if "openid" in scope:
        id_token = sign_id_token(
            svc, alg=client.id_token_signed_response_alg, sub=user_id,
            client_id=client.client_id, now=now, auth_time=auth_time, sid=sid,
            nonce=nonce, access_token=access,
        )
    return _token_response(
        access, claims["exp"] - claims["iat"], scope, id_token=id_token,
        refresh_token=refresh if refresh_issued else None, dpop_jkt=req.dpop_jkt,
    )


async def _check_refresh_binding(req: TokenRequest, token: str) -> None:
    """A refresh token bound to a DPoP key (public clients, RFC 9449 §5) is refused, before
    the rotation spends it, without a proof of that key."""
    known = await req.service.store.sessions.find_refresh(hash_refresh_token(token))
    if known is None:
        return
    bound = await req.service.store.dpop.binding(known[1].id)
    if bound is not None and bound != req.dpop_jkt:
        raise ServiceError(
            "invalid_grant", "The refresh token is bound to another DPoP key (RFC 9449 §5)."
        )


async def refresh_token(req: TokenRequest) -> dict[str, Any]:
    """RFC 6749 §6: the existing rotation with reuse detection (RFC 9700 §4.14.2), bound to the
    client the grant was issued to; ``scope`` may narrow the grant's scope, never widen it."""
    svc, client, form = req.service, req.client, req.form
    token = _required(form, "refresh_token")
    requested = parse_scope(form.get("scope"))
    if requested is not None:  # checked before the rotation spends the token
        known = await svc.store.sessions.find_refresh(hash_refresh_token(token))
        grant = await svc.store.codes.grant(known[1].id) if known is not None else None
        if grant is not None and not set(requested) <= set(grant.scope):
            raise ServiceError("invalid_scope", "The scope exceeds the original grant.")
    await _check_refresh_binding(req, token)
    found: dict[str, Any] = {}

    async def issue(user: UserRecord, family: FamilyRecord, now: float, jti: str,
                    exp: float) -> tuple[str, int]:
        grant = await svc.store.codes.grant(family.id)
        if grant is None or grant.client_id != client.client_id:
            await svc.revoke_grant(family.id, "wrong_client")
            raise ServiceError("invalid_grant", "The refresh token was issued to another client.")
        scope = grant.scope
        if requested is not None:
            if not set(requested) <= set(grant.scope):
                raise ServiceError("invalid_scope", "The scope exceeds the original grant.")
            scope = requested
        audience = _resources(req, grant.resource)
        claims = access_token_claims(
            svc, sub=user.id, client_id=client.client_id, audience=audience, scope=scope,
            now=now, jti=jti, exp=exp, sid=grant.sid, auth_time=grant.auth_time,
            jkt=req.dpop_jkt,
        )
        access = sign_access_token(svc, claims, now)
        found.update(scope=scope, grant=grant, now=now)
        return access, int(claims["exp"] - claims["iat"])

    try:
        issued = await svc.refresh(token, req.caller, client_id=client.client_id, issue=issue)
    except ServiceError as exc:
        if exc.code == "refresh_retry":  # RFC 6749 §5.2 has no 409: a plain invalid_grant
            raise ServiceError("invalid_grant", exc.description) from None
        raise
    scope = found["scope"]
    grant = found["grant"]
    if req.dpop_jkt is not None and client.auth_method == "none":  # RFC 9449 §5: from now on
        await svc.store.dpop.bind(grant.family_id, req.dpop_jkt)  # (kept if already bound)
    id_token = None
    if "openid" in scope:  # OpenID Connect Core §12.2
        id_token = sign_id_token(
            svc, alg=client.id_token_signed_response_alg, sub=issued.user.id,
            client_id=client.client_id, now=found["now"], auth_time=grant.auth_time,
            sid=grant.sid, nonce=None, access_token=issued.access_token,
        )
    return _token_response(
        issued.access_token, issued.expires_in, scope, id_token=id_token,
        refresh_token=issued.refresh_token, dpop_jkt=req.dpop_jkt,
    )


async def client_credentials(req: TokenRequest) -> dict[str, Any]:
    """RFC 6749 §4.4: a token for the client itself (``sub`` = ``client_id``) with the requested
    scopes, each registered for the client (default: all of them, §3.3). OpenID scopes
    describe a user and are refused."""
    svc, client = req.service, req.client
    if client.auth_method == "none":
        raise ServiceError("unauthorized_client", "Public clients cannot use this grant.")
    registered = tuple(s for s in client.scopes if s not in OIDC_SCOPES)
    requested = parse_scope(req.form.get("scope"))
    if requested is None:
        scope = registered
    else:
        bad = [s for s in requested if s not in registered]
        if bad:
            raise ServiceError("invalid_scope", f"Scope not allowed for this client: {bad[0]}")
        scope = requested
    now = svc.clock.now()
    claims = access_token_claims(
        svc, sub=client.client_id, client_id=client.client_id, audience=_resources(req),
        scope=scope, now=now, jkt=req.dpop_jkt,
    )
    access = sign_access_token(svc, claims, now)
    return _token_response(access, claims["exp"] - claims["iat"], scope, dpop_jkt=req.dpop_jkt)


_POLL_ERRORS = {
    PollOutcome.PENDING: ("authorization_pending", "The user has not yet approved the device."),
    PollOutcome.SLOW_DOWN: ("slow_down", "Polling too fast: wait 5 seconds more each time."),
    PollOutcome.DENIED: ("access_denied", "The user denied the device."),
    PollOutcome.EXPIRED: ("expired_token", "The device_code has expired."),
}


async def device_code(req: TokenRequest) -> dict[str, Any]:
    """RFC 8628 §3.4-3.5: one poll of a device code by the client it was issued to:
    ``authorization_pending``, ``slow_down`` (polled sooner than ``interval``, which grows by
    5 s), ``access_denied``, ``expired_token``; once approved, tokens exactly once
    (:meth:`~..store.base.DeviceCodeStore.redeem`), then ``invalid_grant``."""
    svc, client = req.service, req.client
    code = _required(req.form, "device_code")
    if not _CODE_RE.match(code):
        raise ServiceError("invalid_grant", "The device_code is invalid.")
    now = svc.clock.now()
    polled = await svc.store.devices.poll(hash_code(code), client.client_id, now)
    if polled.outcome in _POLL_ERRORS:
        raise ServiceError(*_POLL_ERRORS[polled.outcome])
    if polled.outcome is not PollOutcome.APPROVED:
        raise ServiceError("invalid_grant", "The device_code is invalid or was used.")
    family, refresh = _new_family(req, now), secrets.token_urlsafe(32)
    jti, exp = secrets.token_urlsafe(16), float(int(now) + int(svc.settings.access_ttl))
    device = await svc.store.devices.redeem(
        hash_code(code), now, family, hash_refresh_token(refresh), access=(jti, exp)
    )
    if device is None or device.user_id is None:
        raise ServiceError("invalid_grant", "The device_code is invalid or was used.")
    auth_time, sid = device.auth_time or now, family.id  # the device's own session
    try:
        user = _check_user(await svc.store.users.get(device.user_id))
        audience = _resources(req, device.resource)
    except ServiceError:
        await svc.revoke_grant(family.id, "device_code_misuse")
        raise
    svc.audit.event("device_code_redeemed", client_id=client.client_id, user_id=user.id,
                    session_id=family.id)
    return await _user_tokens(  # no nonce: RFC 8628 has no authorization request
        req, user.id, device.scope, audience, now=now, jti=jti, exp=exp, sid=sid,
        auth_time=auth_time, nonce=None, family_id=family.id, refresh=refresh,
    )


async def token_exchange(req: TokenRequest) -> dict[str, Any]:
    """RFC 8693 token exchange, in :mod:`.exchange` (imported here on first use: it builds
    on this module)."""
    from .exchange import exchange_token

    return await exchange_token(req)


Grant = Callable[[TokenRequest], Awaitable[dict[str, Any]]]
GRANTS: Mapping[str, Grant] = {
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
    "client_credentials": client_credentials,
    DEVICE_CODE_GRANT: device_code,
    TOKEN_EXCHANGE: token_exchange,
}
