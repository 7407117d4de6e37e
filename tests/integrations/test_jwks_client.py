"""JWKSClient against a real local HTTP server: caching, rotation, outage, limits."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
from jotkit.jwks_client import JWKSClient

from .conftest import AUDIENCE, ISSUER, JWKSServer, make_token


def _decode(token: str, client: JWKSClient, now: float) -> dict:
    return jotkit.decode(
        token,
        client,
        algorithms=["ES256", "RS256", "EdDSA"],
        issuer=ISSUER,
        audience=AUDIENCE,
        typ="at+jwt",
        now=now,
    )


def test_client_is_a_key_resolver_for_decode(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, clock=clock)
    token = make_token(es_key, now=clock.now)
    assert _decode(token, client, clock.now)["sub"] == "user-1"
    assert isinstance(client.resolve(jotkit.decode_unverified(token)[0]), jotkit.Key)
    assert jwks_server.hits == 1


def test_cache_is_reused_until_max_age(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, max_age=300, clock=clock)
    for _ in range(5):
        client.get_key_set()
    assert jwks_server.hits == 1
    clock.advance(299)
    client.get_key_set()
    assert jwks_server.hits == 1
    clock.advance(2)
    client.get_key_set()
    assert jwks_server.hits == 2


def test_cache_control_max_age_shortens_the_cache(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.headers = {"Cache-Control": "public, max-age=60"}
    client = JWKSClient(jwks_server.url, max_age=300, min_refetch_interval=10, clock=clock)
    client.get_key_set()
    clock.advance(59)
    client.get_key_set()
    assert jwks_server.hits == 1
    clock.advance(2)
    client.get_key_set()
    assert jwks_server.hits == 2


def test_cache_control_cannot_exceed_max_age(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.headers = {"Cache-Control": "max-age=86400"}
    client = JWKSClient(jwks_server.url, max_age=100, clock=clock)
    client.get_key_set()
    clock.advance(101)
    client.get_key_set()
    assert jwks_server.hits == 2


def test_no_store_is_floored_at_the_cooldown(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.headers = {"Cache-Control": "no-store"}
    client = JWKSClient(jwks_server.url, min_refetch_interval=5, clock=clock)
    client.get_key_set()
    client.get_key_set()
    assert jwks_server.hits == 1
    clock.advance(5)
    client.get_key_set()
    assert jwks_server.hits == 2


def test_age_header_is_subtracted(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.headers = {"Cache-Control": "max-age=100", "Age": "90"}
    client = JWKSClient(jwks_server.url, min_refetch_interval=1, clock=clock)
    client.get_key_set()
    clock.advance(11)
    client.get_key_set()
    assert jwks_server.hits == 2


def test_rotation_new_kid_triggers_one_refetch(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, min_refetch_interval=30, clock=clock)
    assert _decode(make_token(es_key, now=clock.now), client, clock.now)
    new_key = jotkit.Key.generate("ES256", kid="k2")
    jwks_server.publish(es_key, new_key)
    clock.advance(31)  # past the cooldown, well inside max_age
    token = make_token(new_key, now=clock.now)
    assert _decode(token, client, clock.now)["sub"] == "user-1"
    assert jwks_server.hits == 2
    # the old key keeps verifying from the same cached set
    assert _decode(make_token(es_key, now=clock.now), client, clock.now)
    assert jwks_server.hits == 2


def test_unknown_kid_refetch_respects_the_cooldown(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, min_refetch_interval=30, clock=clock)
    client.get_key_set()
    stranger = jotkit.Key.generate("ES256", kid="nope")
    for _ in range(20):
        with pytest.raises(jotkit.KeyNotFound):
            _decode(make_token(stranger, now=clock.now), client, clock.now)
    assert jwks_server.hits == 1  # inside the cooldown: no refetch at all
    clock.advance(30)
    for _ in range(20):
        with pytest.raises(jotkit.KeyNotFound):
            _decode(make_token(stranger, now=clock.now), client, clock.now)
    assert jwks_server.hits == 2  # exactly one refetch per cooldown window


def test_outage_keeps_serving_cached_keys(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(
        jwks_server.url, max_age=60, min_refetch_interval=10, timeout=2, clock=clock
    )
    token = make_token(es_key, now=clock.now)
    assert _decode(token, client, clock.now)
    jwks_server.stop()
    clock.advance(3600)  # long past max_age: the set is stale, the server is down
    assert _decode(token, client, clock.now - 3600 + 10)  # token time is separate from cache age
    assert client.last_error is not None
    assert client.last_error.code == "jwks_fetch_failed"
    assert client.cached_key_set is not None
    assert client.fetch_count == 2
    # a failed refetch is not retried before the cooldown
    client.get_key_set()
    assert client.fetch_count == 2
    clock.advance(10)
    client.get_key_set()
    assert client.fetch_count == 3


def test_recovery_after_outage_picks_up_new_keys(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, max_age=60, min_refetch_interval=10, clock=clock)
    client.get_key_set()
    jwks_server.control.status = 503
    clock.advance(61)
    assert client.get_key_set().get("k1") is not None
    assert client.last_error is not None
    new_key = jotkit.Key.generate("ES256", kid="k2")
    jwks_server.publish(new_key)
    jwks_server.control.status = 200
    clock.advance(10)
    assert client.get_key_set().kids == ("k2",)
    assert client.last_error is None


def test_max_stale_bounds_serving_stale_keys(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(
        jwks_server.url, max_age=60, min_refetch_interval=10, max_stale=120, clock=clock
    )
    client.get_key_set()
    jwks_server.stop()
    clock.advance(60 + 100)
    assert client.get_key_set().get("k1") is not None
    clock.advance(30)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert info.value.code == "jwks_fetch_failed"


def test_down_without_cache_raises_jwks_error(jwks_server: JWKSServer, clock):
    url = jwks_server.url
    jwks_server.stop()
    client = JWKSClient(url, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert info.value.code == "jwks_fetch_failed"


def test_slow_server_times_out(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.delay = 1.5
    client = JWKSClient(jwks_server.url, timeout=0.3, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert info.value.code == "jwks_fetch_failed"
    assert "timed out" in str(info.value)


def test_slow_server_serves_stale_keys(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(
        jwks_server.url, max_age=10, min_refetch_interval=1, timeout=0.3, clock=clock
    )
    client.get_key_set()
    jwks_server.control.delay = 1.5
    clock.advance(11)
    assert client.get_key_set().get("k1") is not None
    assert "timed out" in str(client.last_error)


def test_huge_response_is_refused(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    pad = "x" * 300_000
    body = json.dumps({"keys": jwks_server.control.jwks["keys"], "pad": pad}).encode()
    jwks_server.control.raw_body = body
    client = JWKSClient(jwks_server.url, max_bytes=64 * 1024, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert info.value.code == "jwks_invalid"
    assert "large" in str(info.value)


def test_streamed_huge_response_is_cut_off(es_key, clock):
    """A chunked body without Content-Length, larger than max_bytes."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"[" * 8192
        try:
            for _ in range(64):
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = JWKSClient(f"http://127.0.0.1:{port}/jwks", max_bytes=32 * 1024, clock=clock)
        with pytest.raises(jotkit.JWKSError) as info:
            client.get_key_set()
        assert info.value.code == "jwks_invalid"
    finally:
        thread.join(5)
        listener.close()


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"keys": "nope"}',
        b"[1, 2, 3]",
        b'{"no_keys": []}',
        b'{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}',
        b'{"keys": []}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
        b'{"keys": [' + b"[" * 50_000 + b"]}",
        b'{"keys": [], "keys": []}',
        b'{"keys": [NaN]}',
    ],
)
def test_malformed_jwks(jwks_server: JWKSServer, clock, body: bytes):
    jwks_server.control.raw_body = body
    client = JWKSClient(jwks_server.url, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert info.value.code == "jwks_invalid"


def test_malformed_refetch_keeps_the_good_cache(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, max_age=30, min_refetch_interval=5, clock=clock)
    client.get_key_set()
    jwks_server.control.raw_body = b"{oops"
    clock.advance(31)
    assert client.get_key_set().get("k1") is not None
    assert client.last_error is not None
    assert client.last_error.code == "jwks_invalid"


def test_unusable_entries_are_skipped(jwks_server: JWKSServer, es_key, clock):
    good = es_key.public().to_jwk()
    jwks_server.control.jwks = {"keys": [{"kty": "weird"}, {"kty": "oct", "k": "AAAA"}, good]}
    client = JWKSClient(jwks_server.url, clock=clock)
    ks = client.get_key_set()
    assert ks.kids == ("k1",)
    assert len(ks.skipped) >= 1


def test_bad_status_is_a_fetch_failure(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.status = 500
    client = JWKSClient(jwks_server.url, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert "HTTP 500" in str(info.value)


def test_redirects_are_not_followed(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks_server.control.status = 302
    jwks_server.control.headers = {"Location": "https://evil.example/jwks.json"}
    client = JWKSClient(jwks_server.url, clock=clock)
    with pytest.raises(jotkit.JWKSError):
        client.get_key_set()
    assert jwks_server.hits == 1


def test_algorithms_filter(jwks_server: JWKSServer, es_key, clock):
    rsa = jotkit.Key.generate("RS256", kid="r1")
    jwks_server.publish(es_key, rsa)
    client = JWKSClient(jwks_server.url, algorithms=["RS256"], clock=clock)
    assert client.get_key_set().kids == ("r1",)
    with pytest.raises(jotkit.KeyNotFound):
        client.resolve({"alg": "ES256", "kid": "k1"})


def test_key_without_kid_works_when_unambiguous(jwks_server: JWKSServer, clock):
    key = jotkit.Key.generate("EdDSA")
    assert key.kid is None
    jwks_server.publish(key)
    client = JWKSClient(jwks_server.url, clock=clock)
    token = make_token(key, now=clock.now)
    assert jotkit.decode_unverified(token)[0].get("kid") is None
    assert _decode(token, client, clock.now)["sub"] == "user-1"


def test_key_without_kid_is_refused_when_ambiguous(jwks_server: JWKSServer, clock):
    a = jotkit.Key.generate("ES256")
    b = jotkit.Key.generate("ES256")
    jwks_server.publish(a, b)
    client = JWKSClient(jwks_server.url, clock=clock)
    with pytest.raises(jotkit.KeyNotFound):
        _decode(make_token(a, now=clock.now), client, clock.now)
    assert jwks_server.hits == 1  # ambiguity is not a reason to refetch


def test_never_fetches_urls_from_the_token_header(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    attacker = jotkit.Key.generate("ES256", kid="evil")
    base = jwks_server.url.rsplit("/", 1)[0]
    token = make_token(
        attacker,
        now=clock.now,
        extra_headers={
            "jku": f"{base}/attacker-jku.json",
            "x5u": f"{base}/attacker-x5u.pem",
        },
    )
    client = JWKSClient(jwks_server.url, min_refetch_interval=0, clock=clock)
    with pytest.raises(jotkit.KeyNotFound):
        _decode(token, client, clock.now)
    assert set(jwks_server.control.requests) == {"/jwks.json"}


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example.com/jwks.json",
        "ftp://127.0.0.1/jwks.json",
        "file:///etc/passwd",
        "/relative/jwks.json",
        "https://user:pw@auth.example.com/jwks.json",
    ],
)
def test_refuses_insecure_urls(url: str):
    with pytest.raises(ValueError):
        JWKSClient(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://auth.example.com/.well-known/jwks.json",
        "http://127.0.0.1:8000/jwks.json",
        "http://localhost/jwks.json",
        "http://[::1]:9000/jwks.json",
    ],
)
def test_accepts_https_and_loopback(url: str):
    assert JWKSClient(url).url == url


def test_allow_insecure_http_opt_in():
    assert JWKSClient("http://auth.internal/jwks.json", allow_insecure_http=True)


def test_concurrent_threads_share_one_fetch(jwks_server: JWKSServer, es_key):
    jwks_server.publish(es_key)
    jwks_server.control.delay = 0.2
    client = JWKSClient(jwks_server.url)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        results.append(client.resolve({"alg": "ES256", "kid": "k1"}))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8
    assert jwks_server.hits == 1


def test_async_resolve_and_rotation(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, min_refetch_interval=30, clock=clock)

    async def scenario() -> None:
        keys = await asyncio.gather(
            *[client.aresolve({"alg": "ES256", "kid": "k1"}) for _ in range(10)]
        )
        assert all(k.kid == "k1" for k in keys)
        assert jwks_server.hits == 1
        new_key = jotkit.Key.generate("ES256", kid="k2")
        jwks_server.publish(es_key, new_key)
        with pytest.raises(jotkit.KeyNotFound):
            await client.aresolve({"alg": "ES256", "kid": "k2"})  # cooldown
        clock.advance(30)
        assert (await client.aresolve({"alg": "ES256", "kid": "k2"})).kid == "k2"
        assert jwks_server.hits == 2

    asyncio.run(scenario())


def test_async_outage_timeout_and_stale(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(
        jwks_server.url, max_age=10, min_refetch_interval=1, timeout=0.3, clock=clock
    )

    async def scenario() -> None:
        await client.aget_key_set()
        jwks_server.control.delay = 1.5
        clock.advance(11)
        ks = await client.aget_key_set()
        assert ks.get("k1") is not None
        assert "timed out" in str(client.last_error)

    asyncio.run(scenario())
    # the same client keeps working from a fresh event loop
    jwks_server.control.delay = 0
    clock.advance(2)
    assert asyncio.run(client.aresolve({"alg": "ES256", "kid": "k1"})).kid == "k1"


def test_async_huge_and_malformed(jwks_server: JWKSServer, clock):
    jwks_server.control.raw_body = b'{"keys": [' + b" " * 100_000 + b"]}"
    client = JWKSClient(jwks_server.url, max_bytes=10_000, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        asyncio.run(client.aget_key_set())
    assert info.value.code == "jwks_invalid"
    jwks_server.control.raw_body = b"<html>"
    client = JWKSClient(jwks_server.url, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        asyncio.run(client.aget_key_set())
    assert info.value.code == "jwks_invalid"


def test_constructor_validation():
    with pytest.raises(ValueError):
        JWKSClient("https://a.example/jwks", max_age=0)
    with pytest.raises(ValueError):
        JWKSClient("https://a.example/jwks", timeout=0)
    with pytest.raises(ValueError):
        JWKSClient("https://a.example/jwks", max_bytes=0)
    with pytest.raises(TypeError):
        JWKSClient(b"https://a.example/jwks")  # type: ignore[arg-type]


def test_malformed_header_is_rejected_without_fetching(jwks_server: JWKSServer, clock):
    client = JWKSClient(jwks_server.url, clock=clock)
    with pytest.raises(jotkit.MalformedToken):
        client.resolve({"kid": "k1"})
    with pytest.raises(jotkit.MalformedToken):
        client.resolve({"alg": "ES256", "kid": 5})
    assert jwks_server.hits == 0


def test_symmetric_keys_in_a_public_jwks_are_dropped(jwks_server: JWKSServer, es_key, clock):
    """A secret published in a JWK set is public: HS* must never verify with it."""
    secret = jotkit.Key.from_secret(b"s" * 32, "HS256", kid="hs")
    jwks_server.control.jwks = {"keys": [secret.to_jwk(private=True), es_key.public().to_jwk()]}
    client = JWKSClient(jwks_server.url, clock=clock)
    assert client.get_key_set().kids == ("k1",)
    assert any("symmetric" in reason for reason in client.get_key_set().skipped)
    forged = make_token(secret, now=clock.now)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(
            forged, client, algorithms=["HS256", "ES256"], audience=AUDIENCE, now=clock.now
        )


def test_resolve_cached_never_fetches(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, max_age=60, min_refetch_interval=10, clock=clock)
    header = {"alg": "ES256", "kid": "k1"}
    assert client.resolve_cached(header) is None  # nothing cached yet
    assert jwks_server.hits == 0
    client.get_key_set()
    assert client.resolve_cached(header).kid == "k1"
    with pytest.raises(jotkit.KeyNotFound):  # unknown kid inside the cooldown
        client.resolve_cached({"alg": "ES256", "kid": "other"})
    clock.advance(10)
    assert client.resolve_cached({"alg": "ES256", "kid": "other"}) is None  # refetch allowed
    clock.advance(51)
    assert client.resolve_cached(header) is None  # stale
    assert jwks_server.hits == 1


def test_etag_revalidation(jwks_server: JWKSServer, es_key, clock):
    """A cached set is revalidated with If-None-Match; a 304 renews it (RFC 9110 §13.1.2)."""
    jwks_server.publish(es_key)
    jwks_server.control.headers = {"ETag": '"v1"', "Cache-Control": "max-age=60"}
    client = JWKSClient(jwks_server.url, min_refetch_interval=5, clock=clock)
    client.get_key_set()
    jwks_server.control.status = 304
    jwks_server.control.raw_body = b""
    clock.advance(61)
    assert client.get_key_set().get("k1") is not None
    assert client.last_error is None
    assert client.is_fresh()
    assert jwks_server.hits == 2
    first, second = jwks_server.control.request_headers
    assert "If-None-Match" not in first
    assert second["If-None-Match"] == '"v1"'
    clock.advance(59)
    client.get_key_set()
    assert jwks_server.hits == 2  # the 304 renewed freshness for another max-age


def test_fresh_key_set_is_io_free(jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    client = JWKSClient(jwks_server.url, max_age=60, clock=clock)
    assert client.fresh_key_set() is None
    fetched = client.get_key_set()
    assert client.fresh_key_set() is fetched
    clock.advance(60)
    assert client.fresh_key_set() is None
    assert jwks_server.hits == 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
_jwk_like = st.fixed_dictionaries(
    {"kty": st.sampled_from(["EC", "RSA", "OKP", "oct", "x"])},
    optional={
        "crv": st.sampled_from(["P-256", "Ed25519", "P-999"]),
        "x": st.text(max_size=50),
        "y": st.text(max_size=50),
        "n": st.text(max_size=50),
        "e": st.sampled_from(["AQAB", "", "!!"]),
        "alg": st.sampled_from(["ES256", "RS256", 5]),
        "kid": _json_values,
        "use": st.sampled_from(["sig", "enc"]),
    },
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        _json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(_jwk_like, max_size=4).map(lambda keys: json.dumps({"keys": keys}).encode()),
    )
)
def test_any_response_body_is_a_key_set_or_a_jwks_error(jwks_server: JWKSServer, body: bytes):
    """Untrusted JWKS bodies never raise anything but JWKSError (hypothesis, real HTTP)."""
    jwks_server.control.raw_body = body
    client = JWKSClient(jwks_server.url)
    outcome: object
    try:
        outcome = client.get_key_set()
    except jotkit.JWKSError as exc:
        outcome = exc
    if isinstance(outcome, jotkit.JWKSError):
        assert outcome.code in ("jwks_invalid", "jwks_fetch_failed")
    else:
        assert isinstance(outcome, jotkit.KeySet)
        assert len(outcome) > 0
        assert all(not k.is_symmetric for k in outcome)


def test_compressed_bomb_is_cut_off_at_max_bytes(jwks_server: JWKSServer, es_key, clock):
    import gzip

    jwks_server.publish(es_key)
    body = json.dumps({"keys": jwks_server.control.jwks["keys"], "pad": " " * 5_000_000})
    jwks_server.control.raw_body = gzip.compress(body.encode())
    assert len(jwks_server.control.raw_body) < 64 * 1024
    jwks_server.control.headers = {"Content-Encoding": "gzip"}
    client = JWKSClient(jwks_server.url, max_bytes=64 * 1024, clock=clock)
    with pytest.raises(jotkit.JWKSError) as info:
        client.get_key_set()
    assert info.value.code == "jwks_invalid"
    assert jwks_server.control.request_headers[0]["Accept-Encoding"] == "identity"


def test_async_use_from_several_event_loops_at_once(jwks_server: JWKSServer, es_key):
    """Each thread runs its own loop; the shared cache needs one fetch for all of them."""
    jwks_server.publish(es_key)
    jwks_server.control.delay = 0.2
    client = JWKSClient(jwks_server.url)
    barrier = threading.Barrier(4)
    kids: list[str | None] = []

    def worker() -> None:
        async def many() -> list[str | None]:
            keys = await asyncio.gather(
                *[client.aresolve({"alg": "ES256", "kid": "k1"}) for _ in range(5)]
            )
            return [k.kid for k in keys]

        barrier.wait()
        kids.extend(asyncio.run(many()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert kids == ["k1"] * 20
    # each loop has its own lock, so up to one fetch per loop may overlap; never one per call
    assert 1 <= jwks_server.hits <= 4
