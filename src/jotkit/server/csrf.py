"""Cookie mode: cookie names and session-bound CSRF tokens.

Cookies are ``__Host-`` prefixed whenever they are ``Secure`` (RFC 6265bis §4.1.3.2: then
the browser only accepts them with ``Path=/`` and no ``Domain``, so a sibling subdomain cannot
plant or shadow them).

CSRF tokens follow the OWASP "signed double-submit cookie" pattern: a token is
``random "." HMAC-SHA256(key, session id, random)``; it is sent both in the ``jotkit_csrf``
cookie and the ``X-CSRF-Token`` header, and it is accepted only when both are equal and the
MAC is valid for the session of the request. A value that an attacker made up, or a valid
token of another session, is refused.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from .settings import Settings

__all__ = ["CookieNames", "CsrfSigner", "cookie_names", "load_csrf_key"]

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")
_CONTEXT = b"jotkit-csrf-v1\x00"


@dataclass(frozen=True, slots=True)
class CookieNames:
    """The three cookie names and the refresh cookie's path."""

    access: str
    refresh: str
    csrf: str
    refresh_path: str


def cookie_names(secure: bool) -> CookieNames:
    """``__Host-`` names (all ``Path=/``) for Secure cookies; plain names over http."""
    if secure:
        return CookieNames(
            "__Host-jotkit_access", "__Host-jotkit_refresh", "__Host-jotkit_csrf", "/"
        )
    return CookieNames("jotkit_access", "jotkit_refresh", "jotkit_csrf", "/auth/refresh")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class CsrfSigner:
    """Issues and checks CSRF tokens bound to a session id."""

    key: bytes = field(repr=False)

    def _mac(self, session_id: str, nonce: bytes) -> hmac.HMAC:
        mac = hmac.HMAC(self.key, hashes.SHA256())
        mac.update(_CONTEXT + session_id.encode("utf-8") + b"\x00" + nonce)
        return mac

    def issue(self, session_id: str) -> str:
        """A fresh token for ``session_id``."""
        nonce = secrets.token_bytes(16)
        return _b64(nonce) + "." + _b64(self._mac(session_id, nonce).finalize())

    def valid(self, token: str, session_id: str) -> bool:
        """Whether ``token`` was issued by this key for ``session_id`` (constant-time MAC)."""
        if not _TOKEN_RE.fullmatch(token):
            return False
        nonce_text, _, tag_text = token.partition(".")
        nonce = base64.urlsafe_b64decode(nonce_text + "==")
        tag = base64.urlsafe_b64decode(tag_text + "=")
        try:
            self._mac(session_id, nonce).verify(tag)
        except InvalidSignature:
            return False
        return True


def load_csrf_key(settings: Settings) -> bytes:
    """``JOTKIT_CSRF_SECRET``, else a random key kept in ``<data_dir>/csrf.key`` (0600), so
    tokens survive a restart. Several instances must share ``JOTKIT_CSRF_SECRET``."""
    if settings.csrf_secret is not None:
        return settings.csrf_secret.encode("utf-8")
    path = Path(settings.data_dir) / "csrf.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write a private temporary file, then link it into place: the key file appears
        # whole or not at all, and of two processes starting together one key wins.
        tmp = path.with_name(f".csrf.key.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_bytes(32).hex())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    key = path.read_text(encoding="ascii").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError(f"{path} is not a CSRF key (64 hex digits); delete it to make a new one")
    return bytes.fromhex(key)
