"""SSO example, app 2: the host of a single-page app (``spa/``) that signs in with PKCE in
the browser (a public client, ``auth_method none``).

The host only serves the static files, tells the page where the provider is
(``/config.json``), and receives back-channel logout tokens for the SPA: a browser cannot be
reached by the provider, so the host records which provider sessions (``sid``) ended and the
page asks ``/session-status`` every half second. When the user logs out in another app of
the same SSO session, the page notices and forgets its tokens.

Run: ``SSO_ISSUER=http://127.0.0.1:8000 SSO_SPA_CLIENT_ID=... python examples/sso/spa_host.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import jotkit

ISSUER = os.environ.get("SSO_ISSUER", "http://127.0.0.1:8000").rstrip("/")
CLIENT_ID = os.environ.get("SSO_SPA_CLIENT_ID", "")
PORT = int(os.environ.get("SSO_SPA_PORT", "8004"))
STATIC = Path(__file__).resolve().parent / "spa"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    f"connect-src 'self' {ISSUER}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
ended: set[str] = set()  # provider sessions that ended (from logout tokens)


def _static(name: str, media_type: str) -> Response:
    return FileResponse(STATIC / name, media_type=media_type,
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


async def index(_request: Request) -> Response:
    return _static("index.html", "text/html")


async def script(_request: Request) -> Response:
    return _static("app.js", "text/javascript")


async def config(_request: Request) -> Response:
    return JSONResponse({"issuer": ISSUER, "client_id": CLIENT_ID})


async def session_status(request: Request) -> Response:
    sid = request.query_params.get("sid", "")
    return JSONResponse({"active": sid not in ended}, headers={"Cache-Control": "no-store"})


async def backchannel_logout(request: Request) -> Response:
    """Back-Channel Logout 1.0 §2.6: validate the logout token and remember its sid."""
    form = await request.form()
    token = form.get("logout_token")
    async with httpx.AsyncClient() as http:
        meta = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
        keys = jotkit.KeySet.from_jwks((await http.get(meta["jwks_uri"])).json())
    try:
        claims = jotkit.decode(
            str(token), keys, algorithms=meta["id_token_signing_alg_values_supported"],
            issuer=ISSUER, audience=CLIENT_ID, typ="logout+jwt",
            require=("exp", "iat", "jti", "events", "sid"),
        )
    except jotkit.InvalidToken:
        return Response(status_code=400)
    if BACKCHANNEL_EVENT not in claims["events"] or "nonce" in claims:
        return Response(status_code=400)
    ended.add(claims["sid"])
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


app = Starlette(routes=[
    Route("/", index),
    Route("/app.js", script),
    Route("/config.json", config),
    Route("/session-status", session_status),
    Route("/backchannel-logout", backchannel_logout, methods=["POST"]),
])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
