"""RFC 8037 Appendix A: Ed25519 JWK, its RFC 7638 thumbprint, and the signed JWS."""

from __future__ import annotations

import pytest
from _vectors import load

import jotkit

VEC = load("rfc8037/appendix_a.json")
THUMBPRINT_URI_PREFIX = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:"


def _private() -> jotkit.Key:
    return jotkit.Key.from_jwk(VEC["a1_private_jwk"], alg="EdDSA")


def _public() -> jotkit.Key:
    return jotkit.Key.from_jwk(VEC["a2_public_jwk"], alg="EdDSA")


def test_rfc8037_a1_private_key_imports_as_okp_ed25519() -> None:
    key = _private()
    assert (key.kty, key.crv, key.alg) == ("OKP", "Ed25519", "EdDSA")
    assert key.is_private and not key.is_symmetric


def test_rfc8037_a2_public_key_derived_from_private_matches() -> None:
    public_jwk = _private().public().to_jwk()
    assert public_jwk["x"] == VEC["a2_public_jwk"]["x"]
    assert "d" not in public_jwk
    assert _public().to_jwk()["x"] == VEC["a2_public_jwk"]["x"]


def test_rfc8037_a1_private_jwk_round_trips() -> None:
    exported = _private().to_jwk(private=True)
    assert exported["d"] == VEC["a1_private_jwk"]["d"]
    assert exported["x"] == VEC["a1_private_jwk"]["x"]


@pytest.mark.parametrize("which", ["private", "public"])
def test_rfc8037_a3_thumbprint_matches(which: str) -> None:
    key = _private() if which == "private" else _public()
    assert key.thumbprint() == VEC["a3_thumbprint_sha256_b64u"]
    assert key.thumbprint_uri() == THUMBPRINT_URI_PREFIX + VEC["a3_thumbprint_sha256_b64u"]


def test_rfc8037_a4_signing_reproduces_published_jws() -> None:
    # Ed25519 is deterministic (RFC 8032 §5.1.6), so the compact JWS is reproducible.
    token = jotkit.jws_sign(VEC["a4_payload_utf8"].encode(), _private())
    assert token == VEC["a4_jws_compact"]


def test_rfc8037_a5_published_jws_verifies() -> None:
    header, payload = jotkit.jws_verify(VEC["a4_jws_compact"], _public(), algorithms=["EdDSA"])
    assert header == {"alg": "EdDSA"}
    assert payload == VEC["a4_payload_utf8"].encode()


def test_rfc8037_a5_tampered_jws_rejected() -> None:
    head, body, sig = VEC["a4_jws_compact"].split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.jws_verify(f"{head}.{body}.{flipped}", _public(), algorithms=["EdDSA"])


def test_rfc8037_a5_published_jws_rejected_when_eddsa_not_allowed() -> None:
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.jws_verify(VEC["a4_jws_compact"], _public(), algorithms=["ES256"])
