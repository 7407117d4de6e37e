"""Authorization codes (RFC 6749 §4.1.2, OAuth 2.1 §4.1.2, RFC 7636).

The authorization endpoint (:mod:`.authorize`) hands an :class:`AuthorizationRequest` to
:func:`issue_code`; the token endpoint redeems the code once (:meth:`CodeStore.consume`).
A code is 256 random bits, stored only as its SHA-256, lives :data:`CODE_TTL` seconds and
is bound to the client, the redirect URI and the PKCE S256 challenge, and to a DPoP key when
the request named one (``dpop_jkt``, RFC 9449 §10).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store.base import CodeRecord

if TYPE_CHECKING:
    from ..sessions import AuthService

__all__ = [
    "CODE_TTL",
    "AuthorizationRequest",
    "hash_code",
    "issue_code",
    "pkce_s256",
    "verifier_matches",
]

CODE_TTL = 60.0
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256) without padding
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """What ``/oauth/authorize`` hands to the token endpoint: a checked request of a
    signed-in user who consented."""

    client_id: str
    user_id: str
    redirect_uri: str
    code_challenge: str  # S256 only
    scope: tuple[str, ...]
    nonce: str | None
    auth_time: float
    sid: str  # the SSO session id, copied into ID and access tokens
    resource: tuple[str, ...]
    dpop_jkt: str | None = None  # RFC 9449 §10: the key the code is bound to


def hash_code(code: str) -> str:
    """SHA-256 hex of a code (the only form that is stored)."""
    return hashlib.sha256(code.encode("ascii", "replace")).hexdigest()


def pkce_s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6 with S256: the verifier is well formed and hashes to the challenge
    (constant-time comparison)."""
    if not _VERIFIER_RE.match(verifier):
        return False
    return hmac.compare_digest(pkce_s256(verifier).encode(), challenge.encode())


async def issue_code(service: AuthService, request: AuthorizationRequest) -> str:
    """Store a single-use code (60 s, hashed at rest) and return it.

    Raise ``ValueError`` when the request is not one this server can redeem: an S256
    challenge is required (OAuth 2.1 §4.1.1; ``plain`` is refused by the authorization
    endpoint before it gets here)."""
    if not _CHALLENGE_RE.match(request.code_challenge):
        raise ValueError("code_challenge must be an S256 challenge (43 base64url characters)")
    now = service.clock.now()
    code = secrets.token_urlsafe(32)
    await service.store.codes.create(
        CodeRecord(
            code_hash=hash_code(code),
            client_id=request.client_id,
            user_id=request.user_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            scope=tuple(request.scope),
            nonce=request.nonce,
            auth_time=request.auth_time,
            sid=request.sid,
            resource=tuple(request.resource),
            created_at=now,
            expires_at=now + CODE_TTL,
            dpop_jkt=request.dpop_jkt,
        )
    )
    return code
