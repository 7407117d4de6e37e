"""The shared verifier core: token extraction, RFC 6750 rendering, caching, grants."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from jotkit.integrations import (
    BearerError,
    Introspection,
    TokenVerifier,
    check_grants,
    claim_roles,
    claim_scopes,
)

from .conftest import AUDIENCE, ISSUER, FakeClock, make_token

# RFC 6750 §3: auth-param values are quoted-strings without '"' and '\'
CHALLENGE_CHARS = re.compile(r"^[\x20-\x7e]*$")


class CountingResolver:
    def __init__(self, key: jotkit.Key) -> None:
        self.key = key
        self.calls = 0

    def __call__(self, header):
        self.calls += 1
        return self.key


def make(key, clock, **kw) -> TokenVerifier:
    return TokenVerifier(key, issuer=ISSUER, audience=AUDIENCE, clock=clock, **kw)


def test_extract_rules(es_key, clock):
    v = make(es_key.public(), clock, cookie_name="at")
    assert v.extract("Bearer abc.def.ghi") == "abc.def.ghi"
    assert v.extract("bearer   abc.def-_~+/=") == "abc.def-_~+/="
    with pytest.raises(BearerError) as info:
        v.extract(None)
    assert (info.value.status, info.value.error) == (401, None)
    with pytest.raises(BearerError) as info:
        v.extract("Bearer a b")
    assert (info.value.status, info.value.error) == (400, "invalid_request")
    assert v.extract(None, {"at": "tok.from.cookie"}) == "tok.from.cookie"
    assert v.extract("Basic Zm9vOmJhcg==", {"at": "c.o.o"}) == "c.o.o"
    assert v.extract("Bearer h.h.h", {"at": "c.o.o"}) == "h.h.h"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=300), st.text(max_size=50).map(lambda t: "Bearer " + t))
)
def test_any_header_gives_a_bearer_error(header):
    """Arbitrary Authorization headers end in a 400/401 BearerError, never anything else."""
    v = TokenVerifier(jotkit.Key.from_secret(b"k" * 32, "HS256"), clock=lambda: 0.0)
    with pytest.raises(BearerError) as info:
        v.verify(v.extract(header))
    assert info.value.status in (400, 401)
    assert CHALLENGE_CHARS.match(info.value.www_authenticate("r") or "")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_challenge_is_always_a_valid_quoted_string(text):
    err = BearerError(403, "insufficient_scope", text, scope=[text, "a"])
    challenge = err.www_authenticate("r" + text)
    assert challenge is not None
    assert CHALLENGE_CHARS.match(challenge)
    assert challenge.count('"') == 8


def test_verified_tokens_are_cached_but_exp_is_rechecked(es_key, clock):
    resolver = CountingResolver(es_key.public())
    v = make(resolver, clock, algorithms=["ES256"], cache_ttl=30)
    token = make_token(es_key, now=clock.now, expires_in=100)
    for _ in range(5):
        assert v.verify(token)["sub"] == "user-1"
    assert resolver.calls == 1
    clock.advance(31)  # past cache_ttl: verified again
    v.verify(token)
    assert resolver.calls == 2
    clock.advance(70)
    with pytest.raises(BearerError) as info:
        v.verify(token)
    assert info.value.reason == "expired"


def test_leeway_applies_to_cached_tokens(es_key, clock):
    v = make(es_key.public(), clock, leeway=10)
    token = make_token(es_key, now=clock.now, expires_in=60)
    v.verify(token)
    clock.advance(65)
    assert v.verify(token)["sub"] == "user-1"
    clock.advance(10)
    with pytest.raises(BearerError):
        v.verify(token)


def test_returned_claims_are_copies(es_key, clock):
    v = make(es_key.public(), clock)
    token = make_token(es_key, now=clock.now)
    v.verify(token)["sub"] = "mallory"
    assert v.verify(token)["sub"] == "user-1"


def test_cache_size_zero_disables_cache(es_key, clock):
    resolver = CountingResolver(es_key.public())
    v = make(resolver, clock, algorithms=["ES256"], cache_size=0)
    token = make_token(es_key, now=clock.now)
    v.verify(token)
    v.verify(token)
    assert resolver.calls == 2


def test_typ_none_skips_the_check(es_key, clock):
    token = make_token(es_key, now=clock.now, typ="JWT")
    with pytest.raises(BearerError):
        make(es_key.public(), clock).verify(token)
    assert make(es_key.public(), clock, typ=None).verify(token)["sub"] == "user-1"


def test_keyset_and_algorithm_derivation(es_key, clock):
    rsa = jotkit.Key.generate("RS256", kid="r1")
    v = make(jotkit.KeySet([es_key.public(), rsa.public()]), clock)
    assert v.algorithms == ("ES256", "RS256")
    assert v.verify(make_token(rsa, now=clock.now))["sub"] == "user-1"
    with pytest.raises(TypeError):
        TokenVerifier(lambda header: es_key)


def test_async_verify(es_key, clock):
    v = make(es_key.public(), clock, scopes=["orders:read"])
    token = make_token(es_key, now=clock.now)
    claims = asyncio.run(v.aauthenticate(f"Bearer {token}"))
    assert claims["sub"] == "user-1"
    with pytest.raises(BearerError) as info:
        asyncio.run(v.aauthenticate(f"Bearer {token}", scopes=["orders:write"]))
    assert info.value.status == 403
    assert info.value.scope == ("orders:read", "orders:write")


def test_grants():
    claims = {"scope": "a b", "scp": ["c"], "roles": ["admin"]}
    assert claim_scopes(claims) == {"a", "b", "c"}
    assert claim_roles(claims) == {"admin"}
    assert claim_roles({"roles": "x y"}) == {"x", "y"}
    assert claim_scopes({"scope": 5}) == frozenset()
    check_grants(claims, ["a", "c"], ["user", "admin"])
    with pytest.raises(BearerError) as info:
        check_grants(claims, ["a", "z"])
    assert info.value.body() == {
        "error": "insufficient_scope",
        "reason": "insufficient_scope",
        "error_description": "The access token lacks the required scope",
        "scope": "a z",
    }
    with pytest.raises(BearerError):
        check_grants(claims, roles=["ops"])


def test_error_rendering():
    err = BearerError(401, "invalid_token", 'bad "quoted" \\ text\n')
    assert err.www_authenticate("api") == (
        'Bearer realm="api", error="invalid_token", error_description="bad ?quoted? ? text?"'
    )
    assert err.headers()["Cache-Control"] == "no-store"
    assert BearerError(401, None, "x").www_authenticate() == "Bearer"
    assert BearerError(503, "temporarily_unavailable", "x").www_authenticate() is None


def test_flask_current_claims_outside_a_view():
    from flask import Flask

    from jotkit.integrations.flask import current_claims, get_current_claims

    app = Flask(__name__)
    with app.test_request_context("/"):
        assert get_current_claims() is None
        with pytest.raises(RuntimeError):
            current_claims["sub"]


def test_flask_bare_decorator_and_explicit_verifier(es_key):
    from flask import Flask

    from jotkit.integrations.flask import current_claims, require_token

    clock = FakeClock()
    app = Flask(__name__)
    v = make(es_key.public(), clock)

    @app.get("/bare")
    @require_token(verifier=v)
    def bare():
        return {"sub": current_claims["sub"]}

    client = app.test_client()
    token = make_token(es_key, now=clock.now)
    assert client.get("/bare", headers={"Authorization": f"Bearer {token}"}).json == {
        "sub": "user-1"
    }
    assert client.get("/bare").status_code == 401


def test_flask_bare_decorator_needs_the_extension():
    from flask import Flask

    from jotkit.integrations.flask import require_token

    app = Flask(__name__)
    app.testing = False

    @app.get("/x")
    @require_token
    def x():
        return {}

    assert app.test_client().get("/x").status_code == 500  # misconfiguration, not bad input


def test_introspection_settings_are_checked():
    with pytest.raises(ValueError):
        Introspection("http://auth.example.com/oauth/introspect", "id", "secret")
    assert Introspection("http://auth.internal/i", "id", "s", allow_insecure_http=True)
    cfg = Introspection("https://auth.example.com/oauth/introspect", "id", "top-secret")
    assert "top-secret" not in repr(cfg)
    with pytest.raises(ValueError):
        Introspection("https://auth.example.com/i", "id", "s", timeout=0)


def test_cached_token_at_exactly_exp_is_refused_like_the_core(es_key, clock):
    """RFC 7519 §4.1.4: a token must not be accepted on or after ``exp``. The core refuses
    it at ``now == exp``; a verified-token cache hit must give the same answer."""
    v = make(es_key.public(), clock, cache_ttl=600)
    token = make_token(es_key, now=clock.now, expires_in=60)
    v.verify(token)  # verified and cached (for longer than the token lives)
    clock.advance(60)  # now == exp
    with pytest.raises(jotkit.ExpiredToken):
        jotkit.decode(token, es_key.public(), algorithms=["ES256"], audience=AUDIENCE,
                      now=clock.now)
    with pytest.raises(BearerError) as info:
        v.verify(token)
    assert info.value.reason == "expired"
    with pytest.raises(BearerError) as info:
        asyncio.run(v.averify(token))
    assert info.value.reason == "expired"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cached_token_of_a_withdrawn_key_stops_passing_after_the_next_jwks_fetch(
    jwks_server, mode
):
    """An emergency key withdrawal (``jotkit keys revoke``): once the JWKS is fetched again
    without the key, a token it signed is refused even though it sits in the verified-token
    cache (cache_ttl is longer than the JWKS max-age here)."""
    from jotkit.jwks_client import JWKSClient

    from .conftest import FakeClock

    clock = FakeClock()
    old = jotkit.Key.generate("ES256", kid="old")
    new = jotkit.Key.generate("ES256", kid="new")
    jwks_server.publish(old, new)
    client = JWKSClient(jwks_server.url, max_age=10, min_refetch_interval=0, clock=clock)
    v = make(client, clock, cache_ttl=600)
    withdrawn = make_token(old, now=clock.now)
    kept = make_token(new, now=clock.now)

    def check(token):
        return v.verify(token) if mode == "sync" else asyncio.run(v.averify(token))

    assert check(withdrawn)["sub"] == "user-1"
    assert check(kept)["sub"] == "user-1"
    jwks_server.publish(new)  # the issuer withdrew "old"
    clock.advance(11)  # the cached JWK set is stale: the next miss refetches it
    assert check(make_token(new, now=clock.now))["sub"] == "user-1"  # a miss: refetch
    assert jwks_server.hits == 2
    with pytest.raises(BearerError) as info:
        check(withdrawn)
    assert info.value.reason == "key_not_found"
    assert check(kept)["sub"] == "user-1"  # tokens of the remaining key still pass
