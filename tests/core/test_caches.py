"""The verification caches (issue 10 §4): the header-segment cache of a prepared verifier,
the prepared options that the one-shot ``jotkit.decode`` reuses, and the one-pass strict
base64url decoder. A cache must never serve what failed validation, must stay bounded
under a flood, and must not change any outcome."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import jotkit
from jotkit import Key, KeySet
from jotkit import jwt as jwt_module
from jotkit._b64 import _decode_checked, decode_unpadded, is_canonical

HS = Key.from_secret(b"c" * 32, "HS256")
NOW = 1_700_000_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _token_with_header(header: dict[str, object], key: Key = HS) -> str:
    """A token signed by ``key`` whose header segment is exactly ``header`` (any alg)."""
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps({"exp": NOW + 60}).encode())
    return f"{head}.{body}.{_b64(key.sign(f'{head}.{body}'.encode()))}"


def test_header_cache_poisoning_a_refused_header_is_never_served_from_the_cache():
    """A header segment that failed validation (an alg outside the allow-list, a crit
    extension) stays refused on every later call and never enters the cache."""
    verifier = jotkit.Verifier(HS, algorithms=["HS256"])
    bad_alg = _token_with_header({"alg": "HS384"})
    crit = _token_with_header({"alg": "HS256", "crit": ["x"], "x": 1})
    for _ in range(3):
        with pytest.raises(jotkit.UnsupportedAlgorithm):
            verifier.decode(bad_alg, now=NOW)
        with pytest.raises(jotkit.UnsupportedAlgorithm):
            verifier.decode(crit, now=NOW)
    assert verifier._prepared.header_cache == {}
    good = _token_with_header({"alg": "HS256"})
    assert verifier.decode(good, now=NOW)["exp"] == NOW + 60
    assert list(verifier._prepared.header_cache) == [good.split(".")[0]]


def test_header_cache_poisoning_a_non_canonical_twin_of_a_cached_header_is_refused():
    """The cache is keyed by the exact segment text: a twin with stray trailing bits or
    padding that decodes to the same header is refused even once the original is cached."""
    verifier = jotkit.Verifier(HS, algorithms=["HS256"])
    token = _token_with_header({"alg": "HS256"})
    verifier.decode(token, now=NOW)
    head, rest = token.split(".", 1)
    assert len(head) % 4 == 2  # '{"alg": "HS256"}' is 16 bytes: two stray bits in the last char
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(head[-1])
    twin = head[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last + 1]
    assert _decode_checked(twin) == _decode_checked(head)
    for forged in (f"{twin}.{rest}", f"{head}==.{rest}", f"{head}.{rest}="):
        with pytest.raises(jotkit.MalformedToken):
            verifier.decode(forged, now=NOW)


def test_header_cache_stays_bounded_under_a_flood_of_distinct_headers():
    verifier = jotkit.Verifier(HS, algorithms=["HS256"])
    for i in range(500):
        token = jotkit.encode({"i": i}, HS, expires_in=60, headers={"n": i}, now=NOW)
        assert verifier.decode(token, now=NOW)["i"] == i
        assert len(verifier._prepared.header_cache) <= 64


def test_a_key_resolver_cannot_poison_the_cached_header():
    """A resolver gets a copy of the header: changing it cannot change what later tokens see."""

    def resolver(header: dict[str, object]) -> Key:
        header["alg"] = "none"
        return HS

    verifier = jotkit.Verifier(resolver, algorithms=["HS256"])
    token = jotkit.encode({}, HS, expires_in=60, now=NOW)
    for _ in range(3):
        assert verifier.decode_complete(token, now=NOW).header["alg"] == "HS256"


def test_header_cache_poisoning_by_changing_a_returned_header_is_impossible():
    """``decode_complete`` returns a copy of the (cached) header, through both APIs: a caller
    that changes it (here: its ``typ``, which the policy checks) changes nothing for the next
    token. The one-shot API returned the cached dict itself before the verifier was compiled."""
    token = jotkit.encode({}, HS, expires_in=60, now=NOW)
    verifier = jotkit.Verifier(HS, algorithms=["HS256"], typ="JWT")
    one_shot = lambda: jotkit.decode_complete(token, HS, algorithms=["HS256"], typ="JWT", now=NOW)  # noqa: E731
    for decode in (lambda: verifier.decode_complete(token, now=NOW), one_shot):
        first = decode()
        first.header["typ"] = "evil+jwt"
        first.header["alg"] = "none"
        again = decode()
        assert again.header == {"alg": "HS256", "typ": "JWT"}
        assert again.header is not first.header


def test_one_shot_decode_reuses_prepared_options_but_stays_bounded():
    cache = jwt_module._prepared_cache
    cache.clear()
    token = jotkit.encode({}, HS, expires_in=60, issuer="i0", now=NOW)
    for i in range(300):
        with pytest.raises(jotkit.InvalidIssuer):
            jotkit.decode(token, HS, algorithms=["HS256"], issuer=f"x{i}", now=NOW)
        assert len(cache) <= jwt_module._PREPARED_MAX == 128
    assert jotkit.decode(token, HS, algorithms=["HS256"], issuer="i0", now=NOW)["iss"] == "i0"
    (prepared,) = [p for k, p in cache.items() if "i0" in k]
    assert jotkit.decode(token, HS, algorithms=["HS256"], issuer="i0", now=NOW)["iss"] == "i0"
    assert [p for k, p in cache.items() if "i0" in k] == [prepared]  # reused, not rebuilt


@pytest.mark.parametrize(
    ("good", "bad"),
    [({"leeway": 1}, {"leeway": True}), ({"max_size": 1}, {"max_size": True})],
    ids=["leeway", "max_size"],
)
def test_prepared_option_cache_does_not_let_a_misuse_through_an_equal_valid_option(good, bad):
    """True == 1 in Python: the cache is typed, so a bool still raises TypeError after the
    equal int was prepared and cached."""
    token = jotkit.encode({}, HS, expires_in=60, now=NOW)
    with contextlib.suppress(jotkit.InvalidToken):  # max_size=1 refuses the token
        jotkit.decode(token, HS, algorithms=["HS256"], now=NOW, **good)
    with pytest.raises(TypeError):
        jotkit.decode(token, HS, algorithms=["HS256"], now=NOW, **bad)


def test_one_shot_decode_with_unhashable_options_still_checks_them():
    token = jotkit.encode({}, HS, expires_in=60, audience="a", now=NOW)
    assert jotkit.decode(token, HS, algorithms=["HS256"], audience=["b", "a"], now=NOW)
    with pytest.raises(jotkit.InvalidAudience):
        jotkit.decode(token, HS, algorithms=["HS256"], audience=["b"], now=NOW)
    with pytest.raises(ValueError):
        jotkit.decode(token, HS, algorithms=["HS256"], audience=[], now=NOW)


def test_a_keyset_prepared_once_sees_keys_by_its_own_rules():
    ks = KeySet([HS])
    token = jotkit.encode({}, HS, expires_in=60, now=NOW)
    for _ in range(2):
        assert jotkit.decode(token, ks, algorithms=["HS256"], now=NOW) == {
            "iat": NOW,
            "exp": NOW + 60,
        }


_TEXT = st.text(alphabet="AQgwBC01-_+/=. \n\té", max_size=24)


@given(_TEXT | st.text(max_size=12))
def test_one_pass_base64url_decoder_accepts_exactly_the_canonical_texts(text):
    """decode_unpadded agrees with the reference (regex + tail check, RFC 4648 §3.5/§5)."""
    expected = _decode_checked(text) if is_canonical(text) else None
    try:
        got: bytes | None = decode_unpadded(text)
    except ValueError:
        got = None
    assert got == expected


@given(st.binary(max_size=64))
def test_one_pass_base64url_decoder_round_trips(data):
    assert decode_unpadded(_b64(data)) == data


# --------------------------------------------------------------------------- JWE headers

DIR = Key.generate("dir", kid="d", size=256)


def test_jwe_header_cache_poisoning_by_changing_returned_headers_is_impossible():
    """``decrypt_complete`` hands out copies of the (cached) protected header: a caller that
    changes them (``alg``/``enc`` to values the allow-lists refuse, a ``zip`` that would be
    inflated) changes nothing for the next token with the same header."""
    token = jotkit.jwe.encrypt(b"secret", DIR, enc="A256GCM")
    for _ in range(2):
        got = jotkit.jwe.decrypt_complete(
            token, DIR, algorithms=["dir"], encryptions=["A256GCM"]
        )
        assert got.plaintext == b"secret"
        assert got.header == got.protected_header == {"alg": "dir", "enc": "A256GCM", "kid": "d"}
        for header in (got.header, got.protected_header):
            header.update(alg="RSA1_5", enc="A128CBC-HS256", zip="DEF")


def test_jwe_header_cache_a_refused_header_is_refused_on_every_call():
    """A cached header still meets the allow-lists of every later call: caching is of the
    parse, never of a verdict."""
    token = jotkit.jwe.encrypt(b"x", DIR, enc="A256GCM")
    assert jotkit.jwe.decrypt(token, DIR, algorithms=["dir"], encryptions=["A256GCM"]) == b"x"
    for _ in range(2):
        with pytest.raises(jotkit.UnsupportedAlgorithm):
            jotkit.jwe.decrypt(token, DIR, algorithms=["A256KW"], encryptions=["A256GCM"])
        with pytest.raises(jotkit.UnsupportedAlgorithm):
            jotkit.jwe.decrypt(token, DIR, algorithms=["dir"], encryptions=["A128GCM"])


def test_jwe_header_cache_poisoning_a_non_canonical_twin_of_a_cached_header_is_refused():
    """Keyed by the exact segment text: a twin of a cached header with stray trailing bits,
    which decodes to the same bytes, is refused, and a header that failed to parse is never
    stored."""
    token = jotkit.jwe.encrypt(b"x", Key.generate("dir", size=256), enc="A256GCM")
    head, rest = token.split(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(head) % 4 in (2, 3)  # stray bits in the last character to flip
    twin = head[:-1] + alphabet[alphabet.index(head[-1]) + 1]
    assert _decode_checked(twin) == _decode_checked(head)
    key = Key.generate("dir", size=256)
    with contextlib.suppress(jotkit.InvalidToken):
        jotkit.jwe.decrypt(token, key, algorithms=["dir"], encryptions=["A256GCM"])
    from jotkit import jwe as jwe_module

    assert head in jwe_module._header_cache
    with pytest.raises(jotkit.MalformedToken, match="protected header segment"):
        jotkit.jwe.decrypt(f"{twin}.{rest}", key, algorithms=["dir"], encryptions=["A256GCM"])
    assert twin not in jwe_module._header_cache
    not_json = _b64(b'{"alg":"dir",')
    with pytest.raises(jotkit.MalformedToken):
        jotkit.jwe.decrypt(f"{not_json}.{rest}", key, algorithms=["dir"], encryptions=["A256GCM"])
    assert not_json not in jwe_module._header_cache


def test_jwe_header_cache_stays_bounded_and_skips_long_headers():
    """A flood of distinct headers cannot grow the cache past its bound, and a long header
    (up to the token size cap) is parsed per call rather than pinned in memory."""
    from jotkit import jwe as jwe_module

    for i in range(300):
        token = jotkit.jwe.encrypt(b"x", DIR, enc="A256GCM", headers={"n": i})
        assert jotkit.jwe.decrypt(token, DIR, algorithms=["dir"], encryptions=["A256GCM"]) == b"x"
        assert len(jwe_module._header_cache) <= jwe_module._HEADER_CACHE_SIZE
    long = jotkit.jwe.encrypt(b"x", DIR, enc="A256GCM", headers={"pad": "p" * 600})
    assert jotkit.jwe.decrypt(long, DIR, algorithms=["dir"], encryptions=["A256GCM"]) == b"x"
    assert long.split(".")[0] not in jwe_module._header_cache


def test_jwe_header_cache_never_stores_a_header_made_for_one_token():
    """ECDH-ES headers carry a fresh ``epk`` and GCM key wrap a fresh ``iv``/``tag``: such a
    header is unique to its token, so it is parsed per call, never cached (no churn, and no
    timing signal of whether that very token was seen before)."""
    from jotkit import jwe as jwe_module

    for alg in ("ECDH-ES+A256KW", "A256GCMKW", "PBES2-HS256+A128KW"):
        key = Key.generate(alg)
        recipient = key if key.is_symmetric else key.public()
        token = jotkit.jwe.encrypt(b"x", recipient, enc="A256GCM")
        assert jotkit.jwe.decrypt(token, key, algorithms=[alg], encryptions=["A256GCM"]) == b"x"
        assert token.split(".")[0] not in jwe_module._header_cache
