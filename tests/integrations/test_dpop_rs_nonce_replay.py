"""Resource-server DPoP nonces (RFC 9449 §9) and a replay cache shared by replicas (§11.1),
in FastAPI, Starlette, Flask, Django and DRF. Regression tests are named after the attack
they prevent."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

import jotkit
from jotkit import dpop
from jotkit.dpop import HmacNonces
from jotkit.integrations import RedisReplayCache, TokenVerifier

from .apps import Client, make_client
from .conftest import AUDIENCE, ISSUER, FakeClock
from .test_dpop import BASE, URL, bound_token, call, dpop_error

SECRET = b"resource-server nonce secret, 32b"
WINDOW = 120.0


def _verifier(es_key: jotkit.Key, clock: FakeClock, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(es_key.public(), issuer=ISSUER, audience=AUDIENCE, clock=clock,
                         realm="api", dpop_base_url=BASE, **kwargs)


@pytest.fixture
def nonce_client(framework: str, es_key: jotkit.Key, clock: FakeClock) -> Client:
    return make_client(framework, _verifier(es_key, clock,
                                            dpop_nonce=HmacNonces(SECRET, window=WINDOW)))


def _use_nonce(reply: Any) -> str:
    dpop_error(reply, "use_dpop_nonce", "dpop_nonce_required")
    nonce: str = reply.headers["dpop-nonce"]
    assert nonce
    return nonce


def test_resource_server_nonce_dance(framework, nonce_client, es_key, holder, clock):
    token = bound_token(es_key, holder, clock.now)
    first = call(nonce_client, token, dpop.proof(holder, "GET", URL, token, now=clock.now))
    nonce = _use_nonce(first)
    ok = call(nonce_client, token,
              dpop.proof(holder, "GET", URL, token, nonce=nonce, now=clock.now))
    assert ok.status == 200, ok.body
    if framework != "drf":  # DRF's authentication classes cannot set response headers
        assert ok.headers["dpop-nonce"] == nonce  # RFC 9449 §9: the current nonce on success
    clock.advance(WINDOW)  # the next window: the previous nonce is still good
    again = call(nonce_client, token,
                 dpop.proof(holder, "GET", URL, token, nonce=nonce, now=clock.now))
    assert again.status == 200, again.body
    if framework != "drf":
        assert again.headers["dpop-nonce"] != nonce  # a fresh one before the old goes stale


def test_proof_with_a_stale_resource_server_nonce_is_refused(nonce_client, es_key, holder,
                                                              clock):
    token = bound_token(es_key, holder, clock.now)
    nonce = HmacNonces(SECRET, window=WINDOW).current(clock.now)
    clock.advance(2 * WINDOW)
    token = bound_token(es_key, holder, clock.now)
    reply = call(nonce_client, token,
                 dpop.proof(holder, "GET", URL, token, nonce=nonce, now=clock.now))
    assert _use_nonce(reply) != nonce


def test_proof_with_a_nonce_forged_under_another_secret_is_refused(nonce_client, es_key,
                                                                   holder, clock):
    token = bound_token(es_key, holder, clock.now)
    forged = HmacNonces(b"the attacker's own secret, 32 b!", window=WINDOW).current(clock.now)
    reply = call(nonce_client, token,
                 dpop.proof(holder, "GET", URL, token, nonce=forged, now=clock.now))
    _use_nonce(reply)


def test_nonce_of_the_authorization_server_is_not_a_resource_server_nonce(
    nonce_client, es_key, holder, clock,
):
    """Another label (the provider's nonces) under the same secret is another key."""
    token = bound_token(es_key, holder, clock.now)
    other = HmacNonces(SECRET, window=WINDOW, label=b"jotkit dpop nonce at the AS").current(
        clock.now)
    reply = call(nonce_client, token,
                 dpop.proof(holder, "GET", URL, token, nonce=other, now=clock.now))
    _use_nonce(reply)


def test_without_dpop_nonce_no_nonce_is_asked_or_sent(framework, es_key, holder, clock):
    client = make_client(framework, _verifier(es_key, clock))
    token = bound_token(es_key, holder, clock.now)
    reply = call(client, token, dpop.proof(holder, "GET", URL, token, now=clock.now))
    assert reply.status == 200 and "dpop-nonce" not in reply.headers


def test_hmac_nonces_refuse_bad_arguments():
    with pytest.raises(ValueError):
        HmacNonces(b"short")
    with pytest.raises(ValueError):
        HmacNonces(SECRET, window=0)
    nonces = HmacNonces(SECRET)
    assert not nonces.valid("", 0.0) and not nonces.valid("1.x", 300.0)
    assert not nonces.valid("9" * 13 + ".tag", 0.0)
    assert "secret" not in repr(nonces) and repr(SECRET) not in repr(nonces)


# -- a replay cache shared by replicas (Redis) -----------------------------------------------


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"jotkit:test:rs-dpop:{secrets.token_hex(6)}:"
    yield name
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=name + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.redis
def test_dpop_proof_replayed_to_another_replica_is_refused(framework, redis_url, prefix,
                                                             es_key, holder, clock):
    """Two replicas of one API, each with its own verifier and Redis connection: a proof
    used on the first is refused by the second (RFC 9449 §11.1)."""
    replicas = [make_client(framework, _verifier(
        es_key, clock, dpop_replay=RedisReplayCache(redis_url, prefix=prefix)))
        for _ in range(2)]
    token = bound_token(es_key, holder, clock.now)
    proof = dpop.proof(holder, "GET", URL, token, now=clock.now)
    assert call(replicas[0], token, proof).status == 200
    dpop_error(call(replicas[1], token, proof), "invalid_dpop_proof", "dpop_replayed")
    dpop_error(call(replicas[0], token, proof), "invalid_dpop_proof", "dpop_replayed")
    fresh = dpop.proof(holder, "GET", URL, token, now=clock.now)
    assert call(replicas[1], token, fresh).status == 200  # a new proof is fine anywhere


@pytest.mark.redis
def test_redis_replay_keys_expire_with_the_proof_window(redis_url, prefix):
    import redis

    cache = RedisReplayCache(redis_url, prefix=prefix)
    try:
        assert cache.seen("jkt:jti-1", 1_000_065.0, 1_000_000.0) is False
        assert cache.seen("jkt:jti-1", 1_000_065.0, 1_000_000.0) is True
        client = redis.Redis.from_url(redis_url)
        try:
            ttl = client.pttl(prefix + "jkt:jti-1")
        finally:
            client.close()
        assert 0 < ttl <= 65_000
    finally:
        cache.close()


def test_replay_check_fails_closed_when_redis_is_down(framework, es_key, holder, clock):
    """A replay check that could not run is no pass: 503, never a silent accept."""
    down = RedisReplayCache("redis://127.0.0.1:1/0", prefix="x:", timeout=0.5)
    client = make_client(framework, _verifier(es_key, clock, dpop_replay=down))
    token = bound_token(es_key, holder, clock.now)
    reply = call(client, token, dpop.proof(holder, "GET", URL, token, now=clock.now))
    assert reply.status == 503, reply.body
    assert reply.body["reason"] == "dpop_replay_unavailable"


def test_dpop_replay_must_be_a_replay_cache(es_key, clock):
    with pytest.raises(TypeError):
        _verifier(es_key, clock, dpop_replay=lambda proof, now: True)
