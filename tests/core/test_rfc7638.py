"""RFC 7638 §3.1 JWK thumbprint example (and RFC 9278 thumbprint URI)."""

from __future__ import annotations

import hashlib

from _vectors import b64u, load

import jotkit

VEC = load("rfc7638/section_3_1.json")


def test_rfc7638_3_1_thumbprint_matches() -> None:
    key = jotkit.Key.from_jwk(VEC["jwk"])
    assert key.alg == "RS256"
    assert key.kid == "2011-04-29"
    assert key.thumbprint() == VEC["thumbprint_sha256_b64u"]


def test_rfc7638_3_1_canonical_json_hashes_to_thumbprint() -> None:
    digest = hashlib.sha256(VEC["canonical_json"].encode()).digest()
    assert b64u(digest) == VEC["thumbprint_sha256_b64u"]


def test_rfc7638_thumbprint_ignores_optional_members() -> None:
    bare = {k: VEC["jwk"][k] for k in ("kty", "n", "e")}
    key = jotkit.Key.from_jwk(bare, alg="RS256").with_kid("another-kid")
    assert key.thumbprint() == VEC["thumbprint_sha256_b64u"]


def test_rfc7638_thumbprint_independent_of_bound_algorithm() -> None:
    bare = {k: VEC["jwk"][k] for k in ("kty", "n", "e")}
    assert jotkit.Key.from_jwk(bare, alg="PS256").thumbprint() == VEC["thumbprint_sha256_b64u"]


def test_rfc9278_thumbprint_uri() -> None:
    key = jotkit.Key.from_jwk(VEC["jwk"])
    assert key.thumbprint_uri() == (
        "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + VEC["thumbprint_sha256_b64u"]
    )


def test_rfc7638_thumbprint_of_generated_key_matches_canonical_form() -> None:
    key = jotkit.Key.generate("ES256", kid="k1")
    jwk = key.to_jwk()
    canonical = '{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}'.format(jwk["crv"], jwk["x"], jwk["y"])
    assert key.thumbprint() == b64u(hashlib.sha256(canonical.encode()).digest())
