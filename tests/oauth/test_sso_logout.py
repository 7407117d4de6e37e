"""Ending the SSO session: the logout confirmation page, back-channel logout tokens to every
client that took part (OIDC Back-Channel Logout 1.0), retries with backoff, metrics."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

import jotkit
from jotkit.server import FrozenClock
from jotkit.server.oauth.logout import (
    BACKCHANNEL_EVENT,
    MAX_ATTEMPTS,
    deliver_due,
    published_keys,
)
from oauth.sso_helpers import add_client, authz_params, hidden, login, query_of
from server.harness import START, Server, make_settings


class Receiver:
    """A client's back-channel logout endpoint: records tokens; can fail on purpose."""

    def __init__(self) -> None:
        self.tokens: dict[str, list[str]] = {}
        self.fail: dict[str, int] = {}  # path -> failures still to answer with 500
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = parse_qs(self.rfile.read(length).decode())
                if receiver.fail.get(self.path, 0) > 0:
                    receiver.fail[self.path] -= 1
                    self.send_response(500)
                else:
                    receiver.tokens.setdefault(self.path, []).extend(body["logout_token"])
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, path: str, count: int = 1) -> list[str]:
        deadline = time.monotonic() + 20
        while len(self.tokens.get(path, [])) < count:
            assert time.monotonic() < deadline, f"no logout token at {path}"
            time.sleep(0.02)
        return self.tokens[path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(make_settings(tmp_path_factory.mktemp("logout")), FrozenClock(START)).start()
    yield srv
    srv.stop()


def _sign_in_to(server: Server, b, email: str, clients: list[str]) -> str:
    page = b.get("/oauth/authorize", params=authz_params(clients[0]))
    assert login(b, page, email).status_code == 303
    for client_id in clients[1:]:
        r = b.get("/oauth/authorize", params=authz_params(client_id, prompt="none"))
        assert "code" in query_of(r.headers["location"])
    return b.cookies["jotkit_sso"]


def _metric(server: Server, result: str) -> float:
    value = server.service.metrics.registry.get_sample_value(
        "jotkit_backchannel_logout_total", {"result": result}
    )
    return value or 0.0


def _wait_metric(server: Server, result: str, at_least: float) -> None:
    deadline = time.monotonic() + 20
    while _metric(server, result) < at_least:
        assert time.monotonic() < deadline, f"{result} stayed at {_metric(server, result)}"
        time.sleep(0.02)


def test_logout_reaches_every_participating_client_over_the_back_channel(server, receiver):
    tag = secrets.token_hex(3)
    email = f"bc{tag}@example.com"
    server.add_user(email)
    a, b_, c = f"a{tag}", f"b{tag}", f"c{tag}"
    add_client(server, a, first_party=True, backchannel_logout_uri=f"{receiver.url}/{a}")
    add_client(server, b_, first_party=True, backchannel_logout_uri=f"{receiver.url}/{b_}")
    add_client(server, c, first_party=True)  # no back-channel URI: nothing sent
    add_client(server, "x" + tag, first_party=True,  # registered, but not in this session
               backchannel_logout_uri=f"{receiver.url}/x{tag}")
    before = _metric(server, "delivered")
    with server.client(follow_redirects=False) as browser:
        _sign_in_to(server, browser, email, [a, b_, c])
        page = browser.get("/oauth/logout")  # no id_token_hint: confirm first
        assert page.status_code == 200 and "Sign out?" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        done = browser.post("/oauth/logout", data={
            "csrf_token": hidden(page.text, "csrf_token"), "decision": "logout"})
        assert done.status_code == 200 and "signed out" in done.text
        again = browser.get("/oauth/authorize", params=authz_params(a, prompt="none"))
        assert query_of(again.headers["location"])["error"] == "login_required"
    jwks = published_keys(server.service, server.clock.now())
    sids = set()
    for client_id in (a, b_):
        (token,) = receiver.wait(f"/{client_id}")
        header, _ = jotkit.decode_unverified(token)
        assert header["typ"] == "logout+jwt"
        claims = jotkit.decode(
            token, jwks, algorithms=[header["alg"]], issuer="http://jotkit.test",
            audience=client_id, typ="logout+jwt", now=server.clock.now(),
            require=("exp", "iat", "jti", "sub", "sid", "events"),
        )
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}
        assert "nonce" not in claims
        sids.add(claims["sid"])
    assert len(sids) == 1
    assert f"/x{tag}" not in receiver.tokens
    _wait_metric(server, "delivered", before + 2)


def test_logout_csrf_cross_site_link_cannot_sign_the_user_out(server):
    email = f"lc{secrets.token_hex(3)}@example.com"
    server.add_user(email)
    client_id = "l" + secrets.token_hex(3)
    add_client(server, client_id, first_party=True)
    with server.client(follow_redirects=False) as browser:
        _sign_in_to(server, browser, email, [client_id])
        forged = browser.post("/oauth/logout", data={"decision": "logout",
                                                      "csrf_token": "A" * 22 + "." + "B" * 43})
        assert forged.status_code == 403
        r = browser.get("/oauth/authorize", params=authz_params(client_id, prompt="none"))
        assert "code" in query_of(r.headers["location"])


def test_unregistered_post_logout_redirect_uri_is_an_open_redirector_refused(server):
    with server.client(follow_redirects=False) as browser:
        r = browser.get("/oauth/logout", params={
            "post_logout_redirect_uri": "https://evil.test/", "client_id": "nobody"})
    assert r.status_code == 400 and "location" not in r.headers


def test_invalid_id_token_hint_is_refused(server):
    with server.client(follow_redirects=False) as browser:
        r = browser.get("/oauth/logout", params={"id_token_hint": "e30.e30.sig"})
    assert r.status_code == 400 and "location" not in r.headers


def test_failed_deliveries_are_retried_with_backoff_then_given_up(server, receiver):
    tag = secrets.token_hex(3)
    email = f"rt{tag}@example.com"
    server.add_user(email)
    flaky, dead = f"f{tag}", f"d{tag}"
    add_client(server, flaky, first_party=True, backchannel_logout_uri=f"{receiver.url}/{flaky}")
    add_client(server, dead, first_party=True,
               backchannel_logout_uri="http://127.0.0.1:9/unreachable")
    receiver.fail[f"/{flaky}"] = 2
    retries, failed = _metric(server, "retry"), _metric(server, "failed")
    with server.client(follow_redirects=False) as browser:
        _sign_in_to(server, browser, email, [flaky, dead])
        page = browser.get("/oauth/logout")
        browser.post("/oauth/logout", data={"csrf_token": hidden(page.text, "csrf_token"),
                                            "decision": "logout"})
    _wait_metric(server, "retry", retries + 2)  # both first attempts failed
    for _ in range(MAX_ATTEMPTS + 1):
        server.clock.advance(301)  # past the longest backoff
        server.run(deliver_due(server.service))
    assert len(receiver.wait(f"/{flaky}")) == 1
    assert receiver.fail[f"/{flaky}"] == 0
    assert _metric(server, "failed") == failed + 1
    assert _metric(server, "retry") >= retries + 2 + (MAX_ATTEMPTS - 2)


def _code_flow(server: Server, browser, client_id: str, email: str | None) -> dict:
    from oauth.sso_helpers import pkce

    p = pkce()
    params = authz_params(client_id, scope="openid email offline_access",
                          code_challenge=p.challenge)
    r = browser.get("/oauth/authorize", params=params)
    if email is not None:
        r = login(browser, r, email)
    code = query_of(r.headers["location"])["code"]
    tokens = browser.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "redirect_uri": "https://app.example/cb", "code_verifier": p.verifier})
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def test_rp_logout_with_id_token_hint_revokes_the_sessions_refresh_tokens(server):
    tag = secrets.token_hex(3)
    email = f"rv{tag}@example.com"
    server.add_user(email)
    a, b_ = f"ra{tag}", f"rb{tag}"
    for client_id in (a, b_):
        add_client(server, client_id, first_party=True,
                   post_logout_redirect_uris=("https://app.example/bye",))
    with server.client(follow_redirects=False) as browser:
        first = _code_flow(server, browser, a, email)
        second = _code_flow(server, browser, b_, None)  # SSO: no password
        ok = browser.post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": second["refresh_token"],
            "client_id": b_})
        assert ok.status_code == 200, ok.text
        second = ok.json()
        bye = browser.get("/oauth/logout", params={
            "id_token_hint": first["id_token"], "state": "s1",
            "post_logout_redirect_uri": "https://app.example/bye"})
        assert bye.status_code == 303  # a valid hint for this session: no confirmation
        assert bye.headers["location"] == "https://app.example/bye?state=s1"
        for client_id, tokens in ((a, first), (b_, second)):
            refused = browser.post("/oauth/token", data={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                "client_id": client_id})
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
            info = browser.get("/oauth/userinfo",
                               headers={"Authorization": "Bearer " + tokens["access_token"]})
            assert info.status_code == 401
        # the hint's post_logout_redirect_uri must be registered for the hint's client
        r = browser.get("/oauth/logout", params={
            "id_token_hint": first["id_token"], "post_logout_redirect_uri": "https://evil.test/"})
        assert r.status_code == 400 and "location" not in r.headers
