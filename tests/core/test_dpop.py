"""jotkit.dpop: proofs and their stateless checks (RFC 9449 §4.2-4.3), one attack per test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import dpop
from jotkit._b64 import b64encode

NOW = 1_800_000_000.0
URL = "https://api.example.com/orders"


@pytest.fixture(scope="module")
def key() -> jotkit.Key:
    return jotkit.Key.generate("ES256")


def _forge(key: jotkit.Key, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64encode(json.dumps(header).encode())}.{b64encode(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64encode(key.sign(signing_input.encode()))}"


def _claims(**extra: Any) -> dict[str, Any]:
    return {"jti": "j1", "htm": "GET", "htu": URL, "iat": int(NOW), **extra}


def _header(key: jotkit.Key, **extra: Any) -> dict[str, Any]:
    return {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public().to_jwk(), **extra}


def _code(exc: pytest.ExceptionInfo[jotkit.InvalidDPoPProof]) -> str:
    return exc.value.code


def test_a_proof_round_trips_and_names_the_key_thumbprint(key: jotkit.Key) -> None:
    p = dpop.proof(key, "GET", URL + "?page=2#x", access_token="tok", now=NOW)
    got = dpop.verify_proof(p, method="GET", url=URL + "?q=1", now=NOW, access_token="tok")
    assert got.jkt == key.thumbprint()
    assert got.htu == URL and got.htm == "GET" and got.iat == NOW
    assert got.expires_at == NOW + 65.0
    header, claims = jotkit.decode_unverified(p)
    assert header["typ"] == "dpop+jwt" and set(header["jwk"]) == {"kty", "crv", "x", "y"}
    assert claims["htu"] == URL  # query and fragment dropped (RFC 9449 §4.2)
    assert claims["ath"] == dpop.access_token_hash("tok")


def test_htu_normalization_follows_rfc3986_syntax_and_scheme_rules() -> None:
    assert dpop.normalize_htu("HTTPS://API.Example.com:443") == "https://api.example.com/"
    assert dpop.normalize_htu("http://h:8080/a?b#c") == "http://h:8080/a"
    assert dpop.normalize_htu("http://[::1]:80/x") == "http://[::1]/x"
    for bad in ("ftp://h/", "/relative", "https://user@h/", "https://h:99999/", "https://h /"):
        with pytest.raises(ValueError):
            dpop.normalize_htu(bad)


def test_dpop_proof_with_wrong_htu_is_refused(key: jotkit.Key) -> None:
    p = dpop.proof(key, "GET", "https://api.example.com/admin", now=NOW)
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_htu_mismatch"


def test_dpop_proof_with_wrong_htm_is_refused(key: jotkit.Key) -> None:
    p = dpop.proof(key, "GET", URL, now=NOW)
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="DELETE", url=URL, now=NOW)
    assert _code(exc) == "dpop_htm_mismatch"


def test_dpop_proof_from_the_future_is_refused(key: jotkit.Key) -> None:
    p = dpop.proof(key, "GET", URL, now=NOW + 3600)
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_iat_out_of_window"


def test_dpop_proof_too_old_is_refused(key: jotkit.Key) -> None:
    p = dpop.proof(key, "GET", URL, now=NOW - 61)
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_iat_out_of_window"
    assert dpop.verify_proof(p, method="GET", url=URL, now=NOW, max_age=120).jti


def test_dpop_proof_ath_mismatch_is_refused(key: jotkit.Key) -> None:
    p = dpop.proof(key, "GET", URL, access_token="the-token", now=NOW)
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW, access_token="another-token")
    assert _code(exc) == "dpop_ath_mismatch"
    bare = dpop.proof(key, "GET", URL, now=NOW)  # no ath at all
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(bare, method="GET", url=URL, now=NOW, access_token="the-token")
    assert _code(exc) == "dpop_ath_mismatch"


def test_stolen_dpop_token_with_attackers_own_proof_is_refused(key: jotkit.Key) -> None:
    attacker = jotkit.Key.generate("ES256")
    p = dpop.proof(attacker, "GET", URL, access_token="stolen", now=NOW)
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(
            p, method="GET", url=URL, now=NOW, access_token="stolen", jkt=key.thumbprint()
        )
    assert _code(exc) == "dpop_key_mismatch"


def test_dpop_symmetric_alg_in_proof_is_refused(key: jotkit.Key) -> None:
    secret = jotkit.Key.from_secret(b"k" * 32, "HS256")
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64encode(b"k" * 32)}}
    p = _forge(secret, header, _claims())
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_alg_not_allowed"
    with pytest.raises(ValueError):  # a server cannot even allow it
        dpop.ProofVerifier(["HS256"])


def test_dpop_private_key_in_proof_jwk_is_refused(key: jotkit.Key) -> None:
    p = _forge(key, _header(key, jwk=key.to_jwk(private=True)), _claims())
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_invalid_jwk"


def test_dpop_proof_signed_by_another_key_than_its_jwk_is_refused(key: jotkit.Key) -> None:
    other = jotkit.Key.generate("ES256")
    p = _forge(other, _header(key), _claims())
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_bad_signature"


@pytest.mark.parametrize(
    ("header_change", "code"),
    [
        ({"typ": "JWT"}, "dpop_invalid_typ"),
        ({"typ": None}, "dpop_invalid_typ"),
        ({"alg": "none"}, "dpop_alg_not_allowed"),
        ({"alg": "ES384"}, "dpop_alg_not_allowed"),  # allowed, but not this key's algorithm
        ({"jwk": None}, "dpop_invalid_jwk"),
        ({"jwk": "x"}, "dpop_invalid_jwk"),
        ({"crit": ["exp"]}, "dpop_malformed"),
    ],
)
def test_a_bad_proof_header_is_refused(
    key: jotkit.Key, header_change: dict[str, Any], code: str
) -> None:
    header = {k: v for k, v in {**_header(key), **header_change}.items() if v is not None}
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(_forge(key, header, _claims()), method="GET", url=URL, now=NOW)
    assert _code(exc) in (code, "dpop_invalid_jwk")
    if header_change != {"alg": "ES384"}:
        assert _code(exc) == code


@pytest.mark.parametrize(
    "claims",
    [
        {"htm": "GET", "htu": URL, "iat": NOW},  # no jti
        _claims(jti=5),
        _claims(jti="x" * 300),
        _claims(iat="now"),
        _claims(iat=True),
        _claims(iat=None),
        _claims(htu=7),
        {"jti": "j", "htu": URL, "iat": NOW},  # no htm
        _claims(nonce=3),
    ],
)
def test_a_proof_missing_or_mistyping_a_claim_is_refused(
    key: jotkit.Key, claims: dict[str, Any]
) -> None:
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(_forge(key, _header(key), claims), method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_invalid_claim"


def test_a_huge_iat_is_out_of_the_window_not_a_crash(key: jotkit.Key) -> None:
    p = _forge(key, _header(key), _claims(iat=10**400))
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        dpop.verify_proof(p, method="GET", url=URL, now=NOW, access_token="t\u00e9")
    assert _code(exc) == "dpop_iat_out_of_window"


def test_a_nonce_is_required_when_the_server_gives_one(key: jotkit.Key) -> None:
    without = dpop.proof(key, "GET", URL, now=NOW)
    with pytest.raises(jotkit.UseDPoPNonce) as exc:
        dpop.verify_proof(without, method="GET", url=URL, now=NOW, nonce="n-1")
    assert exc.value.code == "use_dpop_nonce"
    stale = dpop.proof(key, "GET", URL, nonce="n-0", now=NOW)
    with pytest.raises(jotkit.UseDPoPNonce):
        dpop.verify_proof(stale, method="GET", url=URL, now=NOW, nonce="n-1")
    good = dpop.proof(key, "GET", URL, nonce="n-1", now=NOW)
    assert dpop.verify_proof(good, method="GET", url=URL, now=NOW, nonce="n-1").nonce == "n-1"
    assert dpop.verify_proof(good, method="GET", url=URL, now=NOW, nonce=lambda n: n == "n-1")


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "PS256", "RS256"])
def test_every_default_algorithm_round_trips(alg: str) -> None:
    k = jotkit.Key.generate(alg)
    got = dpop.verify_proof(dpop.proof(k, "POST", URL, now=NOW), method="POST", url=URL, now=NOW)
    assert got.jkt == k.thumbprint()


def test_proof_refuses_keys_that_cannot_make_one(key: jotkit.Key) -> None:
    with pytest.raises(ValueError):
        dpop.proof(key.public(), "GET", URL)
    with pytest.raises(ValueError):
        dpop.proof(jotkit.Key.from_secret(b"s" * 32, "HS256"), "GET", URL)
    with pytest.raises(ValueError):
        dpop.proof(key, "GET", "ftp://example.com/")


def test_a_prepared_verifier_reuses_a_clients_key_but_still_checks_the_signature(
    key: jotkit.Key,
) -> None:
    verifier = dpop.ProofVerifier(["ES256"])
    first = dpop.proof(key, "GET", URL, now=NOW)
    assert verifier.verify(first, method="GET", url=URL, now=NOW).jkt == key.thumbprint()
    head, body, _ = dpop.proof(key, "GET", URL, now=NOW, jti="other").split(".")
    forged = f"{head}.{body}.{first.split('.')[2]}"  # cached header, signature of another proof
    with pytest.raises(jotkit.InvalidDPoPProof) as exc:
        verifier.verify(forged, method="GET", url=URL, now=NOW)
    assert _code(exc) == "dpop_bad_signature"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers()))
def test_malformed_proof_headers_are_always_a_typed_error(value: object) -> None:
    with pytest.raises(jotkit.InvalidDPoPProof):
        dpop.verify_proof(value, method="GET", url=URL, now=NOW)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
), max_size=6))
def test_arbitrary_signed_headers_are_always_a_typed_error(header: dict[str, Any]) -> None:
    k = jotkit.Key.generate("ES256")
    with pytest.raises(jotkit.InvalidDPoPProof):
        dpop.verify_proof(_forge(k, header, _claims()), method="GET", url=URL, now=NOW)
