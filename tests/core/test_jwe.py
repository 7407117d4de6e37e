"""JWE behaviour (RFC 7516, RFC 7518 §4-5, RFC 8037 §3.2, RFC 8725): round trips, limits and attacks."""

from __future__ import annotations

import collections
import json
import secrets
import zlib
from functools import cache

import pytest
from _vectors import b64u, b64u_decode
from cryptography.hazmat.primitives.asymmetric import rsa

import jotkit
from jotkit import jwe
from jotkit.jwe_algorithms import ENCRYPTION_NAMES, KEY_MANAGEMENT_NAMES

ENCS = list(ENCRYPTION_NAMES)
ALGS = list(KEY_MANAGEMENT_NAMES)
FAST_P2C = {"p2c": 1000}


@cache
def key_for(alg: str, crv: str | None = None, size: int | None = None) -> jotkit.Key:
    """One private key per algorithm (RSA generation is slow: made once)."""
    return jotkit.Key.generate(alg, kid=f"{alg}-{crv or size or 'k'}", crv=crv, size=size)


def _headers(alg: str) -> dict | None:
    return FAST_P2C if alg.startswith("PBES2") else None


def _pairs() -> list:
    out = []
    for alg in ALGS:
        for enc in ENCS:
            size = None
            if alg == "dir":
                size = jotkit.jwe_algorithms.CONTENT_ENCRYPTION[enc].key_size * 8
            out.append(pytest.param(alg, enc, size, id=f"{alg}-{enc}"))
    return out


@pytest.mark.parametrize(("alg", "enc", "size"), _pairs())
def test_round_trip_every_alg_enc_pair_compact_and_json(alg: str, enc: str, size: int | None):
    key = key_for(alg, size=size)
    recipient = key.public() if not key.is_symmetric else key
    token = jwe.encrypt(b"hello \xe2\x9c\x93", recipient, enc=enc, headers=_headers(alg))
    assert token.count(".") == 4
    result = jwe.decrypt_complete(token, key, algorithms=[alg], encryptions=[enc])
    assert result.plaintext == b"hello \xe2\x9c\x93"
    assert result.header["alg"] == alg and result.header["enc"] == enc
    assert result.key is key
    doc = jwe.encrypt_json(
        b"json form", recipient, enc=enc, aad=b"extra", recipient_headers=[_headers(alg)]
    )
    assert "header" in doc  # flattened for one recipient
    out = jwe.decrypt_complete(doc, key, algorithms=[alg], encryptions=[enc])
    assert out.plaintext == b"json form" and out.aad == b"extra"


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "X25519", "X448"])
@pytest.mark.parametrize("alg", ["ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"])
def test_ecdh_es_on_every_curve(alg: str, crv: str):
    key = key_for(alg, crv=crv)
    assert key.crv == crv and key.kty == ("OKP" if crv.startswith("X") else "EC")
    token = jwe.encrypt(b"curve", key.public(), enc="A256GCM")
    header = json.loads(b64u_decode(token.split(".")[0]))
    assert header["epk"]["crv"] == crv and "d" not in header["epk"]
    assert jwe.decrypt(token, key, algorithms=[alg], encryptions=["A256GCM"]) == b"curve"


def test_general_json_several_recipients_each_key_reports_its_index():
    keys = [key_for("RSA-OAEP-256"), key_for("A256KW"), key_for("ECDH-ES+A256KW", crv="X25519")]
    doc = jwe.encrypt_json(
        b"to three",
        [k if k.is_symmetric else k.public() for k in keys],
        enc="A128CBC-HS256",
        unprotected={"cty": "text/plain"},
    )
    assert len(doc["recipients"]) == 3
    for index, key in enumerate(keys):
        result = jwe.decrypt_complete(
            json.dumps(doc), key, algorithms=[key.alg], encryptions=["A128CBC-HS256"]
        )
        assert result.plaintext == b"to three" and result.recipient == index
        assert result.header["cty"] == "text/plain"
    # A key set picks by kid; recipients whose alg is not allowed are skipped.
    ks = jotkit.KeySet([keys[2]])
    result = jwe.decrypt_complete(
        doc, ks, algorithms=["ECDH-ES+A256KW"], encryptions=["A128CBC-HS256"]
    )
    assert result.recipient == 2


def test_direct_algorithms_refuse_several_recipients():
    with pytest.raises(ValueError, match="single recipient"):
        jwe.encrypt_json(b"x", [key_for("dir", size=256), key_for("A256KW")], enc="A256GCM")


def test_algorithms_and_encryptions_are_required_allow_lists():
    key = key_for("A256KW")
    token = jwe.encrypt(b"x", key)
    with pytest.raises(TypeError):
        jwe.decrypt(token, key, algorithms=None, encryptions=["A256GCM"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        jwe.decrypt(token, key, algorithms="A256KW", encryptions=["A256GCM"])
    with pytest.raises(ValueError):
        jwe.decrypt(token, key, algorithms=[], encryptions=["A256GCM"])
    with pytest.raises(ValueError, match="unknown"):
        jwe.decrypt(token, key, algorithms=["RS256"], encryptions=["A256GCM"])
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jwe.decrypt(token, key, algorithms=["A256KW"], encryptions=["A128GCM"])
    assert exc.value.code == "enc_not_allowed"


def test_key_bound_to_one_alg_rfc8725_3_1():
    oaep = key_for("RSA-OAEP")
    token = jwe.encrypt(b"x", oaep.public())
    other = jotkit.Key("RSA-OAEP-256", oaep._private)  # same RSA key, other binding
    with pytest.raises(jotkit.KeyMismatch):
        jwe.decrypt(token, other, algorithms=["RSA-OAEP", "RSA-OAEP-256"], encryptions=ENCS)
    with pytest.raises(ValueError, match="bound to RSA-OAEP"):
        jwe.encrypt(b"x", oaep, alg="RSA-OAEP-256")
    with pytest.raises(ValueError, match="JWS algorithm"):
        jwe.encrypt(b"x", jotkit.Key.generate("ES256"))
    with pytest.raises(ValueError, match="cannot sign"):
        key_for("A256KW").sign(b"x")
    # A JWE key never verifies a JWS.
    assert key_for("A256KW").verify(b"x", b"y") is False


def test_rsa1_5_is_refused_unless_named():
    key = key_for("RSA1_5")
    token = jwe.encrypt(b"x", key.public(), enc="A128GCM")
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        jwe.decrypt(token, key, algorithms=["RSA-OAEP-256"], encryptions=["A128GCM"])
    assert jwe.decrypt(token, key, algorithms=["RSA1_5"], encryptions=["A128GCM"]) == b"x"


def _rsa1_5_token_with_block(key: jotkit.Key, header_b64: str, block: bytes) -> str:
    """A token whose encrypted key is the raw RSA encryption of ``block`` (any padding)."""
    pub = key._public
    assert isinstance(pub, rsa.RSAPublicKey)
    numbers = pub.public_numbers()
    c = pow(int.from_bytes(block, "big"), numbers.e, numbers.n)
    ek = c.to_bytes((pub.key_size + 7) // 8, "big")
    return ".".join((header_b64, b64u(ek), b64u(bytes(12)), b64u(b"\x00" * 8), b64u(bytes(16))))


def test_rsa1_5_padding_oracle_errors_are_indistinguishable_rfc7516_11_5():
    """Bad PKCS #1 v1.5 padding, a bad CEK length and a wrong key all fail the same way.

    A statistic over many tokens, not a timing: the distribution of (class, code,
    message) must be one single outcome for every kind of failure.
    """
    key = key_for("RSA1_5")
    size = (key._public.key_size + 7) // 8
    header_b64 = b64u(b'{"alg":"RSA1_5","enc":"A128GCM"}')
    outcomes: dict[str, collections.Counter] = {}

    def record(kind: str, token: str, decrypt_key: jotkit.Key) -> None:
        try:
            jwe.decrypt(token, decrypt_key, algorithms=["RSA1_5"], encryptions=["A128GCM"])
        except jotkit.InvalidToken as exc:
            outcomes.setdefault(kind, collections.Counter())[
                (type(exc).__name__, exc.code, exc.message)
            ] += 1
        else:
            outcomes.setdefault(kind, collections.Counter())["accepted"] += 1

    def pkcs1(first: bytes, pad: bytes, message: bytes) -> bytes:
        return first + pad + b"\x00" + message

    for _ in range(40):
        cek = secrets.token_bytes(16)
        ps = bytes(b or 1 for b in secrets.token_bytes(size - 3 - 16))
        good = pkcs1(b"\x00\x02", ps, cek)
        record(
            "valid padding, tampered content", _rsa1_5_token_with_block(key, header_b64, good), key
        )
        record(
            "wrong block type",
            _rsa1_5_token_with_block(key, header_b64, pkcs1(b"\x00\x01", ps, cek)),
            key,
        )
        record(
            "no zero separator",
            _rsa1_5_token_with_block(
                key, header_b64, b"\x00\x02" + bytes(b or 1 for b in secrets.token_bytes(size - 2))
            ),
            key,
        )
        short_ps = bytes(b or 1 for b in secrets.token_bytes(size - 3 - 24))
        record(
            "wrong CEK length",
            _rsa1_5_token_with_block(
                key, header_b64, pkcs1(b"\x00\x02", short_ps, secrets.token_bytes(24))
            ),
            key,
        )
        record(
            "random block",
            _rsa1_5_token_with_block(key, header_b64, b"\x00" + secrets.token_bytes(size - 1)),
            key,
        )
        other = key_for("RSA1_5", size=3072)
        record("wrong key", jwe.encrypt(b"x", other.public(), enc="A128GCM"), key)
    distinct = {outcome for counter in outcomes.values() for outcome in counter}
    assert len(outcomes) == 6
    assert distinct == {
        ("DecryptionFailed", "decryption_failed", "the token does not decrypt with this key")
    }, outcomes


def test_ecdh_es_invalid_curve_point_is_refused():
    key = key_for("ECDH-ES+A128KW")
    token = jwe.encrypt(b"x", key.public(), enc="A128GCM")
    header_b64, *rest = token.split(".")
    header = json.loads(b64u_decode(header_b64))
    # A point of small order on another curve: y off by one is not on P-256.
    y = int.from_bytes(b64u_decode(header["epk"]["y"]), "big")
    header["epk"]["y"] = b64u(((y + 1) % (2**256)).to_bytes(32, "big"))
    bad = ".".join((b64u(json.dumps(header).encode()), *rest))
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(bad, key, algorithms=["ECDH-ES+A128KW"], encryptions=["A128GCM"])
    assert exc.value.code == "invalid_epk"


@pytest.mark.parametrize("crv", ["X25519", "X448"])
def test_xdh_all_zero_shared_secret_is_refused_rfc7748_6(crv: str):
    key = key_for("ECDH-ES", crv=crv)
    size = 32 if crv == "X25519" else 56
    header = {
        "alg": "ECDH-ES",
        "enc": "A128GCM",
        "epk": {"kty": "OKP", "crv": crv, "x": b64u(bytes(size))},  # the zero point
    }
    token = ".".join((b64u(json.dumps(header).encode()), "", b64u(bytes(12)), "", b64u(bytes(16))))
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(token, key, algorithms=["ECDH-ES"], encryptions=["A128GCM"])
    assert exc.value.code == "invalid_epk"


def test_ecdh_es_epk_on_another_curve_is_refused():
    key = key_for("ECDH-ES")
    other = key_for("ECDH-ES", crv="P-384")
    token = jwe.encrypt(b"x", other.public(), enc="A128GCM")
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(token, key, algorithms=["ECDH-ES"], encryptions=["A128GCM"])
    assert exc.value.code == "invalid_epk"


def test_ecdh_es_apu_apv_are_bound_into_the_key_rfc7518_4_6_2():
    key = key_for("ECDH-ES")
    headers = {"apu": b64u(b"Alice"), "apv": b64u(b"Bob")}
    token = jwe.encrypt(b"party info", key.public(), enc="A128GCM", headers=headers)
    assert jwe.decrypt(token, key, algorithms=["ECDH-ES"], encryptions=["A128GCM"]) == b"party info"
    # Same token with apv swapped: another derived key, and the header is authenticated too.
    header_b64, *rest = token.split(".")
    header = json.loads(b64u_decode(header_b64))
    header["apv"] = b64u(b"Eve")
    with pytest.raises(jotkit.DecryptionFailed):
        jwe.decrypt(
            ".".join((b64u(json.dumps(header).encode()), *rest)),
            key,
            algorithms=["ECDH-ES"],
            encryptions=["A128GCM"],
        )
    with pytest.raises(ValueError, match="apu"):
        jwe.encrypt(b"x", key.public(), headers={"apu": "not base64!"})


def _with_header(token: str, **changes) -> str:
    header_b64, *rest = token.split(".")
    header = json.loads(b64u_decode(header_b64))
    header.update(changes)
    return ".".join((b64u(json.dumps(header).encode()), *rest))


def test_pbes2_p2c_above_one_million_is_refused_before_any_work():
    key = key_for("PBES2-HS256+A128KW")
    token = jwe.encrypt(b"x", key, headers=FAST_P2C)
    for p2c in (1_000_001, 10**12, 0, -5, True, 2.5, "1000"):
        with pytest.raises(jotkit.MalformedToken) as exc:
            jwe.decrypt(
                _with_header(token, p2c=p2c),
                key,
                algorithms=["PBES2-HS256+A128KW"],
                encryptions=ENCS,
            )
        assert exc.value.code == "p2c_out_of_range"
    with pytest.raises(ValueError, match="p2c"):
        jwe.encrypt(b"x", key, headers={"p2c": 999})


def test_pbes2_short_salt_is_refused_rfc7518_4_8_1_1():
    key = key_for("PBES2-HS256+A128KW")
    token = jwe.encrypt(b"x", key, headers=FAST_P2C)
    with pytest.raises(jotkit.MalformedToken, match="p2s"):
        jwe.decrypt(
            _with_header(token, p2s=b64u(b"1234567")),
            key,
            algorithms=["PBES2-HS256+A128KW"],
            encryptions=ENCS,
        )


def test_pbes2_default_p2c_is_strong():
    token = jwe.encrypt(b"x", jotkit.Key.from_secret("correct horse", "PBES2-HS256+A128KW"))
    assert json.loads(b64u_decode(token.split(".")[0]))["p2c"] == jwe.DEFAULT_P2C >= 600_000


def test_zip_is_only_used_on_request():
    key = key_for("A256KW")
    plain = b"a" * 1000
    token = jwe.encrypt(plain, key)
    assert "zip" not in json.loads(b64u_decode(token.split(".")[0]))
    packed = jwe.encrypt(plain, key, zip="DEF")
    assert json.loads(b64u_decode(packed.split(".")[0]))["zip"] == "DEF"
    assert len(packed) < len(token)
    assert jwe.decrypt(packed, key, algorithms=["A256KW"], encryptions=ENCS) == plain
    with pytest.raises(ValueError):
        jwe.encrypt(plain, key, zip="GZIP")


def test_zip_bomb_stops_at_the_cap():
    key = key_for("A256KW")
    bomb = jwe.encrypt(b"\x00" * 5_000_000, key, zip="DEF")  # 5 MB of zeros, ~5 KB on the wire
    assert len(bomb) < 10_000
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(bomb, key, algorithms=["A256KW"], encryptions=ENCS)
    assert exc.value.code == "plaintext_too_large"
    just = jwe.encrypt(b"\x00" * 250_000, key, zip="DEF")
    assert len(jwe.decrypt(just, key, algorithms=["A256KW"], encryptions=ENCS)) == 250_000
    over = jwe.encrypt(b"\x00" * 250_001, key, zip="DEF")
    with pytest.raises(jotkit.MalformedToken):
        jwe.decrypt(over, key, algorithms=["A256KW"], encryptions=ENCS)
    assert (
        len(
            jwe.decrypt(
                bomb, key, algorithms=["A256KW"], encryptions=ENCS, max_plaintext_size=6_000_000
            )
        )
        == 5_000_000
    )


def test_zip_with_bad_deflate_data_is_malformed():
    key = key_for("dir", size=256)
    # Valid encryption of bytes that are not raw DEFLATE; the header claims zip.
    header = b64u(b'{"alg":"dir","enc":"A256GCM","zip":"DEF"}')
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    iv = bytes(12)
    sealed = AESGCM(key._secret).encrypt(iv, b"\xff\xff not deflate", header.encode())
    token = ".".join((header, "", b64u(iv), b64u(sealed[:-16]), b64u(sealed[-16:])))
    with pytest.raises(jotkit.MalformedToken):
        jwe.decrypt(token, key, algorithms=["dir"], encryptions=["A256GCM"])
    # Trailing garbage after a complete stream is refused too.
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(b"ok") + comp.flush() + b"junk"
    sealed = AESGCM(key._secret).encrypt(iv, data, header.encode())
    token = ".".join((header, "", b64u(iv), b64u(sealed[:-16]), b64u(sealed[-16:])))
    with pytest.raises(jotkit.MalformedToken):
        jwe.decrypt(token, key, algorithms=["dir"], encryptions=["A256GCM"])


def test_compressed_nested_jwt_is_refused_by_default_rfc8725_3_6():
    key = key_for("A256KW")
    token = jwe.encrypt(b"a.b.c", key, zip="DEF", headers={"cty": "JWT"})
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jwe.decrypt(token, key, algorithms=["A256KW"], encryptions=ENCS)
    assert exc.value.code == "zip_not_allowed"
    assert (
        jwe.decrypt(token, key, algorithms=["A256KW"], encryptions=ENCS, allow_compressed_jwt=True)
        == b"a.b.c"
    )


def test_zip_outside_the_protected_header_is_malformed_rfc7516_4_1_3():
    key = key_for("A256KW")
    doc = jwe.encrypt_json(b"x", key)
    doc["unprotected"] = {"zip": "DEF"}
    with pytest.raises(jotkit.MalformedToken, match="zip"):
        jwe.decrypt(doc, key, algorithms=["A256KW"], encryptions=ENCS)


def test_duplicate_header_parameters_across_parts_are_malformed_rfc7516_7_2_1():
    key = key_for("A256KW")
    doc = jwe.encrypt_json(b"x", key)
    doc["unprotected"] = {"alg": "A256KW"}
    with pytest.raises(jotkit.MalformedToken, match="twice"):
        jwe.decrypt(doc, key, algorithms=["A256KW"], encryptions=ENCS)


def test_unknown_crit_is_refused():
    key = key_for("dir", size=256)
    header = b64u(b'{"alg":"dir","enc":"A256GCM","crit":["exp-ext"],"exp-ext":1}')
    token = ".".join((header, "", b64u(bytes(12)), "", b64u(bytes(16))))
    with pytest.raises(jotkit.UnsupportedAlgorithm) as exc:
        jwe.decrypt(token, key, algorithms=["dir"], encryptions=["A256GCM"])
    assert exc.value.code == "unknown_crit"


def test_size_cap_applies_before_decoding():
    key = key_for("A256KW")
    big = "e" * (jwe.DEFAULT_MAX_SIZE + 1)
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(big, key, algorithms=["A256KW"], encryptions=ENCS)
    assert exc.value.code == "token_too_large"
    token = jwe.encrypt(b"x" * 100, key)
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(token, key, algorithms=["A256KW"], encryptions=ENCS, max_size=50)
    assert exc.value.code == "token_too_large"
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt({"ciphertext": "A" * 70_000}, key, algorithms=["A256KW"], encryptions=ENCS)
    assert exc.value.code == "token_too_large"


@pytest.mark.parametrize("enc", ["A128GCM", "A256CBC-HS512"])
def test_truncated_or_extended_tags_are_malformed(enc: str):
    key = key_for("A256KW")
    token = jwe.encrypt(b"x", key, enc=enc)
    *head, tag = token.split(".")
    raw = b64u_decode(tag)
    for bad in (raw[:-1], raw[:8], raw + b"\x00"):
        with pytest.raises(jotkit.MalformedToken, match="tag"):
            jwe.decrypt(".".join((*head, b64u(bad))), key, algorithms=["A256KW"], encryptions=[enc])


def test_non_canonical_base64url_is_refused():
    key = key_for("A256KW")
    token = jwe.encrypt(b"x", key)
    parts = token.split(".")
    last = parts[4]
    # Flip stray low bits of the final character (RFC 4648 §3.5).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts[4] = last[:-1] + alphabet[alphabet.index(last[-1]) | 1]
    with pytest.raises(jotkit.MalformedToken, match="canonical"):
        jwe.decrypt(".".join(parts), key, algorithms=["A256KW"], encryptions=ENCS)


def test_dir_key_size_must_match_enc():
    key = key_for("dir", size=128)
    token = jwe.encrypt(b"x", key, enc="A128GCM")
    with pytest.raises(jotkit.KeyMismatch):
        jwe.decrypt(_with_header(token, enc="A256GCM"), key, algorithms=["dir"], encryptions=ENCS)
    with pytest.raises(ValueError, match="A256GCM"):
        jwe.encrypt(b"x", key, enc="A256GCM")


def test_wrong_key_and_tampering_give_one_error():
    key = key_for("A256KW")
    other = jotkit.Key.generate("A256KW", kid=key.kid)
    token = jwe.encrypt(b"secret", key)
    codes = set()
    for attempt in (other,):
        with pytest.raises(jotkit.DecryptionFailed) as exc:
            jwe.decrypt(token, attempt, algorithms=["A256KW"], encryptions=ENCS)
        codes.add(exc.value.code)
    parts = token.split(".")
    parts[3] = b64u(bytes(len(b64u_decode(parts[3]))))
    with pytest.raises(jotkit.DecryptionFailed) as exc:
        jwe.decrypt(".".join(parts), key, algorithms=["A256KW"], encryptions=ENCS)
    codes.add(exc.value.code)
    assert codes == {"decryption_failed"}


def test_public_key_cannot_decrypt():
    key = key_for("RSA-OAEP-256")
    token = jwe.encrypt(b"x", key.public())
    with pytest.raises(jotkit.KeyMismatch, match="private"):
        jwe.decrypt(token, key.public(), algorithms=["RSA-OAEP-256"], encryptions=ENCS)


def test_public_key_in_the_key_set_does_not_abort_the_recipient_loop():
    """A key set holding the public half of one recipient's key (an InvalidToken, not a
    ValueError) moves on to the next recipient, whose private key it holds."""
    rsa_key, kw_key = key_for("RSA-OAEP-256"), key_for("A256KW")
    doc = jwe.encrypt_json(b"two", [rsa_key.public(), kw_key], enc="A256GCM")
    out = jwe.decrypt_complete(
        doc,
        jotkit.KeySet([rsa_key.public(), kw_key]),
        algorithms=["RSA-OAEP-256", "A256KW"],
        encryptions=["A256GCM"],
    )
    assert out.plaintext == b"two" and out.recipient == 1


def test_pbes2_recipients_share_one_iteration_budget_dos():
    """Sixteen PBES2 recipients at p2c 1,000,000 each would cost 16 million PBKDF2 rounds for
    one token: the p2c of all PBES2 recipients together is capped, before any work."""
    key = key_for("PBES2-HS256+A128KW")
    doc = jwe.encrypt_json(
        b"x", [key, key], enc="A128GCM", recipient_headers=[FAST_P2C, FAST_P2C]
    )
    assert jwe.decrypt(doc, key, algorithms=[key.alg], encryptions=["A128GCM"]) == b"x"
    for recipient in doc["recipients"]:
        recipient["header"]["p2c"] = 600_000  # each under the cap, together over it
    with pytest.raises(jotkit.MalformedToken) as exc:
        jwe.decrypt(doc, key, algorithms=[key.alg], encryptions=["A128GCM"])
    assert exc.value.code == "p2c_out_of_range"


def test_decrypted_plaintext_stays_out_of_reprs():
    key = key_for("A256KW")
    doc = jwe.encrypt_json(b"card 4111 1111 1111 1111", key, enc="A256GCM", aad=b"aad-secret")
    out = jwe.decrypt_complete(doc, key, algorithms=["A256KW"], encryptions=["A256GCM"])
    assert out.plaintext.startswith(b"card")
    assert "4111" not in repr(out) and "aad-secret" not in repr(out)


def test_headers_cannot_override_what_the_algorithm_sets():
    key = key_for("ECDH-ES")
    for name in ("alg", "enc", "epk", "zip", "iv", "tag", "p2s"):
        with pytest.raises(ValueError, match=name):
            jwe.encrypt(b"x", key.public(), headers={name: "x"})


def test_empty_plaintext_round_trips_with_gcm_and_cbc():
    key = key_for("A256KW")
    for enc in ("A256GCM", "A128CBC-HS256"):
        token = jwe.encrypt(b"", key, enc=enc)
        assert jwe.decrypt(token, key, algorithms=["A256KW"], encryptions=[enc]) == b""


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("alg", "crv"),
    [
        ("ECDH-ES", "X25519"),
        ("ECDH-ES+A192KW", "X448"),
        ("ECDH-ES+A128KW", "P-521"),
        ("RSA-OAEP-256", None),
        ("A192GCMKW", None),
        ("dir", None),
        ("PBES2-HS512+A256KW", None),
    ],
)
def test_jwe_keys_export_and_import_as_jwk_with_use_enc(alg: str, crv: str | None):
    key = key_for(alg, crv=crv)
    jwk = key.to_jwk(private=True)
    assert jwk["use"] == "enc" and jwk["alg"] == alg
    again = jotkit.Key.from_jwk(jwk)
    assert again.alg == alg and again.to_jwk(private=True) == jwk
    assert again.thumbprint() == key.thumbprint()
    if not key.is_symmetric:
        assert jotkit.Key.from_jwk(key.to_jwk()).is_private is False
        pem = key.to_pem(private=True)
        assert jotkit.Key.from_pem(pem, alg).to_jwk(private=True)["d"] == jwk["d"]


def test_jwe_jwk_with_use_sig_or_sign_ops_is_refused():
    jwk = key_for("A256KW").to_jwk(private=True)
    with pytest.raises(jotkit.InvalidKey, match="use"):
        jotkit.Key.from_jwk({**jwk, "use": "sig"})
    with pytest.raises(jotkit.InvalidKey, match="key_ops"):
        jotkit.Key.from_jwk({**jwk, "key_ops": ["sign"]})
    assert jotkit.Key.from_jwk({**jwk, "key_ops": ["wrapKey", "unwrapKey"]}).alg == "A256KW"


def test_jwe_key_sizes_are_checked():
    with pytest.raises(jotkit.InvalidKey):
        jotkit.Key.from_secret(b"\x01" * 16, "A256KW")
    with pytest.raises(jotkit.InvalidKey):
        jotkit.Key.from_secret(b"\x01" * 20, "dir")
    with pytest.raises(jotkit.InvalidKey):
        jotkit.Key("RSA-OAEP", rsa.generate_private_key(65537, 1024))
    with pytest.raises(jotkit.InvalidKey):
        jotkit.Key("ECDH-ES", jotkit.Key.generate("EdDSA")._private)
    with pytest.raises(jotkit.InvalidKey):
        jotkit.Key.from_secret(b"-----BEGIN PUBLIC KEY-----", "PBES2-HS256+A128KW")
    with pytest.raises(ValueError):
        jotkit.Key.generate("ECDH-ES", crv="secp256k1")


def test_dir_jwk_naming_its_enc_binds_to_dir_rfc7520_5_6():
    jwk = {"kty": "oct", "k": b64u(bytes(16)), "alg": "A128GCM", "use": "enc"}
    assert jotkit.Key.from_jwk(jwk).alg == "dir"
    assert jotkit.Key.from_jwk(jwk, "dir").alg == "dir"


def test_key_set_mixes_signing_and_encryption_keys():
    sig = jotkit.Key.generate("ES256", kid="s")
    enc = key_for("ECDH-ES+A256KW")
    jwks = jotkit.KeySet([sig, enc]).to_jwks()
    both = jotkit.KeySet.from_jwks(jwks)
    assert sorted(k.alg for k in both) == ["ECDH-ES+A256KW", "ES256"]
    assert [k["use"] for k in jwks["keys"]] == ["sig", "enc"]


def test_jwks_without_alg_binds_encryption_keys_by_use_and_curve():
    """A recipient's JWKS often has no 'alg': bind by the caller's allow-list, 'use' and curve."""
    ec = jotkit.Key.generate("ECDH-ES+A256KW", kid="ec").public().to_jwk()
    x = jotkit.Key.generate("ECDH-ES", kid="x", crv="X25519").public().to_jwk()
    sig = jotkit.Key.generate("ES256", kid="sig").public().to_jwk()
    for jwk in (ec, x, sig):
        del jwk["alg"]
    keys = jotkit.KeySet.from_jwks(
        {"keys": [ec, x, sig]}, algorithms=["ES256", "ECDH-ES+A256KW", "ECDH-ES"]
    )
    bound = sorted((k.kid, k.alg) for k in keys)
    assert bound == [
        ("ec", "ECDH-ES"),
        ("ec", "ECDH-ES+A256KW"),
        ("sig", "ES256"),
        ("x", "ECDH-ES"),
        ("x", "ECDH-ES+A256KW"),
    ]
    token = jwe.encrypt(b"to x", keys.select("ECDH-ES", "x"))
    assert token.count(".") == 4


def test_jwk_without_alg_or_use_is_not_bound_to_signing_and_encryption_at_once():
    """RFC 8725 §3.1: one key, one algorithm. An RSA JWK with neither 'alg' nor 'use' that
    fits a signing and an encryption algorithm (or RSA1_5 beside another) is skipped, with
    the reason, instead of serving every use at once."""
    jwk = jotkit.Key.generate("RS256", kid="r").public().to_jwk()
    del jwk["alg"], jwk["use"]
    for allowed in (["RS256", "RSA-OAEP-256"], ["RSA-OAEP-256", "RSA1_5"]):
        keys = jotkit.KeySet.from_jwks({"keys": [jwk]}, algorithms=allowed)
        assert len(keys) == 0
        assert len(keys.skipped) == 1 and "alg" in keys.skipped[0]
    keys = jotkit.KeySet.from_jwks(
        {"keys": [{**jwk, "use": "enc"}]}, algorithms=["RS256", "RSA-OAEP-256"]
    )
    assert [k.alg for k in keys] == ["RSA-OAEP-256"]


def test_rsa1_5_bad_padding_and_bad_content_take_the_same_time_statistic():
    """RFC 7516 §11.5 / Bleichenbacher: the time to refuse bad PKCS #1 v1.5 padding must not
    stand out from the time to refuse a well-padded token with bad content. Samples of the
    two kinds are interleaved (so machine load hits both alike) and the statistic is the
    relative difference of their medians; an oracle worth exploiting shows up as a large,
    systematic gap (the RSA operation both paths share takes ~100 µs or more)."""
    import time

    key = key_for("RSA1_5")
    size = (key._public.key_size + 7) // 8
    header_b64 = b64u(b'{"alg":"RSA1_5","enc":"A128GCM"}')

    def block(good: bool) -> bytes:
        ps = bytes(b or 1 for b in secrets.token_bytes(size - 3 - 16))
        return (b"\x00\x02" if good else b"\x00\x01") + ps + b"\x00" + secrets.token_bytes(16)

    tokens = {
        kind: [_rsa1_5_token_with_block(key, header_b64, block(kind == "good")) for _ in range(200)]
        for kind in ("good", "bad")
    }
    times: dict[str, list[int]] = {"good": [], "bad": []}
    for i in range(200):
        for kind in ("good", "bad") if i % 2 else ("bad", "good"):
            start = time.perf_counter_ns()
            with pytest.raises(jotkit.DecryptionFailed):
                jwe.decrypt(tokens[kind][i], key, algorithms=["RSA1_5"], encryptions=["A128GCM"])
            times[kind].append(time.perf_counter_ns() - start)
    good, bad = (sorted(times[k])[len(times[k]) // 2] for k in ("good", "bad"))
    gap = abs(good - bad) / min(good, bad)
    print(f"\nRSA1_5 refusal medians: well-padded {good} ns, bad padding {bad} ns, gap {gap:.1%}")
    assert gap < 0.25, (good, bad)
