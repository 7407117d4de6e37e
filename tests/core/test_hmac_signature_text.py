"""HMAC signatures are checked as base64url text (issue 10 §4): the expected MAC is encoded
canonically and compared with the signature segment in constant time, so the segment is
not decoded on success. These tests pin that this accepts exactly what decoding strictly
and comparing bytes accepts, and that a refused segment still gets the same error as
before: ``malformed`` for a segment that is no canonical base64url, ``invalid_signature``
for a canonical one that is the wrong MAC (RFC 7515 §5.2, RFC 4648 §3.5)."""

from __future__ import annotations

import base64
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import Key
from jotkit._b64 import decode_unpadded

NOW = 1_700_000_000
CLAIMS = {"sub": "alice", "exp": NOW + 600, "iat": NOW}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _keys() -> list[Key]:
    return [
        Key.from_secret(b"k" * 32, "HS256"),
        Key.from_secret(b"k" * 48, "HS384"),
        Key.from_secret(b"k" * 64, "HS512"),
    ]


def _stray(segment: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) | 1]


def _variants(sig: str) -> dict[str, str]:
    return {
        # A length of 0 (mod 4) has no unused bits: stray bits are then not applicable.
        "stray-bits": _stray(sig) if len(sig) % 4 else "",
        "padded": sig + "=" * (-len(sig) % 4 or 1),
        "std-plus": sig[:-2] + "+" + sig[-1],
        "std-slash": sig[:-2] + "/" + sig[-1],
        "non-ascii": sig[:-2] + "é" + sig[-1],
        "lone-surrogate": sig[:-2] + "\udc80" + sig[-1],
        "nul": sig[:-2] + "\x00" + sig[-1],
        "whitespace": sig[:10] + " " + sig[10:],
        "truncated-1-mod-4": sig[: len(sig) - len(sig) % 4] + "A",
        "empty": "",
    }


@pytest.mark.parametrize("key", _keys(), ids=lambda k: k.alg)
@pytest.mark.parametrize(
    "variant",
    [
        "stray-bits",
        "padded",
        "std-plus",
        "std-slash",
        "non-ascii",
        "lone-surrogate",
        "nul",
        "whitespace",
        "truncated-1-mod-4",
        "empty",
    ],
)
def test_malleated_hmac_signature_text_is_malformed_not_a_signature_verdict(
    key: Key, variant: str
) -> None:
    token = jotkit.encode(CLAIMS, key, now=NOW)
    head, sig = token.rsplit(".", 1)
    forged = f"{head}.{_variants(sig)[variant]}"
    verifier = jotkit.Verifier(key, algorithms=[key.alg])
    for decode in (
        lambda t: verifier.decode(t, now=NOW),
        lambda t: jotkit.decode(t, key, algorithms=[key.alg], now=NOW),
    ):
        assert decode(token)["sub"] == "alice"
        with pytest.raises(jotkit.MalformedToken):
            decode(forged)


@pytest.mark.parametrize("key", _keys(), ids=lambda k: k.alg)
def test_canonical_but_wrong_hmac_signature_is_invalid_signature(key: Key) -> None:
    token = jotkit.encode(CLAIMS, key, now=NOW)
    head, sig = token.rsplit(".", 1)
    raw = bytearray(decode_unpadded(sig))
    raw[0] ^= 1
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.Verifier(key, algorithms=[key.alg]).decode(f"{head}.{_b64(bytes(raw))}", now=NOW)
    other = Key.from_secret(b"x" * 64, key.alg)
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.decode(jotkit.encode(CLAIMS, other, now=NOW), key, algorithms=[key.alg], now=NOW)


@settings(max_examples=800, deadline=None)
@given(
    msg=st.binary(max_size=64),
    segment=st.text() | st.text(alphabet="AQgw-_+/=Zz09 ", max_size=90),
    use_mac=st.booleans(),
)
def test_hmac_text_check_accepts_exactly_the_strict_decoding_of_the_mac(
    msg: bytes, segment: str, use_mac: bool
) -> None:
    """The text check equals ``decode strictly, then compare bytes``, for any text."""
    key = Key.from_secret(b"s" * 32, "HS256")
    mac = hmac.digest(b"s" * 32, msg, "sha256")
    if use_mac:  # the right MAC, possibly malleated by the drawn text
        segment = _b64(mac) + segment[:2]
    by_text = key._verify_segment
    assert by_text is not None
    try:
        expected = decode_unpadded(segment) == mac
    except ValueError:
        expected = False
    assert by_text(msg, segment) is expected


def test_only_hmac_keys_check_signatures_as_text() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    assert Key.from_secret(b"k" * 32, "HS256")._verify_segment is not None
    assert Key("ES256", ec.generate_private_key(ec.SECP256R1()))._verify_segment is None


def test_header_cache_never_pins_the_key_a_resolver_returned() -> None:
    """A resolver (e.g. a JWKS client) is asked on every call: after a rotation, a token
    of the retired key is refused even though its header segment is cached."""
    old, new = Key.from_secret(b"o" * 32, "HS256"), Key.from_secret(b"n" * 32, "HS256")
    current = [old]
    verifier = jotkit.Verifier(lambda header: current[0], algorithms=["HS256"])
    token = jotkit.encode(CLAIMS, old, now=NOW)
    assert verifier.decode(token, now=NOW)["sub"] == "alice"
    current[0] = new
    with pytest.raises(jotkit.InvalidSignature):
        verifier.decode(token, now=NOW)
    assert verifier.decode(jotkit.encode(CLAIMS, new, now=NOW), now=NOW)["sub"] == "alice"
