"""Property-based tests (hypothesis) and regression tests for known JWT attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from functools import cache
from typing import Any

import pytest
from _vectors import b64u, json_b64u
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit

ALGORITHMS = [
    "HS256",
    "HS384",
    "HS512",
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
    "EdDSA",
    "Ed25519",
    "Ed448",
]
REGISTERED = {"exp", "nbf", "iat", "iss", "aud", "sub", "jti"}
NOW = 1_800_000_000.0
EXP = str(int(NOW) + 600)
PROPS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@cache
def _key(alg: str) -> jotkit.Key:
    """One key per algorithm per test run (RSA generation is slow)."""
    if alg.startswith("HS"):
        return jotkit.Key.from_secret(hashlib.sha512(alg.encode()).digest(), alg, kid=f"k-{alg}")
    return jotkit.Key.generate(alg, kid=f"k-{alg}")


def _verifier(alg: str) -> jotkit.Key:
    key = _key(alg)
    return key if key.is_symmetric else key.public()


@cache
def _all_keys() -> jotkit.KeySet:
    return jotkit.KeySet([_verifier(alg) for alg in ALGORITHMS])


def _forge(header: str | bytes, payload: str | bytes, key: jotkit.Key) -> str:
    """A correctly signed compact JWS over exactly these header/payload bytes."""
    h = header.encode() if isinstance(header, str) else header
    p = payload.encode() if isinstance(payload, str) else payload
    signing_input = f"{b64u(h)}.{b64u(p)}"
    return f"{signing_input}.{b64u(key.sign(signing_input.encode()))}"


def _sign_raw(signing_input: str, key: jotkit.Key) -> str:
    """Sign an arbitrary (possibly non-canonical) signing input; canonical signature."""
    return f"{signing_input}.{b64u(key.sign(signing_input.encode()))}"


def _claims_json(**extra: Any) -> str:
    return json.dumps({"sub": "alice", "exp": int(NOW) + 600, **extra}, separators=(",", ":"))


# --------------------------------------------------------------------------- strategies

#: Integers of any size JSON can carry: hypothesis's unbounded integers stay near 128 bits, so
#: add magnitudes from 300 to 4000 decimal digits (past float range, up to the int digit limit).
huge_ints = st.integers(min_value=300, max_value=4000).flatmap(
    lambda digits: st.integers(min_value=10 ** (digits - 1), max_value=10**digits - 1)
) | st.integers(min_value=300, max_value=4000).flatmap(
    lambda digits: st.integers(min_value=-(10**digits) + 1, max_value=-(10 ** (digits - 1)))
)
any_ints = st.integers() | huge_ints
json_scalars = (
    st.none()
    | st.booleans()
    | any_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
claim_dicts = st.dictionaries(
    st.text(max_size=12).filter(lambda name: name not in REGISTERED), json_values, max_size=6
)
HEADER_NAMES = ["alg", "kid", "typ", "cty", "crit", "b64", "jku", "jwk", "x5u", "x5c", "zip", "enc"]
header_dicts = st.dictionaries(
    st.sampled_from(HEADER_NAMES) | st.text(max_size=6),
    st.sampled_from([*ALGORITHMS, "none", "None", "", "HS1", "RSA-OAEP"]) | json_values,
    max_size=5,
)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("alg", ALGORITHMS)
@PROPS
@given(claims=claim_dicts)
def test_encode_decode_round_trip_preserves_claims(alg: str, claims: dict[str, Any]) -> None:
    token = jotkit.encode(claims, _key(alg), expires_in=600, now=NOW)
    big = 1_000_000  # huge integers make long tokens
    decoded = jotkit.decode(token, _verifier(alg), algorithms=[alg], now=NOW + 1, max_size=big)
    assert decoded["exp"] == NOW + 600
    assert {name: decoded[name] for name in claims} == claims
    header, payload = jotkit.decode_unverified(token, max_size=big)
    assert header["alg"] == alg
    assert payload == decoded


@pytest.mark.parametrize("alg", ALGORITHMS)
@PROPS
@given(payload=st.binary(min_size=1, max_size=64))
def test_jws_sign_verify_round_trip_preserves_bytes(alg: str, payload: bytes) -> None:
    token = jotkit.jws_sign(payload, _key(alg))
    header, out = jotkit.jws_verify(token, _verifier(alg), algorithms=[alg])
    assert out == payload
    assert header["alg"] == alg


# --------------------------------------------------------------------------- mutations

MUTATION_ALGS = ["HS256", "RS256", "PS256", "ES256", "ES512", "EdDSA", "Ed448"]


@cache
def _valid_token(alg: str) -> str:
    return jotkit.encode({"sub": "alice", "role": "admin"}, _key(alg), expires_in=600, now=NOW)


def _apply(token: bytes, op: str, position: int, byte: int) -> bytes:
    position %= len(token) + (1 if op == "insert" else 0)
    if op == "change":
        if token[position] == byte:
            byte = (byte + 1) % 256
        return token[:position] + bytes([byte]) + token[position + 1 :]
    if op == "insert":
        return token[:position] + bytes([byte]) + token[position:]
    return token[:position] + token[position + 1 :]


@pytest.mark.parametrize("alg", MUTATION_ALGS)
@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    op=st.sampled_from(["change", "insert", "delete"]),
    position=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_any_single_byte_mutation_rejected(alg: str, op: str, position: int, byte: int) -> None:
    original = _valid_token(alg).encode("ascii")
    mutated = _apply(original, op, position, byte)
    assert mutated != original
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(mutated.decode("latin-1"), _verifier(alg), algorithms=[alg], now=NOW)


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_every_deletion_and_neighbour_change_rejected_exhaustively(alg: str) -> None:
    original = _valid_token(alg)
    jotkit.decode(original, _verifier(alg), algorithms=[alg], now=NOW)  # sanity: it is valid
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    for i, char in enumerate(original):
        candidates = [original[:i] + original[i + 1 :]]
        nxt = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        candidates.append(original[:i] + nxt + original[i + 1 :])
        for mutated in candidates:
            with pytest.raises(jotkit.InvalidToken):
                jotkit.decode(mutated, _verifier(alg), algorithms=[alg], now=NOW)


# --------------------------------------------------------------------------- fuzzing


def _only_invalid_token(func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except jotkit.InvalidToken:
        return None


b64url_segments = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .", max_size=40
)
token_like = st.lists(b64url_segments, min_size=1, max_size=5).map(".".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.text(max_size=200) | st.binary(max_size=200) | token_like)
def test_arbitrary_input_raises_only_invalid_token(data: str | bytes) -> None:
    key = _verifier("HS256")
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(data, key, algorithms=["HS256"], now=NOW)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.jws_verify(data, key, algorithms=["HS256"])
    _only_invalid_token(jotkit.decode_unverified, data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    header=header_dicts | json_values,
    payload=json_values,
    signature=st.binary(max_size=600),
    raw_payload=st.booleans(),
)
def test_arbitrary_json_header_and_payload_with_random_signature_raise_only_invalid_token(
    header: Any, payload: Any, signature: bytes, raw_payload: bool
) -> None:
    body = json.dumps(payload).encode() if not raw_payload else json.dumps(payload).encode()[::-1]
    token = f"{json_b64u(header)}.{b64u(body)}.{b64u(signature)}"
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(token, _all_keys(), algorithms=ALGORITHMS, now=NOW)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.jws_verify(token, _all_keys(), algorithms=ALGORITHMS)
    result = _only_invalid_token(jotkit.decode_unverified, token)
    if result is not None:
        parsed_header, _parsed_payload = result
        assert parsed_header == header


# --------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("alg_value", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("with_signature", [False, True])
def test_alg_none_rejected(alg_value: str, with_signature: bool) -> None:
    key = _verifier("HS256")
    signing_input = f"{json_b64u({'alg': alg_value, 'typ': 'JWT'})}.{b64u(_claims_json().encode())}"
    signature = b64u(
        hmac.new(hashlib.sha512(b"HS256").digest(), signing_input.encode(), "sha256").digest()
    )
    token = f"{signing_input}.{signature if with_signature else ''}"
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW)
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.jws_verify(token, key, algorithms=["HS256"])


def test_alg_none_from_unsafe_encode_none_never_accepted() -> None:
    token = jotkit.unsafe_encode_none({"sub": "alice", "exp": int(NOW) + 600})
    assert token.endswith(".")
    assert jotkit.decode_unverified(token)[0]["alg"] == "none"
    with pytest.raises(jotkit.UnsupportedAlgorithm) as info:
        jotkit.decode(token, _verifier("HS256"), algorithms=["HS256"], now=NOW)
    assert info.value.code in ("alg_none", "alg_not_allowed")
    with pytest.raises((jotkit.InvalidToken, ValueError)):
        jotkit.decode(token, _verifier("HS256"), algorithms=["none"], now=NOW)


@pytest.mark.parametrize("public_alg", ["RS256", "ES256", "EdDSA"])
def test_hs256_with_rsa_public_key_pem_as_secret_rejected(public_alg: str) -> None:
    victim = _key(public_alg)
    public_pem = victim.to_pem()
    # 1. jotkit refuses to treat public-key material as an HMAC secret.
    for material in (public_pem, public_pem.decode("ascii"), victim.to_pem(private=True)):
        with pytest.raises(jotkit.InvalidKey):
            jotkit.Key.from_secret(material, "HS256")
    # 2. A token MACed with the public PEM bytes never verifies against the public key.
    header = json_b64u({"alg": "HS256", "typ": "JWT", "kid": victim.kid})
    signing_input = f"{header}.{b64u(_claims_json().encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), "sha256").digest()
    token = f"{signing_input}.{b64u(mac)}"
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.decode(token, victim.public(), algorithms=[public_alg], now=NOW)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(token, victim.public(), algorithms=[public_alg, "HS256"], now=NOW)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(
            token, jotkit.KeySet([victim.public()]), algorithms=[public_alg, "HS256"], now=NOW
        )


def _std_b64(data: bytes, pad: bool) -> str:
    text = base64.b64encode(data).decode()
    return text if pad else text.rstrip("=")


def _payload_with_std_alphabet_chars() -> bytes:
    for i in range(10_000):
        claims = {"sub": "alice", "exp": int(NOW) + 600, "n": i, "s": "\u00ff\u00fe~?"}
        payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        std = _std_b64(payload, pad=False)
        if "+" in std and "/" in std:
            return payload
    raise AssertionError("no payload found")  # pragma: no cover


def _stray_bits(segment: str) -> str:
    """Same decoded bytes under a lenient decoder, but non-zero unused trailing bits."""
    assert len(segment) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) | 1]


def _non_canonical_tokens(key: jotkit.Key) -> dict[str, str]:
    header = b'{"alg":"HS256","typ":"JWT"}'  # 27 bytes: base64url length 36, no padding needed
    header_pad = b'{"alg":"HS256","typ":"JWT" }'  # 28 bytes: needs one "="
    payload = _claims_json().encode()
    while len(payload) % 3 == 0:
        payload = payload[:-1] + b" }"
    tricky = _payload_with_std_alphabet_chars()
    good_sig_input = f"{b64u(header)}.{b64u(payload)}"
    good = _sign_raw(good_sig_input, key)
    sig = good.rsplit(".", 1)[1]
    assert len(sig) % 4 in (2, 3)
    return {
        "padded-header": _sign_raw(
            f"{_std_b64(header_pad, True).replace('+', '-').replace('/', '_')}.{b64u(payload)}", key
        ),
        "padded-payload": _sign_raw(
            f"{b64u(header)}.{b64u(payload)}{'=' * (-len(b64u(payload)) % 4)}", key
        ),
        "padded-signature": f"{good_sig_input}.{sig}{'=' * (-len(sig) % 4)}",
        "std-alphabet-payload": _sign_raw(f"{b64u(header)}.{_std_b64(tricky, False)}", key),
        "stray-bits-payload": _sign_raw(f"{b64u(header)}.{_stray_bits(b64u(payload))}", key),
        "stray-bits-signature": f"{good_sig_input}.{_stray_bits(sig)}",
        "whitespace-in-payload": _sign_raw(
            f"{b64u(header)}.{b64u(payload)[:8]}\n{b64u(payload)[8:]}", key
        ),
        "control": good,
    }


@pytest.mark.parametrize(
    "variant",
    [
        "padded-header",
        "padded-payload",
        "padded-signature",
        "std-alphabet-payload",
        "stray-bits-payload",
        "stray-bits-signature",
        "whitespace-in-payload",
    ],
)
def test_non_canonical_base64_rejected(variant: str) -> None:
    key = _key("HS256")
    tokens = _non_canonical_tokens(key)
    assert jotkit.decode(tokens["control"], key, algorithms=["HS256"], now=NOW)["sub"] == "alice"
    token = tokens[variant]
    assert token != tokens["control"]
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW)
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode_unverified(token)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ('{"alg":"HS256","alg":"HS256"}', _claims_json()),
        ('{"alg":"HS256","kid":"a","kid":"b"}', _claims_json()),
        ('{"alg":"HS256"}', '{"sub":"alice","sub":"mallory","exp":' + EXP + "}"),
        (
            '{"alg":"HS256"}',
            '{"sub":"alice","exp":' + EXP + ',"exp":1800009999}',
        ),
        ('{"alg":"HS256"}', '{"sub":"alice","exp":' + EXP + ',"x":{"a":1,"a":2}}'),
    ],
    ids=["header-alg", "header-kid", "payload-sub", "payload-exp", "payload-nested"],
)
def test_duplicate_json_members_rejected(header: str, payload: str) -> None:
    key = _key("HS256")
    token = _forge(header, payload, key)
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW)
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode_unverified(token)


@pytest.mark.parametrize(
    ("alg", "size"), [("ES256", 32), ("ES384", 48), ("ES512", 66), ("ES256K", 32)]
)
def test_ecdsa_der_signature_rejected(alg: str, size: int) -> None:
    key = _key(alg)
    signing_input = f"{json_b64u({'alg': alg})}.{b64u(_claims_json().encode())}"
    raw = key.sign(signing_input.encode())
    assert len(raw) == 2 * size
    der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    assert key.public().verify(signing_input.encode(), raw) is True
    assert key.public().verify(signing_input.encode(), der) is False
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(f"{signing_input}.{b64u(der)}", key.public(), algorithms=[alg], now=NOW)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.mark.parametrize(
    ("alg", "size"), [("ES256", 32), ("ES384", 48), ("ES512", 66), ("ES256K", 32)]
)
@pytest.mark.parametrize("shape", ["r=s=0", "r=0", "s=0"])
def test_psychic_signature_zero_r_s_rejected(alg: str, size: int, shape: str) -> None:
    key = _key(alg)
    signing_input = f"{json_b64u({'alg': alg})}.{b64u(_claims_json().encode())}"
    raw = key.sign(signing_input.encode())
    r, s = raw[:size], raw[size:]
    zero = bytes(size)
    sig = {"r=s=0": zero + zero, "r=0": zero + s, "s=0": r + zero}[shape]
    assert key.public().verify(signing_input.encode(), sig) is False
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.decode(f"{signing_input}.{b64u(sig)}", key.public(), algorithms=[alg], now=NOW)


def test_psychic_signature_r_s_equal_to_group_order_rejected() -> None:
    key = _key("ES256")
    signing_input = f"{json_b64u({'alg': 'ES256'})}.{b64u(_claims_json().encode())}"
    n = P256_ORDER.to_bytes(32, "big")
    assert key.public().verify(signing_input.encode(), n + n) is False
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(f"{signing_input}.{b64u(n + n)}", key.public(), algorithms=["ES256"], now=NOW)


def test_unknown_crit_rejected() -> None:
    key = _key("HS256")
    header = json.dumps({"alg": "HS256", "crit": ["urn:example:unknown"], "urn:example:unknown": 1})
    token = _forge(header, _claims_json(), key)
    with pytest.raises(jotkit.UnsupportedAlgorithm) as info:
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW)
    assert info.value.code == "unknown_crit"


@pytest.mark.parametrize(
    "crit",
    [[], "urn:example:unknown", ["alg"], ["urn:example:absent"], [1], None],
    ids=["empty-list", "not-a-list", "registered-name", "absent-member", "non-string", "null"],
)
def test_malformed_crit_rejected(crit: Any) -> None:
    key = _key("HS256")
    token = _forge(json.dumps({"alg": "HS256", "crit": crit}), _claims_json(), key)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW)


def test_jku_x5u_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network access attempted during decode")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    legit = _key("ES256")
    attacker = jotkit.Key.generate("ES256", kid=legit.kid)
    hostile = {
        "alg": "ES256",
        "kid": legit.kid,
        "jku": "http://127.0.0.1:1/jwks.json",
        "x5u": "http://127.0.0.1:1/cert.pem",
        "jwk": attacker.public().to_jwk(),
    }
    # Signed by the legitimate key: the URL/embedded-key headers are ignored.
    good = _forge(json.dumps(hostile), _claims_json(), legit)
    for keys in (legit.public(), jotkit.KeySet([legit.public()])):
        assert jotkit.decode(good, keys, algorithms=["ES256"], now=NOW)["sub"] == "alice"
    # Signed by the attacker whose key is embedded / hosted at jku: rejected.
    evil = _forge(json.dumps(hostile), _claims_json(sub="mallory"), attacker)
    for keys in (legit.public(), jotkit.KeySet([legit.public()])):
        with pytest.raises(jotkit.InvalidSignature):
            jotkit.decode(evil, keys, algorithms=["ES256"], now=NOW)
    assert attempts == []


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    [True, False, "1800000600", None, [1800000600], {"t": 1800000600}, ""],
    ids=["true", "false", "string", "null", "list", "object", "empty-string"],
)
def test_numericdate_bool_string_null_rejected(claim: str, value: Any) -> None:
    key = _key("HS256")
    claims: dict[str, Any] = {"sub": "alice", "exp": int(NOW) + 600}
    claims[claim] = value
    token = _forge(json.dumps({"alg": "HS256"}), json.dumps(claims), key)
    with pytest.raises(jotkit.InvalidClaim) as info:
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW, require=())
    assert info.value.claim == claim


def test_numericdate_numbers_accepted() -> None:
    key = _key("HS256")
    claims = {"sub": "alice", "exp": NOW + 600.5, "nbf": int(NOW) - 5, "iat": NOW - 5.25}
    token = _forge(json.dumps({"alg": "HS256"}), json.dumps(claims), key)
    assert jotkit.decode(token, key, algorithms=["HS256"], now=NOW) == claims


def test_token_size_cap() -> None:
    key = _key("HS256")
    big = jotkit.encode({"blob": "x" * 20_000}, key, expires_in=600, now=NOW)
    assert len(big) > 16_384
    with pytest.raises(jotkit.MalformedToken) as info:
        jotkit.decode(big, key, algorithms=["HS256"], now=NOW)
    assert info.value.code == "token_too_large"
    assert (
        jotkit.decode(big, key, algorithms=["HS256"], now=NOW, max_size=64_000)["blob"]
        == "x" * 20_000
    )
    small = jotkit.encode({"sub": "alice"}, key, expires_in=600, now=NOW)
    assert jotkit.decode(small, key, algorithms=["HS256"], now=NOW)["sub"] == "alice"
    with pytest.raises(jotkit.MalformedToken) as info:
        jotkit.decode(small, key, algorithms=["HS256"], now=NOW, max_size=len(small) - 1)
    assert info.value.code == "token_too_large"
    huge = "a" * 10_000_000 + "." + "b" * 10 + "." + "c"
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(huge, key, algorithms=["HS256"], now=NOW)


@pytest.mark.parametrize("alg", ["HS256", "ES256", "EdDSA"])
def test_jws_empty_payload_rfc7515_round_trips_but_is_no_jwt(alg: str) -> None:
    """RFC 7515 §7.1 allows an empty payload (``header..signature``): the JWS layer signs and
    verifies it; the JWT layer still needs a JSON object and says so (malformed)."""
    key = _key(alg)
    token = jotkit.jws_sign(b"", key)
    head, payload_segment, signature = token.split(".")
    assert payload_segment == "" and head and signature
    header, payload = jotkit.jws_verify(token, _verifier(alg), algorithms=[alg])
    assert payload == b"" and header["alg"] == alg
    assert jotkit.jws.decode_unverified(token)[1] == b""
    # The signature covers the empty payload: any other payload (or none with a
    # signature made over something else) fails.
    other = jotkit.jws_sign(b"x", key)
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.jws_verify(f"{head}..{other.split('.')[2]}", _verifier(alg), algorithms=[alg])
    with pytest.raises(jotkit.InvalidSignature):
        jotkit.jws_verify(f"{head}.eA.{signature}", _verifier(alg), algorithms=[alg])
    for decode in (
        lambda: jotkit.decode(token, _verifier(alg), algorithms=[alg], now=NOW, require=()),
        lambda: jotkit.Verifier(_verifier(alg), algorithms=[alg], require=()).decode(token),
        lambda: jotkit.decode_unverified(token),
    ):
        with pytest.raises(jotkit.MalformedToken) as info:
            decode()
        assert info.value.code == "malformed"


@pytest.mark.parametrize(
    ("where", "header", "payload"),
    [
        ("payload-array", '{"alg":"HS256"}', "[" * 4000 + "]" * 4000),
        ("payload-object", '{"alg":"HS256"}', '{"a":' * 1500 + "1" + "}" * 1500),
        ("header", '{"alg":"HS256","x":' + "[" * 4000 + "]" * 4000 + "}", _claims_json()),
    ],
)
def test_deeply_nested_json_rejected_without_recursion_error(
    where: str, header: str, payload: str
) -> None:
    key = _key("HS256")
    token = _forge(header, payload, key)
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW, max_size=1_000_000)
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode_unverified(token)
    if where == "header":
        with pytest.raises(jotkit.MalformedToken):
            jotkit.jws_verify(token, key, algorithms=["HS256"])


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp":NaN}',
        b'{"exp":Infinity}',
        b'{"exp":-Infinity}',
        b'{"exp":1e400}',
        b'{"exp":' + b"9" * 5000 + b"}",
        b'\xef\xbb\xbf{"exp":1800000600}',
        b'{"exp":1800000600,"sub":"\xff\xfe"}',
        b'{"exp":1800000600,"sub":"a\x00b"}',
        b'{"exp":1800000600} {}',
        b"",
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "5000-digits",
        "bom",
        "not-utf8",
        "raw-control-char",
        "trailing-data",
        "empty",
    ],
)
def test_non_json_or_non_finite_payload_rejected(payload: bytes) -> None:
    key = _key("HS256")
    header = b'{"alg":"HS256"}'
    signing_input = f"{b64u(header)}.{b64u(payload)}"
    token = f"{signing_input}.{b64u(key.sign(signing_input.encode()))}"
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW, max_size=100_000)


@pytest.mark.parametrize(
    "header",
    [
        b'{"alg":123}',
        b'{"alg":null}',
        b'{"alg":["HS256"]}',
        b'{"kid":"k"}',
        b'{"alg":"HS256","kid":5}',
        b'["alg","HS256"]',
        b'"HS256"',
    ],
    ids=[
        "alg-int",
        "alg-null",
        "alg-list",
        "alg-missing",
        "kid-int",
        "header-array",
        "header-string",
    ],
)
def test_malformed_protected_header_rejected(header: bytes) -> None:
    key = _key("HS256")
    token = _forge(header, _claims_json(), key)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(token, key, algorithms=["HS256"], now=NOW)
    with pytest.raises(jotkit.InvalidToken):
        jotkit.jws_verify(token, key, algorithms=["HS256"])


CLAIM_NAMES = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "typ", "scope"]
#: NumericDate candidates (RFC 7519 §2): near-now times, any integer, any finite float, and
#: the float extremes.
numeric_dates = (
    st.integers(min_value=1_700_000_000, max_value=1_900_000_000)
    | st.floats(min_value=1.7e9, max_value=1.9e9)
    | any_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0])
)
claim_values = numeric_dates | json_values


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    extra_header=st.dictionaries(
        st.sampled_from(["kid", "typ", "cty", "crit", "b64", "jku", "x5u", "zip", "urn:x"]),
        json_values,
        max_size=3,
    ),
    payload=st.dictionaries(
        st.sampled_from(CLAIM_NAMES) | st.text(max_size=4), claim_values, max_size=6
    )
    | json_values,
    audience=st.none() | st.sampled_from(["api", ["api", "other"]]),
    issuer=st.none() | st.just("https://issuer.example"),
)
def test_validly_signed_arbitrary_json_raises_only_invalid_token(
    extra_header: dict[str, Any], payload: Any, audience: Any, issuer: Any
) -> None:
    key = _key("HS256")
    header = {**extra_header, "alg": "HS256"}
    token = _forge(json.dumps(header), json.dumps(payload), key)
    try:
        claims = jotkit.decode(
            token, key, algorithms=["HS256"], now=NOW, audience=audience, issuer=issuer, require=()
        )
    except jotkit.InvalidToken:
        return
    assert claims == payload
    for name in ("exp", "nbf", "iat"):
        if name in claims:  # accepted NumericDates are real numbers, never bool
            assert isinstance(claims[name], (int, float)) and not isinstance(claims[name], bool)
    assert claims.get("exp", NOW + 1) > NOW  # RFC 7519 4.1.4, leeway 0
    assert claims.get("nbf", NOW) <= NOW  # RFC 7519 4.1.5
    if audience is not None:
        aud = claims.get("aud")
        accepted = {audience} if isinstance(audience, str) else set(audience)
        assert (aud in accepted) if isinstance(aud, str) else bool(accepted & set(aud))
    if issuer is not None:
        assert claims.get("iss") == issuer


#: JSON number literals for a NumericDate, written as text so that the ones json.dumps cannot
#: produce are covered too: past-float-range exponents ("inf-like"), huge integers, -0, fractions.
numericdate_literals = (
    numeric_dates.map(lambda v: json.dumps(v))
    | st.sampled_from(["1e400", "-1e400", "1E+309", "2e308", "1e-400", "-0", "0.0", "1.0e9"])
    | st.integers(min_value=300, max_value=4200).map(lambda n: "9" * n)
    | st.integers(min_value=300, max_value=4200).map(lambda n: "-" + "9" * n)
    | st.integers(min_value=1, max_value=400).map(lambda n: f"1{'0' * n}.5")
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(claim=st.sampled_from(["exp", "nbf", "iat"]), literal=numericdate_literals)
def test_numericdate_of_any_json_number_raises_only_invalid_token(claim: str, literal: str) -> None:
    """RFC 7519 §2: whatever number a validly signed token carries, every entry point either
    accepts it or raises InvalidToken (never OverflowError), and they all agree."""
    key = _key("HS256")
    extra = "" if claim == "exp" else f',"exp":{int(NOW) + 600}'
    token = _forge('{"alg":"HS256"}', f'{{"sub":"alice","{claim}":{literal}{extra}}}', key)
    outcomes = []
    for decode in (
        lambda: jotkit.decode(token, key, algorithms=["HS256"], now=NOW, max_size=100_000),
        lambda: jotkit.Verifier(key, algorithms=["HS256"], max_size=100_000).decode(token, now=NOW),
    ):
        try:
            claims = decode()
        except jotkit.InvalidToken as exc:
            outcomes.append(exc.code)
        else:
            outcomes.append("ok")
            value = claims[claim]
            assert isinstance(value, (int, float)) and not isinstance(value, bool)
            assert claims["exp"] > NOW
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("digits", [309, 310, 400, 4000])
@pytest.mark.parametrize("sign", ["", "-"])
def test_huge_integer_numericdate_is_invalid_claim_not_overflow_error(
    claim: str, digits: int, sign: str
) -> None:
    """A validly signed token whose exp/nbf/iat does not fit a float is refused as a bad
    NumericDate by the one-shot and the prepared API (it used to raise OverflowError)."""
    key = _key("HS256")
    value = sign + "9" * digits
    extra = "" if claim == "exp" else f',"exp":{int(NOW) + 600}'
    token = _forge('{"alg":"HS256"}', f'{{"sub":"alice","{claim}":{value}{extra}}}', key)
    for decode in (
        lambda: jotkit.decode(token, key, algorithms=["HS256"], now=NOW, max_size=100_000),
        lambda: jotkit.decode_complete(token, key, algorithms=["HS256"], now=NOW, max_size=10**5),
        lambda: jotkit.Verifier(key, algorithms=["HS256"], max_size=100_000).decode(token, now=NOW),
    ):
        with pytest.raises(jotkit.InvalidClaim) as info:
            decode()
        assert info.value.code == "invalid_claim"
        assert info.value.claim == claim


#: Group orders (SEC 2 v2 §2.4.2, §2.5.1, §2.6.1; FIPS 186-4 D.1.2) for the malleability test.
EC_ORDERS = {
    "ES256": (32, P256_ORDER),
    "ES384": (
        48,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    ),
    "ES512": (
        66,
        0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
    ),
    "ES256K": (32, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141),
}


@pytest.mark.parametrize("alg", sorted(EC_ORDERS))
def test_ecdsa_malleated_signature_n_minus_s_verifies_with_same_claims_and_jti(alg: str) -> None:
    """ECDSA is malleable: (r, n - s) is a second valid signature over the same bytes. jotkit
    accepts it, as RFC 7518 §3.4 and other JOSE libraries do (no low-s rule). It is harmless
    for revocation keyed by jti: the jti sits in the signed payload, so the malleated token
    carries the same claims and the same jti, and a jti deny-list still refuses it. Only
    something keyed by the token text or its signature would tell the two apart."""
    size, order = EC_ORDERS[alg]
    key = _key(alg)
    token = jotkit.encode({"sub": "alice"}, key, expires_in=600, now=NOW, jti=True)
    head, payload, sig_b64 = token.split(".")
    sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    r, s = sig[:size], int.from_bytes(sig[size:], "big")
    malleated = f"{head}.{payload}.{b64u(r + (order - s).to_bytes(size, 'big'))}"
    assert malleated != token
    original = jotkit.decode(token, key.public(), algorithms=[alg], now=NOW)
    twin = jotkit.decode(malleated, key.public(), algorithms=[alg], now=NOW)
    assert twin == original and twin["jti"] == original["jti"]
    denied = {original["jti"]}  # a deny-list keyed by jti refuses both spellings
    assert all(
        jotkit.decode(t, key.public(), algorithms=[alg], now=NOW)["jti"] in denied
        for t in (token, malleated)
    )
