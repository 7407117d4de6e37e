"""The device authorization grant (RFC 8628) over real HTTP, attack by attack."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
from jotkit.server import FrozenClock
from jotkit.server.oauth.clients import DEVICE_CODE_GRANT
from oauth.par_device_helpers import (
    add_confidential,
    add_device_client,
    approve,
    enter_code,
    poll,
    start_device,
)
from oauth.sso_helpers import hidden
from server.harness import START, Server, bearer, make_settings

ISS = "http://jotkit.test"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(make_settings(tmp_path_factory.mktemp("device")), FrozenClock(START)).start()
    yield srv
    srv.stop()


@pytest.fixture
def email(server: Server) -> str:
    address = f"u{secrets.token_hex(4)}@example.com"
    server.add_user(address)
    return address


@pytest.fixture
def client_id(server: Server) -> str:
    return add_device_client(server)[0].client_id


def test_discovery_advertises_the_device_grant(server):
    with server.client() as c:
        meta = c.get("/.well-known/oauth-authorization-server").json()
    assert meta["device_authorization_endpoint"] == f"{ISS}/oauth/device_authorization"
    assert DEVICE_CODE_GRANT in meta["grant_types_supported"]


def test_device_authorization_response(server, client_id):
    with server.client() as c:
        r = c.post("/oauth/device_authorization",
                   data={"client_id": client_id, "scope": "openid offline_access"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert USER_CODE.fullmatch(body["user_code"])
    assert len(body["device_code"]) >= 43
    assert body["verification_uri"] == f"{ISS}/oauth/device"
    assert body["verification_uri_complete"] == (
        f"{ISS}/oauth/device?" + urlencode({"user_code": body["user_code"]}))
    assert body["expires_in"] == 600 and body["interval"] == 5


def test_device_flow_issues_tokens_once(server, client_id, email):
    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id, scope="openid email offline_access")
        first = poll(c, client_id, d["device_code"])
        assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
        done = approve(b, d["user_code"], email)
        assert done.status_code == 200 and "Device connected" in done.text
        server.clock.advance(5)
        tokens = poll(c, client_id, d["device_code"])
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        assert {"access_token", "refresh_token", "id_token"} <= set(body)
        assert body["scope"] == "openid email offline_access"
        me = c.get("/oauth/userinfo", headers=bearer(body["access_token"]))
        assert me.status_code == 200 and me.json()["email"] == email
        server.clock.advance(5)
        again = poll(c, client_id, d["device_code"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        refreshed = c.post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
            "client_id": client_id})
        assert refreshed.status_code == 200, refreshed.text


def test_device_code_polled_too_fast_gets_slow_down(server, client_id):
    with server.client() as c:
        d = start_device(c, client_id)
        assert poll(c, client_id, d["device_code"]).json()["error"] == "authorization_pending"
        too_fast = poll(c, client_id, d["device_code"])
        assert too_fast.status_code == 400 and too_fast.json()["error"] == "slow_down"
        server.clock.advance(5)  # the interval is now 10 s (RFC 8628 §3.5)
        assert poll(c, client_id, d["device_code"]).json()["error"] == "slow_down"
        server.clock.advance(15)  # ... and 15 s after the second slow_down
        assert poll(c, client_id, d["device_code"]).json()["error"] == "authorization_pending"


def test_denied_device_code_gets_access_denied(server, client_id, email):
    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id)
        denied = approve(b, d["user_code"], email, decision="deny")
        assert denied.status_code == 200 and "denied" in denied.text
        r = poll(c, client_id, d["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "access_denied"


def test_expired_device_code(server, client_id, email):
    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id)
        server.clock.advance(601)
        r = poll(c, client_id, d["device_code"])
        assert r.status_code == 400 and r.json()["error"] == "expired_token"
        page = enter_code(b, d["user_code"])
    assert page.status_code == 400 and "not valid or has expired" in page.text


def test_device_code_of_another_client_is_refused(server, client_id, email):
    other = add_device_client(server)[0].client_id
    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id)
        approve(b, d["user_code"], email)
        server.clock.advance(5)
        stolen = poll(c, other, d["device_code"])
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
        assert poll(c, client_id, d["device_code"]).status_code == 200


def test_client_without_the_device_grant_is_refused(server):
    client, secret = add_confidential(server)
    with server.client() as c:
        r = c.post("/oauth/device_authorization", auth=(client.client_id, secret),
                   data={"scope": "openid"})
        assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
        r = c.post("/oauth/token", auth=(client.client_id, secret), data={
            "grant_type": DEVICE_CODE_GRANT, "device_code": "x" * 43})
        assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_user_code_page_needs_its_csrf_token(server, client_id):
    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id)
        r = b.post("/oauth/device", data={"user_code": d["user_code"], "csrf_token": "x"})
    assert r.status_code == 403
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["x-frame-options"] == "DENY"


def test_user_code_approval_is_bound_to_the_session_and_code(server, client_id, email):
    with server.client() as c, server.client(follow_redirects=False) as b:
        mine = start_device(c, client_id)
        theirs = start_device(c, client_id)  # e.g. a code an attacker wants approved
        page = enter_code(b, mine["user_code"])
        confirm = b.post("/oauth/device/login", data={
            "csrf_token": hidden(page.text, "csrf_token"), "user_code": mine["user_code"],
            "email": email, "password": "correct horse battery staple"})
        token = hidden(confirm.text, "csrf_token")
        r = b.post("/oauth/device/confirm", data={
            "csrf_token": token, "user_code": theirs["user_code"], "decision": "allow"})
        assert r.status_code == 403
        with server.client(follow_redirects=False) as stranger:  # no session
            r = stranger.post("/oauth/device/confirm", data={
                "csrf_token": token, "user_code": mine["user_code"], "decision": "allow"})
            assert r.status_code == 403
        server.clock.advance(5)
        assert poll(c, client_id, theirs["device_code"]).json()["error"] == (
            "authorization_pending")


def test_user_code_brute_force_is_throttled(server, client_id):
    with server.client() as c, server.client(follow_redirects=False) as b:
        server.clock.advance(server.settings.user_code_window + 1)  # a fresh window
        d = start_device(c, client_id)
        page = b.get("/oauth/device")
        csrf = hidden(page.text, "csrf_token")
        try:
            statuses = [
                b.post("/oauth/device", data={"csrf_token": csrf,
                                              "user_code": "BCDF-GHJK"}).status_code
                for _ in range(server.settings.user_code_limit)
            ]
            assert statuses == [400] * server.settings.user_code_limit
            locked = b.post("/oauth/device", data={"csrf_token": csrf,
                                                   "user_code": d["user_code"]})
            assert locked.status_code == 429 and "retry-after" in locked.headers
            assert "Too many wrong codes" in locked.text
        finally:
            server.clock.advance(server.settings.user_code_window + 1)


def test_device_code_redeemed_once_under_concurrency(server, client_id, email):
    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id)
        approve(b, d["user_code"], email)
    server.clock.advance(5)
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": d["device_code"],
            "client_id": client_id}

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as ac:
            return await asyncio.gather(*[ac.post("/oauth/token", data=form)
                                          for _ in range(20)])

    responses = asyncio.run(storm())
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, statuses
    errors = Counter(r.json()["error"] for r in responses if r.status_code != 200)
    assert set(errors) <= {"slow_down", "invalid_grant"}, errors


_DEVICE_NAMES = st.sampled_from(["scope", "resource", "client_id", "x", "device_code"])
_TOKEN_NAMES = st.sampled_from(["device_code", "client_id", "scope", "grant_type", "x"])
_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@given(endpoint=st.sampled_from(["device", "token"]),
       pairs=st.lists(st.tuples(_DEVICE_NAMES | _TOKEN_NAMES, _VALUES), max_size=6))
@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_malformed_device_parameters_always_get_a_4xx(server, client_id, endpoint, pairs):
    if endpoint == "device":
        path, base = "/oauth/device_authorization", [("client_id", client_id)]
    else:
        path, base = "/oauth/token", [("client_id", client_id),
                                      ("grant_type", DEVICE_CODE_GRANT)]
    with server.client() as c:
        r = c.post(path, content=urlencode(base + pairs), headers=_FORM)
    assert 400 <= r.status_code < 500 or (endpoint == "device" and r.status_code == 200), r.text
    if r.status_code >= 400:
        assert r.json()["error"]


@given(text=st.text(max_size=30))
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_malformed_user_codes_get_the_form_again(server, text):
    with server.client(follow_redirects=False) as b:
        page = b.get("/oauth/device")
        r = b.post("/oauth/device", data={"csrf_token": hidden(page.text, "csrf_token"),
                                          "user_code": text})
    assert r.status_code in (400, 429)
    server.clock.advance(server.settings.user_code_window + 1)


def test_device_code_tokens_are_bound_to_the_dpop_key_of_the_poll(server, client_id, email):
    """RFC 9449 §5 for the device grant: a proof on the redeeming poll binds the access token
    (``cnf.jkt``) and the public client's refresh token, so a refresh token stolen from the
    device is useless without the device's key."""
    import jotkit
    from jotkit import dpop

    token_url = f"{ISS}/oauth/token"
    key, attacker = jotkit.Key.generate("ES256"), jotkit.Key.generate("ES256")

    def with_proof(k: jotkit.Key, form: dict[str, str]) -> httpx.Response:
        proof = dpop.proof(k, "POST", token_url, now=server.clock.now())
        return c.post("/oauth/token", data=form, headers={"DPoP": proof})

    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id, scope="openid offline_access")
        assert approve(b, d["user_code"], email).status_code == 200
        server.clock.advance(5)
        r = with_proof(key, {"grant_type": DEVICE_CODE_GRANT, "device_code": d["device_code"],
                             "client_id": client_id})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "DPoP"
        claims = jotkit.decode_unverified(body["access_token"])[1]
        assert claims["cnf"] == {"jkt": key.thumbprint()}
        refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                   "client_id": client_id}
        stolen = with_proof(attacker, refresh)
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
        assert with_proof(key, refresh).status_code == 200


def test_browser_sign_out_does_not_sign_the_device_out(server, client_id, email):
    from jotkit.server.oauth.logout import end_sso_session
    from jotkit.server.oauth.sso import session_token_hash

    with server.client() as c, server.client(follow_redirects=False) as b:
        d = start_device(c, client_id, scope="openid offline_access")
        approve(b, d["user_code"], email)
        server.clock.advance(5)
        tokens = poll(c, client_id, d["device_code"]).json()
        browser = server.run(server.service.store.sso.find_session(
            session_token_hash(b.cookies["jotkit_sso"])))
        server.run(end_sso_session(server.service, browser.sid))
        claims = jotkit.decode_unverified(tokens["id_token"])[1]
        assert claims["sid"] != browser.sid  # the device is its own session
        r = c.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                         "refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
