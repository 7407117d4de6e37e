"""Property-based tests (hypothesis) for JWE: round trips, tamper evidence, total rejection.

* every alg/enc pair round-trips any plaintext, compact and JSON;
* every single-character change of a compact token is rejected (exhaustively for
  one token per algorithm family, and by hypothesis for every pair);
* arbitrary input (text, bytes, JSON documents, five-segment shapes) only ever
  raises :class:`jotkit.InvalidToken`.
"""

from __future__ import annotations

import base64
import contextlib
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import jwe
from jotkit.jwe_algorithms import CONTENT_ENCRYPTION, ENCRYPTION_NAMES, KEY_MANAGEMENT_NAMES

ALGS = list(KEY_MANAGEMENT_NAMES)
ENCS = list(ENCRYPTION_NAMES)
PAIRS = [(alg, enc) for alg in ALGS for enc in ENCS]
PROPS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@cache
def _key(alg: str, enc: str) -> jotkit.Key:
    size = CONTENT_ENCRYPTION[enc].key_size * 8 if alg == "dir" else None
    return jotkit.Key.generate(alg, kid=f"k-{alg}", size=size)


def _recipient(key: jotkit.Key) -> jotkit.Key:
    return key if key.is_symmetric else key.public()


def _headers(alg: str) -> dict[str, Any] | None:
    return {"p2c": 1000} if alg.startswith("PBES2") else None


@cache
def _token(alg: str, enc: str) -> str:
    return jwe.encrypt(b'{"sub":"u1"}', _recipient(_key(alg, enc)), enc=enc, headers=_headers(alg))


def _decrypt(token: Any, alg: str, enc: str) -> bytes:
    return jwe.decrypt(token, _key(alg, enc), algorithms=[alg], encryptions=[enc])


@PROPS
@given(pair=st.sampled_from(PAIRS), plaintext=st.binary(max_size=2000), zipped=st.booleans())
def test_round_trip_any_plaintext_every_pair(pair: tuple[str, str], plaintext: bytes, zipped: bool):
    alg, enc = pair
    key = _key(alg, enc)
    zip_ = "DEF" if zipped else None
    token = jwe.encrypt(plaintext, _recipient(key), enc=enc, headers=_headers(alg), zip=zip_)
    assert _decrypt(token, alg, enc) == plaintext
    doc = jwe.encrypt_json(
        plaintext,
        _recipient(key),
        enc=enc,
        recipient_headers=[_headers(alg)],
        zip=zip_,
        flattened=False,
    )
    assert _decrypt(json.dumps(doc), alg, enc) == plaintext


def _mutations(token: str, position: int) -> list[str]:
    """Every token differing from ``token`` in the character at ``position`` (one per class)."""
    char = token[position]
    out = []
    for new in (
        ALPHABET[(ALPHABET.index(char) + 1) % 64] if char in ALPHABET else "A",
        ALPHABET[(ALPHABET.index(char) ^ 1)] if char in ALPHABET else "B",  # flips the low bit
        ".",
        "=",
        "\u00e9",
    ):
        if new != char:
            out.append(token[:position] + new + token[position + 1 :])
    return out


# One pair per key-management family keeps the exhaustive sweep quick.
EXHAUSTIVE = [
    ("dir", "A128GCM"),
    ("A128KW", "A128CBC-HS256"),
    ("A256GCMKW", "A256GCM"),
    ("RSA-OAEP-256", "A256GCM"),
    ("ECDH-ES", "A192CBC-HS384"),
    ("ECDH-ES+A256KW", "A256GCM"),
    ("PBES2-HS256+A128KW", "A128GCM"),
]


@pytest.mark.parametrize(("alg", "enc"), EXHAUSTIVE, ids=[f"{a}-{e}" for a, e in EXHAUSTIVE])
def test_every_single_character_mutation_is_rejected(alg: str, enc: str):
    token = _token(alg, enc)
    assert _decrypt(token, alg, enc) == b'{"sub":"u1"}'
    checked = 0
    for position in range(len(token)):
        for mutated in _mutations(token, position):
            with pytest.raises(jotkit.InvalidToken):
                _decrypt(mutated, alg, enc)
            checked += 1
    assert checked >= 3 * len(token)


@PROPS
@given(pair=st.sampled_from(PAIRS), data=st.data())
def test_any_single_byte_change_is_rejected_every_pair(pair: tuple[str, str], data: st.DataObject):
    alg, enc = pair
    raw = _token(alg, enc).encode("ascii")
    position = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]))
    mutated = raw[:position] + bytes([new]) + raw[position + 1 :]
    with pytest.raises(jotkit.InvalidToken):
        _decrypt(mutated, alg, enc)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
SEGMENT = st.text(alphabet=ALPHABET, max_size=60)
MEMBERS = [
    "protected",
    "unprotected",
    "header",
    "encrypted_key",
    "iv",
    "ciphertext",
    "tag",
    "aad",
    "recipients",
]


@st.composite
def _jwe_like_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(MEMBERS), unique=True)):
        doc[name] = draw(SEGMENT | JSON_VALUES)
    return doc


@st.composite
def _five_segments(draw: st.DrawFn) -> str:
    header = draw(
        st.dictionaries(
            st.sampled_from(
                ["alg", "enc", "zip", "epk", "p2s", "p2c", "iv", "tag", "crit", "kid", "cty"]
            ),
            JSON_VALUES | st.sampled_from(ALGS + ENCS + ["DEF", "none"]),
            max_size=6,
        )
    )
    first = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return ".".join([first, *(draw(SEGMENT) for _ in range(4))])


ANY_INPUT = (
    st.text()
    | st.binary()
    | JSON_VALUES.map(json.dumps)
    | _jwe_like_documents()
    | _jwe_like_documents().map(json.dumps)
    | _five_segments()
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(token=ANY_INPUT, pair=st.sampled_from(EXHAUSTIVE))
def test_arbitrary_input_only_raises_invalid_token(token: Any, pair: tuple[str, str]):
    alg, enc = pair
    key = _key(alg, enc)
    with contextlib.suppress(jotkit.InvalidToken):
        jwe.decrypt(token, jotkit.KeySet([key]), algorithms=ALGS, encryptions=ENCS)
    # Anything else (TypeError, KeyError, ValueError...) propagates and fails the test.
