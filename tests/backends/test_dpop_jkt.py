"""DPoP authorization code binding (RFC 9449 §10) over real HTTP on every backend (SQLite,
PostgreSQL, PostgreSQL + Redis): ``dpop_jkt`` at ``/oauth/authorize`` and in a pushed request,
the key of a ``DPoP`` proof sent with the push (§10.1), and the token endpoint refusing a bound
code without a proof by that key. Regression tests are named after the attack they prevent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import jotkit
from jotkit import dpop
from jotkit.server import FrozenClock
from oauth.par_device_helpers import CB, add_confidential
from oauth.sso_helpers import Pkce, consent, login, pkce, query_of
from server.harness import START, Server, make_settings

pytestmark = [pytest.mark.postgres]

ISSUER = "http://jotkit.test"
EMAIL = "alice@example.com"


@pytest.fixture
def server(backend_settings: dict[str, Any], tmp_path: Path) -> Iterator[Server]:
    """The service over real HTTP on the backend under test, with one user."""
    srv = Server(make_settings(tmp_path / "data", **backend_settings), FrozenClock(START)).start()
    try:
        srv.add_user(EMAIL)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def key() -> jotkit.Key:
    return jotkit.Key.generate("ES256")


def _params(client_id: str, verifier: Pkce, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": CB,
            "scope": "openid email", "state": "s-1", "code_challenge": verifier.challenge,
            "code_challenge_method": "S256", **extra}


def _sign_in(server: Server, query: dict[str, str]) -> httpx.Response:
    """Run ``/oauth/authorize`` with ``query`` through login and consent; the final answer."""
    with server.client(follow_redirects=False) as b:
        page = b.get("/oauth/authorize", params=query)
        if page.status_code != 200:
            return page
        shown = login(b, page, EMAIL)
        return consent(b, shown) if "Allow access?" in shown.text else shown


def _code(server: Server, query: dict[str, str]) -> str:
    done = _sign_in(server, query)
    assert done.status_code == 303, done.text
    q = query_of(done.headers["location"])
    assert "code" in q, q
    return q["code"]


def _redeem(server: Server, client_id: str, secret: str, code: str, verifier: Pkce,
            proof_key: jotkit.Key | None) -> httpx.Response:
    headers = {}
    if proof_key is not None:
        headers["DPoP"] = dpop.proof(proof_key, "POST", f"{ISSUER}/oauth/token",
                                     now=server.clock.now())
    with server.client() as c:
        return c.post("/oauth/token", auth=(client_id, secret), headers=headers, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CB,
            "code_verifier": verifier.verifier,
        })


def _push(server: Server, client_id: str, secret: str, params: dict[str, str],
          proof_key: jotkit.Key | None = None) -> httpx.Response:
    headers = {}
    if proof_key is not None:
        headers["DPoP"] = dpop.proof(proof_key, "POST", f"{ISSUER}/oauth/par",
                                     now=server.clock.now())
    with server.client() as c:
        return c.post("/oauth/par", data=params, auth=(client_id, secret), headers=headers)


def _pushed_code(server: Server, client_id: str, request_uri: str) -> str:
    return _code(server, {"client_id": client_id, "request_uri": request_uri})


def _claims(token: str) -> dict[str, Any]:
    return jotkit.decode_unverified(token)[1]


def test_code_bound_with_dpop_jkt_is_redeemed_with_a_proof_by_that_key(server, key):
    client, secret = add_confidential(server)
    verifier = pkce()
    code = _code(server, _params(client.client_id, verifier, dpop_jkt=key.thumbprint()))
    r = _redeem(server, client.client_id, secret, code, verifier, key)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    assert _claims(r.json()["access_token"])["cnf"] == {"jkt": key.thumbprint()}


def test_code_bound_with_dpop_jkt_is_refused_to_another_key(server, key):
    client, secret = add_confidential(server)
    verifier = pkce()
    code = _code(server, _params(client.client_id, verifier, dpop_jkt=key.thumbprint()))
    attacker = jotkit.Key.generate("ES256")
    r = _redeem(server, client.client_id, secret, code, verifier, attacker)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "dpop_jkt" in r.json()["error_description"]
    # the code was spent by the attempt (single use): the rightful key cannot use it either
    again = _redeem(server, client.client_id, secret, code, verifier, key)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_code_bound_with_dpop_jkt_is_refused_without_a_proof(server, key):
    client, secret = add_confidential(server)
    verifier = pkce()
    code = _code(server, _params(client.client_id, verifier, dpop_jkt=key.thumbprint()))
    r = _redeem(server, client.client_id, secret, code, verifier, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "dpop_jkt" in r.json()["error_description"]


def test_unbound_code_is_still_redeemed_as_a_bearer_or_with_any_key(server, key):
    client, secret = add_confidential(server)
    verifier = pkce()
    code = _code(server, _params(client.client_id, verifier))
    r = _redeem(server, client.client_id, secret, code, verifier, None)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    verifier = pkce()
    code = _code(server, _params(client.client_id, verifier))
    r = _redeem(server, client.client_id, secret, code, verifier, key)
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP"


def test_malformed_dpop_jkt_at_the_authorization_endpoint_is_sent_back_as_invalid_request(
    server,
):
    client, _ = add_confidential(server)
    with server.client(follow_redirects=False) as b:
        r = b.get("/oauth/authorize",
                  params=_params(client.client_id, pkce(), dpop_jkt="not-a-thumbprint"))
    assert r.status_code == 303
    q = query_of(r.headers["location"])
    assert q["error"] == "invalid_request" and "dpop_jkt" in q["error_description"]


def test_par_with_dpop_header_binds_the_code_to_the_proof_key(server, key):
    client, secret = add_confidential(server)
    verifier = pkce()
    pushed = _push(server, client.client_id, secret, _params(client.client_id, verifier), key)
    assert pushed.status_code == 201, pushed.text
    code = _pushed_code(server, client.client_id, pushed.json()["request_uri"])
    attacker = jotkit.Key.generate("ES256")
    stolen = _redeem(server, client.client_id, secret, code, verifier, attacker)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    verifier = pkce()
    pushed = _push(server, client.client_id, secret, _params(client.client_id, verifier), key)
    code = _pushed_code(server, client.client_id, pushed.json()["request_uri"])
    r = _redeem(server, client.client_id, secret, code, verifier, key)
    assert r.status_code == 200, r.text
    assert _claims(r.json()["access_token"])["cnf"] == {"jkt": key.thumbprint()}


def test_par_with_dpop_jkt_and_no_header_binds_the_code(server, key):
    client, secret = add_confidential(server)
    verifier = pkce()
    params = _params(client.client_id, verifier, dpop_jkt=key.thumbprint())
    pushed = _push(server, client.client_id, secret, params)
    assert pushed.status_code == 201, pushed.text
    code = _pushed_code(server, client.client_id, pushed.json()["request_uri"])
    r = _redeem(server, client.client_id, secret, code, verifier, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_par_with_dpop_jkt_conflicting_with_the_proof_key_is_refused(server, key):
    client, secret = add_confidential(server)
    other = jotkit.Key.generate("ES256")
    params = _params(client.client_id, pkce(), dpop_jkt=other.thumbprint())
    r = _push(server, client.client_id, secret, params, key)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    assert "dpop_jkt" in r.json()["error_description"]
    # the same jkt as the proof is fine
    params = _params(client.client_id, pkce(), dpop_jkt=key.thumbprint())
    assert _push(server, client.client_id, secret, params, key).status_code == 201


def test_par_dpop_proof_replay_is_refused(server, key):
    client, secret = add_confidential(server)
    proof = dpop.proof(key, "POST", f"{ISSUER}/oauth/par", now=server.clock.now())
    params = _params(client.client_id, pkce())
    with server.client() as c:
        first = c.post("/oauth/par", data=params, auth=(client.client_id, secret),
                       headers={"DPoP": proof})
        again = c.post("/oauth/par", data=params, auth=(client.client_id, secret),
                       headers={"DPoP": proof})
    assert first.status_code == 201, first.text
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof"


def test_par_asks_for_a_server_nonce_when_required(backend_settings, tmp_path, key):
    settings = make_settings(tmp_path / "data", dpop_require_nonce=True, **backend_settings)
    server = Server(settings, FrozenClock(START)).start()
    try:
        client, secret = add_confidential(server)
        params = _params(client.client_id, pkce())
        r = _push(server, client.client_id, secret, params, key)
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        nonce = r.headers["DPoP-Nonce"]
        proof = dpop.proof(key, "POST", f"{ISSUER}/oauth/par", nonce=nonce,
                           now=server.clock.now())
        with server.client() as c:
            ok = c.post("/oauth/par", data=params, auth=(client.client_id, secret),
                        headers={"DPoP": proof})
        assert ok.status_code == 201, ok.text
        assert ok.headers["DPoP-Nonce"]
    finally:
        server.stop()
