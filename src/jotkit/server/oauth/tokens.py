"""Tokens of the OAuth provider: RFC 9068 access tokens and OpenID Connect ID tokens.

* Access tokens (RFC 9068 §2): ``typ: at+jwt``, signed by the access-token key ring (ES256 by
  default), claims ``iss exp aud sub client_id iat jti`` plus ``scope``, ``auth_time`` and
  ``sid`` when there is a user session. Those issued through a grant are recorded for the
  grant's refresh family, so revoking the grant (code replay, refresh reuse, logout)
  deny-lists them.
* ID tokens (OpenID Connect Core §2, §3.1.3.6): RS256 by default (the RS256 key ring), claims
  ``iss sub aud exp iat auth_time nonce at_hash sid azp``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jotkit

from ..errors import ServiceError
from ..sessions import ID_TOKEN_ALG

if TYPE_CHECKING:
    from ..sessions import AuthService

__all__ = ["access_token_claims", "at_hash", "sign_access_token", "sign_id_token",
           "verify_access_token"]

_HASHES = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "PS256": hashlib.sha256,
           "RS384": hashlib.sha384, "ES384": hashlib.sha384, "PS384": hashlib.sha384,
           "RS512": hashlib.sha512, "ES512": hashlib.sha512, "PS512": hashlib.sha512,
           "EdDSA": hashlib.sha512, "Ed25519": hashlib.sha512}


def at_hash(access_token: str, alg: str) -> str:
    """OpenID Connect Core §3.1.3.6: base64url of the left half of the hash of the access
    token's ASCII octets, the hash being the one of the ID token's ``alg``."""
    digest = _HASHES[alg](access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def access_token_claims(
    service: AuthService,
    *,
    sub: str,
    client_id: str,
    audience: Sequence[str],
    scope: Sequence[str],
    now: float,
    jti: str | None = None,
    exp: float | None = None,
    sid: str | None = None,
    auth_time: float | None = None,
    jkt: str | None = None,
) -> dict[str, Any]:
    """The claims of an RFC 9068 §2.2 access token (``aud`` a string when there is one);
    ``cnf.jkt`` binds it to a DPoP key (RFC 9449 §6.1)."""
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": service.issuer,
        "sub": sub,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "client_id": client_id,
        "iat": iat,
        "exp": int(exp) if exp is not None else iat + int(service.settings.access_ttl),
        "jti": jti or secrets.token_urlsafe(16),
    }
    if scope:
        claims["scope"] = " ".join(scope)
    if sid is not None:
        claims["sid"] = sid
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    return claims


def sign_access_token(service: AuthService, claims: dict[str, Any], now: float) -> str:
    """Sign RFC 9068 access-token claims with the access key ring's signer."""
    key = service.keyring.signing_key(now)
    return jotkit.encode(claims, key, headers={"typ": "at+jwt"}, iat=False, now=now)


def sign_id_token(
    service: AuthService,
    *,
    alg: str,
    sub: str,
    client_id: str,
    now: float,
    auth_time: float | None,
    sid: str | None,
    nonce: str | None,
    access_token: str | None,
    extra: dict[str, Any] | None = None,
) -> str:
    """An ID token (OpenID Connect Core §2) for ``client_id``, signed with ``alg``: RS256
    from the RS256 ring, or the access-token ring's algorithm."""
    if alg == ID_TOKEN_ALG:
        key = service.id_keyring.signing_key(now)
    else:
        key = service.keyring.signing_key(now)
        if key.alg != alg:
            raise ServiceError(
                "invalid_request", f"This server has no {alg} key for ID tokens."
            )
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": service.issuer,
        "sub": sub,
        "aud": client_id,
        "azp": client_id,
        "iat": iat,
        "exp": iat + int(service.settings.id_token_ttl),
    }
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if nonce is not None:
        claims["nonce"] = nonce
    if sid is not None:
        claims["sid"] = sid
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, str(key.alg))
    if extra:
        claims.update({k: v for k, v in extra.items() if k not in claims})
    return jotkit.encode(claims, key, iat=False, now=now)


async def verify_access_token(service: AuthService, token: str) -> dict[str, Any]:
    """Verify an access token this server issued for any audience (its own endpoints:
    introspection, revocation, userinfo) and check revocation; return its claims.

    Raise :class:`ServiceError` with the jotkit reason code. First-party tokens (audience
    ``JOTKIT_AUDIENCE``) take the cached :meth:`AuthService.authenticate` path."""
    try:
        header, unverified = jotkit.decode_unverified(token)
    except jotkit.InvalidToken as exc:
        raise ServiceError(exc.code, exc.message) from None
    aud = unverified.get("aud")
    if aud == service.settings.audience and isinstance(unverified.get("sid"), str):
        return await service.authenticate(token)
    now = service.clock.now()
    snap = service.keyring.snapshot(now)
    cache = service.oauth_verified
    entry = cache.get(token)
    if entry is not None and now < entry[1] and entry[2] in snap.kids:
        cache.move_to_end(token)
        claims = entry[0]
    else:
        cache.pop(token, None)
        claims = _verify_any_audience(service, token, aud, now)
        cache[token] = (claims, float(claims["exp"]), str(header.get("kid")))
        if len(cache) > service.settings.token_cache_size:
            cache.popitem(last=False)
    if service.revocations.reason(claims["jti"], claims["sub"], claims["iat"]) is not None:
        raise ServiceError("revoked", "The access token has been revoked.")
    return claims


def _verify_any_audience(
    service: AuthService, token: str, aud: object, now: float
) -> dict[str, Any]:
    """Signature, ``typ``, ``iss``, ``exp`` and claim types of an access token whose ``aud``
    is whatever it names (checked by the resource server; RFC 7662 §2.2 reports it)."""
    verifier = service.keyring.snapshot(now).verifier_for(service.issuer, aud)
    if verifier is None:
        raise ServiceError("invalid_claim", "The 'aud' claim must be a string or strings.")
    try:
        claims = verifier.decode(token, now=now)
    except jotkit.InvalidToken as exc:
        raise ServiceError(exc.code, exc.message) from None
    for name in ("sub", "jti", "client_id"):
        if not isinstance(claims.get(name), str):
            raise ServiceError("invalid_claim", f"The {name!r} claim must be a string.")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise ServiceError("invalid_claim", "The 'iat' claim must be a number.")
    return claims
