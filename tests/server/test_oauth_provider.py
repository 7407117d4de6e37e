"""The OAuth 2.1 / OpenID Connect token side over real HTTP: the token endpoint's three
grants, client authentication, RFC 9068 access tokens, ID tokens, userinfo, discovery,
introspection and revocation. Regression tests are named after the attack they prevent
(RFC 9700 §4)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time

import httpx
import pytest

import jotkit
from jotkit.server.oauth.clients import ASSERTION_TYPE

from .harness import bearer, login
from .oauth_util import REDIRECT, exchange, make_code, register

RS1 = httpx.BasicAuth("rs1", "rs1-secret")


def _jwks(c: httpx.Client) -> jotkit.KeySet:
    return jotkit.KeySet.from_jwks(c.get("/.well-known/jwks.json").json())


def _introspect(c: httpx.Client, token: str) -> dict:
    r = c.post("/oauth/introspect", data={"token": token}, auth=RS1)
    assert r.status_code == 200, r.text
    return r.json()


def _error(r: httpx.Response, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert r.headers["cache-control"] == "no-store"
    return body


# -- client_credentials -------------------------------------------------------------------
def test_client_credentials_issues_rfc9068_token_for_the_client(server):
    svc_client = register(server, "billing", grant_types=("client_credentials",),
                          scopes=("invoices:read", "invoices:write"))
    with server.client() as c:
        r = c.post("/oauth/token", data={"grant_type": "client_credentials",
                                         "scope": "invoices:read"}, auth=svc_client.basic)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
        body = r.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "invoices:read"
        assert "refresh_token" not in body and "id_token" not in body
        verified = jotkit.Verifier(
            _jwks(c), algorithms=["ES256"], issuer="http://jotkit.test", audience="jotkit",
            typ="at+jwt", require=("exp", "iat", "jti", "sub", "client_id"),
        ).decode_complete(body["access_token"], now=server.clock.now())
        claims = verified.claims
        assert verified.header["typ"] == "at+jwt"
        assert claims["sub"] == claims["client_id"] == svc_client.id
        assert claims["scope"] == "invoices:read"
        assert claims["exp"] - claims["iat"] == body["expires_in"] == 900
        # no scope parameter: every registered scope (RFC 6749 §3.3 default)
        r = c.post("/oauth/token", data={"grant_type": "client_credentials"},
                   auth=svc_client.basic)
        assert r.json()["scope"] == "invoices:read invoices:write"
        _error(c.post("/oauth/token", data={"grant_type": "client_credentials",
                                            "scope": "admin"}, auth=svc_client.basic),
               400, "invalid_scope")
        _error(c.post("/oauth/token", data={"grant_type": "client_credentials",
                                            "scope": "openid"}, auth=svc_client.basic),
               400, "invalid_scope")
        # the first-party API does not take a service token (no user, no session)
        assert c.get("/auth/me", headers=bearer(body["access_token"])).status_code == 401


def test_client_secret_post_and_method_pinning(server):
    post = register(server, "post", grant_types=("client_credentials",), scopes=("a",),
                    auth_method="client_secret_post")
    with server.client() as c:
        ok = c.post("/oauth/token", data={"grant_type": "client_credentials",
                                          "client_id": post.id, "client_secret": post.secret})
        assert ok.status_code == 200, ok.text
        # registered for client_secret_post: HTTP Basic with the right secret is refused
        r = c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=post.basic)
        _error(r, 401, "invalid_client")
        # two methods at once (RFC 6749 §2.3)
        r = c.post("/oauth/token", data={"grant_type": "client_credentials",
                                         "client_secret": post.secret}, auth=post.basic)
        _error(r, 401, "invalid_client")


def test_client_impersonation_wrong_secret_or_unknown_client_is_401_with_basic_challenge(server):
    real = register(server, "real", grant_types=("client_credentials",), scopes=("a",))
    with server.client() as c:
        for auth in (httpx.BasicAuth(real.id, "x" * 43), httpx.BasicAuth("nobody", "x" * 43)):
            r = c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
            _error(r, 401, "invalid_client")
            assert r.headers["www-authenticate"].startswith("Basic ")
        # a confidential client cannot pass as public by leaving out its secret
        r = c.post("/oauth/token", data={"grant_type": "client_credentials",
                                         "client_id": real.id})
        _error(r, 401, "invalid_client")


def test_rfc6749_5_2_error_codes(server):
    cc = register(server, "cc", grant_types=("client_credentials",), scopes=("a",))
    with server.client() as c:
        _error(c.post("/oauth/token", data={"grant_type": "password"}, auth=cc.basic),
               400, "unsupported_grant_type")
        _error(c.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x"},
                      auth=cc.basic), 400, "unauthorized_client")
        _error(c.post("/oauth/token", data={}, auth=cc.basic), 400, "invalid_request")
        _error(c.post("/oauth/token", content="grant_type=client_credentials&grant_type=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"},
                      auth=cc.basic), 400, "invalid_request")
        _error(c.post("/oauth/token", json={"grant_type": "client_credentials"},
                      auth=cc.basic), 400, "invalid_request")
        _error(c.post("/oauth/token", content=b"grant_type=\xff",
                      headers={"Content-Type": "application/x-www-form-urlencoded"},
                      auth=cc.basic), 400, "invalid_request")


# -- authorization_code ---------------------------------------------------------------------
def test_code_exchange_issues_access_id_and_refresh_tokens(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)
    with server.client() as c:
        r = exchange(c, app, code, verifier)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scope"] == "openid email profile offline_access"
        assert body["refresh_token"]
        keys = _jwks(c)
        now = server.clock.now()
        at = jotkit.Verifier(keys, algorithms=["ES256"], issuer="http://jotkit.test",
                             audience="jotkit", typ="at+jwt").decode(body["access_token"], now=now)
        assert at["client_id"] == app.id and at["sid"].startswith("sso-")
        assert at["scope"] == body["scope"] and at["auth_time"] == int(now - 5)
        header, _ = jotkit.decode_unverified(body["id_token"])
        assert header["alg"] == "RS256"  # OpenID Connect Core §3.1.3.7 default
        idt = jotkit.Verifier(keys, algorithms=["RS256"], issuer="http://jotkit.test",
                              audience=app.id).decode(body["id_token"], now=now)
        assert idt["sub"] == at["sub"] and idt["azp"] == app.id
        assert idt["nonce"] == "n-0S6_WzA2Mj" and idt["sid"] == at["sid"]
        assert idt["auth_time"] == at["auth_time"]
        digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
        assert idt["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        info = _introspect(c, body["access_token"])
        assert info["active"] and info["client_id"] == app.id and info["scope"] == body["scope"]
        rinfo = _introspect(c, body["refresh_token"])
        assert rinfo["active"] and rinfo["client_id"] == app.id


def test_code_replay_revokes_issued_tokens(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)
    with server.client() as c:
        first = exchange(c, app, code, verifier).json()
        refreshed = c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}).json()
        assert _introspect(c, refreshed["access_token"])["active"]
        body = _error(exchange(c, app, code, verifier), 400, "invalid_grant")
        assert "already used" in body["error_description"]
        for token in (first["access_token"], refreshed["access_token"],
                      refreshed["refresh_token"]):
            assert _introspect(c, token) == {"active": False}
        r = c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]})
        _error(r, 400, "invalid_grant")


def test_code_expires_after_60_seconds(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)
    server.clock.advance(61)
    with server.client() as c:
        _error(exchange(c, app, code, verifier), 400, "invalid_grant")


def test_pkce_missing_verifier_is_refused(server):
    app = register(server, "web")
    code, _verifier = make_code(server, app)
    with server.client() as c:
        _error(exchange(c, app, code, None), 400, "invalid_request")


def test_pkce_wrong_verifier_is_refused_and_burns_the_code(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)
    with server.client() as c:
        _error(exchange(c, app, code, secrets.token_urlsafe(48)), 400, "invalid_grant")
        _error(exchange(c, app, code, verifier), 400, "invalid_grant")  # single use


def test_pkce_downgrade_to_plain_is_refused(server):
    """An attacker who saw the challenge sends it as the verifier (``plain`` semantics)."""
    app = register(server, "web")
    verifier = secrets.token_urlsafe(48)
    code, _ = make_code(server, app, verifier=verifier)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with server.client() as c:
        _error(exchange(c, app, code, challenge), 400, "invalid_grant")
    with pytest.raises(ValueError, match="S256"):  # a plain challenge cannot even be stored
        make_code(server, app, challenge=verifier)


def test_client_impersonation_code_of_another_client_is_refused(server):
    victim = register(server, "victim")
    attacker = register(server, "attacker")
    code, verifier = make_code(server, victim)
    with server.client() as c:
        body = _error(exchange(c, attacker, code, verifier), 400, "invalid_grant")
        assert "another client" in body["error_description"]
        _error(exchange(c, victim, code, verifier), 400, "invalid_grant")  # burnt


def test_redirect_uri_must_equal_the_authorization_request(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)
    with server.client() as c:
        r = exchange(c, app, code, verifier, redirect_uri=REDIRECT + "/")
        _error(r, 400, "invalid_grant")


def test_public_client_exchanges_with_pkce_and_no_secret(server):
    spa = register(server, "spa", public=True)
    assert spa.secret is None
    code, verifier = make_code(server, spa)
    with server.client() as c:
        r = exchange(c, spa, code, verifier)
        assert r.status_code == 200, r.text
        refreshed = c.post("/oauth/token", data={
            "grant_type": "refresh_token", "client_id": spa.id,
            "refresh_token": r.json()["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text


def test_refresh_token_only_with_offline_access_or_first_party(server):
    third = register(server, "third")
    first = register(server, "first", first_party=True)
    with server.client() as c:
        code, verifier = make_code(server, third, scope=("openid", "email"))
        assert "refresh_token" not in exchange(c, third, code, verifier).json()
        code, verifier = make_code(server, first, scope=("openid",))
        assert exchange(c, first, code, verifier).json()["refresh_token"]


def test_refresh_rotation_reuse_revokes_the_grant(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)
    with server.client() as c:
        first = exchange(c, app, code, verifier).json()
        second = c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        assert second.status_code == 200, second.text
        assert second.json()["refresh_token"] != first["refresh_token"]
        assert jotkit.decode_unverified(second.json()["id_token"])[1]["sid"]
        server.clock.advance(10)  # past the benign-retry grace window
        again = c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        _error(again, 400, "invalid_grant")
        assert _introspect(c, second.json()["access_token"]) == {"active": False}


def test_refresh_token_used_by_another_client_is_refused(server):
    victim = register(server, "victim")
    thief = register(server, "thief")
    code, verifier = make_code(server, victim)
    with server.client() as c:
        tokens = exchange(c, victim, code, verifier).json()
        r = c.post("/oauth/token", auth=thief.basic, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        _error(r, 400, "invalid_grant")
        assert _introspect(c, tokens["access_token"]) == {"active": False}  # grant revoked
        # nor at the first-party endpoint
        code, verifier = make_code(server, victim)
        tokens = exchange(c, victim, code, verifier).json()
        r = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_refresh_scope_can_narrow_never_widen(server):
    app = register(server, "web")
    code, verifier = make_code(server, app, scope=("openid", "offline_access"))
    with server.client() as c:
        rt = exchange(c, app, code, verifier).json()["refresh_token"]
        _error(c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": rt, "scope": "openid email"}),
            400, "invalid_scope")
        r = c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": rt, "scope": "offline_access"})
        assert r.status_code == 200, r.text  # the token survived the refused request
        assert r.json()["scope"] == "offline_access" and "id_token" not in r.json()


def test_resource_selects_aud_and_is_checked_rfc8707(server):
    app = register(server, "web", resources=("https://api.example/",))
    with server.client() as c:
        code, verifier = make_code(server, app, resource=("https://api.example/",))
        at = exchange(c, app, code, verifier).json()["access_token"]
        assert jotkit.decode_unverified(at)[1]["aud"] == "https://api.example/"
        info = _introspect(c, at)
        assert info["active"] and info["aud"] == "https://api.example/"
        assert c.get("/auth/me", headers=bearer(at)).status_code == 401  # not for /auth/*
        code, verifier = make_code(server, app)
        r = exchange(c, app, code, verifier, resource="https://evil.example/")
        _error(r, 400, "invalid_target")


# -- private_key_jwt --------------------------------------------------------------------
def _assertion(key: jotkit.Key, client_id: str, aud: str, now: float, jti: str) -> str:
    return jotkit.encode({"iss": client_id, "sub": client_id, "aud": aud, "jti": jti},
                         key, expires_in=60, now=now)


def test_private_key_jwt_replay_is_refused(server):
    key = jotkit.Key.generate("ES256").with_thumbprint_kid()
    jwks = {"keys": [key.public().to_jwk()]}
    app = register(server, "pkjwt", grant_types=("client_credentials",), scopes=("a",),
                   auth_method="private_key_jwt", jwks=jwks)
    assert app.secret is None
    now = server.clock.now()
    with server.client() as c:
        assertion = _assertion(key, app.id, "http://jotkit.test/oauth/token", now, "jti-1")
        data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion}
        assert c.post("/oauth/token", data=data).status_code == 200
        _error(c.post("/oauth/token", data=data), 401, "invalid_client")
        # aud must name this server (RFC 7523 §3 item 3)
        other = _assertion(key, app.id, "https://other.example/token", now, "jti-2")
        _error(c.post("/oauth/token", data={**data, "client_assertion": other}),
               401, "invalid_client")
        # signed by another key
        forged = _assertion(jotkit.Key.generate("ES256"), app.id, "http://jotkit.test", now,
                            "jti-3")
        _error(c.post("/oauth/token", data={**data, "client_assertion": forged}),
               401, "invalid_client")


# -- userinfo, discovery, revocation ----------------------------------------------------
def test_userinfo_claims_follow_the_granted_scopes(server):
    app = register(server, "web")
    with server.client() as c:
        code, verifier = make_code(server, app, scope=("openid", "email"))
        at = exchange(c, app, code, verifier).json()["access_token"]
        got = c.get("/oauth/userinfo", headers=bearer(at))
        assert got.status_code == 200, got.text
        assert got.json() == {"sub": jotkit.decode_unverified(at)[1]["sub"],
                              "email": "alice@example.com", "email_verified": False}
        posted = c.post("/oauth/userinfo", data={"access_token": at})
        assert posted.json() == got.json()
        code, verifier = make_code(server, app, scope=("openid",))
        at = exchange(c, app, code, verifier).json()["access_token"]
        assert set(c.get("/oauth/userinfo", headers=bearer(at)).json()) == {"sub"}
        assert c.get("/oauth/userinfo").status_code == 401
        first_party = login(c, "alice@example.com")["access_token"]
        r = c.get("/oauth/userinfo", headers=bearer(first_party))
        assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_discovery_lists_what_the_token_side_serves(server):
    with server.client() as c:
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            meta = c.get(path).json()
            assert meta["issuer"] == "http://jotkit.test"
            assert meta["token_endpoint"] == "http://jotkit.test/oauth/token"
            assert meta["authorization_endpoint"] == "http://jotkit.test/oauth/authorize"
            assert meta["end_session_endpoint"] == "http://jotkit.test/oauth/logout"
            assert meta["userinfo_endpoint"] == "http://jotkit.test/oauth/userinfo"
            assert meta["code_challenge_methods_supported"] == ["S256"]
            assert meta["response_types_supported"] == ["code"]
            assert meta["authorization_response_iss_parameter_supported"] is True
            assert "RS256" in meta["id_token_signing_alg_values_supported"]
            assert set(meta["grant_types_supported"]) == {
                "authorization_code", "refresh_token", "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange"}
            assert "implicit" not in json.dumps(meta) and "password" not in meta[
                "grant_types_supported"]
        algs = {k["alg"] for k in c.get("/.well-known/jwks.json").json()["keys"]}
        assert {"RS256", "ES256"} <= algs


def test_revocation_of_rfc9068_tokens_by_their_client_only(server):
    app = register(server, "web", resources=("https://api.example/",))
    other = register(server, "other")
    with server.client() as c:
        code, verifier = make_code(server, app, resource=("https://api.example/",))
        tokens = exchange(c, app, code, verifier).json()
        for token in (tokens["access_token"], tokens["refresh_token"]):
            assert c.post("/oauth/revoke", data={"token": token}, auth=other.basic
                          ).status_code == 200
            assert _introspect(c, token)["active"]  # another client cannot revoke them
        for token in (tokens["access_token"], tokens["refresh_token"]):
            assert c.post("/oauth/revoke", data={"token": token}, auth=app.basic
                          ).status_code == 200
            assert _introspect(c, token) == {"active": False}


def test_id_token_key_rotates_and_revokes_like_the_access_keys(server):
    svc = server.service
    app = register(server, "web")
    with server.client() as c:
        code, verifier = make_code(server, app)
        old = exchange(c, app, code, verifier).json()["id_token"]
        old_kid = jotkit.decode_unverified(old)[0]["kid"]
        done = server.run(svc.id_keyring.revoke(old_kid, server.clock.now()))
        assert done.replacement is not None and done.replacement.alg == "RS256"
        kids = {k["kid"] for k in c.get("/.well-known/jwks.json").json()["keys"]}
        assert old_kid not in kids and done.replacement.kid in kids
        code, verifier = make_code(server, app)
        new = exchange(c, app, code, verifier).json()["id_token"]
        assert jotkit.decode_unverified(new)[0]["kid"] == done.replacement.kid


# -- concurrency -----------------------------------------------------------------------
def test_100_concurrent_redemptions_of_one_code_exactly_one_succeeds(server):
    app = register(server, "web")
    code, verifier = make_code(server, app)

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            data = {"grant_type": "authorization_code", "code": code,
                    "redirect_uri": REDIRECT, "code_verifier": verifier}
            return list(await asyncio.gather(
                *(c.post("/oauth/token", data=data, auth=app.basic) for _ in range(100))))

    started = time.perf_counter()
    responses = asyncio.run(race())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(400) == 99 and all(
        r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    winner = next(r for r in responses if r.status_code == 200).json()
    with server.client() as c:  # the losers were replays: the winner's tokens are revoked
        assert _introspect(c, winner["access_token"]) == {"active": False}
    assert time.perf_counter() - started >= 0  # (no timing assertions; see benchmarks)
