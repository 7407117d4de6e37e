"""JWS JSON serialization (RFC 7515 §7.2), unencoded payloads (RFC 7797) and detached content."""

from __future__ import annotations

import contextlib
import json

import pytest
from _vectors import b64u, b64u_decode, load
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import jws

COOKBOOK_JSON = [
    "4_5.signature_with_detached_content.json",
    "4_6.protecting_specific_header_fields.json",
    "4_7.protecting_content_only.json",
    "4_8.multiple_signatures.json",
]


def _cookbook_keys(data: dict) -> list[jotkit.Key]:
    inp = data["input"]
    algs = inp["alg"] if isinstance(inp["alg"], list) else [inp["alg"]]
    jwks = inp["key"] if isinstance(inp["key"], list) else [inp["key"]]
    return [jotkit.Key.from_jwk(jwk, alg) for jwk, alg in zip(jwks, algs, strict=True)]


def _cases() -> list:
    out = []
    for name in COOKBOOK_JSON:
        for form in ("json", "json_flat"):
            if form in load(f"rfc7520/{name}")["output"]:
                out.append(pytest.param(name, form, id=f"{name[:3]}-{form}"))
    return out


@pytest.mark.parametrize(("name", "form"), _cases())
def test_rfc7520_section4_json_serializations_verify(name: str, form: str):
    data = load(f"rfc7520/{name}")
    keys = _cookbook_keys(data)
    payload = data["input"]["payload"].encode("utf-8")
    token = data["output"][form]
    detached = payload if "payload" not in token else None
    for key in keys:
        verifier = key if key.is_symmetric else key.public()
        result = jws.verify_json(token, verifier, algorithms=[key.alg], payload=detached)
        assert result.payload == payload
        assert result.key is verifier
        if len(keys) > 1:  # §4.8: each key verifies its own signature and says which
            assert result.signature_index == keys.index(key)
            assert result.header["alg"] == key.alg


def test_rfc7520_4_5_detached_compact():
    data = load("rfc7520/4_5.signature_with_detached_content.json")
    key = _cookbook_keys(data)[0]
    token = data["output"]["compact"]
    assert ".." in token
    payload = data["input"]["payload"].encode("utf-8")
    result = jws.verify_detached(token, payload, key, algorithms=["HS256"])
    assert result.payload == payload
    with pytest.raises(jotkit.InvalidSignature):
        jws.verify_detached(token, payload + b"!", key, algorithms=["HS256"])


def test_rfc7520_4_8_keyset_reports_the_signature_that_verified():
    data = load("rfc7520/4_8.multiple_signatures.json")
    keys = _cookbook_keys(data)
    ec = keys[1].public()
    result = jws.verify_json(
        data["output"]["json"], jotkit.KeySet([ec]), algorithms=["ES512", "RS256", "HS256"]
    )
    assert result.signature_index == 1 and result.key is ec
    # Only allowed algorithms count: with ES512 off the list nothing verifies.
    with pytest.raises(jotkit.InvalidToken):
        jws.verify_json(data["output"]["json"], jotkit.KeySet([ec]), algorithms=["RS256"])


def test_rfc7797_4_1_and_4_2_vectors():
    vector = load("rfc7797/section_4.json")
    key = jotkit.Key.from_jwk(vector["key"], "HS256")
    payload = vector["payload"].encode()
    _, got = jotkit.jws_verify(vector["4_1_b64_true"]["compact"], key, algorithms=["HS256"])
    assert got == payload
    result = jws.verify_detached(
        vector["4_2_b64_false"]["compact_detached"], payload, key, algorithms=["HS256"]
    )
    assert result.payload == payload and result.header["b64"] is False
    result = jws.verify_json(vector["4_2_b64_false"]["flattened_json"], key, algorithms=["HS256"])
    assert result.payload == payload
    # jotkit signs the same bytes: HMAC is deterministic, so the tokens are identical.
    assert jws.sign_detached(payload, key, b64=False) == vector["4_2_b64_false"]["compact_detached"]
    assert jws.sign_json(payload, key, b64=False) == vector["4_2_b64_false"]["flattened_json"]


def test_rfc7797_6_b64_false_without_crit_is_refused():
    """The ietf-jose/cookbook RFC 7797 file predates §6: b64 outside crit must be refused."""
    data = load("rfc7797/cookbook_4.2.hmac-sha2_b64_false.json")
    key = jotkit.Key.from_jwk(data["input"]["key"])
    for form in ("json", "json_flat"):
        with pytest.raises(jotkit.MalformedToken, match="crit"):
            jws.verify_json(data["output"][form], key, algorithms=["HS256"])


def test_compact_verify_still_refuses_b64_false():
    vector = load("rfc7797/section_4.json")
    key = jotkit.Key.from_jwk(vector["key"], "HS256")
    protected = vector["4_2_b64_false"]["protected"]
    sig = vector["4_2_b64_false"]["compact_detached"].split("..")[1]
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jotkit.jws_verify(f"{protected}.JC4wMg.{sig}", key, algorithms=["HS256"])


def test_sign_json_general_and_flattened_round_trip():
    keys = [
        jotkit.Key.generate("ES256", kid="e"),
        jotkit.Key.generate("EdDSA", kid="d"),
        jotkit.Key.from_secret(b"k" * 32, "HS256", kid="h"),
    ]
    doc = jws.sign_json(b"payload", keys, unprotected=[{"x-n": 1}, None, None])
    assert len(doc["signatures"]) == 3 and doc["signatures"][0]["header"] == {"x-n": 1}
    public = jotkit.KeySet([k if k.is_symmetric else k.public() for k in keys])
    for index, key in enumerate(keys):
        result = jws.verify_json(json.dumps(doc), public, algorithms=[key.alg])
        assert result.signature_index == index and result.key.kid == key.kid
        assert result.payload == b"payload"
    flat = jws.sign_json(b"payload", keys[0])
    assert set(flat) == {"payload", "protected", "signature"}
    assert jws.verify_json(flat, keys[0].public(), algorithms=["ES256"]).payload == b"payload"


def test_detached_json_needs_the_payload():
    key = jotkit.Key.generate("ES256")
    doc = jws.sign_json(b"body", key, detached=True)
    assert "payload" not in doc
    assert (
        jws.verify_json(doc, key.public(), algorithms=["ES256"], payload=b"body").payload == b"body"
    )
    with pytest.raises(jotkit.MalformedToken, match="payload"):
        jws.verify_json(doc, key.public(), algorithms=["ES256"])
    with pytest.raises(jotkit.InvalidSignature):
        jws.verify_json(doc, key.public(), algorithms=["ES256"], payload=b"other")
    attached = jws.sign_json(b"body", key)
    with pytest.raises(jotkit.MalformedToken, match="detached"):
        jws.verify_json(attached, key.public(), algorithms=["ES256"], payload=b"body")


def test_b64_false_json_round_trip_and_binary_payloads():
    key = jotkit.Key.generate("ES256")
    doc = jws.sign_json(b'{"a": "$.02"}', key, b64=False)
    assert doc["payload"] == '{"a": "$.02"}'
    header = json.loads(b64u_decode(doc["protected"]))
    assert header["b64"] is False and header["crit"] == ["b64"]
    assert jws.verify_json(doc, key.public(), algorithms=["ES256"]).payload == b'{"a": "$.02"}'
    with pytest.raises(ValueError, match="UTF-8"):
        jws.sign_json(b"\xff", key, b64=False)
    token = jws.sign_detached(b"\xff\x00", key, b64=False)
    assert (
        jws.verify_detached(token, b"\xff\x00", key.public(), algorithms=["ES256"]).payload
        == b"\xff\x00"
    )


def test_signatures_must_agree_on_b64_rfc7797_3():
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")
    a = jws.sign_json(b"p", key, b64=False, flattened=False)
    b = jws.sign_json(b"p", key, flattened=False)
    mixed = {"payload": "p", "signatures": a["signatures"] + b["signatures"]}
    with pytest.raises(jotkit.MalformedToken, match="b64"):
        jws.verify_json(mixed, key, algorithms=["HS256"])


def test_unknown_crit_and_crit_outside_protected_are_refused():
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")

    def signed(protected: dict, header: dict | None = None) -> dict:
        p = b64u(json.dumps(protected).encode())
        sig = b64u(key.sign(f"{p}.cA".encode()))
        out = {"payload": "cA", "protected": p, "signature": sig}
        if header is not None:
            out["header"] = header
        return out

    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jws.verify_json(
            signed({"alg": "HS256", "crit": ["exp"], "exp": 1}), key, algorithms=["HS256"]
        )
    assert exc.value.code == "unknown_crit"
    with pytest.raises(jotkit.MalformedToken):
        jws.verify_json(
            signed({"alg": "HS256"}, {"crit": ["b64"], "b64": True}), key, algorithms=["HS256"]
        )
    with pytest.raises(jotkit.MalformedToken):
        jws.verify_json(signed({"alg": "HS256", "crit": ["alg"]}), key, algorithms=["HS256"])
    with pytest.raises(jotkit.MalformedToken, match="absent"):
        jws.verify_json(signed({"alg": "HS256", "crit": ["b64"]}), key, algorithms=["HS256"])
    with pytest.raises(jotkit.MalformedToken, match="twice"):
        jws.verify_json(signed({"alg": "HS256"}, {"alg": "HS256"}), key, algorithms=["HS256"])
    assert jws.verify_json(signed({"alg": "HS256"}), key, algorithms=["HS256"]).payload == b"p"


def test_alg_none_and_unlisted_algorithms_are_refused():
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")
    p = b64u(b'{"alg":"none"}')
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jws.verify_json(
            {"payload": "cA", "protected": p, "signature": ""}, key, algorithms=["HS256"]
        )
    assert exc.value.code == "alg_none"
    doc = jws.sign_json(b"p", key)
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jws.verify_json(doc, key, algorithms=["HS384"])
    with pytest.raises(TypeError):
        jws.verify_json(doc, key, algorithms=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "{",
        "[]",
        '{"signatures": []}',
        '{"signatures": "x"}',
        '{"signatures": [1]}',
        '{"payload": "cA", "protected": "e30", "signature": "AA", "signatures": []}',
        '{"payload": 5, "protected": "eyJhbGciOiJIUzI1NiJ9", "signature": "AA"}',
        '{"payload": "c A", "protected": "eyJhbGciOiJIUzI1NiJ9", "signature": "AA"}',
        '{"payload": "cA", "protected": "eyJhbGciOiJIUzI1NiJ9", "signature": "A"}',
        '{"payload": "cA", "header": {"alg": 5}, "signature": "AA"}',
        '{"payload": "cA", "a": 1, "a": 2}',
        b"\xff\xfe",
        12,
        None,
        "x" * 20000,
    ],
)
def test_malformed_json_serializations_raise_invalid_token(token):
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")
    with pytest.raises(jotkit.InvalidToken):
        jws.verify_json(token, key, algorithms=["HS256"])


def test_detached_compact_shape_is_strict():
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")
    good = jws.sign_detached(b"p", key)
    for bad in (good.replace("..", "."), good + "=", "a.b.c", "", good.replace("..", ".cA.")):
        with pytest.raises(jotkit.MalformedToken):
            jws.verify_detached(bad, b"p", key, algorithms=["HS256"])


def test_encryption_keys_cannot_sign_json():
    with pytest.raises(ValueError, match="cannot sign"):
        jws.sign_json(b"x", jotkit.Key.generate("A256KW"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
MEMBERS = ["payload", "protected", "header", "signature", "signatures"]


@st.composite
def _jws_like(draw: st.DrawFn) -> dict:
    doc = {}
    for name in draw(st.lists(st.sampled_from(MEMBERS), unique=True)):
        doc[name] = draw(st.text(alphabet="AbcQw09-_", max_size=40) | JSON_VALUES)
    return doc


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    token=st.text()
    | st.binary()
    | JSON_VALUES.map(json.dumps)
    | _jws_like()
    | _jws_like().map(json.dumps),
    payload=st.none() | st.binary(max_size=20),
)
def test_arbitrary_input_only_raises_invalid_token(token, payload):
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")
    with contextlib.suppress(jotkit.InvalidToken):
        jws.verify_json(token, key, algorithms=["HS256"], payload=payload)
    if isinstance(token, (str, bytes)):
        with contextlib.suppress(jotkit.InvalidToken):
            jws.verify_detached(token, payload or b"", key, algorithms=["HS256"])
