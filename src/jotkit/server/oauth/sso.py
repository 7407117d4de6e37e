"""The SSO session: the provider's own sign-in cookie, and consent.

* The cookie holds 256 random bits; the table keeps only their SHA-256 and a separate public
  ``sid`` (OIDC Front/Back-Channel Logout ``sid``), so a database reader cannot replay a
  session and a token holder cannot forge the cookie.
* The cookie is ``HttpOnly`` and ``SameSite=Lax`` (the authorization request is a top-level
  cross-site navigation, which Lax allows); behind an ``https`` issuer it is ``Secure`` and
  ``__Host-`` prefixed (RFC 6265bis §4.1.3.2).
* Forms are CSRF-protected with the signed double-submit tokens of :mod:`..csrf`. The login
  form has no session yet, so its token is bound to a random *browser binding* cookie (an
  attacker cannot read the victim's, so cannot log the victim into the attacker's account:
  login CSRF); the consent form's token is bound to the SSO session and the client.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ..csrf import CsrfSigner
from ..sessions import AuthService
from ..store.base import UserRecord
from ..store.sso import SsoSessionRecord

__all__ = [
    "SsoCookies",
    "binding_of",
    "consent_covers",
    "current_session",
    "open_session",
    "session_token_hash",
    "sso_cookies",
]

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class SsoCookies:
    """Cookie names and attributes of the hosted pages."""

    session: str
    binding: str
    secure: bool


def sso_cookies(svc: AuthService) -> SsoCookies:
    """``__Host-`` names and ``Secure`` behind an https issuer; plain names over http."""
    secure = svc.issuer.startswith("https://")
    if secure:
        return SsoCookies("__Host-jotkit_sso", "__Host-jotkit_sso_bind", True)
    return SsoCookies("jotkit_sso", "jotkit_sso_bind", False)


def session_token_hash(token: str) -> str:
    """SHA-256 hex of an SSO cookie value (the only form that is stored)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _well_formed(value: str | None) -> bool:
    return value is not None and 32 <= len(value) <= 64 and set(value) <= _TOKEN_CHARS


async def current_session(svc: AuthService, request: Request) -> SsoSessionRecord | None:
    """The active SSO session named by the request's cookie, else None."""
    token = request.cookies.get(sso_cookies(svc).session)
    if not _well_formed(token):
        return None
    assert token is not None
    record = await svc.store.sso.find_session(session_token_hash(token))
    if record is None or not record.active(svc.clock.now()):
        return None
    return record


async def open_session(svc: AuthService, user: UserRecord, response: Response) -> SsoSessionRecord:
    """Start an SSO session for ``user`` (just authenticated) and set its cookie."""
    now = svc.clock.now()
    token = secrets.token_urlsafe(32)
    record = SsoSessionRecord(
        sid=secrets.token_urlsafe(16),
        user_id=user.id,
        auth_time=now,
        created_at=now,
        expires_at=now + svc.settings.sso_session_ttl,
    )
    await svc.store.sso.create_session(record, session_token_hash(token))
    names = sso_cookies(svc)
    response.set_cookie(
        names.session,
        token,
        max_age=int(svc.settings.sso_session_ttl),
        path="/",
        secure=names.secure,
        httponly=True,
        samesite="lax",
    )
    svc.audit.event("sso_login", user_id=user.id, session_id=record.sid)
    return record


def clear_session_cookie(svc: AuthService, response: Response) -> None:
    """Delete the SSO cookie."""
    names = sso_cookies(svc)
    response.delete_cookie(
        names.session, path="/", secure=names.secure, httponly=True, samesite="lax"
    )


def binding_of(svc: AuthService, request: Request, response: Response) -> str:
    """The browser binding (an existing well-formed cookie, or a new one set on
    ``response``) that login CSRF tokens are tied to."""
    names = sso_cookies(svc)
    value = request.cookies.get(names.binding)
    if _well_formed(value):
        assert value is not None
        return value
    value = secrets.token_urlsafe(32)
    response.set_cookie(
        names.binding, value, path="/", secure=names.secure, httponly=True, samesite="lax"
    )
    return value


def login_csrf(signer: CsrfSigner, binding: str) -> str:
    """A CSRF token for the login form of this browser."""
    return signer.issue("sso-login\x00" + binding)


def login_csrf_valid(signer: CsrfSigner, request: Request, token: str, svc: AuthService) -> bool:
    """The login form's token matches this browser's binding cookie."""
    binding = request.cookies.get(sso_cookies(svc).binding)
    return _well_formed(binding) and signer.valid(token, "sso-login\x00" + str(binding))


def consent_csrf(signer: CsrfSigner, sid: str, client_id: str) -> str:
    """A CSRF token for the consent form of session ``sid`` and ``client_id``."""
    return signer.issue(f"sso-consent\x00{sid}\x00{client_id}")


def consent_csrf_valid(signer: CsrfSigner, token: str, sid: str, client_id: str) -> bool:
    """The consent form's token was issued for this session and client."""
    return signer.valid(token, f"sso-consent\x00{sid}\x00{client_id}")


def logout_csrf(signer: CsrfSigner, sid: str) -> str:
    """A CSRF token for the logout confirmation of session ``sid``."""
    return signer.issue(f"sso-logout\x00{sid}")


def logout_csrf_valid(signer: CsrfSigner, token: str, sid: str) -> bool:
    """The logout form's token was issued for session ``sid``."""
    return signer.valid(token, f"sso-logout\x00{sid}")


async def consent_covers(
    svc: AuthService, user_id: str, client_id: str, scopes: Sequence[str]
) -> bool:
    """Whether the user's remembered consent for the client includes every scope."""
    consent = await svc.store.sso.get_consent(user_id, client_id)
    return consent is not None and set(scopes) <= set(consent.scopes)
