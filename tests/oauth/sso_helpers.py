"""Drive the hosted pages over real HTTP: register clients, run /oauth/authorize, fill forms."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from jotkit.server.oauth.clients import ClientRecord
from server.harness import PASSWORD, Server


def add_client(
    server: Server,
    client_id: str,
    *,
    redirect_uris: tuple[str, ...] = ("https://app.example/cb",),
    first_party: bool = False,
    backchannel_logout_uri: str | None = None,
    post_logout_redirect_uris: tuple[str, ...] = (),
    scopes: tuple[str, ...] = (),
) -> ClientRecord:
    """Register a public client straight in the store."""
    record = ClientRecord(
        client_id=client_id,
        name=f"App {client_id}",
        secret_hash=None,
        auth_method="none",
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        grant_types=("authorization_code", "refresh_token"),
        scopes=scopes,
        first_party=first_party,
        backchannel_logout_uri=backchannel_logout_uri,
        jwks_uri=None,
        jwks=None,
        id_token_signed_response_alg="RS256",
        default_audience=None,
        created_at=server.clock.now(),
    )
    server.run(server.service.store.clients.create(record))
    return record


@dataclass
class Pkce:
    verifier: str
    challenge: str


def pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authz_params(client_id: str, redirect_uri: str = "https://app.example/cb",
                 **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email",
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": pkce().challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name} in page"
    return html.unescape(match.group(1))


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def login(browser: httpx.Client, page: httpx.Response, email: str,
          password: str = PASSWORD, **override: Any) -> httpx.Response:
    """Submit the login form shown in ``page``."""
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "authorization_request": hidden(page.text, "authorization_request"),
        "email": email,
        "password": password,
    }
    if 'name="pushed"' in page.text:  # a pushed request (RFC 9126) carries its MAC
        form["pushed"] = hidden(page.text, "pushed")
    form.update(override)
    return browser.post("/oauth/authorize/login", data=form)


def consent(browser: httpx.Client, page: httpx.Response, decision: str = "allow",
            **override: Any) -> httpx.Response:
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "authorization_request": hidden(page.text, "authorization_request"),
        "decision": decision,
    }
    if 'name="pushed"' in page.text:
        form["pushed"] = hidden(page.text, "pushed")
    form.update(override)
    return browser.post("/oauth/authorize/consent", data=form)
