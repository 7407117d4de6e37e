"""Interoperability with PyJWT: tokens cross both ways for every shared algorithm."""

from __future__ import annotations

import secrets
import time
from functools import cache

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448

import jotkit

HMAC = ["HS256", "HS384", "HS512"]
ASYMMETRIC = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "ES256K",
    "EdDSA",  # Ed25519 under the polymorphic JWS name (RFC 8037)
    "EdDSA-Ed448",  # Ed448 under the polymorphic JWS name (RFC 8037)
]
PYJWT_ALGORITHMS = set(pyjwt.algorithms.get_default_algorithms())
CLAIMS = {
    "sub": "user-42",
    "scope": "read write",
    "nested": {"list": [1, 2.5, "three", None, True], "unicode": "žluťoučký kůň 🐎"},
    "n": -(2**31),
}


def _jws_alg(name: str) -> str:
    return "EdDSA" if name == "EdDSA-Ed448" else name


@cache
def _key(name: str) -> jotkit.Key:
    """One jotkit key per algorithm for the whole module (RSA generation is slow)."""
    if name == "EdDSA-Ed448":
        pem = ed448.Ed448PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jotkit.Key.from_pem(pem, "EdDSA", kid="kid-ed448")
    return jotkit.Key.generate(name, kid=f"kid-{name}")


def _needs_pyjwt(name: str) -> None:
    if _jws_alg(name) not in PYJWT_ALGORITHMS:
        pytest.skip(f"PyJWT {pyjwt.__version__} does not support {name}")


def _hmac_key(name: str) -> tuple[jotkit.Key, bytes]:
    secret = secrets.token_bytes(64)
    return jotkit.Key.from_secret(secret, name, kid=f"kid-{name}"), secret


def _pair(name: str) -> tuple[jotkit.Key, jotkit.Key, bytes, bytes]:
    """(jotkit signing key, jotkit verifying key, PyJWT signing key, PyJWT verifying key)."""
    if name in HMAC:
        key, secret = _hmac_key(name)
        return key, key, secret, secret
    key = _key(name)
    return key, key.public(), key.to_pem(private=True), key.to_pem()


@pytest.mark.parametrize("name", HMAC + ASYMMETRIC)
def test_pyjwt_token_verifies_in_jotkit(name: str) -> None:
    _needs_pyjwt(name)
    signer, verifier, py_sign, _py_verify = _pair(name)
    now = int(time.time())
    payload = dict(CLAIMS, iat=now, exp=now + 600, iss="https://issuer.example", aud="api")
    token = pyjwt.encode(payload, py_sign, algorithm=_jws_alg(name), headers={"kid": signer.kid})
    claims = jotkit.decode(
        token,
        verifier,
        algorithms=[_jws_alg(name)],
        issuer="https://issuer.example",
        audience="api",
    )
    assert claims == payload


@pytest.mark.parametrize("name", HMAC + ASYMMETRIC)
def test_jotkit_token_verifies_in_pyjwt(name: str) -> None:
    _needs_pyjwt(name)
    signer, _verifier, _py_sign, py_verify = _pair(name)
    token = jotkit.encode(
        CLAIMS, signer, expires_in=600, issuer="https://issuer.example", audience="api", jti=True
    )
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == _jws_alg(name)
    assert header.get("kid") == signer.kid
    claims = pyjwt.decode(
        token,
        py_verify,
        algorithms=[_jws_alg(name)],
        audience="api",
        issuer="https://issuer.example",
        options={"require": ["exp", "iat", "jti"]},
    )
    for member, value in CLAIMS.items():
        assert claims[member] == value
    assert claims["exp"] - claims["iat"] == 600


@pytest.mark.parametrize("name", HMAC + ASYMMETRIC)
def test_jotkit_token_round_trips_through_both_libraries(name: str) -> None:
    _needs_pyjwt(name)
    signer, verifier, _py_sign, py_verify = _pair(name)
    token = jotkit.encode(CLAIMS, signer, expires_in=600)
    ours = jotkit.decode(token, verifier, algorithms=[_jws_alg(name)])
    theirs = pyjwt.decode(token, py_verify, algorithms=[_jws_alg(name)])
    assert ours == theirs


@pytest.mark.parametrize("name", ["HS256", "RS256", "ES256", "EdDSA"])
def test_pyjwt_token_with_wrong_key_rejected_by_jotkit(name: str) -> None:
    signer, _verifier, py_sign, _py_verify = _pair(name)
    other = (
        _hmac_key(name)[0] if name in HMAC else jotkit.Key.generate(name, kid=signer.kid).public()
    )
    token = pyjwt.encode(dict(CLAIMS, exp=int(time.time()) + 600), py_sign, algorithm=name)
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.decode(token, other, algorithms=[name])


@pytest.mark.parametrize("name", ["ES256", "ES384", "ES512", "ES256K"])
def test_pyjwt_ecdsa_signature_is_raw_and_fixed_size(name: str) -> None:
    _needs_pyjwt(name)
    signer = _key(name)
    token = jotkit.encode(CLAIMS, signer, expires_in=600)
    sig_b64 = token.rsplit(".", 1)[1]
    size = {"ES256": 64, "ES384": 96, "ES512": 132, "ES256K": 64}[name]
    assert len(sig_b64) == (size * 4 + 2) // 3  # unpadded base64url of size bytes
    pyjwt.decode(token, signer.to_pem(), algorithms=[name])


def test_pyjwt_hmac_token_rejected_when_only_rsa_allowed() -> None:
    rsa = _key("RS256")
    token = pyjwt.encode(
        dict(CLAIMS, exp=int(time.time()) + 600), secrets.token_bytes(32), algorithm="HS256"
    )
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.decode(token, rsa.public(), algorithms=["RS256"])
