"""Published JWE vectors: RFC 7516 Appendix A, RFC 7520 §5 (the JOSE cookbook), RFC 8037 A.6.

Every serialization a vector gives (compact, general JSON, flattened JSON) must
decrypt to the published plaintext with the published key, and only with the
allow-lists naming its algorithms.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _vectors import VECTORS, b64u, b64u_decode, load
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

import jotkit
from jotkit import jwe

ALL_ENCS = list(jotkit.jwe_algorithms.ENCRYPTION_NAMES)
COOKBOOK = sorted(p.name for p in (VECTORS / "rfc7520_5").glob("5_*.json"))


def _cookbook_keys(data: dict) -> list[jotkit.Key]:
    inp = data["input"]
    algs = inp["alg"] if isinstance(inp["alg"], list) else [inp["alg"]]
    if "pwd" in inp:
        return [jotkit.Key.from_secret(inp["pwd"], algs[0])]
    jwks = inp["key"] if isinstance(inp["key"], list) else [inp["key"]]
    return [jotkit.Key.from_jwk(jwk, alg) for jwk, alg in zip(jwks, algs, strict=True)]


def _cookbook_cases() -> list:
    cases = []
    for name in COOKBOOK:
        for form in ("compact", "json", "json_flat"):
            if form in load(f"rfc7520_5/{name}")["output"]:
                cases.append(pytest.param(name, form, id=f"{name[:4].rstrip('.')}-{form}"))
    return cases


def test_the_whole_encryption_cookbook_is_vendored():
    # RFC 7520 §5.1-5.13: thirteen examples.
    assert len(COOKBOOK) == 13
    assert len(_cookbook_cases()) == 34  # 9 x 3 forms, 3 x 2 (JSON only), 5.13 x 1


@pytest.mark.parametrize(("name", "form"), _cookbook_cases())
def test_rfc7520_section5_decrypts_to_the_published_plaintext(name: str, form: str) -> None:
    data = load(f"rfc7520_5/{name}")
    keys = _cookbook_keys(data)
    token = data["output"][form]
    algs = sorted({k.alg for k in keys})
    for index, key in enumerate(keys):
        result = jwe.decrypt_complete(token, key, algorithms=algs, encryptions=ALL_ENCS)
        assert result.plaintext == data["input"]["plaintext"].encode("utf-8")
        assert result.key is key
        if len(keys) > 1:
            assert result.recipient == index  # 5.13: each key opens its own recipient
    with_set = jwe.decrypt(token, jotkit.KeySet(keys), algorithms=algs, encryptions=ALL_ENCS)
    assert with_set == data["input"]["plaintext"].encode("utf-8")
    if "aad" in data["input"]:
        result = jwe.decrypt_complete(token, keys[0], algorithms=algs, encryptions=ALL_ENCS)
        assert result.aad == data["input"]["aad"].encode("utf-8")


@pytest.mark.parametrize(("name", "form"), _cookbook_cases())
def test_rfc7520_section5_needs_its_algorithms_in_the_allow_lists(name: str, form: str) -> None:
    data = load(f"rfc7520_5/{name}")
    keys = _cookbook_keys(data)
    token = data["output"][form]
    others = [
        a for a in jotkit.jwe_algorithms.KEY_MANAGEMENT_NAMES if a not in {k.alg for k in keys}
    ]
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jwe.decrypt(token, keys[0], algorithms=others, encryptions=ALL_ENCS)
    assert exc.value.code == "alg_not_allowed"
    # The token's own enc (5.13's input lists "A128CBC-H256", a typo upstream).
    enc = jwe.decrypt_complete(
        token, keys[0], algorithms=[k.alg for k in keys], encryptions=ALL_ENCS
    ).header["enc"]
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jwe.decrypt(
            token,
            keys[0],
            algorithms=[k.alg for k in keys],
            encryptions=[e for e in ALL_ENCS if e != enc],
        )
    assert exc.value.code == "enc_not_allowed"


# --------------------------------------------------------------------------- RFC 7516 Appendix A


def _a_key(section: str, alg: str, kid: str | None = None) -> jotkit.Key:
    return jotkit.Key.from_jwk(load("rfc7516/appendix_a.json")[section]["key"], alg, kid=kid)


@pytest.mark.parametrize(
    ("section", "alg", "enc"),
    [
        ("a_1", "RSA-OAEP", "A256GCM"),
        ("a_2", "RSA1_5", "A128CBC-HS256"),
        ("a_3", "A128KW", "A128CBC-HS256"),
    ],
)
def test_rfc7516_appendix_a_compact(section: str, alg: str, enc: str) -> None:
    vector = load("rfc7516/appendix_a.json")[section]
    expected = (
        bytes(vector["plaintext_octets"])
        if "plaintext_octets" in vector
        else vector["plaintext"].encode()
    )
    result = jwe.decrypt_complete(
        vector["compact"], _a_key(section, alg), algorithms=[alg], encryptions=[enc]
    )
    assert result.plaintext == expected
    assert result.header == {"alg": alg, "enc": enc}


def test_rfc7516_a4_general_json_each_recipient():
    vector = load("rfc7516/appendix_a.json")["a_4"]
    rsa = _a_key("a_2", "RSA1_5", kid="2011-04-29")
    kw = _a_key("a_3", "A128KW", kid="7")
    for index, key in enumerate((rsa, kw)):
        result = jwe.decrypt_complete(
            vector["json"], key, algorithms=["RSA1_5", "A128KW"], encryptions=["A128CBC-HS256"]
        )
        assert result.plaintext == b"Live long and prosper."
        assert result.recipient == index
        assert result.header["jku"] == "https://server.example.com/keys.jwks"  # unprotected
    # As text too, and from a key set chosen by kid.
    text = json.dumps(vector["json"])
    assert (
        jwe.decrypt(text, jotkit.KeySet([kw]), algorithms=["A128KW"], encryptions=["A128CBC-HS256"])
        == b"Live long and prosper."
    )


def test_rfc7516_a5_flattened_json():
    vector = load("rfc7516/appendix_a.json")["a_5"]
    key = _a_key("a_3", "A128KW", kid="7")
    result = jwe.decrypt_complete(
        vector["json"], key, algorithms=["A128KW"], encryptions=["A128CBC-HS256"]
    )
    assert result.plaintext == b"Live long and prosper."
    assert result.protected_header == {"enc": "A128CBC-HS256"}


def test_rfc7516_a2_rsa1_5_is_refused_unless_named():
    vector = load("rfc7516/appendix_a.json")["a_2"]
    key = _a_key("a_2", "RSA1_5")
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jwe.decrypt(
            vector["compact"],
            key,
            algorithms=["RSA-OAEP", "RSA-OAEP-256"],
            encryptions=["A128CBC-HS256"],
        )


# --------------------------------------------------------------------------- RFC 8037 A.6


def test_rfc8037_a6_x25519_key_agreement():
    vector = load("rfc8037/a_6_x25519.json")
    bob_private = bytes.fromhex(vector["bob_private_hex"])
    bob = jotkit.Key.from_jwk(
        {**vector["bob_public_jwk"], "d": b64u(bob_private)}, "ECDH-ES+A128KW"
    )
    assert bob.public().to_jwk()["x"] == vector["bob_public_jwk"]["x"]
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(
        bytes.fromhex(vector["ephemeral_private_hex"])
    )
    z = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(b64u_decode(bob.to_jwk()["x"])))
    assert z.hex() == vector["shared_secret_z_hex"]
    # Build the A.6 token the RFC describes (test-side, from the RFC 7518 §4.6.2
    # formula) and let jotkit open it with Bob's key.
    header = vector["header"]
    alg = header["alg"].encode()
    other = len(alg).to_bytes(4, "big") + alg + bytes(8) + (128).to_bytes(4, "big")
    kek = ConcatKDFHash(hashes.SHA256(), 16, other).derive(z)
    cek, iv = bytes(range(16)), bytes(12)
    protected = b64u(json.dumps(header, separators=(",", ":")).encode())
    sealed = AESGCM(cek).encrypt(iv, b"Example of X25519 ECDH-ES", protected.encode())
    token = ".".join(
        (protected, b64u(aes_key_wrap(kek, cek)), b64u(iv), b64u(sealed[:-16]), b64u(sealed[-16:]))
    )
    result = jwe.decrypt_complete(
        token, jotkit.KeySet([bob]), algorithms=["ECDH-ES+A128KW"], encryptions=["A128GCM"]
    )
    assert result.plaintext == b"Example of X25519 ECDH-ES"
    assert result.key is bob


def test_vector_files_are_listed_in_their_sources():
    for folder, names in (
        ("rfc7520_5", COOKBOOK),
        ("rfc7516", ["appendix_a.json"]),
        ("rfc8037", ["a_6_x25519.json"]),
    ):
        sources = (VECTORS / folder / "SOURCES.md").read_text(encoding="utf-8")
        for name in names:
            assert name in sources, (folder, name)
    assert Path(VECTORS / "wycheproof" / "SOURCES.md").read_text().count("json_web_") >= 4
