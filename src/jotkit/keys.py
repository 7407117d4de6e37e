"""Keys and key sets (RFC 7517, RFC 7518 §6, RFC 7638, RFC 8037 §2, RFC 9278).

A :class:`Key` is bound to exactly one JWS algorithm, or one JWE key-management
algorithm (RFC 7518 §4, see :mod:`jotkit.jwe_algorithms`), (RFC 8725 §3.1) and is
checked against it when created: HMAC secrets must be at least as long as the
hash output (RFC 7518 §3.2), RSA moduli at least 2048 bits, EC and OKP keys on
the curve the algorithm names. Key formats are never guessed from bytes: each
constructor says what it reads.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from . import _json
from ._b64 import b64decode, b64encode
from .algorithms import ALGORITHMS, Algorithm, get_algorithm
from .errors import InvalidKey, JWKSError, KeyMismatch, KeyNotFound
from .jwe_algorithms import CONTENT_ENCRYPTION, KEY_MANAGEMENT, KeyManagement

__all__ = ["Key", "KeySet"]

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | x25519.X25519PrivateKey
    | x448.X448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | x25519.X25519PublicKey
    | x448.X448PublicKey
)
_OKP_SIZES = {"Ed25519": 32, "Ed448": 57, "X25519": 32, "X448": 56}
#: Octet lengths a ``dir`` key may have: the CEK sizes of RFC 7518 §5.1.
_DIR_SIZES = frozenset(e.key_size for e in CONTENT_ENCRYPTION.values())
_Signer = Callable[[bytes], bytes]
_Checker = Callable[[bytes, bytes], bool]
#: Checks a signature given as its base64url segment text (HMAC keys only; see _bind).
_SegmentChecker = Callable[[bytes, str], bool]
_b2a = binascii.b2a_base64
_same = hmac.compare_digest

MIN_RSA_BITS = 2048
#: JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
#: The largest RSA modulus accepted (OpenSSL's own limit): a verify with a larger one would
#: cost a caller who imports an untrusted JWK or JWKS far more than a signature should.
MAX_RSA_BITS = 16384
#: The largest modulus of a private RSA JWK without its CRT members, whose primes are then
#: recovered from ``d``: a mismatched 8192-bit ``n``/``d`` pair takes about a second to refuse.
_MAX_RSA_RECOVERY_BITS = 4096
_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: JWK ``crv`` names (RFC 7518 §6.2.1.1, RFC 8812 §3.1) <-> cryptography curves.
_EC_CURVES: Mapping[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "secp256k1": ec.SECP256K1,
}
_EC_CURVE_NAMES = {cls().name: crv for crv, cls in _EC_CURVES.items()}
_EC_SIZES = {"P-256": 32, "P-384": 48, "P-521": 66, "secp256k1": 32}
#: Default algorithm for a JWK without ``alg``, where the key type leaves no choice.
_UNAMBIGUOUS_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PRIVATE_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"}
_PUBLIC_LABELS = {b"PUBLIC KEY", b"RSA PUBLIC KEY"}
#: Prefixes that mark bytes as public-key text, never an HMAC secret (the
#: algorithm-confusion attack of RFC 8725 §2.1 feeds a public key as a secret).
_NOT_A_SECRET = (
    b"-----BEGIN",
    b"ssh-rsa ",
    b"ssh-ed25519 ",
    b"ssh-ed448 ",
    b"ecdsa-sha2-",
    b"ssh-dss ",
)
_THUMBPRINT_MEMBERS = {
    "oct": ("k", "kty"),
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


def _lookup(name: str) -> Algorithm | KeyManagement:
    """A JWS algorithm or a JWE key-management algorithm (caller misuse: ``ValueError``)."""
    if isinstance(name, str) and name in KEY_MANAGEMENT:
        return KEY_MANAGEMENT[name]
    return get_algorithm(name)


def _int_to_b64(n: int, size: int | None = None) -> str:
    length = size if size is not None else max(1, (n.bit_length() + 7) // 8)
    return b64encode(n.to_bytes(length, "big"))


def _crv_of(material: PrivateKey | PublicKey | bytes) -> str | None:
    if isinstance(material, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return _EC_CURVE_NAMES.get(material.curve.name, material.curve.name)
    if isinstance(material, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    if isinstance(material, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "Ed448"
    if isinstance(material, (x25519.X25519PrivateKey, x25519.X25519PublicKey)):
        return "X25519"
    if isinstance(material, (x448.X448PrivateKey, x448.X448PublicKey)):
        return "X448"
    return None


def _kty_of(material: PrivateKey | PublicKey | bytes) -> str:
    if isinstance(material, bytes):
        return "oct"
    if isinstance(material, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    if isinstance(material, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "EC"
    if isinstance(
        material,
        (
            ed25519.Ed25519PrivateKey,
            ed25519.Ed25519PublicKey,
            ed448.Ed448PrivateKey,
            ed448.Ed448PublicKey,
            x25519.X25519PrivateKey,
            x25519.X25519PublicKey,
            x448.X448PrivateKey,
            x448.X448PublicKey,
        ),
    ):
        return "OKP"
    raise InvalidKey(f"unsupported key object {type(material).__name__}")


def _is_private(material: PrivateKey | PublicKey | bytes) -> bool:
    return isinstance(
        material,
        (
            bytes,
            rsa.RSAPrivateKey,
            ec.EllipticCurvePrivateKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PrivateKey,
            x25519.X25519PrivateKey,
            x448.X448PrivateKey,
        ),
    )


def _check_jwe_material(alg: KeyManagement, material: PrivateKey | PublicKey | bytes) -> None:
    """Refuse key material that does not fit a JWE ``alg`` (RFC 7518 §4, RFC 8037 §3.2)."""
    kty = _kty_of(material)
    if alg.family == "ECDH-ES":
        if kty not in ("EC", "OKP") or _crv_of(material) not in alg.curves:
            raise InvalidKey(f"{alg.name} needs an EC or OKP key on {', '.join(alg.curves)}")
        return
    if kty != alg.kty:
        raise InvalidKey(f"{alg.name} needs a {alg.kty} key, got a {kty} key")
    if isinstance(material, bytes):
        if material.lstrip().startswith(_NOT_A_SECRET):
            raise InvalidKey(
                "this looks like a PEM or SSH key, not a secret"
                " (algorithm confusion, RFC 8725 §2.1)"
            )
        if alg.family in ("AESKW", "AESGCMKW") and len(material) != alg.wrap_size:
            raise InvalidKey(
                f"{alg.name} needs a key of exactly {alg.wrap_size} bytes, got {len(material)}"
                " (RFC 7518 §4.4)",
                code="weak_key" if len(material) < alg.wrap_size else "invalid_key",
            )
        if alg.family == "dir" and len(material) not in _DIR_SIZES:
            raise InvalidKey(
                f"a 'dir' key is a content encryption key of {sorted(_DIR_SIZES)} bytes,"
                f" got {len(material)} (RFC 7518 §5)"
            )
        if alg.family == "PBES2" and not material:
            raise InvalidKey("a PBES2 password must not be empty", code="weak_key")
        return
    if isinstance(material, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        _check_rsa(material)


def _check_rsa_numbers(n: int, e: int) -> None:
    """Refuse RSA public numbers that no real key has (RFC 8017 §3.1: ``n`` is a product of odd
    primes, ``e`` odd and at least 3) or whose size would make each operation expensive."""
    if n.bit_length() > MAX_RSA_BITS:
        raise InvalidKey(f"RSA keys must have at most {MAX_RSA_BITS} bits, got {n.bit_length()}")
    if n % 2 == 0:
        raise InvalidKey("RSA modulus 'n' is even (RFC 8017 §3.1)")
    if e < 3 or e % 2 == 0 or e.bit_length() > 32:
        raise InvalidKey("RSA public exponent 'e' must be odd, at least 3 and below 2**32")


def _check_rsa(material: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> None:
    if material.key_size < MIN_RSA_BITS:
        raise InvalidKey(
            f"RSA keys must have at least {MIN_RSA_BITS} bits, got {material.key_size}",
            code="weak_key",
        )
    numbers = (
        material.public_numbers()
        if isinstance(material, rsa.RSAPublicKey)
        else material.private_numbers().public_numbers
    )
    _check_rsa_numbers(numbers.n, numbers.e)


def _check_material(
    alg: Algorithm | KeyManagement, material: PrivateKey | PublicKey | bytes
) -> None:
    """Refuse key material that does not fit ``alg`` (RFC 8725 §3.1, RFC 7518 §3)."""
    if isinstance(alg, KeyManagement):
        _check_jwe_material(alg, material)
        return
    kty = _kty_of(material)
    if kty != alg.kty:
        raise InvalidKey(f"{alg.name} needs a {alg.kty} key, got a {kty} key")
    if isinstance(material, bytes):
        if len(material) < alg.digest_size:
            raise InvalidKey(
                f"{alg.name} needs a secret of at least {alg.digest_size} bytes "
                f"({alg.digest_size * 8} bits), got {len(material)} (RFC 7518 §3.2)",
                code="weak_key",
            )
        if material.lstrip().startswith(_NOT_A_SECRET):
            raise InvalidKey(
                "this looks like a PEM or SSH key, not an HMAC secret "
                "(algorithm confusion, RFC 8725 §2.1)"
            )
        return
    if isinstance(material, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        _check_rsa(material)
        return
    crv = _crv_of(material)
    if crv not in alg.curves:
        raise InvalidKey(f"{alg.name} needs curve {' or '.join(alg.curves)}, got {crv}")
    if isinstance(material, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        _check_eddsa_public(material)


#: The ``y`` coordinates of the small-order points (RFC 8032 §5.1: Ed25519's cofactor is 8;
#: §5.2: Ed448's is 4). A public key there verifies forged signatures: with the identity, one
#: fixed signature (R the identity, S = 0) verifies every message.
_ED25519_P = 2**255 - 19
_ED25519_SMALL_ORDER_Y = frozenset(
    int.from_bytes(bytes.fromhex(h), "little")
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # order 1
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    )
)
_ED448_P = 2**448 - 2**224 - 1
_ED448_SMALL_ORDER_Y = frozenset({0, 1, _ED448_P - 1})  # orders 4, 1, 2


def _check_eddsa_public(material: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> None:
    """Refuse a small-order EdDSA public key, in any encoding (RFC 8032 §5.1.3: ``y`` is read
    modulo p here, so the non-canonical spellings of these points are refused too)."""
    raw = material.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(material, ed25519.Ed25519PublicKey):
        y = (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % _ED25519_P
        small = y in _ED25519_SMALL_ORDER_Y
    else:
        y = int.from_bytes(raw[:56], "little") % _ED448_P
        small = y in _ED448_SMALL_ORDER_Y
    if small:
        raise InvalidKey("EdDSA public key is a small-order point (RFC 8032 §5)")


def _never_verifies(msg: bytes, sig: bytes) -> bool:
    return False


def _bind(
    alg: Algorithm | KeyManagement,
    private: PrivateKey | None,
    public: PublicKey | None,
    secret: bytes | None,
) -> tuple[_Signer | None, _Checker, _SegmentChecker | None]:
    """Build the sign and verify closures for one key (the prepared hot path).

    The third closure, HMAC keys only, checks a signature still in its base64url text:
    it encodes the expected MAC canonically and compares the two texts in constant time.
    That accepts exactly the canonical encoding of the right MAC, the one text that
    decoding strictly and comparing bytes accepts, without decoding the segment.
    """
    if isinstance(alg, KeyManagement):
        return None, _never_verifies, None  # an encryption key never signs nor verifies
    if secret is not None:
        # The key schedule is done once; each call copies the prepared HMAC state, all
        # in cryptography's native HMAC (RFC 2104, RFC 7518 §3.2): three native calls and
        # a constant-time comparison in ``verify``, no Python wrapper frames.
        prepared = crypto_hmac.HMAC(secret, _HASHES[alg.hash_name or ""]())
        copy = prepared.copy

        def hmac_sign(msg: bytes) -> bytes:
            mac = copy()
            mac.update(msg)
            return mac.finalize()

        def hmac_verify(msg: bytes, sig: bytes) -> bool:
            mac = copy()
            mac.update(msg)
            try:
                mac.verify(sig)  # constant time
            except InvalidSignature:
                return False
            return True

        def hmac_verify_segment(msg: bytes, segment: str) -> bool:
            mac = copy()
            mac.update(msg)
            # _b64.b64encode_ascii, inlined: a call frame here is ~0.7 % of an HS256 verify.
            expected = _b2a(mac.finalize()).rstrip(b"=\n")
            try:  # constant time; a non-ASCII segment is no encoding of any MAC
                return _same(expected.replace(b"+", b"-").replace(b"/", b"_"), segment.encode())
            except UnicodeEncodeError:
                return False

        return hmac_sign, hmac_verify, hmac_verify_segment

    assert public is not None
    sign: _Signer | None = None
    verify: _Checker
    if alg.family in ("RSASSA-PKCS1-v1_5", "RSASSA-PSS"):
        assert isinstance(public, rsa.RSAPublicKey)
        hash_alg = _HASHES[alg.hash_name or ""]()
        pad: padding.AsymmetricPadding
        if alg.family == "RSASSA-PSS":  # salt length = hash length (RFC 7518 §3.5)
            pad = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=alg.digest_size)
        else:
            pad = padding.PKCS1v15()
        rsa_pub = public
        sig_len = (public.key_size + 7) // 8

        def rsa_verify(msg: bytes, sig: bytes) -> bool:
            if len(sig) != sig_len:
                return False
            try:
                rsa_pub.verify(sig, msg, pad, hash_alg)
            except (InvalidSignature, ValueError):
                return False
            return True

        verify = rsa_verify
        if private is not None:
            assert isinstance(private, rsa.RSAPrivateKey)
            rsa_priv = private

            def rsa_sign(msg: bytes) -> bytes:
                return rsa_priv.sign(msg, pad, hash_alg)

            sign = rsa_sign
    elif alg.family == "ECDSA":
        assert isinstance(public, ec.EllipticCurvePublicKey)
        ecdsa = ec.ECDSA(_HASHES[alg.hash_name or ""]())
        size = alg.coordinate_size
        ec_pub = public

        def ec_verify(msg: bytes, sig: bytes) -> bool:
            # JWS ECDSA signatures are raw R || S of fixed length (RFC 7518 §3.4),
            # never DER; zero or out-of-range values fail in the verify itself.
            if len(sig) != 2 * size:
                return False
            r = int.from_bytes(sig[:size], "big")
            s = int.from_bytes(sig[size:], "big")
            if r == 0 or s == 0:
                return False
            try:
                ec_pub.verify(encode_dss_signature(r, s), msg, ecdsa)
            except (InvalidSignature, ValueError):
                return False
            return True

        verify = ec_verify
        if private is not None:
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            ec_priv = private

            def ec_sign(msg: bytes) -> bytes:
                r, s = decode_dss_signature(ec_priv.sign(msg, ecdsa))
                return r.to_bytes(size, "big") + s.to_bytes(size, "big")

            sign = ec_sign
    else:  # EdDSA (RFC 8037 §3.1)
        assert isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey))
        ed_pub = public

        def ed_verify(msg: bytes, sig: bytes) -> bool:
            try:
                ed_pub.verify(sig, msg)
            except (InvalidSignature, ValueError):
                return False
            return True

        verify = ed_verify
        if private is not None:
            assert isinstance(private, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
            sign = private.sign
    return sign, verify, None


class Key:
    """A signing or verification key bound to one JWS algorithm (RFC 8725 §3.1).

    Create keys with :meth:`generate`, :meth:`from_secret`, :meth:`from_pem`,
    :meth:`from_der` or :meth:`from_jwk`, or pass a ``cryptography`` key object
    (or secret ``bytes`` for HMAC) to the constructor. Keys are immutable.
    """

    __slots__ = (
        "_alg",
        "_crv",
        "_jwt_header",
        "_kid",
        "_private",
        "_public",
        "_secret",
        "_sign",
        "_verify",
        "_verify_segment",
    )

    _alg: Algorithm | KeyManagement
    _kid: str | None
    _private: PrivateKey | None
    _public: PublicKey | None
    _secret: bytes | None
    _sign: _Signer | None
    _verify: _Checker
    _verify_segment: _SegmentChecker | None
    """HMAC keys: check a signature segment's text (see :func:`_bind`); None otherwise."""
    _crv: str | None
    _jwt_header: str
    """The encoded default JWT header ``{"alg", "typ": "JWT", "kid"}``, prepared once."""

    def __init__(
        self, alg: str, material: PrivateKey | PublicKey | bytes, *, kid: str | None = None
    ) -> None:
        spec = _lookup(alg)
        if kid is not None and not isinstance(kid, str):
            raise TypeError("kid must be a str")
        if not isinstance(material, bytes) and isinstance(material, (bytearray, memoryview)):
            material = bytes(material)
        _check_material(spec, material)
        self._alg = spec
        self._kid = kid
        self._crv = _crv_of(material)
        if isinstance(material, bytes):
            self._secret, self._private, self._public = material, None, None
        elif _is_private(material):
            self._secret = None
            self._private = material  # type: ignore[assignment]
            self._public = material.public_key()  # type: ignore[union-attr]
        else:
            self._secret, self._private = None, None
            self._public = material  # type: ignore[assignment]
        self._sign, self._verify, self._verify_segment = _bind(
            spec, self._private, self._public, self._secret
        )
        header = {"alg": spec.name, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid
        self._jwt_header = b64encode(_json.dumps(header))

    # -- properties -------------------------------------------------------
    @property
    def alg(self) -> str:
        """The one JWS (or JWE key-management) algorithm this key may be used with."""
        return self._alg.name

    @property
    def algorithm(self) -> Algorithm | KeyManagement:
        """The algorithm table entry (:class:`KeyManagement` for JWE keys)."""
        return self._alg

    @property
    def is_encryption_key(self) -> bool:
        """True when the key is bound to a JWE key-management algorithm (RFC 7516)."""
        return isinstance(self._alg, KeyManagement)

    @property
    def kid(self) -> str | None:
        """The key ID (RFC 7515 §4.1.4), or ``None``."""
        return self._kid

    @property
    def kty(self) -> str:
        """The JWK key type: ``oct``, ``RSA``, ``EC`` or ``OKP`` (RFC 7517 §4.1)."""
        if self._crv in _OKP_SIZES:
            return "OKP"
        return self._alg.kty

    @property
    def crv(self) -> str | None:
        """The JWK curve for EC and OKP keys (RFC 7518 §6.2.1.1, RFC 8037 §2)."""
        return self._crv

    @property
    def is_private(self) -> bool:
        """True when the key can sign or decrypt (secrets always can)."""
        return self._secret is not None or self._private is not None

    @property
    def is_symmetric(self) -> bool:
        """True for HMAC secrets."""
        return self._secret is not None

    def __repr__(self) -> str:
        kind = "secret" if self.is_symmetric else ("private" if self.is_private else "public")
        return f"<jotkit.Key alg={self.alg} kid={self._kid!r} {kind}>"

    # -- signature primitives --------------------------------------------
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` and return the raw JWS signature octets (RFC 7515 §5.1)."""
        if self._sign is None:
            if self.is_encryption_key:
                raise ValueError(
                    f"this key is bound to the JWE algorithm {self.alg}; it cannot sign"
                )
            raise ValueError("a public key cannot sign")
        return self._sign(data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Check a raw JWS signature over ``data`` (RFC 7515 §5.2); never raises for bad input."""
        return self._verify(data, signature)

    # -- constructors -----------------------------------------------------
    @classmethod
    def generate(
        cls, alg: str, *, kid: str | None = None, size: int | None = None, crv: str | None = None
    ) -> Key:
        """Generate a fresh key for ``alg``.

        ``size`` is the RSA modulus size (default 2048, minimum 2048), or the
        bits of a ``dir`` content encryption key (default 256); ``crv`` picks
        ``Ed448`` over the default ``Ed25519`` for ``EdDSA``, and the curve of
        an ``ECDH-ES`` key (default ``P-256``; also P-384, P-521, X25519, X448).
        """
        spec = _lookup(alg)
        material: PrivateKey | bytes
        if isinstance(spec, KeyManagement) and spec.kty != "RSA":
            return cls(alg, _generate_jwe_material(spec, size, crv), kid=kid)
        if spec.kty == "oct":
            material = secrets.token_bytes(spec.digest_size)
        elif spec.kty == "RSA":
            bits = size if size is not None else 2048
            if bits < MIN_RSA_BITS:
                raise InvalidKey(
                    f"RSA keys must have at least {MIN_RSA_BITS} bits", code="weak_key"
                )
            material = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        elif spec.kty == "EC":
            material = ec.generate_private_key(_EC_CURVES[spec.curves[0]]())
        else:
            curve = crv or spec.curves[0]
            if curve not in spec.curves:
                raise ValueError(f"{alg} does not use curve {curve}")
            material = (
                ed25519.Ed25519PrivateKey.generate()
                if curve == "Ed25519"
                else ed448.Ed448PrivateKey.generate()
            )
        return cls(alg, material, kid=kid)

    @classmethod
    def from_secret(cls, secret: bytes | str, alg: str, *, kid: str | None = None) -> Key:
        """An HMAC key (RFC 7518 §3.2); text is UTF-8 encoded. Short secrets are refused."""
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, (bytes, bytearray, memoryview)):
            raise TypeError("secret must be bytes or str")
        if _lookup(alg).kty != "oct":
            raise InvalidKey(f"{alg} is not a secret-key algorithm; use from_pem or from_jwk")
        return cls(alg, bytes(secret), kid=kid)

    @classmethod
    def from_pem(
        cls,
        data: bytes | str,
        alg: str,
        *,
        kid: str | None = None,
        password: bytes | None = None,
    ) -> Key:
        """Load a PEM private key (PKCS#8, PKCS#1, SEC 1), public key (SPKI, PKCS#1)
        or X.509 certificate; the PEM label decides which, the bytes are not sniffed.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        spec = _lookup(alg)
        if spec.kty == "oct":
            raise InvalidKey(f"{alg} uses a shared secret, not a PEM key; use from_secret")
        label = None
        for match in _PEM_BLOCK.finditer(data):
            if match.group(1) in _PRIVATE_LABELS | _PUBLIC_LABELS | {b"CERTIFICATE"}:
                label = match.group(1)
                data = data[match.start() :]
                break
        if label is None:
            raise InvalidKey("no PEM private key, public key or certificate block found")
        try:
            material: PrivateKey | PublicKey
            if label in _PRIVATE_LABELS:
                material = serialization.load_pem_private_key(data, password=password)  # type: ignore[assignment]
            elif label in _PUBLIC_LABELS:
                material = serialization.load_pem_public_key(data)  # type: ignore[assignment]
            else:
                material = x509.load_pem_x509_certificate(data).public_key()  # type: ignore[assignment]
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidKey(f"cannot load PEM {label.decode()}: {exc}") from None
        return cls(alg, material, kid=kid)

    @classmethod
    def from_der(
        cls,
        data: bytes,
        alg: str,
        *,
        kind: Literal["private", "public", "certificate"],
        kid: str | None = None,
        password: bytes | None = None,
    ) -> Key:
        """Load DER bytes; ``kind`` says what they hold (formats are never guessed)."""
        _lookup(alg)
        try:
            material: PrivateKey | PublicKey
            if kind == "private":
                material = serialization.load_der_private_key(data, password=password)  # type: ignore[assignment]
            elif kind == "public":
                material = serialization.load_der_public_key(data)  # type: ignore[assignment]
            elif kind == "certificate":
                material = x509.load_der_x509_certificate(data).public_key()  # type: ignore[assignment]
            else:
                raise ValueError("kind must be 'private', 'public' or 'certificate'")
        except (TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidKey(f"cannot load DER {kind} key: {exc}") from None
        except ValueError as exc:
            if "kind must be" in str(exc):
                raise
            raise InvalidKey(f"cannot load DER {kind} key: {exc}") from None
        return cls(alg, material, kid=kid)

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any] | str | bytes, alg: str | None = None, *, kid: str | None = None
    ) -> Key:
        """Import a JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).

        The algorithm comes from the JWK's ``alg`` or from ``alg`` (they must agree);
        for EC and OKP keys it follows from the curve when neither is given.
        Keys marked for encryption (``use: enc``) are refused.
        """
        if isinstance(jwk, (str, bytes)):
            raw = jwk.encode("utf-8") if isinstance(jwk, str) else jwk
            try:
                jwk = _json.loads_object(raw)
            except ValueError as exc:
                raise InvalidKey(f"JWK is not a JSON object: {exc}") from None
        if not isinstance(jwk, Mapping):
            raise InvalidKey("a JWK must be a JSON object")
        kty = jwk.get("kty")
        if type(kty) is not str or kty not in _THUMBPRINT_MEMBERS:  # members are untrusted JSON
            raise InvalidKey(f"unsupported JWK kty {kty!r}")
        jwk_alg = jwk.get("alg")
        if jwk_alg is not None and not isinstance(jwk_alg, str):
            raise InvalidKey("JWK alg must be a string")
        if jwk_alg in CONTENT_ENCRYPTION and alg in (None, "dir"):
            jwk_alg = "dir"  # a direct key may name the 'enc' it serves (RFC 7520 §5.6)
        if alg is not None and jwk_alg is not None and alg != jwk_alg:
            raise InvalidKey(f"JWK is for {jwk_alg}, not {alg}")
        chosen = alg or jwk_alg
        _check_use(jwk, chosen is not None and chosen in KEY_MANAGEMENT)
        if chosen is None:
            crv = jwk.get("crv")
            if kty == "EC" and isinstance(crv, str) and crv in _UNAMBIGUOUS_ALG:
                chosen = _UNAMBIGUOUS_ALG[crv]
            elif kty == "OKP" and crv in ("Ed25519", "Ed448"):
                chosen = "EdDSA"
            else:
                raise InvalidKey(f"{kty} JWK has no 'alg'; pass alg= to choose one")
        if chosen not in ALGORITHMS and chosen not in KEY_MANAGEMENT:
            raise InvalidKey(f"unsupported JWK alg {chosen!r}")
        jwk_kid = jwk.get("kid")
        if jwk_kid is not None and not isinstance(jwk_kid, str):
            raise InvalidKey("JWK kid must be a string")
        try:
            material = _material_from_jwk(jwk, str(kty))
        except InvalidKey:
            raise
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidKey(f"invalid {kty} JWK: {exc}") from None
        return cls(chosen, material, kid=kid if kid is not None else jwk_kid)

    # -- derived keys and exports ----------------------------------------
    def public(self) -> Key:
        """The public half, same algorithm and ``kid`` (``ValueError`` for HMAC secrets)."""
        if self._public is None:
            raise ValueError("an HMAC secret has no public half")
        if self._private is None:
            return self
        return Key(self.alg, self._public, kid=self._kid)

    def with_kid(self, kid: str | None) -> Key:
        """A copy of this key with another ``kid``."""
        material: PrivateKey | PublicKey | bytes
        material = self._secret or self._private or self._public  # type: ignore[assignment]
        return Key(self.alg, material, kid=kid)

    def with_thumbprint_kid(self) -> Key:
        """A copy whose ``kid`` is its RFC 7638 thumbprint."""
        return self.with_kid(self.thumbprint())

    def _jwk_members(self, private: bool) -> dict[str, Any]:
        if self._secret is not None:
            return {"kty": "oct", "k": b64encode(self._secret)}
        pub = self._public
        out: dict[str, Any]
        if isinstance(pub, rsa.RSAPublicKey):
            pn = pub.public_numbers()
            out = {"kty": "RSA", "n": _int_to_b64(pn.n), "e": _int_to_b64(pn.e)}
            if private and isinstance(self._private, rsa.RSAPrivateKey):
                sn = self._private.private_numbers()
                out.update(
                    d=_int_to_b64(sn.d),
                    p=_int_to_b64(sn.p),
                    q=_int_to_b64(sn.q),
                    dp=_int_to_b64(sn.dmp1),
                    dq=_int_to_b64(sn.dmq1),
                    qi=_int_to_b64(sn.iqmp),
                )
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            crv = self._crv or ""
            size = _EC_SIZES[crv]
            en = pub.public_numbers()
            out = {
                "kty": "EC",
                "crv": crv,
                "x": _int_to_b64(en.x, size),
                "y": _int_to_b64(en.y, size),
            }
            if private and isinstance(self._private, ec.EllipticCurvePrivateKey):
                out["d"] = _int_to_b64(self._private.private_numbers().private_value, size)
        else:
            assert isinstance(
                pub,
                (
                    ed25519.Ed25519PublicKey,
                    ed448.Ed448PublicKey,
                    x25519.X25519PublicKey,
                    x448.X448PublicKey,
                ),
            )
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            out = {"kty": "OKP", "crv": self._crv, "x": b64encode(raw)}
            if private and self._private is not None:
                priv = self._private
                assert isinstance(
                    priv,
                    (
                        ed25519.Ed25519PrivateKey,
                        ed448.Ed448PrivateKey,
                        x25519.X25519PrivateKey,
                        x448.X448PrivateKey,
                    ),
                )
                out["d"] = b64encode(
                    priv.private_bytes(
                        serialization.Encoding.Raw,
                        serialization.PrivateFormat.Raw,
                        serialization.NoEncryption(),
                    )
                )
        return out

    def to_jwk(self, private: bool = False) -> dict[str, Any]:
        """Export as a JWK with ``alg``, ``use`` (``enc`` for JWE keys) and ``kid`` (RFC 7517 §4).

        ``private=True`` includes the private members; HMAC secrets only export
        that way, since they have no public form.
        """
        if private and not self.is_private:
            raise ValueError("this is a public key; it has no private members")
        if self._secret is not None and not private:
            raise ValueError("an HMAC secret has no public form; pass private=True")
        out = self._jwk_members(private)
        out["alg"] = self.alg
        out["use"] = "enc" if self.is_encryption_key else "sig"
        if self._kid is not None:
            out["kid"] = self._kid
        return out

    def thumbprint(self, hash_name: Literal["sha256", "sha384", "sha512"] = "sha256") -> str:
        """The JWK thumbprint (RFC 7638 §3): hash of the required members, sorted, compact."""
        members = self._jwk_members(private=self._secret is not None)
        required = {name: members[name] for name in _THUMBPRINT_MEMBERS[self.kty]}
        canonical = _json.dumps(dict(sorted(required.items())))
        return b64encode(hashlib.new(hash_name, canonical).digest())

    def thumbprint_uri(self, hash_name: Literal["sha256", "sha384", "sha512"] = "sha256") -> str:
        """The JWK thumbprint URI (RFC 9278 §3), ``urn:ietf:params:oauth:jwk-thumbprint:…``."""
        label = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}[hash_name]
        return f"urn:ietf:params:oauth:jwk-thumbprint:{label}:{self.thumbprint(hash_name)}"

    def to_pem(self, private: bool = False, *, password: bytes | None = None) -> bytes:
        """Export as PEM: SPKI for public keys, PKCS#8 (optionally encrypted) for private."""
        return self._serialize(serialization.Encoding.PEM, private, password)

    def to_der(self, private: bool = False, *, password: bytes | None = None) -> bytes:
        """Export as DER: SPKI for public keys, PKCS#8 (optionally encrypted) for private."""
        return self._serialize(serialization.Encoding.DER, private, password)

    def _serialize(
        self, encoding: serialization.Encoding, private: bool, password: bytes | None
    ) -> bytes:
        if self._public is None:
            raise ValueError("HMAC secrets have no PEM/DER form")
        if private:
            if self._private is None:
                raise ValueError("this is a public key; it has no private form")
            enc: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(password)
                if password
                else serialization.NoEncryption()
            )
            return self._private.private_bytes(encoding, serialization.PrivateFormat.PKCS8, enc)
        return self._public.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_use(jwk: Mapping[str, Any], encryption: bool) -> None:
    """``use`` and ``key_ops`` must allow what the key is bound to (RFC 7517 §4.2-4.3)."""
    use = jwk.get("use")
    wanted = "enc" if encryption else "sig"
    if use is not None and use != wanted:
        raise InvalidKey(f"JWK use is {use!r}, not {wanted!r}")
    ops = jwk.get("key_ops")
    if ops is None:
        return
    # RFC 7517 §4.3: an array of distinct strings (untrusted JSON: check the types first)
    if type(ops) is not list or not all(type(op) is str for op in ops):
        raise InvalidKey("JWK key_ops must be an array of strings")
    if len(set(ops)) != len(ops):
        raise InvalidKey("JWK key_ops has duplicate values (RFC 7517 §4.3)")
    allowed = (
        {"encrypt", "decrypt", "wrapKey", "unwrapKey", "deriveKey", "deriveBits"}
        if encryption
        else {"sign", "verify"}
    )
    if not allowed & set(ops):
        raise InvalidKey(f"JWK key_ops allows none of {', '.join(sorted(allowed))}")


def _generate_jwe_material(
    spec: KeyManagement, size: int | None, crv: str | None
) -> PrivateKey | bytes:
    """Fresh material for a JWE key-management algorithm (RSA is generated by the caller)."""
    if spec.family == "ECDH-ES":
        curve = crv or "P-256"
        if curve not in spec.curves:
            raise ValueError(f"{spec.name} does not use curve {curve}")
        if curve == "X25519":
            return x25519.X25519PrivateKey.generate()
        if curve == "X448":
            return x448.X448PrivateKey.generate()
        return ec.generate_private_key(_EC_CURVES[curve]())
    if crv is not None:
        raise ValueError(f"{spec.name} keys have no curve")
    if spec.family == "dir":
        bits = size if size is not None else 256
        if bits % 8 or bits // 8 not in _DIR_SIZES:
            raise ValueError(f"a 'dir' key has {sorted(s * 8 for s in _DIR_SIZES)} bits")
        return secrets.token_bytes(bits // 8)
    if size is not None:
        raise ValueError(f"{spec.name} keys have a fixed size")
    return secrets.token_bytes(spec.wrap_size or 32)  # PBES2: a random 256-bit password


def _member(jwk: Mapping[str, Any], name: str, *, size: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKey(f"JWK member {name!r} is missing or not a string")
    try:
        raw = b64decode(value)
    except ValueError:
        raise InvalidKey(f"JWK member {name!r} is not canonical base64url") from None
    if size is not None and len(raw) != size:
        raise InvalidKey(f"JWK member {name!r} must be {size} octets, got {len(raw)}")
    return raw


def _uint(jwk: Mapping[str, Any], name: str) -> int:
    raw = _member(jwk, name)
    if not raw:
        raise InvalidKey(f"JWK member {name!r} is empty")
    return int.from_bytes(raw, "big")


def _material_from_jwk(jwk: Mapping[str, Any], kty: str) -> PrivateKey | PublicKey | bytes:
    if kty == "oct":
        return _member(jwk, "k")
    if kty == "RSA":
        if "oth" in jwk:
            raise InvalidKey("multi-prime RSA keys ('oth') are not supported")
        pub = rsa.RSAPublicNumbers(_uint(jwk, "e"), _uint(jwk, "n"))
        _check_rsa_numbers(pub.n, pub.e)  # before any arithmetic on untrusted numbers
        if "d" not in jwk:
            return pub.public_key()
        d = _uint(jwk, "d")
        if not 1 < d < pub.n:
            raise InvalidKey("RSA private exponent 'd' must be between 1 and 'n'")
        if all(name in jwk for name in ("p", "q", "dp", "dq", "qi")):
            p, q = _uint(jwk, "p"), _uint(jwk, "q")
            dp, dq, qi = _uint(jwk, "dp"), _uint(jwk, "dq"), _uint(jwk, "qi")
        elif any(name in jwk for name in ("p", "q", "dp", "dq", "qi")):
            raise InvalidKey("RSA JWK has some but not all CRT members (RFC 7518 §6.3.2)")
        else:
            if pub.n.bit_length() > _MAX_RSA_RECOVERY_BITS:
                raise InvalidKey(
                    f"an RSA JWK over {_MAX_RSA_RECOVERY_BITS} bits needs its CRT members "
                    "'p', 'q', 'dp', 'dq', 'qi' (RFC 7518 §6.3.2)"
                )
            p, q = rsa.rsa_recover_prime_factors(pub.n, pub.e, d)
            dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
        return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, pub).private_key()
    crv = jwk.get("crv")
    if kty == "EC":
        if not isinstance(crv, str) or crv not in _EC_CURVES:
            raise InvalidKey(f"unsupported EC curve {crv!r}")
        size = _EC_SIZES[crv]
        x = int.from_bytes(_member(jwk, "x", size=size), "big")
        y = int.from_bytes(_member(jwk, "y", size=size), "big")
        ec_pub = ec.EllipticCurvePublicNumbers(x, y, _EC_CURVES[crv]())
        public_key = ec_pub.public_key()  # raises ValueError when the point is not on the curve
        if "d" not in jwk:
            return public_key
        d = int.from_bytes(_member(jwk, "d", size=size), "big")
        private_key = ec.derive_private_key(d, _EC_CURVES[crv]())
        if private_key.public_key().public_numbers() != ec_pub:
            raise InvalidKey("EC JWK private value 'd' does not match 'x'/'y'")
        return private_key
    # OKP (RFC 8037 §2)
    if crv in ("X25519", "X448"):
        return _xdh_from_jwk(jwk, crv)
    if crv not in ("Ed25519", "Ed448"):
        raise InvalidKey(f"unsupported OKP curve {crv!r}")
    size = 32 if crv == "Ed25519" else 57
    x_raw = _member(jwk, "x", size=size)
    okp_cls: Any = ed25519 if crv == "Ed25519" else ed448
    priv_cls = okp_cls.Ed25519PrivateKey if crv == "Ed25519" else okp_cls.Ed448PrivateKey
    pub_cls = okp_cls.Ed25519PublicKey if crv == "Ed25519" else okp_cls.Ed448PublicKey
    if "d" not in jwk:
        result: PublicKey = pub_cls.from_public_bytes(x_raw)
        return result
    okp_priv: PrivateKey = priv_cls.from_private_bytes(_member(jwk, "d", size=size))
    derived = okp_priv.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if derived != x_raw:
        raise InvalidKey("OKP JWK private value 'd' does not match 'x'")
    return okp_priv


def _xdh_from_jwk(jwk: Mapping[str, Any], crv: str) -> PrivateKey | PublicKey:
    """An X25519 / X448 key-agreement JWK (RFC 8037 §2, §3.2)."""
    size = _OKP_SIZES[crv]
    x_raw = _member(jwk, "x", size=size)
    module: Any = x25519 if crv == "X25519" else x448
    prefix = "X25519" if crv == "X25519" else "X448"
    public_key: PublicKey = getattr(module, prefix + "PublicKey").from_public_bytes(x_raw)
    if "d" not in jwk:
        return public_key
    private_key: PrivateKey = getattr(module, prefix + "PrivateKey").from_private_bytes(
        _member(jwk, "d", size=size)
    )
    derived = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if derived != x_raw:
        raise InvalidKey("OKP JWK private value 'd' does not match 'x'")
    return private_key


def _candidate_algs(jwk: Mapping[str, Any], algorithms: Sequence[str] | None) -> list[str]:
    """Algorithms a JWK without ``alg`` may be bound to (RFC 7517 §4.4 leaves it open)."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if algorithms is None:
        if kty == "EC" and isinstance(crv, str) and crv in _UNAMBIGUOUS_ALG:
            return [_UNAMBIGUOUS_ALG[crv]]
        if kty == "OKP" and crv in ("Ed25519", "Ed448"):
            return ["EdDSA"]
        return []
    use = jwk.get("use")
    out = []
    for name in algorithms:
        spec: Algorithm | KeyManagement | None = ALGORITHMS.get(name) or KEY_MANAGEMENT.get(name)
        if spec is None or use == ("sig" if isinstance(spec, KeyManagement) else "enc"):
            continue
        ecdh = isinstance(spec, KeyManagement) and spec.family == "ECDH-ES"
        if spec.kty != kty and not (ecdh and kty == "OKP"):
            continue
        if spec.curves and crv not in spec.curves:
            continue
        out.append(name)
    return out


def _ambiguous_use(names: Sequence[str]) -> str | None:
    """Why one JWK without ``alg`` must not serve all of ``names`` (RFC 8725 §3.1: one key, one
    algorithm): signing and encryption at once, or RSA1_5 beside another algorithm (its
    weaknesses would reach the key's other uses). ``None`` when the set is acceptable."""
    kinds = {name in KEY_MANAGEMENT for name in names}
    if len(kinds) > 1:
        return "no 'use': it fits both signing and encryption algorithms (set 'alg' or 'use')"
    if "RSA1_5" in names and len(names) > 1:
        return "it fits RSA1_5 and other algorithms (set 'alg')"
    return None


class KeySet:
    """An immutable set of keys, selected by ``kid`` and ``alg`` (RFC 7517 §5).

    Holding an old and a new key lets tokens signed by either verify, which is
    how signing keys rotate without logging anyone out.
    """

    __slots__ = ("_by_alg", "_by_kid", "_keys", "_skipped")

    def __init__(self, keys: Iterable[Key], *, skipped: Iterable[str] = ()) -> None:
        self._keys: tuple[Key, ...] = tuple(keys)
        by_kid: dict[str, list[Key]] = {}
        by_alg: dict[str, list[Key]] = {}
        for key in self._keys:
            if not isinstance(key, Key):
                raise TypeError(f"KeySet holds jotkit.Key objects, not {type(key).__name__}")
            if key.kid is not None:
                same = by_kid.setdefault(key.kid, [])
                if any(k.alg == key.alg for k in same):
                    raise ValueError(f"two keys with kid {key.kid!r} for {key.alg}")
                same.append(key)
            by_alg.setdefault(key.alg, []).append(key)
        self._by_kid = {k: tuple(v) for k, v in by_kid.items()}
        self._by_alg = {k: tuple(v) for k, v in by_alg.items()}
        self._skipped = tuple(skipped)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __repr__(self) -> str:
        return f"<jotkit.KeySet {[k.kid for k in self._keys]!r}>"

    @property
    def skipped(self) -> tuple[str, ...]:
        """Why JWKS entries were not imported by :meth:`from_jwks`, one line each."""
        return self._skipped

    @property
    def kids(self) -> tuple[str, ...]:
        """The distinct key IDs in the set."""
        return tuple(self._by_kid)

    def get(self, kid: str) -> Key | None:
        """The first key with this ``kid``, or ``None``."""
        found = self._by_kid.get(kid)
        return found[0] if found else None

    def select(self, alg: str, kid: str | None) -> Key:
        """Pick the key for a token's ``alg`` and ``kid`` (RFC 7515 §4.1.4).

        A token with a ``kid`` must name a key in the set, and that key must be
        bound to ``alg``. A token without ``kid`` is accepted only when exactly one
        key fits ``alg``.
        """
        if kid is not None:
            found = self._by_kid.get(kid)
            if not found:
                raise KeyNotFound(f"no key with kid {kid!r}")
            for key in found:
                if key.alg == alg:
                    return key
            raise KeyMismatch(
                f"key {kid!r} is for {', '.join(k.alg for k in found)}, the token uses {alg}"
            )
        fits = self._by_alg.get(alg, ())
        if len(fits) == 1:
            return fits[0]
        if not fits:
            raise KeyNotFound(f"the token has no kid and no key is for {alg}")
        raise KeyNotFound(
            f"the token has no kid and {len(fits)} keys are for {alg}", code="kid_missing"
        )

    def union(self, other: Iterable[Key]) -> KeySet:
        """A new set with the keys of both."""
        return KeySet([*self._keys, *other])

    def public(self) -> KeySet:
        """The public halves of the asymmetric keys (HMAC secrets are left out)."""
        return KeySet(k.public() for k in self._keys if not k.is_symmetric)

    def to_jwks(self, private: bool = False) -> dict[str, Any]:
        """Export as a JWK Set ``{"keys": [...]}`` (RFC 7517 §5).

        With ``private=False`` only public keys are written and HMAC secrets are left out.
        """
        if private:
            return {"keys": [k.to_jwk(private=True) for k in self._keys]}
        return {"keys": [k.to_jwk() for k in self._keys if not k.is_symmetric]}

    @classmethod
    def from_jwks(
        cls,
        data: Mapping[str, Any] | str | bytes,
        *,
        algorithms: Sequence[str] | None = None,
        allow_symmetric: bool = False,
        allow_private: bool = False,
    ) -> KeySet:
        """Import a JWK Set from untrusted input (RFC 7517 §5).

        Entries that cannot be used for signatures (unknown ``kty``, ``use: enc``,
        bad material, an ``alg`` outside ``algorithms``) are skipped and listed in
        :attr:`skipped`, as RFC 7517 §5 asks. A key without ``alg`` is bound to
        each algorithm of ``algorithms`` that fits it, or to the one its curve
        implies. A document that is not a JWK Set raises :class:`JWKSError`.

        Symmetric (``oct``) keys are skipped unless ``allow_symmetric=True``: a secret
        published in a key set is no secret, and anyone could sign HS256 tokens with it.
        Likewise entries with private members (``d``, ``p``, ``q``, ...) are skipped unless
        ``allow_private=True``: a published private key signs for anyone, and checking an
        untrusted one costs OpenSSL seconds (an 8192-bit RSA key about 5 s). Pass either only
        for a private file of your own.
        """
        if isinstance(data, (str, bytes)):
            raw = data.encode("utf-8") if isinstance(data, str) else data
            try:
                data = _json.loads_object(raw)
            except ValueError as exc:
                raise JWKSError(f"JWKS is not a JSON object: {exc}", code="jwks_invalid") from None
        if not isinstance(data, Mapping):
            raise JWKSError("JWKS must be a JSON object", code="jwks_invalid")
        entries = data.get("keys")
        if not isinstance(entries, list):
            raise JWKSError("JWKS has no 'keys' array", code="jwks_invalid")
        if algorithms is not None and isinstance(algorithms, str):
            raise TypeError("algorithms must be a list of names, not a str")
        keys: list[Key] = []
        skipped: list[str] = []
        for index, entry in enumerate(entries):
            label = f"keys[{index}]"
            if not isinstance(entry, Mapping):
                skipped.append(f"{label}: not an object")
                continue
            if isinstance(entry.get("kid"), str):
                label += f" (kid {entry['kid']!r})"
            if entry.get("kty") == "oct" and not allow_symmetric:
                skipped.append(f"{label}: symmetric key skipped (allow_symmetric=False)")
                continue
            if not allow_private and entry.get("kty") != "oct" and _PRIVATE_MEMBERS & entry.keys():
                skipped.append(f"{label}: private key skipped (allow_private=False)")
                continue
            jwk_alg = entry.get("alg")
            if jwk_alg is not None:
                if type(jwk_alg) is not str:
                    skipped.append(f"{label}: JWK alg must be a string")
                    continue
                if algorithms is not None and jwk_alg not in algorithms:
                    skipped.append(f"{label}: alg {jwk_alg!r} not in the allowed algorithms")
                    continue
                names = [jwk_alg]
            else:
                names = _candidate_algs(entry, algorithms)
                if not names:
                    skipped.append(f"{label}: no 'alg' and no allowed algorithm fits the key")
                    continue
                ambiguous = _ambiguous_use(names)
                if ambiguous:
                    skipped.append(f"{label}: no 'alg' and {ambiguous}")
                    continue
            for name in names:
                try:
                    keys.append(Key.from_jwk(entry, name if jwk_alg is None else None))
                except InvalidKey as exc:
                    skipped.append(f"{label}: {exc}")
                    break
        try:
            return cls(keys, skipped=skipped)
        except ValueError as exc:
            raise JWKSError(str(exc), code="jwks_invalid") from None
