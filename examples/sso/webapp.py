"""SSO example, app 1: a server-rendered FastAPI app signing users in with ``jotkit serve``.

A confidential OpenID Connect client (code flow + PKCE + nonce, ``client_secret_basic``):

* ``/login`` sends the browser to the provider's ``/oauth/authorize``;
* ``/callback`` checks ``state`` and ``iss`` (RFC 9207), redeems the code at ``/oauth/token``
  and verifies the ID token with jotkit (signature via the JWKS, ``iss``, ``aud``, ``exp``,
  ``nonce``), then keeps the user in a server-side session (cookie = random id);
* ``/logout`` is RP-initiated logout (``id_token_hint``, ``post_logout_redirect_uri``);
* ``/backchannel-logout`` receives logout tokens (OIDC Back-Channel Logout 1.0) and ends
  every local session of that provider session (``sid``): logging out in another app of the
  same SSO session logs the user out here too.

Run: ``SSO_ISSUER=http://127.0.0.1:8000 SSO_CLIENT_ID=... SSO_CLIENT_SECRET=... python
examples/sso/webapp.py`` (see examples/sso/README.md for registering the client).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import jotkit

ISSUER = os.environ.get("SSO_ISSUER", "http://127.0.0.1:8000").rstrip("/")
CLIENT_ID = os.environ.get("SSO_CLIENT_ID", "")
CLIENT_SECRET = os.environ.get("SSO_CLIENT_SECRET", "")
PORT = int(os.environ.get("SSO_WEBAPP_PORT", "8003"))
BASE = os.environ.get("SSO_WEBAPP_URL", f"http://127.0.0.1:{PORT}")
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
COOKIE = "webapp_session"

app = FastAPI(title="SSO example: web app", docs_url=None, redoc_url=None, openapi_url=None)
sessions: dict[str, dict[str, Any]] = {}  # session id -> user, sid, id_token
pending: dict[str, dict[str, str]] = {}  # state -> verifier, nonce
_metadata: dict[str, Any] = {}


def metadata() -> dict[str, Any]:
    """The provider's OpenID configuration (fetched once)."""
    if not _metadata:
        _metadata.update(httpx.get(f"{ISSUER}/.well-known/openid-configuration").json())
    return _metadata


def keys() -> jotkit.KeySet:
    """The provider's published keys (fetched per use: an example, not a cache)."""
    return jotkit.KeySet.from_jwks(httpx.get(metadata()["jwks_uri"]).json())


def algorithms() -> list[str]:
    """The ID token algorithms the provider announces (RS256 by default)."""
    return list(metadata().get("id_token_signing_alg_values_supported", ["RS256"]))


def page(body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Web app</title>'
        f"</head><body><h1>Web app</h1>{body}</body></html>",
        headers={"Cache-Control": "no-store"},
    )


@app.get("/")
def home(request: Request) -> HTMLResponse:
    """Who is signed in here."""
    session = sessions.get(request.cookies.get(COOKIE, ""))
    if session is None:
        return page('<p id="status">Signed out</p><p><a href="/login">Sign in</a></p>')
    return page(
        f'<p id="status">Signed in as <span id="email">{html.escape(session["email"])}</span></p>'
        '<form method="post" action="/logout"><button>Sign out</button></form>'
    )


@app.get("/login")
def login() -> RedirectResponse:
    """Start the code flow with PKCE (RFC 7636) and a nonce."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pending[state] = {"verifier": verifier, "nonce": nonce}
    query = urlencode({
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": f"{BASE}/callback",
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    })
    return RedirectResponse(f"{metadata()['authorization_endpoint']}?{query}", 303)


@app.get("/callback")
def callback(state: str = "", code: str = "", iss: str = "", error: str = "") -> Response:
    """Redeem the code and verify the ID token."""
    flow = pending.pop(state, None)
    if flow is None or iss != ISSUER:  # unknown state, or a mix-up (RFC 9207)
        return page('<p id="status">Sign-in failed: bad state or issuer</p>')
    if error:
        return page(f'<p id="status">Sign-in failed: {html.escape(error)}</p>')
    tokens = httpx.post(
        metadata()["token_endpoint"],
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{BASE}/callback",
            "code_verifier": flow["verifier"],
        },
    ).json()
    claims = jotkit.decode(
        tokens["id_token"], keys(), algorithms=algorithms(), issuer=ISSUER, audience=CLIENT_ID,
        require=("exp", "iat", "sub", "nonce", "sid"),
    )
    if claims["nonce"] != flow["nonce"]:
        return page('<p id="status">Sign-in failed: nonce</p>')
    user = httpx.get(
        metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ).json()
    session_id = secrets.token_urlsafe(32)
    sessions[session_id] = {
        "email": user.get("email", claims["sub"]), "sid": claims["sid"],
        "id_token": tokens["id_token"],
    }
    response = RedirectResponse("/", 303)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="lax")
    return response


@app.post("/logout")
def logout(request: Request) -> RedirectResponse:
    """RP-initiated logout: end the local session, then the provider's."""
    session = sessions.pop(request.cookies.get(COOKIE, ""), None)
    if session is None:
        return RedirectResponse("/", 303)
    query = urlencode({
        "id_token_hint": session["id_token"],
        "post_logout_redirect_uri": f"{BASE}/",
        "state": secrets.token_urlsafe(8),
    })
    response = RedirectResponse(f"{metadata()['end_session_endpoint']}?{query}", 303)
    response.delete_cookie(COOKIE)
    return response


@app.post("/backchannel-logout")
def backchannel_logout(logout_token: str = Form(...)) -> Response:
    """Back-Channel Logout 1.0 §2.6: validate the logout token, end the sessions of its sid."""
    try:
        claims = jotkit.decode(
            logout_token, keys(), algorithms=algorithms(), issuer=ISSUER, audience=CLIENT_ID,
            typ="logout+jwt", require=("exp", "iat", "jti", "events", "sid"),
        )
    except jotkit.InvalidToken:
        return Response(status_code=400, headers={"Cache-Control": "no-store"})
    if BACKCHANNEL_EVENT not in claims["events"] or "nonce" in claims:
        return Response(status_code=400, headers={"Cache-Control": "no-store"})
    for key in [k for k, s in sessions.items() if s["sid"] == claims["sid"]]:
        del sessions[key]
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
