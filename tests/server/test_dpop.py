"""DPoP at the provider over real HTTP (RFC 9449): bound tokens from the token endpoint (§5),
refresh tokens of public clients bound to the key, server nonces (§8), the replay cache
(§11.1), ``/oauth/userinfo`` as a DPoP-protected resource (§7), introspection (§6.2) and
discovery. Regression tests are named after the attack they prevent."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import dpop
from jotkit.server import FrozenClock

from .harness import START, bearer
from .oauth_util import exchange, make_code, register

ISSUER = "http://jotkit.test"
TOKEN_URL = f"{ISSUER}/oauth/token"
USERINFO_URL = f"{ISSUER}/oauth/userinfo"
RS1 = httpx.BasicAuth("rs1", "rs1-secret")


@pytest.fixture(scope="module")
def key() -> jotkit.Key:
    return jotkit.Key.generate("ES256")


def _cc(c: httpx.Client, client, proof: str | None = None) -> httpx.Response:
    headers = {} if proof is None else {"DPoP": proof}
    return c.post("/oauth/token", data={"grant_type": "client_credentials"},
                  auth=client.basic, headers=headers)


def _claims(token: str) -> dict:
    return jotkit.decode_unverified(token)[1]


def _service_client(server, **kwargs):
    return register(server, "billing", grant_types=("client_credentials",),
                    scopes=("invoices:read",), **kwargs)


def test_client_credentials_with_dpop_binds_the_token_to_the_key(server, key):
    client = _service_client(server)
    with server.client() as c:
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, now=server.clock.now()))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "DPoP"
        assert _claims(body["access_token"])["cnf"] == {"jkt": key.thumbprint()}
        assert "dpop-nonce" not in r.headers  # nonces are off by default
        intro = c.post("/oauth/introspect", data={"token": body["access_token"]}, auth=RS1)
        assert intro.json()["cnf"] == {"jkt": key.thumbprint()}  # RFC 9449 §6.2
        assert intro.json()["token_type"] == "DPoP"
        plain = _cc(c, client).json()  # without a proof: a plain bearer token, as before
        assert plain["token_type"] == "Bearer" and "cnf" not in _claims(plain["access_token"])
        meta = c.get("/.well-known/openid-configuration").json()
        assert "ES256" in meta["dpop_signing_alg_values_supported"]
        assert "HS256" not in meta["dpop_signing_alg_values_supported"]


def test_dpop_proof_replay_is_refused(server, key):
    client = _service_client(server)
    proof = dpop.proof(key, "POST", TOKEN_URL, now=server.clock.now())
    with server.client() as c:
        assert _cc(c, client, proof).status_code == 200
        r = _cc(c, client, proof)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
        assert "already used" in r.json()["error_description"]


def test_dpop_proof_with_wrong_htu_at_the_token_endpoint_is_refused(server, key):
    client = _service_client(server)
    with server.client() as c:
        r = _cc(c, client, dpop.proof(key, "POST", USERINFO_URL, now=server.clock.now()))
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
        assert "dpop_htu_mismatch" in r.json()["error_description"]


def test_dpop_proof_with_wrong_htm_at_the_token_endpoint_is_refused(server, key):
    client = _service_client(server)
    with server.client() as c:
        r = _cc(c, client, dpop.proof(key, "GET", TOKEN_URL, now=server.clock.now()))
        assert r.status_code == 400 and "dpop_htm_mismatch" in r.json()["error_description"]


def test_two_dpop_headers_are_refused(server, key):
    client = _service_client(server)
    now = server.clock.now()
    with server.client() as c:
        r = c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=client.basic,
                   headers=[("DPoP", dpop.proof(key, "POST", TOKEN_URL, now=now)),
                            ("DPoP", dpop.proof(key, "POST", TOKEN_URL, now=now))])
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"


def test_dpop_bound_client_without_a_proof_is_refused(server, key):
    client = register(server, "bound", grant_types=("client_credentials",),
                      scopes=("invoices:read",))
    from dataclasses import replace

    server.run(server.service.store.clients.delete(client.id))
    server.run(server.service.store.clients.create(
        replace(client.record, dpop_bound_access_tokens=True)))
    with server.client() as c:
        r = _cc(c, client)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, now=server.clock.now()))
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP"


def test_server_nonce_dance_and_stale_or_forged_nonces(make_server, key):
    clock = FrozenClock(START)
    server = make_server(clock=clock, dpop_require_nonce=True, dpop_nonce_window=300)
    client = _service_client(server)
    with server.client() as c:
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, now=clock.now()))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        nonce = r.headers["DPoP-Nonce"]
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, nonce=nonce, now=clock.now()))
        assert r.status_code == 200, r.text
        assert r.headers["DPoP-Nonce"] == nonce  # §8.2: the current nonce on success
        clock.advance(300)  # the next window: the previous nonce is still accepted
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, nonce=nonce, now=clock.now()))
        assert r.status_code == 200 and r.headers["DPoP-Nonce"] != nonce
        clock.advance(300)  # two windows later it is stale
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, nonce=nonce, now=clock.now()))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        window = nonce.split(".")[0]
        forged = f"{int(clock.now() // 300)}.{nonce.split('.')[1]}"  # this window, old tag
        assert window != forged.split(".")[0]
        r = _cc(c, client, dpop.proof(key, "POST", TOKEN_URL, nonce=forged, now=clock.now()))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"


def _public_code_flow(server, key):
    client = register(server, "spa", public=True)
    code, verifier = make_code(server, client)
    with server.client() as c:
        r = exchange(c, client, code, verifier) if key is None else c.post(
            "/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri":
                  "https://app.example/callback", "code_verifier": verifier,
                  "client_id": client.id},
            headers={"DPoP": dpop.proof(key, "POST", TOKEN_URL, now=server.clock.now())},
        )
    assert r.status_code == 200, r.text
    return client, r.json()


def _refresh(c, client, refresh: str, proof_key: jotkit.Key | None, now: float):
    headers = {} if proof_key is None else {"DPoP": dpop.proof(proof_key, "POST", TOKEN_URL,
                                                               now=now)}
    return c.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh,
                                        "client_id": client.id}, headers=headers)


def test_bound_refresh_token_with_another_key_is_refused(server, key):
    client, body = _public_code_flow(server, key)
    assert body["token_type"] == "DPoP"
    attacker = jotkit.Key.generate("ES256")
    now = server.clock.now()
    with server.client() as c:
        r = _refresh(c, client, body["refresh_token"], attacker, now)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = _refresh(c, client, body["refresh_token"], None, now)  # no proof at all
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = _refresh(c, client, body["refresh_token"], key, now)  # not spent by the attempts
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["token_type"] == "DPoP"
        assert _claims(rotated["access_token"])["cnf"]["jkt"] == key.thumbprint()
        r = _refresh(c, client, rotated["refresh_token"], attacker, now)  # the binding stays
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def _userinfo(c, token: str, proof: str | None, scheme: str = "DPoP") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return c.get("/oauth/userinfo", headers=headers)


def test_userinfo_accepts_a_dpop_token_with_a_proof(server, key):
    _, body = _public_code_flow(server, key)
    token, now = body["access_token"], server.clock.now()
    with server.client() as c:
        r = _userinfo(c, token, dpop.proof(key, "GET", USERINFO_URL, token, now=now))
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "alice@example.com"


def test_dpop_bound_token_as_bearer_is_refused(server, key):
    _, body = _public_code_flow(server, key)
    with server.client() as c:
        r = c.get("/oauth/userinfo", headers=bearer(body["access_token"]))
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert r.headers["WWW-Authenticate"].startswith('DPoP algs="ES256')


def test_stolen_dpop_token_with_attackers_own_proof_is_refused(server, key):
    _, body = _public_code_flow(server, key)
    token, now = body["access_token"], server.clock.now()
    attacker = jotkit.Key.generate("ES256")
    with server.client() as c:
        r = _userinfo(c, token, dpop.proof(attacker, "GET", USERINFO_URL, token, now=now))
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
        assert 'error="invalid_dpop_proof"' in r.headers["WWW-Authenticate"]
        assert r.headers["WWW-Authenticate"].startswith("DPoP ")


def test_userinfo_dpop_ath_mismatch_and_missing_proof_are_refused(server, key):
    _, body = _public_code_flow(server, key)
    token, now = body["access_token"], server.clock.now()
    with server.client() as c:
        r = _userinfo(c, token, dpop.proof(key, "GET", USERINFO_URL, "another", now=now))
        assert r.status_code == 401 and "dpop_ath_mismatch" in r.json()["error_description"]
        r = _userinfo(c, token, None)
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
        bearer_token = _public_code_flow(server, None)[1]["access_token"]  # not bound
        r = _userinfo(c, bearer_token, dpop.proof(key, "GET", USERINFO_URL, bearer_token,
                                                  now=now))
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert r.headers["WWW-Authenticate"].startswith("DPoP ")


def test_userinfo_dpop_proof_replay_is_refused(server, key):
    _, body = _public_code_flow(server, key)
    token, now = body["access_token"], server.clock.now()
    proof = dpop.proof(key, "GET", USERINFO_URL, token, now=now)
    with server.client() as c:
        assert _userinfo(c, token, proof).status_code == 200
        r = _userinfo(c, token, proof)
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"


def test_dpop_proof_replay_across_two_instances_sharing_sqlite_is_refused(
    make_server, tmp_path: Path, key
):
    shared = tmp_path / "shared"
    a = make_server(data_dir=shared)
    b = make_server(data_dir=shared)
    client = _service_client(a)
    proof = dpop.proof(key, "POST", TOKEN_URL, now=a.clock.now())
    with a.client() as ca, b.client() as cb:
        assert _cc(ca, client, proof).status_code == 200
        r = _cc(cb, client, proof)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(
    st.lists(st.integers(0x20, 0xFF).filter(lambda c: c != 0x7F), max_size=3000).map(bytes),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
).map(bytes.strip).filter(lambda b: b != b"" and not any(c < 0x20 or c == 0x7F for c in b)))
def test_malformed_dpop_headers_are_always_a_4xx(server, value: bytes):
    client = _service_client(server) if not hasattr(server, "_dpop_fuzz") else server._dpop_fuzz
    server._dpop_fuzz = client
    with server.client() as c:
        r = c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=client.basic,
                   headers=[(b"DPoP", value)])
        assert r.status_code == 400, r.text  # control bytes: refused by the HTTP parser
        if r.headers.get("content-type") == "application/json":
            assert r.json()["error"] == "invalid_dpop_proof"
        r = c.get("/oauth/userinfo", headers=[(b"Authorization", b"DPoP a.b.c"),
                                              (b"DPoP", value)])
        assert 400 <= r.status_code < 500


def test_dpop_bound_token_as_bearer_on_the_first_party_api_is_refused(server, key):
    _, body = _public_code_flow(server, key)
    with server.client() as c:
        r = c.get("/auth/me", headers=bearer(body["access_token"]))
        assert r.status_code == 401, r.text


def test_public_refresh_with_a_proof_binds_an_unbound_refresh_token(server, key):
    client, body = _public_code_flow(server, None)  # no DPoP at the code exchange
    now = server.clock.now()
    with server.client() as c:
        r = _refresh(c, client, body["refresh_token"], key, now)
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP"
        rotated = r.json()["refresh_token"]
        r = _refresh(c, client, rotated, jotkit.Key.generate("ES256"), now)  # another key
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert _refresh(c, client, rotated, key, now).status_code == 200


def test_userinfo_asks_for_a_dpop_nonce_with_a_dpop_challenge(make_server, key):
    server = make_server(dpop_require_nonce=True)
    server.add_user("alice@example.com")
    client = register(server, "spa", public=True)
    code, verifier = make_code(server, client)
    now = server.clock.now()
    with server.client() as c:
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": "https://app.example/callback", "client_id": client.id}
        r = c.post("/oauth/token", data=data,
                   headers={"DPoP": dpop.proof(key, "POST", TOKEN_URL, now=now)})
        nonce = r.headers["DPoP-Nonce"]
        r = c.post("/oauth/token", data=data, headers={
            "DPoP": dpop.proof(key, "POST", TOKEN_URL, nonce=nonce, now=now)})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        r = _userinfo(c, token, dpop.proof(key, "GET", USERINFO_URL, token, now=now))
        assert r.status_code == 401 and r.json()["error"] == "use_dpop_nonce"
        assert 'error="use_dpop_nonce"' in r.headers["WWW-Authenticate"]
        nonce = r.headers["DPoP-Nonce"]
        r = _userinfo(c, token, dpop.proof(key, "GET", USERINFO_URL, token, nonce=nonce, now=now))
        assert r.status_code == 200, r.text
