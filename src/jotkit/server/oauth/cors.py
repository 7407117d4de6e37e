"""CORS for browser-based clients (single-page apps doing the code flow with PKCE).

A public client (``auth_method none``) runs in the browser at the origin of its redirect
URIs; it must call the token, userinfo and revocation endpoints and read the metadata and JWKS
with ``fetch`` (OAuth 2.0 for Browser-Based Apps, draft-ietf-oauth-browser-based-apps §6.3).
Those paths answer CORS requests:

* metadata and JWKS: any origin (public documents, no credentials);
* token, userinfo, revocation, PAR (RFC 9126): only the origins of registered public
  clients' redirect URIs, never with cookies (``Access-Control-Allow-Credentials`` is not
  sent), so a page of another origin cannot read responses, and the browser's ambient
  credentials play no part.

Every other path (the hosted pages, ``/auth/*``) gets no CORS headers at all.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from ..sessions import AuthService

__all__ = ["BrowserCors"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset(
    {
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
    }
)
CLIENT_PATHS = frozenset({"/oauth/token", "/oauth/userinfo", "/oauth/revoke", "/oauth/par"})
_CACHE_SECONDS = 5.0


def _origin(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


class BrowserCors:
    """Pure-ASGI middleware answering preflights and adding ``Access-Control-Allow-Origin``
    on the paths above."""

    def __init__(self, app: ASGIApp, service: AuthService) -> None:
        self.app = app
        self.service = service
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = -_CACHE_SECONDS

    async def _allowed(self) -> frozenset[str]:
        if time.monotonic() - self._loaded_at >= _CACHE_SECONDS:
            clients = await self.service.store.clients.list()
            self._origins = frozenset(
                o
                for c in clients
                if c.auth_method == "none"
                for o in (_origin(u) for u in c.redirect_uris)
                if o
            )
            self._loaded_at = time.monotonic()
        return self._origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a CORS preflight, or pass the request on and add the CORS headers."""
        path = scope.get("path", "")
        if scope["type"] != "http" or (path not in PUBLIC_PATHS and path not in CLIENT_PATHS):
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope.get("headers", ()) if k == b"origin"), None)
        if origin is None:
            await self.app(scope, receive, send)
            return
        text = origin.decode("latin-1")
        if path in PUBLIC_PATHS:
            allow: bytes | None = b"*"
        else:
            allow = origin if text.lower() in await self._allowed() else None
        if scope["method"] == "OPTIONS" and any(
            k == b"access-control-request-method" for k, _ in scope.get("headers", ())
        ):
            headers = [(b"vary", b"Origin"), (b"cache-control", b"no-store")]
            if allow is not None:
                headers += [
                    (b"access-control-allow-origin", allow),
                    (b"access-control-allow-methods", b"GET, POST"),
                    (b"access-control-allow-headers", b"Authorization, Content-Type, DPoP"),
                    (b"access-control-max-age", b"600"),
                ]
            await send(
                {"type": "http.response.start", "status": 204 if allow else 403,
                 "headers": headers}
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and allow is not None:
                headers = list(message.get("headers", ()))
                headers += [
                    (b"access-control-allow-origin", allow),
                    (b"access-control-expose-headers", b"WWW-Authenticate"),
                    (b"vary", b"Origin"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_cors)
