"""The browser side of the OAuth provider on PostgreSQL + Redis with two ``jotkit serve``
instances (issue 11, "both backends ... with two instances"): a user signs in on instance A,
the code is redeemed on B, a second client is signed in by B without a password (the SSO
session is shared), RP-initiated logout on B ends the session on A too, revokes the grant on
both, and the back-channel logout token reaches the first client's back end."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import jotkit
from jotkit.server.oauth.clients import ClientRecord, new_client
from jotkit.server.oauth.logout import BACKCHANNEL_EVENT

from .util import (
    PASSWORD,
    add_user,
    two_instances,
)

ISSUER = "http://jotkit.cluster"  # service_env's JOTKIT_ISSUER
REDIRECT = "https://app.example/cb"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.xdist_group("backend-processes"),
]


@pytest.fixture(scope="module")
def cluster(postgres_url: str, redis_url: str, pg_template: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("sso-cluster")  # one data dir: one CSRF key for both
    with two_instances(postgres_url, redis_url, pg_template, tmp, "s") as pair:
        yield SimpleNamespace(url=pair.url, a=pair.a, b=pair.b)


@pytest.fixture
def backchannel() -> Iterator[SimpleNamespace]:
    """A client's back end receiving logout tokens (Back-Channel Logout 1.0 §2.5)."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            received.extend(parse_qs(body).get("logout_token", []))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(uri=f"http://127.0.0.1:{httpd.server_address[1]}/bc",
                              received=received)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _register(database_url: str, **kwargs: object) -> tuple[ClientRecord, str | None]:
    from jotkit.server.store.sql import SqlStore

    async def go() -> tuple[ClientRecord, str | None]:
        store = SqlStore(database_url)
        try:
            record, secret = new_client("app", now=time.time(), redirect_uris=(REDIRECT,),
                                        first_party=True, **kwargs)  # type: ignore[arg-type]
            await store.clients.create(record)
            return record, secret
        finally:
            await store.close()

    return asyncio.run(go())


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize(base: str, client_id: str, challenge: str, **extra: str) -> str:
    query = httpx.QueryParams({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid offline_access", "state": "st", "code_challenge": challenge,
        "code_challenge_method": "S256", **extra})
    return f"{base}/oauth/authorize?{query}"


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, name
    return unescape(match.group(1))


def test_sso_session_code_and_logout_span_two_instances_on_postgres_and_redis(
    cluster: SimpleNamespace, backchannel: SimpleNamespace
) -> None:
    a, b = cluster.a.url, cluster.b.url
    email = f"{secrets.token_hex(5)}@example.com"
    asyncio.run(add_user(cluster.url, email))
    web, web_secret = _register(cluster.url, backchannel_logout_uri=backchannel.uri)
    spa, _ = _register(cluster.url, public=True)
    assert web_secret is not None
    verifier, challenge = _pkce()
    # cookies are per host, not per port: one jar plays one browser for both instances
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        page = browser.get(_authorize(a, web.client_id, challenge))
        assert page.status_code == 200 and "Sign in" in page.text
        signed_in = browser.post(f"{a}/oauth/authorize/login", data={
            "csrf_token": _hidden(page.text, "csrf_token"),
            "authorization_request": _hidden(page.text, "authorization_request"),
            "email": email, "password": PASSWORD})
        assert signed_in.status_code == 303, signed_in.text
        answer = _query(signed_in.headers["location"])
        assert answer["iss"] == ISSUER
        tokens = httpx.post(f"{b}/oauth/token", auth=(web.client_id, web_secret), data={
            "grant_type": "authorization_code", "code": answer["code"],
            "redirect_uri": REDIRECT, "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        keys = jotkit.KeySet.from_jwks(httpx.get(f"{a}/.well-known/jwks.json").json())
        idt = jotkit.decode(body["id_token"], keys, algorithms=["RS256"], issuer=ISSUER,
                            audience=web.client_id)
        # B knows the session A opened: the second client gets a code without a password
        _spa_verifier, spa_challenge = _pkce()
        second = browser.get(_authorize(b, spa.client_id, spa_challenge, prompt="none"))
        assert second.status_code == 303 and "code" in _query(second.headers["location"])
        # RP-initiated logout on B with the ID token A's code produced
        out = browser.get(f"{b}/oauth/logout", params={"id_token_hint": body["id_token"]})
        assert out.status_code == 200 and "Signed out" in out.text
        # A sees the session ended ...
        again = browser.get(_authorize(a, web.client_id, challenge, prompt="none"))
        assert _query(again.headers["location"])["error"] == "login_required"
    # ... and the grant revoked, on both instances
    for node in (a, b):
        r = httpx.post(f"{node}/oauth/token", auth=(web.client_id, web_secret), data={
            "grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    deadline = time.monotonic() + 30  # delivery runs in the background (retried if need be)
    while not backchannel.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(backchannel.received) == 1
    logout = jotkit.decode(backchannel.received[0], keys, algorithms=["RS256"], issuer=ISSUER,
                           audience=web.client_id, typ="logout+jwt")
    assert logout["sid"] == idt["sid"] and logout["sub"] == idt["sub"]
    assert BACKCHANNEL_EVENT in logout["events"] and "nonce" not in logout
