"""DPoP at a resource server (RFC 9449 §7), the same in FastAPI, Starlette, Flask, Django and
DRF: ``Authorization: DPoP`` with a proof of the token's ``cnf.jkt`` key. Regression tests
are named after the attack they prevent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import dpop
from jotkit.integrations import BearerError, TokenVerifier

from .apps import Client, make_client
from .conftest import AUDIENCE, ISSUER, FakeClock

BASE = "https://api.test"
URL = f"{BASE}/orders"
HOST = {"flask": "http://localhost"}  # the others' test clients use http://testserver


@pytest.fixture
def client(framework: str, es_key: jotkit.Key, clock: FakeClock) -> Client:
    verifier = TokenVerifier(es_key.public(), issuer=ISSUER, audience=AUDIENCE, clock=clock,
                             realm="api", dpop_base_url=BASE)
    return make_client(framework, verifier)


def bound_token(key: jotkit.Key, holder: jotkit.Key | None, now: float) -> str:
    claims: dict[str, Any] = {"scope": "orders:read", "client_id": "web"}
    if holder is not None:
        claims["cnf"] = {"jkt": holder.thumbprint()}
    return jotkit.encode(claims, key, expires_in=900, issuer=ISSUER, audience=AUDIENCE,
                         subject="user-1", jti=True, headers={"typ": "at+jwt"}, now=now)


def call(client: Client, token: str, proof: str | None, scheme: str = "DPoP",
         method: str = "GET") -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return client.request(method, "/orders", headers=headers)


def dpop_error(reply: Any, error: str, reason: str | None = None) -> None:
    assert reply.status == 401, reply.body
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith('DPoP algs="'), challenge
    assert f'error="{error}"' in challenge
    assert reply.body["error"] == error
    if reason is not None:
        assert reply.body["reason"] == reason


def test_a_dpop_token_with_its_proof_is_accepted(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    reply = call(client, token, dpop.proof(holder, "GET", URL, token, now=clock.now))
    assert reply.status == 200, reply.body
    assert reply.body == {"sub": "user-1", "scopes": "orders:read"}


def test_the_framework_url_is_the_htu_without_a_base_url(framework, es_key, holder, clock):
    verifier = TokenVerifier(es_key.public(), issuer=ISSUER, audience=AUDIENCE, clock=clock)
    client = make_client(framework, verifier)
    token = bound_token(es_key, holder, clock.now)
    url = HOST.get(framework, "http://testserver") + "/orders"
    reply = call(client, token, dpop.proof(holder, "GET", url, token, now=clock.now))
    assert reply.status == 200, reply.body


def test_dpop_bound_token_as_bearer_is_refused(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    dpop_error(call(client, token, None, scheme="Bearer"), "invalid_token", "dpop_bound_token")


def test_stolen_dpop_token_with_attackers_own_proof_is_refused(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    attacker = jotkit.Key.generate("ES256")
    reply = call(client, token, dpop.proof(attacker, "GET", URL, token, now=clock.now))
    dpop_error(reply, "invalid_dpop_proof", "dpop_key_mismatch")


def test_dpop_ath_mismatch_is_refused(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    other = bound_token(es_key, holder, clock.now)  # another token of the same key
    reply = call(client, token, dpop.proof(holder, "GET", URL, other, now=clock.now))
    dpop_error(reply, "invalid_dpop_proof", "dpop_ath_mismatch")


def test_dpop_proof_replay_is_refused(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    proof = dpop.proof(holder, "GET", URL, token, now=clock.now)
    assert call(client, token, proof).status == 200
    dpop_error(call(client, token, proof), "invalid_dpop_proof", "dpop_replayed")


def test_dpop_proof_with_wrong_htu_or_htm_is_refused(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    reply = call(client, token, dpop.proof(holder, "GET", f"{BASE}/admin", token, now=clock.now))
    dpop_error(reply, "invalid_dpop_proof", "dpop_htu_mismatch")
    reply = call(client, token, dpop.proof(holder, "POST", URL, token, now=clock.now))
    dpop_error(reply, "invalid_dpop_proof", "dpop_htm_mismatch")


def test_dpop_proof_from_the_future_is_refused(client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    reply = call(client, token, dpop.proof(holder, "GET", URL, token, now=clock.now + 600))
    dpop_error(reply, "invalid_dpop_proof", "dpop_iat_out_of_window")


def test_dpop_scheme_needs_a_bound_token_and_a_proof(client, es_key, holder, clock):
    unbound = bound_token(es_key, None, clock.now)
    reply = call(client, unbound, dpop.proof(holder, "GET", URL, unbound, now=clock.now))
    dpop_error(reply, "invalid_token", "dpop_unbound_token")
    token = bound_token(es_key, holder, clock.now)
    dpop_error(call(client, token, None), "invalid_dpop_proof", "dpop_malformed")


def test_an_invalid_token_with_the_dpop_scheme_is_still_invalid_token(client, es_key, clock):
    reply = call(client, bound_token(es_key, None, clock.now - 3600), None)
    assert reply.status == 401 and reply.body["reason"] == "expired"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                     min_size=1, max_size=2000))
def test_malformed_dpop_headers_are_always_a_401(client, es_key, holder, clock, value: str):
    token = bound_token(es_key, holder, clock.now)
    reply = call(client, token, value)
    dpop_error(reply, "invalid_dpop_proof")


def test_dpop_bound_token_through_extract_and_verify_is_refused(es_key, holder, clock):
    """The split API (``extract`` then ``verify``/``averify``, as ``jotkit forward-auth``
    calls it) is the bearer path: a DPoP-bound token must not pass it (RFC 9449 §7.2)."""
    verifier = TokenVerifier(es_key.public(), issuer=ISSUER, audience=AUDIENCE, clock=clock)
    token = bound_token(es_key, holder, clock.now)
    extracted = verifier.extract(f"Bearer {token}")
    for attempt in range(2):  # the second call answers from the verifier's cache
        with pytest.raises(BearerError) as sync_error:
            verifier.verify(extracted)
        assert sync_error.value.reason == "dpop_bound_token", attempt
        with pytest.raises(BearerError) as async_error:
            asyncio.run(verifier.averify(extracted))
        assert async_error.value.reason == "dpop_bound_token", attempt
    # a caller that checks the binding itself (check_binding) still gets the claims
    claims = verifier.verify(extracted, allow_bound=True)
    assert claims["cnf"] == {"jkt": holder.thumbprint()}
    plain = bound_token(es_key, None, clock.now)
    assert verifier.verify(verifier.extract(f"Bearer {plain}"))["sub"] == "user-1"
