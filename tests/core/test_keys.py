"""Keys and key sets: construction rules (RFC 8725 §3.1, RFC 7518 §3, §6), JWK/PEM/DER, KeySet."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from jotkit import InvalidKey, Key, KeyMismatch, KeyNotFound, KeySet

ASYMMETRIC = [a for a in jotkit.ALGORITHM_NAMES if not a.startswith("HS")]


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("alg", jotkit.ALGORITHM_NAMES)
def test_generate_binds_key_to_one_algorithm(alg):
    key = Key.generate(alg, kid="k")
    assert key.alg == alg
    assert key.kid == "k"
    assert key.is_private
    assert key.kty == jotkit.algorithms.ALGORITHMS[alg].kty
    token = jotkit.encode({"sub": "x"}, key, expires_in=60)
    verifier = key if key.is_symmetric else key.public()
    assert jotkit.decode(token, verifier, algorithms=[alg])["sub"] == "x"


def test_repr_never_shows_secret_material():
    key = Key.from_secret(b"s" * 32, "HS256", kid="k1")
    assert "sss" not in repr(key)
    assert "HS256" in repr(key) and "k1" in repr(key)


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_must_be_at_least_hash_length_rfc7518_3_2(alg, size):
    Key.from_secret(b"x" * size, alg)
    with pytest.raises(InvalidKey) as err:
        Key.from_secret(b"x" * (size - 1), alg)
    assert err.value.code == "weak_key"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "secret",
    [
        b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
        b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0000000000000000 user@host",
        b"  \n-----BEGIN CERTIFICATE-----\nMIIB0000000000000000000000000000000000",
    ],
)
def test_public_key_text_is_never_an_hmac_secret(secret):
    with pytest.raises(InvalidKey):
        Key.from_secret(secret, "HS256")


def test_from_secret_accepts_text_as_utf8():
    key = Key.from_secret("é" * 16, "HS256")  # 32 bytes in UTF-8
    assert key.to_jwk(private=True)["k"]


def test_from_secret_refuses_asymmetric_algorithms():
    with pytest.raises(InvalidKey):
        Key.from_secret(b"x" * 64, "RS256")


def test_rsa_keys_under_2048_bits_are_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidKey) as err:
        Key.from_pem(pem, "RS256")
    assert err.value.code == "weak_key"
    with pytest.raises(InvalidKey):
        Key.generate("RS256", size=1024)


def test_ec_key_on_the_wrong_curve_is_refused():
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InvalidKey, match="P-256"):
        Key("ES256", p384)
    Key("ES384", p384)


def test_key_type_must_match_algorithm(rsa_private):
    with pytest.raises(InvalidKey, match="EC key"):
        Key("ES256", rsa_private)
    with pytest.raises(InvalidKey):
        Key("HS256", rsa_private)


def test_ed25519_key_cannot_be_bound_to_ed448():
    key = Key.generate("EdDSA")
    with pytest.raises(InvalidKey):
        Key.from_jwk(key.to_jwk(), "Ed448")
    assert Key.from_jwk({**key.to_jwk(), "alg": "Ed25519"}).alg == "Ed25519"


def test_eddsa_generate_with_ed448_curve():
    key = Key.generate("EdDSA", crv="Ed448")
    assert key.crv == "Ed448"
    with pytest.raises(ValueError):
        Key.generate("Ed25519", crv="Ed448")


def test_unknown_algorithm_and_none_are_caller_errors():
    with pytest.raises(ValueError, match="unknown algorithm"):
        Key.generate("HS1024")
    with pytest.raises(ValueError, match="none"):
        Key.generate("none")


def test_key_used_with_another_algorithm_is_a_key_mismatch_rfc8725_3_1():
    key = Key.generate("ES256")
    other = Key.from_jwk({**key.to_jwk(private=True), "alg": "ES256"})
    token = jotkit.encode({}, other, expires_in=60)
    forged_header = Key.generate("ES384")
    token384 = jotkit.encode({}, forged_header, expires_in=60)
    with pytest.raises(KeyMismatch):
        jotkit.decode(token384, key.public(), algorithms=["ES256", "ES384"])
    assert jotkit.decode(token, key.public(), algorithms=["ES256"])


def test_public_key_cannot_sign():
    pub = Key.generate("ES256").public()
    assert not pub.is_private
    with pytest.raises(ValueError):
        pub.sign(b"data")
    with pytest.raises(ValueError):
        jotkit.encode({}, pub)


def test_verify_primitive_returns_false_for_garbage():
    for alg in ("HS256", "RS256", "PS256", "ES256", "EdDSA"):
        key = Key.generate(alg)
        assert key.verify(b"msg", key.sign(b"msg"))
        for sig in (b"", b"\x00" * 3, b"\x00" * 64, b"\xff" * 512):
            assert key.verify(b"msg", sig) is False


# -- PEM / DER ---------------------------------------------------------------


def _self_signed(private: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jotkit test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_from_pem_reads_every_declared_format(rsa_private):
    pub = rsa_private.public_key()
    nopass = serialization.NoEncryption()
    pems = {
        "pkcs8": rsa_private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, nopass
        ),
        "pkcs1": rsa_private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, nopass
        ),
        "spki": pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1-public": pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "certificate": _self_signed(rsa_private),
    }
    thumbprints = {name: Key.from_pem(pem, "RS256").thumbprint() for name, pem in pems.items()}
    assert len(set(thumbprints.values())) == 1
    assert Key.from_pem(pems["pkcs1"], "RS256").is_private
    assert not Key.from_pem(pems["certificate"], "RS256").is_private
    assert Key.from_pem(pems["spki"].decode(), "PS256").alg == "PS256"


def test_from_pem_sec1_ec_key_after_ec_parameters_block():
    private = ec.generate_private_key(ec.SECP256R1())
    sec1 = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    key = Key.from_pem(params + sec1, "ES256")
    assert key.is_private and key.crv == "P-256"


def test_from_pem_encrypted_private_key_needs_password():
    key = Key.generate("ES256")
    pem = key.to_pem(private=True, password=b"hunter22")
    assert b"ENCRYPTED" in pem
    assert Key.from_pem(pem, "ES256", password=b"hunter22").thumbprint() == key.thumbprint()
    with pytest.raises(InvalidKey):
        Key.from_pem(pem, "ES256")
    with pytest.raises(InvalidKey):
        Key.from_pem(pem, "ES256", password=b"wrong")


@pytest.mark.parametrize(
    "data", [b"", b"not a pem", b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----"]
)
def test_from_pem_garbage_is_invalid_key(data):
    with pytest.raises(InvalidKey):
        Key.from_pem(data, "ES256")


def test_from_pem_of_truncated_block_is_invalid_key():
    pem = Key.generate("ES256").to_pem()
    with pytest.raises(InvalidKey):
        Key.from_pem(pem[:60], "ES256")


def test_from_pem_refuses_hmac_algorithms():
    with pytest.raises(InvalidKey):
        Key.from_pem(Key.generate("ES256").to_pem(), "HS256")


def test_der_round_trip_with_declared_kind():
    key = Key.generate("EdDSA")
    assert Key.from_der(key.to_der(), "EdDSA", kind="public").thumbprint() == key.thumbprint()
    priv = Key.from_der(key.to_der(private=True), "EdDSA", kind="private")
    assert priv.is_private
    with pytest.raises(InvalidKey):
        Key.from_der(key.to_der(), "EdDSA", kind="private")
    with pytest.raises(ValueError):
        Key.from_der(key.to_der(), "EdDSA", kind="guess")  # type: ignore[arg-type]


def test_hmac_keys_have_no_pem_or_public_form():
    key = Key.generate("HS256")
    with pytest.raises(ValueError):
        key.to_pem()
    with pytest.raises(ValueError):
        key.public()
    with pytest.raises(ValueError):
        key.to_jwk()
    assert key.to_jwk(private=True)["kty"] == "oct"


# -- JWK ---------------------------------------------------------------------


@pytest.mark.parametrize("alg", jotkit.ALGORITHM_NAMES)
def test_jwk_round_trip_private_and_public(alg):
    key = Key.generate(alg, kid="k1")
    private = key.to_jwk(private=True)
    assert private["alg"] == alg and private["use"] == "sig" and private["kid"] == "k1"
    again = Key.from_jwk(private)
    assert again.is_private and again.thumbprint() == key.thumbprint()
    if not key.is_symmetric:
        public = key.to_jwk()
        assert "d" not in public
        assert not Key.from_jwk(public).is_private
        assert Key.from_jwk(json.dumps(public)).thumbprint() == key.thumbprint()


def test_jwk_alg_must_agree_with_the_callers():
    jwk = Key.generate("RS256").to_jwk()
    with pytest.raises(InvalidKey, match="RS256"):
        Key.from_jwk(jwk, "PS256")
    del jwk["alg"]
    with pytest.raises(InvalidKey, match="no 'alg'"):
        Key.from_jwk(jwk)
    assert Key.from_jwk(jwk, "PS256").alg == "PS256"


@pytest.mark.parametrize(
    ("crv", "alg"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")]
)
def test_ec_jwk_without_alg_takes_it_from_the_curve(crv, alg):
    jwk = Key.generate(alg).to_jwk()
    del jwk["alg"]
    assert jwk["crv"] == crv
    assert Key.from_jwk(jwk).alg == alg


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use": "enc"}, "use"),
        ({"key_ops": ["encrypt"]}, "key_ops"),
        ({"kty": "XYZ"}, "kty"),
        ({"x": "AAAA"}, "octets"),
        ({"x": "not base64!"}, "base64url"),
        ({"crv": "P-999"}, "curve"),
        ({"kid": 5}, "kid"),
        ({"alg": 7}, "alg"),
        ({"alg": "RS256"}, "needs a RSA key"),
    ],
)
def test_bad_ec_jwk_is_refused_with_reason(change, message):
    jwk = {**Key.generate("ES256").to_jwk(), **change}
    with pytest.raises(InvalidKey, match=message):
        Key.from_jwk(jwk)


def test_ec_jwk_point_not_on_curve_is_refused():
    jwk = Key.generate("ES256").to_jwk()
    jwk["y"] = jwk["x"]
    with pytest.raises(InvalidKey):
        Key.from_jwk(jwk)


def test_ec_jwk_private_value_must_match_public_point():
    a = Key.generate("ES256").to_jwk(private=True)
    b = Key.generate("ES256").to_jwk(private=True)
    with pytest.raises(InvalidKey, match="does not match"):
        Key.from_jwk({**a, "d": b["d"]})


def test_okp_jwk_private_value_must_match_public():
    a = Key.generate("EdDSA").to_jwk(private=True)
    b = Key.generate("EdDSA").to_jwk(private=True)
    with pytest.raises(InvalidKey, match="does not match"):
        Key.from_jwk({**a, "d": b["d"]})


def test_x25519_jwk_is_not_a_signing_key():
    raw = (
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    jwk = {"kty": "OKP", "crv": "X25519", "x": jotkit._b64.b64encode(raw), "alg": "EdDSA"}
    with pytest.raises(InvalidKey, match="X25519"):
        Key.from_jwk(jwk)


def test_rsa_jwk_with_only_d_recovers_the_primes():
    full = Key.generate("RS256").to_jwk(private=True)
    minimal = {k: full[k] for k in ("kty", "n", "e", "d", "alg")}
    key = Key.from_jwk(minimal)
    token = jotkit.encode({}, key, expires_in=60)
    assert jotkit.decode(token, Key.from_jwk(full).public(), algorithms=["RS256"]) is not None


def test_rsa_jwk_with_partial_crt_members_is_refused():
    full = Key.generate("RS256").to_jwk(private=True)
    del full["qi"]
    with pytest.raises(InvalidKey, match="CRT"):
        Key.from_jwk(full)


def test_rsa_multi_prime_jwk_is_refused():
    full = Key.generate("RS256").to_jwk(private=True)
    with pytest.raises(InvalidKey, match="oth"):
        Key.from_jwk({**full, "oth": []})


@pytest.mark.parametrize("text", ["", "[]", "{", '{"kty":"EC","kty":"EC"}', "null"])
def test_jwk_text_that_is_not_an_object_is_invalid_key(text):
    with pytest.raises(InvalidKey):
        Key.from_jwk(text)


def test_kid_argument_overrides_the_jwk_kid():
    jwk = Key.generate("ES256", kid="a").to_jwk()
    assert Key.from_jwk(jwk, kid="b").kid == "b"


def test_public_key_has_no_private_jwk():
    with pytest.raises(ValueError):
        Key.generate("ES256").public().to_jwk(private=True)


def test_with_kid_and_thumbprint_kid():
    key = Key.generate("ES256")
    assert key.with_kid("x").kid == "x"
    tk = key.with_thumbprint_kid()
    assert tk.kid == key.thumbprint()
    assert tk.thumbprint() == key.thumbprint()  # the kid is not part of the thumbprint
    assert key.thumbprint_uri().startswith("urn:ietf:params:oauth:jwk-thumbprint:sha-256:")
    assert key.thumbprint("sha512") != key.thumbprint()


# -- KeySet ------------------------------------------------------------------


def test_keyset_selects_by_kid_and_rotation_verifies_both():
    old, new = Key.generate("ES256", kid="old"), Key.generate("ES256", kid="new")
    keys = KeySet([old.public(), new.public()])
    for signer in (old, new):
        token = jotkit.encode({"sub": signer.kid}, signer, expires_in=60)
        assert jotkit.decode(token, keys, algorithms=["ES256"])["sub"] == signer.kid
    assert keys.get("old") is not None and keys.get("zzz") is None
    assert "new" in keys and len(keys) == 2 and keys.kids == ("old", "new")


def test_keyset_unknown_kid_is_precise():
    keys = KeySet([Key.generate("ES256", kid="a").public()])
    token = jotkit.encode({}, Key.generate("ES256", kid="b"), expires_in=60)
    with pytest.raises(KeyNotFound, match="'b'") as err:
        jotkit.decode(token, keys, algorithms=["ES256"])
    assert err.value.code == "key_not_found"


def test_keyset_kid_bound_to_other_alg_is_key_mismatch():
    keys = KeySet([Key.generate("ES256", kid="a").public()])
    token = jotkit.encode({}, Key.generate("EdDSA", kid="a"), expires_in=60)
    with pytest.raises(KeyMismatch):
        jotkit.decode(token, keys, algorithms=["ES256", "EdDSA"])


def test_keyset_token_without_kid():
    a, b = Key.generate("ES256"), Key.generate("ES256")
    token = jotkit.encode({}, a, expires_in=60)
    assert jotkit.decode(token, KeySet([a.public()]), algorithms=["ES256"]) is not None
    with pytest.raises(KeyNotFound) as err:
        jotkit.decode(token, KeySet([a.public(), b.public()]), algorithms=["ES256"])
    assert err.value.code == "kid_missing"
    with pytest.raises(KeyNotFound):
        jotkit.decode(token, KeySet([Key.generate("EdDSA").public()]), algorithms=["ES256"])


def test_keyset_refuses_duplicate_kid_for_same_alg_but_allows_other_alg():
    a = Key.generate("ES256", kid="x")
    with pytest.raises(ValueError):
        KeySet([a, Key.generate("ES256", kid="x")])
    both = KeySet([a, Key.generate("EdDSA", kid="x")])
    assert both.select("EdDSA", "x").alg == "EdDSA"
    with pytest.raises(TypeError):
        KeySet(["not a key"])  # type: ignore[list-item]


def test_to_jwks_public_only_leaves_out_secrets():
    keys = KeySet([Key.generate("HS256", kid="h"), Key.generate("ES256", kid="e")])
    public = keys.to_jwks()
    assert [k["kid"] for k in public["keys"]] == ["e"]
    assert all("d" not in k for k in public["keys"])
    private = keys.to_jwks(private=True)
    assert {k["kid"] for k in private["keys"]} == {"h", "e"}
    assert len(KeySet.from_jwks(private, allow_symmetric=True, allow_private=True)) == 2
    assert len(keys.public()) == 1


def test_private_key_in_an_untrusted_jwks_is_skipped_unless_allowed():
    """A published private key signs for anyone, and OpenSSL's check of an untrusted 8192-bit
    RSA key took about 5 s (CPU exhaustion per JWKS fetch): skipped, and said so."""
    es, ed = Key.generate("ES256", kid="es"), Key.generate("EdDSA", kid="ed")
    pub = Key.generate("ES256", kid="pub").public()
    doc = {"keys": [es.to_jwk(private=True), ed.to_jwk(private=True), pub.to_jwk()]}
    ks = KeySet.from_jwks(doc)
    assert [k.kid for k in ks] == ["pub"] and not any(k.is_private for k in ks)
    assert [s.split(":")[1].strip() for s in ks.skipped] == [
        "private key skipped (allow_private=False)"] * 2
    assert len(KeySet.from_jwks(doc, allow_private=True)) == 3


def test_from_jwks_skips_unusable_entries_and_says_why():
    good = Key.generate("ES256", kid="good").to_jwk()
    rsa_no_alg = Key.generate("RS256", kid="rsa").to_jwk()
    del rsa_no_alg["alg"]
    doc = {
        "keys": [
            good,
            {**Key.generate("ES256", kid="enc").to_jwk(), "use": "enc"},
            {"kty": "oct-ish", "kid": "weird"},
            "not an object",
            rsa_no_alg,
        ]
    }
    keys = KeySet.from_jwks(doc)
    assert keys.kids == ("good",)
    assert len(keys.skipped) == 4
    assert any("rsa" in s and "no 'alg'" in s for s in keys.skipped)
    bound = KeySet.from_jwks(doc, algorithms=["RS256", "PS256", "ES256"])
    assert sorted(k.alg for k in bound if k.kid == "rsa") == ["PS256", "RS256"]
    only_ps = KeySet.from_jwks(doc, algorithms=["PS256"])
    assert [k.kid for k in only_ps] == ["rsa"]


@pytest.mark.parametrize("doc", ["", "[]", "{}", '{"keys": {}}', b"\xff", '{"keys":[],"keys":[]}'])
def test_from_jwks_that_is_not_a_jwk_set_raises_jwks_error(doc):
    with pytest.raises(jotkit.JWKSError) as err:
        KeySet.from_jwks(doc)
    assert err.value.code == "jwks_invalid"


def test_from_jwks_skips_symmetric_keys_unless_allowed():
    """A secret published in a key set is no secret: an attacker could sign HS256 with it."""
    leaked = Key.generate("HS256", kid="h")
    doc = {"keys": [leaked.to_jwk(private=True), Key.generate("ES256", kid="e").to_jwk()]}
    keys = KeySet.from_jwks(doc)
    assert keys.kids == ("e",)
    assert any("symmetric" in reason for reason in keys.skipped)
    forged = jotkit.encode({"sub": "admin"}, leaked, expires_in=60)
    with pytest.raises(KeyNotFound):
        jotkit.decode(forged, keys, algorithms=["HS256", "ES256"])
    assert KeySet.from_jwks(doc, allow_symmetric=True).kids == ("h", "e")


# --------------------------------------------------------------------------- hostile JWK sets

_EC = Key.generate("ES256", kid="ec").to_jwk()
_RSA = Key.generate("RS256", kid="rsa").to_jwk()
_OKP = Key.generate("EdDSA", kid="ed").to_jwk()
_OCT = Key.generate("HS256", kid="oct").to_jwk(private=True)
_WRONG_TYPES = [
    ("kty-list", {**_EC, "kty": ["EC"]}),
    ("kty-object", {**_EC, "kty": {"EC": 1}}),
    ("kty-number", {**_EC, "kty": 1}),
    ("kid-number", {**_EC, "kid": 7}),
    ("kid-list", {**_EC, "kid": ["a"]}),
    ("alg-list", {**_EC, "alg": ["ES256"]}),
    ("alg-object", {**_EC, "alg": {"ES256": True}}),
    ("use-list", {**_EC, "use": ["sig"]}),
    ("use-object", {**_EC, "use": {}}),
    ("key_ops-string", {**_EC, "key_ops": "verify"}),
    ("key_ops-object", {**_EC, "key_ops": {"verify": True}}),
    ("key_ops-nested", {**_EC, "key_ops": [["verify"]]}),
    ("crv-list", {**_EC, "crv": ["P-256"]}),
    ("crv-object", {**_EC, "crv": {"P-256": 1}}),
    ("crv-list-no-alg", {k: v for k, v in {**_EC, "crv": ["P-256"]}.items() if k != "alg"}),
    ("okp-crv-object", {k: v for k, v in {**_OKP, "crv": {}}.items() if k != "alg"}),
    ("x-number", {**_EC, "x": 5}),
    ("y-list", {**_EC, "y": ["a"]}),
    ("n-number", {**_RSA, "n": 12345}),
    ("e-list", {**_RSA, "e": ["AQAB"]}),
    ("d-object", {**_RSA, "d": {}}),
    ("k-number", {**_OCT, "k": 5}),
    ("oth-string", {**_RSA, "d": _RSA["n"], "oth": "x"}),
]


@pytest.mark.parametrize(("name", "entry"), _WRONG_TYPES, ids=[n for n, _ in _WRONG_TYPES])
@pytest.mark.parametrize("algorithms", [None, ["ES256", "RS256", "EdDSA", "HS256"]])
def test_jwks_entry_with_wrong_member_type_is_skipped_not_type_error(name, entry, algorithms):
    """RFC 7517 §5: an entry a JWKS consumer cannot use is ignored. A member of the wrong JSON
    type (e.g. "kty": [...]) used to raise TypeError out of from_jwks; now it is skipped."""
    good = Key.generate("ES256", kid="good").to_jwk()
    doc = {"keys": [entry, good]}
    keys = KeySet.from_jwks(doc, algorithms=algorithms, allow_symmetric=True)
    assert "good" in keys.kids
    assert len(keys) == 1, [k.kid for k in keys]
    assert len(keys.skipped) == 1 and keys.skipped[0].startswith("keys[0]")
    with pytest.raises(InvalidKey):
        Key.from_jwk(entry)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["EC", "RSA", "OKP", "oct", "P-256", "Ed25519", "ES256", "sig", "verify"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_MEMBERS = [
    "kty",
    "kid",
    "alg",
    "use",
    "key_ops",
    "crv",
    "x",
    "y",
    "d",
    "n",
    "e",
    "k",
    "oth",
    "p",
    "q",
    "dp",
    "dq",
    "qi",
    "x5c",
]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    base=st.sampled_from([_EC, _RSA, _OKP, _OCT, {}]),
    changes=st.dictionaries(st.sampled_from(_MEMBERS), _json_values | st.just(None), max_size=4),
    algorithms=st.none() | st.just(["ES256", "RS256", "EdDSA", "HS256"]),
)
def test_from_jwks_with_arbitrary_member_values_raises_nothing_and_from_jwk_only_invalid_key(
    base, changes, algorithms
):
    entry = {**base}
    for name, value in changes.items():
        if value is None:
            entry.pop(name, None)
        else:
            entry[name] = value
    keys = KeySet.from_jwks({"keys": [entry]}, algorithms=algorithms, allow_symmetric=True)
    assert len(keys) + len(keys.skipped) >= 1
    with contextlib.suppress(InvalidKey):  # anything else fails the test
        Key.from_jwk(entry)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(doc=_json_values)
def test_from_jwks_of_any_json_raises_only_jwks_error(doc):
    for given_doc in (doc, json.dumps(doc)):
        codes = []
        try:
            KeySet.from_jwks(given_doc)
        except jotkit.JWKSError as exc:  # the one documented error; anything else fails
            codes.append(exc.code)
        assert codes in ([], ["jwks_invalid"])


# --- hostile RSA numbers in an untrusted JWK (RFC 8017 §3.1; CPU exhaustion) ---------------


def _i2b(x: int) -> str:
    from jotkit._b64 import b64encode

    return b64encode(x.to_bytes((x.bit_length() + 7) // 8, "big"))


def _no_recovery(monkeypatch):
    def refuse(*_a):
        raise AssertionError("recovered primes from untrusted numbers")

    monkeypatch.setattr(rsa, "rsa_recover_prime_factors", refuse)


def test_rsa_jwk_cpu_exhaustion_by_a_huge_d_is_refused_before_any_arithmetic(monkeypatch):
    """A mismatched ``d`` far longer than ``n`` made prime recovery run for seconds."""
    _no_recovery(monkeypatch)
    n = (1 << 4095) | 12345677
    doc = {"kty": "RSA", "alg": "RS256", "n": _i2b(n), "e": "AQAB", "d": _i2b((1 << 15999) | 1)}
    with pytest.raises(InvalidKey, match="'d' must be between"):
        Key.from_jwk(doc)
    assert KeySet.from_jwks({"keys": [doc]}).skipped


def test_rsa_jwk_cpu_exhaustion_by_a_large_d_only_key_is_refused(monkeypatch):
    """Without CRT members, a mismatched 8192-bit pair took about a second to refuse."""
    _no_recovery(monkeypatch)
    n = (1 << 8191) | 12345677
    with pytest.raises(InvalidKey, match="needs its CRT members"):
        Key.from_jwk({"kty": "RSA", "alg": "RS256", "n": _i2b(n), "e": "AQAB", "d": _i2b(n - 2)})


@pytest.mark.parametrize(
    ("n", "e", "why"),
    [
        ((1 << 16384) | 1, 65537, "at most 16384 bits"),  # verify cost grows with n squared
        (1 << 2047, 65537, "even"),  # no product of odd primes
        ((1 << 2047) | 1, 65536, "odd"),
        ((1 << 2047) | 1, 1, "odd"),
        ((1 << 2047) | 1, (1 << 2040) | 1, "below 2\\*\\*32"),  # each verify ~100x dearer
    ],
    ids=["n-over-16384-bits", "n-even", "e-even", "e-one", "e-2041-bits"],
)
def test_rsa_public_jwk_with_impossible_or_costly_numbers_is_refused(n, e, why):
    with pytest.raises(InvalidKey, match=why):
        Key.from_jwk({"kty": "RSA", "alg": "RS256", "n": _i2b(n), "e": _i2b(e)})


def test_rsa_pem_with_a_huge_exponent_is_refused():
    numbers = rsa.RSAPublicNumbers((1 << 2040) | 1, rsa.generate_private_key(65537, 2048)
                                   .public_key().public_numbers().n)
    pem = numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidKey, match="below 2\\*\\*32"):
        Key.from_pem(pem, "RS256")


# --- small-order EdDSA public keys (RFC 8032 §5): one signature for every message -----------

_ED25519_SMALL = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity, x sign set
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p (0), non-canonical
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1 (1)
]


@pytest.mark.parametrize("x", _ED25519_SMALL)
def test_ed25519_small_order_key_signature_forgery_is_prevented(x):
    """With the identity as the key, R = identity and S = 0 verify any claims (found by a
    fuzzing pass): such keys are refused when imported, from a JWK, a JWKS or raw bytes."""
    from jotkit._b64 import b64encode

    jwk = {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": b64encode(bytes.fromhex(x))}
    with pytest.raises(InvalidKey, match="small-order"):
        Key.from_jwk(jwk)
    assert KeySet.from_jwks({"keys": [jwk]}).skipped
    with contextlib.suppress(ValueError):  # cryptography may refuse some encodings itself
        from cryptography.hazmat.primitives.asymmetric import ed25519

        raw = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(x))
        with pytest.raises(InvalidKey):
            Key("EdDSA", raw)


@pytest.mark.parametrize(
    "y",
    [0, 1, 2**448 - 2**224 - 2, 2**448 - 2**224 - 1, 2**448 - 2**224],
    ids=["order-4", "identity", "order-2", "y-p-noncanonical-0", "y-p-plus-1-noncanonical-1"],
)
def test_ed448_small_order_key_is_refused(y):
    from jotkit._b64 import b64encode

    x = b64encode(y.to_bytes(56, "little") + b"\x00")
    with pytest.raises(InvalidKey):
        Key.from_jwk({"kty": "OKP", "crv": "Ed448", "alg": "EdDSA", "x": x})
