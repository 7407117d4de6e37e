"""RFC 7520 (JOSE cookbook) §4.1-4.4 compact JWS examples with the §3 keys."""

from __future__ import annotations

import pytest
from _vectors import b64u, b64u_decode, load

import jotkit

CASES = {
    "4.1": "4_1.rsa_v15_signature.json",
    "4.2": "4_2.rsa-pss_signature.json",
    "4.3": "4_3.ecdsa_signature.json",
    "4.4": "4_4.hmac-sha2_integrity_protection.json",
}
DETERMINISTIC = ["4.1", "4.4"]  # RSASSA-PKCS1-v1_5 and HMAC
RANDOMIZED = ["4.2", "4.3"]  # RSASSA-PSS and ECDSA


def _vec(section: str) -> dict:
    return load(f"rfc7520/{CASES[section]}")


def _key(vec: dict) -> jotkit.Key:
    return jotkit.Key.from_jwk(vec["input"]["key"], alg=vec["input"]["alg"])


def _verify_key(vec: dict) -> jotkit.Key:
    key = _key(vec)
    return key if key.is_symmetric else key.public()


@pytest.mark.parametrize("section", list(CASES))
def test_rfc7520_key_imports_with_cookbook_kid(section: str) -> None:
    vec = _vec(section)
    key = _key(vec)
    assert key.alg == vec["input"]["alg"]
    assert key.kid == vec["input"]["key"]["kid"]
    assert key.is_private or key.is_symmetric


@pytest.mark.parametrize("section", list(CASES))
def test_rfc7520_published_compact_jws_verifies(section: str) -> None:
    vec = _vec(section)
    header, payload = jotkit.jws_verify(
        vec["output"]["compact"], _verify_key(vec), algorithms=[vec["input"]["alg"]]
    )
    assert header == vec["signing"]["protected"]
    assert payload.decode("utf-8") == vec["input"]["payload"]


@pytest.mark.parametrize("section", list(CASES))
def test_rfc7520_published_signature_verifies_with_raw_key(section: str) -> None:
    vec = _vec(section)
    key = _verify_key(vec)
    data = vec["signing"]["sig-input"].encode()
    assert key.verify(data, b64u_decode(vec["signing"]["sig"])) is True
    assert key.verify(data + b"x", b64u_decode(vec["signing"]["sig"])) is False


@pytest.mark.parametrize("section", list(CASES))
def test_rfc7520_verifies_through_keyset_by_kid(section: str) -> None:
    vec = _vec(section)
    decoy = jotkit.Key.generate("ES256", kid="decoy")
    keys = jotkit.KeySet([decoy.public(), _verify_key(vec)])
    _header, payload = jotkit.jws_verify(
        vec["output"]["compact"], keys, algorithms=[vec["input"]["alg"], "ES256"]
    )
    assert payload.decode("utf-8") == vec["input"]["payload"]


@pytest.mark.parametrize("section", DETERMINISTIC)
def test_rfc7520_deterministic_signature_reproduces_published_token(section: str) -> None:
    vec = _vec(section)
    signature = _key(vec).sign(vec["signing"]["sig-input"].encode())
    assert b64u(signature) == vec["signing"]["sig"]


@pytest.mark.parametrize("section", DETERMINISTIC)
def test_rfc7520_jws_sign_reproduces_published_compact(section: str) -> None:
    vec = _vec(section)
    token = jotkit.jws_sign(vec["input"]["payload"].encode("utf-8"), _key(vec))
    assert token == vec["output"]["compact"]


@pytest.mark.parametrize("section", RANDOMIZED)
def test_rfc7520_randomized_resign_then_verify(section: str) -> None:
    vec = _vec(section)
    key = _key(vec)
    token = jotkit.jws_sign(vec["input"]["payload"].encode("utf-8"), key)
    header_b64 = token.split(".")[0]
    assert header_b64 == vec["signing"]["protected_b64u"]
    assert token != vec["output"]["compact"]  # fresh randomness
    header, payload = jotkit.jws_verify(token, key.public(), algorithms=[vec["input"]["alg"]])
    assert header == vec["signing"]["protected"]
    assert payload.decode("utf-8") == vec["input"]["payload"]


@pytest.mark.parametrize("section", list(CASES))
def test_rfc7520_signature_from_other_section_rejected(section: str) -> None:
    vec = _vec(section)
    other = _vec("4.1" if section != "4.1" else "4.2")
    head, body, _sig = vec["output"]["compact"].split(".")
    forged = f"{head}.{body}.{other['signing']['sig']}"
    with pytest.raises(jotkit.InvalidToken):
        jotkit.jws_verify(forged, _verify_key(vec), algorithms=[vec["input"]["alg"]])
