"""Nested JWTs: sign, then encrypt (RFC 7519 §5.2, §11.2; RFC 8725 §3.6)."""

from __future__ import annotations

import json

import pytest
from _vectors import b64u_decode

import jotkit
from jotkit import jwe

NOW = 1_800_000_000
SIGNER = jotkit.Key.generate("ES256", kid="sig")
RECIPIENT = jotkit.Key.generate("ECDH-ES+A256KW", kid="enc")
OPTS = {"algorithms": ["ES256"], "now": NOW, "issuer": "https://as"}
DEC = {
    "decryption_key": RECIPIENT,
    "key_algorithms": ["ECDH-ES+A256KW"],
    "encryptions": ["A256GCM"],
}


def _nested(**extra) -> str:
    return jotkit.encode(
        {"sub": "u1", "email": "a@example.com"},
        SIGNER,
        expires_in="5m",
        issuer="https://as",
        now=NOW,
        encrypt_to=RECIPIENT.public(),
        **extra,
    )


def test_nested_jwt_round_trip_rfc7519_11_2():
    token = _nested()
    assert token.count(".") == 4
    outer = json.loads(b64u_decode(token.split(".")[0]))
    assert outer["cty"] == "JWT" and outer["alg"] == "ECDH-ES+A256KW" and outer["enc"] == "A256GCM"
    assert "zip" not in outer
    claims = jotkit.decode(token, SIGNER.public(), **OPTS, **DEC)
    assert claims["sub"] == "u1" and claims["email"] == "a@example.com"
    full = jotkit.decode_complete(token, SIGNER.public(), **OPTS, **DEC)
    assert full.header["alg"] == "ES256" and full.key.kid == "sig"


def test_nested_jwt_with_other_algorithms():
    rsa = jotkit.Key.generate("RSA-OAEP-256", kid="r")
    token = jotkit.encode(
        {"sub": "u"}, SIGNER, expires_in="5m", now=NOW, encrypt_to=rsa.public(), enc="A128CBC-HS256"
    )
    claims = jotkit.decode(
        token,
        SIGNER.public(),
        algorithms=["ES256"],
        now=NOW,
        decryption_key=jotkit.KeySet([rsa]),
        key_algorithms=["RSA-OAEP-256"],
        encryptions=["A128CBC-HS256"],
    )
    assert claims["sub"] == "u"
    with pytest.raises(ValueError, match="bound to"):
        jotkit.encode({"sub": "u"}, SIGNER, encrypt_to=rsa.public(), alg="RSA-OAEP")


def test_decrypting_caller_refuses_a_bare_jws():
    """A caller who expects encryption must not accept an unencrypted token (downgrade)."""
    plain = jotkit.encode({"sub": "u1"}, SIGNER, expires_in="5m", issuer="https://as", now=NOW)
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(plain, SIGNER.public(), **OPTS, **DEC)


def test_nested_jwt_without_decryption_key_is_malformed():
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(_nested(), SIGNER.public(), **OPTS)


def test_nested_needs_cty_jwt_rfc7519_5_2():
    inner = jotkit.encode({"sub": "u1"}, SIGNER, expires_in="5m", issuer="https://as", now=NOW)
    no_cty = jwe.encrypt(inner.encode(), RECIPIENT.public())
    with pytest.raises(jotkit.MalformedToken, match="cty"):
        jotkit.decode(no_cty, SIGNER.public(), **OPTS, **DEC)


def test_compressed_nested_jwt_is_refused_rfc8725_3_6():
    inner = jotkit.encode({"sub": "u1"}, SIGNER, expires_in="5m", issuer="https://as", now=NOW)
    packed = jwe.encrypt(inner.encode(), RECIPIENT.public(), zip="DEF", headers={"cty": "JWT"})
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jotkit.decode(packed, SIGNER.public(), **OPTS, **DEC)
    assert exc.value.code == "zip_not_allowed"


def test_inner_signature_and_claims_are_still_checked():
    other = jotkit.Key.generate("ES256", kid="sig")
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.decode(_nested(), other.public(), **OPTS, **DEC)
    with pytest.raises(jotkit.ExpiredToken):
        jotkit.decode(_nested(), SIGNER.public(), **{**OPTS, "now": NOW + 3600}, **DEC)
    with pytest.raises(jotkit.DecryptionFailed):
        jotkit.decode(
            _nested(),
            SIGNER.public(),
            **OPTS,
            **{**DEC, "decryption_key": jotkit.Key.generate("ECDH-ES+A256KW", kid="enc")},
        )


def test_allow_lists_are_required_with_a_decryption_key():
    with pytest.raises(TypeError):
        jotkit.decode(_nested(), SIGNER.public(), **OPTS, decryption_key=RECIPIENT)
    with pytest.raises(TypeError):
        jotkit.decode(_nested(), SIGNER.public(), **OPTS, key_algorithms=["A256KW"])
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.decode(_nested(), SIGNER.public(), **OPTS, **{**DEC, "key_algorithms": ["RSA-OAEP"]})


def test_nested_jwt_max_size_caps_the_inner_jws_and_sizes_the_outer_jwe():
    """``max_size`` is the caller's cap: a nested JWT is decodable whenever its JWS is within
    it, and a small cap refuses a large outer JWE before any decryption work."""
    big = jotkit.encode(
        {"sub": "u1", "blob": "x" * 60_000},
        SIGNER,
        expires_in="5m",
        issuer="https://as",
        now=NOW,
        encrypt_to=RECIPIENT.public(),
    )
    assert len(big) > 64 * 1024
    assert jotkit.decode(big, SIGNER.public(), **OPTS, **DEC, max_size=10**6)["sub"] == "u1"
    with pytest.raises(jotkit.MalformedToken) as exc:
        jotkit.decode(_nested(), SIGNER.public(), **OPTS, **DEC, max_size=200)
    assert exc.value.code == "token_too_large"
