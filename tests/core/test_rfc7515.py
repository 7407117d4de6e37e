"""RFC 7515 Appendix A examples: published JWS tokens verify, deterministic ones re-sign exactly."""

from __future__ import annotations

import json

import pytest
from _vectors import b64u, b64u_decode, load

import jotkit

SIGNED = ["a_1_hs256.json", "a_2_rs256.json", "a_3_es256.json", "a_4_es512.json"]
# The A.1-A.3 payload is a JWT claim set whose exp is 1300819380 (March 2011).
BEFORE_EXP = 1300819380 - 60


def _vec(name: str) -> dict:
    return load(f"rfc7515/{name}")


def _key(vec: dict) -> jotkit.Key:
    return jotkit.Key.from_jwk(vec["jwk"], alg=vec["alg"])


def _verify_key(vec: dict) -> jotkit.Key:
    key = _key(vec)
    return key if key.is_symmetric else key.public()


@pytest.mark.parametrize("name", SIGNED)
def test_rfc7515_vector_signing_input_matches_published(name: str) -> None:
    vec = _vec(name)
    header_b64, payload_b64, _sig = vec["jws_compact"].split(".")
    assert b64u(vec["protected_header_utf8"].encode()) == header_b64
    assert b64u(vec["payload_utf8"].encode()) == payload_b64
    assert f"{header_b64}.{payload_b64}" == vec["signing_input"]


@pytest.mark.parametrize("name", SIGNED)
def test_rfc7515_jws_verify_accepts_published_token(name: str) -> None:
    vec = _vec(name)
    header, payload = jotkit.jws_verify(
        vec["jws_compact"], _verify_key(vec), algorithms=[vec["alg"]]
    )
    assert header == json.loads(vec["protected_header_utf8"])
    assert payload == vec["payload_utf8"].encode()


@pytest.mark.parametrize("name", SIGNED)
def test_rfc7515_raw_verify_accepts_published_signature(name: str) -> None:
    vec = _vec(name)
    key = _verify_key(vec)
    assert key.verify(vec["signing_input"].encode(), b64u_decode(vec["signature_b64u"])) is True
    tampered = bytearray(b64u_decode(vec["signature_b64u"]))
    tampered[len(tampered) // 2] ^= 0x01
    assert key.verify(vec["signing_input"].encode(), bytes(tampered)) is False


@pytest.mark.parametrize("name", ["a_1_hs256.json", "a_2_rs256.json", "a_3_es256.json"])
def test_rfc7515_decode_accepts_published_jwt(name: str) -> None:
    vec = _vec(name)
    claims = jotkit.decode(
        vec["jws_compact"], _verify_key(vec), algorithms=[vec["alg"]], now=BEFORE_EXP
    )
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


@pytest.mark.parametrize("name", ["a_1_hs256.json", "a_2_rs256.json", "a_3_es256.json"])
def test_rfc7515_decode_rejects_published_jwt_after_expiry(name: str) -> None:
    vec = _vec(name)
    with pytest.raises(jotkit.ExpiredToken):
        jotkit.decode(vec["jws_compact"], _verify_key(vec), algorithms=[vec["alg"]], now=1300819381)


def test_rfc7515_a4_non_json_payload_rejected_by_decode_but_verified_by_jws_verify() -> None:
    vec = _vec("a_4_es512.json")
    _header, payload = jotkit.jws_verify(vec["jws_compact"], _verify_key(vec), algorithms=["ES512"])
    assert payload == b"Payload"
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(vec["jws_compact"], _verify_key(vec), algorithms=["ES512"], require=())


@pytest.mark.parametrize("name", ["a_1_hs256.json", "a_2_rs256.json"])
def test_rfc7515_deterministic_signature_reproduces_published_token(name: str) -> None:
    vec = _vec(name)
    signature = _key(vec).sign(vec["signing_input"].encode())
    assert f"{vec['signing_input']}.{b64u(signature)}" == vec["jws_compact"]


@pytest.mark.parametrize("name", ["a_3_es256.json", "a_4_es512.json"])
def test_rfc7515_ecdsa_resign_then_verify(name: str) -> None:
    vec = _vec(name)
    key = _key(vec)
    signature = key.sign(vec["signing_input"].encode())
    size = {"ES256": 64, "ES512": 132}[vec["alg"]]
    assert len(signature) == size  # raw r||s, RFC 7518 §3.4
    assert key.public().verify(vec["signing_input"].encode(), signature) is True
    token = jotkit.jws_sign(vec["payload_utf8"].encode(), key)
    _header, payload = jotkit.jws_verify(token, key.public(), algorithms=[vec["alg"]])
    assert payload == vec["payload_utf8"].encode()


@pytest.mark.parametrize("name", SIGNED)
def test_rfc7515_published_token_rejected_for_other_algorithm_list(name: str) -> None:
    vec = _vec(name)
    other = "HS512" if vec["alg"] != "HS512" else "RS256"
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.jws_verify(vec["jws_compact"], _verify_key(vec), algorithms=[other])


def test_rfc7515_a5_unsecured_jws_rejected_by_decode() -> None:
    vec = _vec("a_5_none.json")
    hs = _key(_vec("a_1_hs256.json"))
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.decode(vec["jws_compact"], hs, algorithms=["HS256"], now=BEFORE_EXP)
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.jws_verify(vec["jws_compact"], hs, algorithms=["HS256"])


def test_rfc7515_a5_unsecured_jws_rejected_even_when_none_is_listed() -> None:
    vec = _vec("a_5_none.json")
    hs = _key(_vec("a_1_hs256.json"))
    # Listing "none" is caller misuse (ValueError) or a token failure; it is never accepted.
    with pytest.raises((jotkit.InvalidToken, ValueError)):
        jotkit.decode(vec["jws_compact"], hs, algorithms=["none"], now=BEFORE_EXP)


def test_rfc7515_a5_unsecured_jws_parses_unverified() -> None:
    vec = _vec("a_5_none.json")
    header, payload = jotkit.decode_unverified(vec["jws_compact"])
    assert header == {"alg": "none"}
    assert payload == json.loads(vec["payload_utf8"])
