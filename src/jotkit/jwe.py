"""JWE: encrypted tokens, compact and JSON serializations (RFC 7516, RFC 7518 §4-5, RFC 8037 §3.2).

Decryption checks run in this order, so that nothing is decoded past a cap and
no key is touched for an algorithm the caller did not allow (RFC 8725 §3.1):
size cap -> shape (five canonical base64url segments, or a strict JSON object)
-> strict JSON protected header -> ``alg``/``enc`` allow-lists, ``crit``, ``zip``
-> key resolution -> content encryption key recovery -> authentication tag
(constant time) -> decompression (streamed and capped).

Every primitive comes from ``cryptography`` (AES-GCM, AES key wrap, RSA-OAEP,
RSAES-PKCS1-v1_5, ECDH, X25519/X448, Concat KDF, PBKDF2, AES-CBC, HMAC); only
the JOSE framing is written here. Every failure caused by the token is an
:class:`jotkit.InvalidToken` subclass; a wrong key, an altered token and an
RSA1_5 padding error all raise :class:`jotkit.DecryptionFailed` alike.
"""

from __future__ import annotations

import hmac
import secrets
import zlib
from builtins import zip as _zip
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, x448, x25519
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.ciphers.modes import CBC
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from . import _json
from ._b64 import _decode_checked, _tail_ok, b64encode, decode_urlsafe, is_canonical
from .errors import (
    DecryptionFailed,
    InvalidToken,
    KeyMismatch,
    MalformedToken,
    UnsupportedAlgorithm,
)
from .jwe_algorithms import (
    CONTENT_ENCRYPTION,
    KEY_MANAGEMENT,
    ContentEncryption,
    KeyManagement,
)
from .jws import KeyLike, load_segment, resolve_key
from .keys import Key

__all__ = [
    "DEFAULT_MAX_PLAINTEXT_SIZE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_P2C",
    "MAX_P2C",
    "MAX_RECIPIENTS",
    "DecryptedToken",
    "decrypt",
    "decrypt_complete",
    "decrypt_nested",
    "encrypt",
    "encrypt_json",
]

#: Default cap on a token's length (characters), applied before any decoding.
DEFAULT_MAX_SIZE = 64 * 1024
#: Default cap on the decompressed plaintext of a ``zip: DEF`` token (250 KB).
DEFAULT_MAX_PLAINTEXT_SIZE = 250_000
#: PBES2 iteration counts above this are refused on decryption (a DoS guard).
MAX_P2C = 1_000_000
#: PBES2 iteration count used by :func:`encrypt` unless ``headers`` sets ``p2c``.
DEFAULT_P2C = 600_000
#: Encryption refuses iteration counts below RFC 7518 §4.8.1.2's minimum.
MIN_P2C = 1000
#: PBES2 salts shorter than this are refused (RFC 7518 §4.8.1.1: at least 8 octets).
MIN_P2S = 8
#: The JSON serialization is refused with more recipients than this.
MAX_RECIPIENTS = 16

#: The octets a compact JWE may hold: the base64url alphabet and the dots.
_COMPACT_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_SEGMENTS = ("protected header", "encrypted key", "iv", "ciphertext", "tag")
#: Header parameters jotkit sets itself; ``headers=`` cannot supply them.
_RESERVED = frozenset({"alg", "enc", "zip", "epk", "iv", "tag", "p2s", "crit"})
_HASHES: Mapping[str, type[hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_EC_CURVES: Mapping[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_EC_SIZES = {"P-256": 32, "P-384": 48, "P-521": 66}
_XDH_SIZES = {"X25519": 32, "X448": 56}
_CURVE_OF = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


@dataclass(frozen=True, slots=True)
class DecryptedToken:
    """A JWE whose key was recovered and whose authentication tag verified."""

    header: dict[str, Any]
    """The JOSE header: protected, shared unprotected and recipient members together."""
    protected_header: dict[str, Any]
    """The integrity-protected members only."""
    plaintext: bytes = field(repr=False)  # decrypted secrets stay out of reprs and logs
    key: Key
    """The key that decrypted the token."""
    recipient: int
    """Index of the recipient that decrypted (0 for the compact and flattened forms)."""
    aad: bytes | None = field(default=None, repr=False)
    """The JSON serialization's additional authenticated data, if any."""


class _Recipient(NamedTuple):
    header: dict[str, Any]
    encrypted_key: bytes


class _Parsed(NamedTuple):
    protected_b64: str
    protected: dict[str, Any]
    unprotected: dict[str, Any]
    recipients: tuple[_Recipient, ...]
    iv: bytes
    ciphertext: bytes
    tag: bytes
    aad_b64: str | None


# --------------------------------------------------------------------------- key material
# Key keeps its material private; the JWE layer is the one other reader.


def _secret_of(key: Key) -> bytes:
    secret = key._secret
    assert secret is not None
    return secret


def _private_of(key: Key) -> Any:
    if key._private is None:  # an InvalidToken, so a recipient loop moves on to the next one
        raise KeyMismatch(f"key {key.kid!r} is a public key; decryption needs the private key")
    return key._private


def _public_of(key: Key) -> Any:
    return key._public


# --------------------------------------------------------------------------- allow-lists


def _check_names(names: Collection[str], table: Mapping[str, Any], what: str) -> Collection[str]:
    if type(names) is list and len(names) == 1 and names[0] in table:
        return names  # the common case, e.g. ["A256KW"]: already a valid allow-list
    if names is None:
        raise TypeError(
            f"{what} is required: pass the names you accept, e.g. [{next(iter(table))!r}]"
        )
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of names, e.g. [{names!r}], not a str")
    allowed = frozenset(names)
    if not allowed:
        raise ValueError(f"{what} must name at least one algorithm")
    for name in allowed:
        if not isinstance(name, str) or name not in table:
            raise ValueError(f"unknown {what[:-1]} {name!r}; supported: {', '.join(table)}")
    return allowed


# --------------------------------------------------------------------------- content encryption


def _aad(protected_b64: str, aad_b64: str | None) -> bytes:
    """Additional authenticated data (RFC 7516 §5.1 step 14)."""
    if aad_b64 is None:
        return protected_b64.encode("ascii")
    return f"{protected_b64}.{aad_b64}".encode("ascii")


def _cbc_hmac_tag(
    enc: ContentEncryption, mac_key: bytes, aad: bytes, iv: bytes, ct: bytes
) -> bytes:
    """AES_CBC_HMAC_SHA2 tag: HMAC(AAD || IV || ciphertext || AL), truncated (RFC 7518 §5.2.2.1)."""
    al = (len(aad) * 8).to_bytes(8, "big")
    return hmac.digest(mac_key, b"".join((aad, iv, ct, al)), enc.hash_name or "")[: enc.tag_size]


def _encrypt_content(
    enc: ContentEncryption, cek: bytes, plaintext: bytes, aad: bytes
) -> tuple[bytes, bytes, bytes]:
    iv = secrets.token_bytes(enc.iv_size)
    if enc.family == "AES-GCM":
        sealed = AESGCM(cek).encrypt(iv, plaintext, aad)
        return iv, sealed[:-16], sealed[-16:]
    half = enc.key_size // 2
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(AES(cek[half:]), CBC(iv)).encryptor()
    ct = encryptor.update(padded) + encryptor.finalize()
    return iv, ct, _cbc_hmac_tag(enc, cek[:half], aad, iv, ct)


def _decrypt_content(
    enc: ContentEncryption, cek: bytes, iv: bytes, ct: bytes, tag: bytes, aad: bytes
) -> bytes:
    """Check the tag (constant time) and decrypt (RFC 7516 §5.2 step 16, RFC 7518 §5.2-5.3)."""
    if enc.family == "AES-GCM":
        try:
            return AESGCM(cek).decrypt(iv, ct + tag, aad)
        except InvalidTag:
            raise DecryptionFailed("the token does not decrypt with this key") from None
    half = enc.key_size // 2
    if not hmac.compare_digest(_cbc_hmac_tag(enc, cek[:half], aad, iv, ct), tag):
        raise DecryptionFailed("the token does not decrypt with this key")
    decryptor = Cipher(AES(cek[half:]), CBC(iv)).decryptor()
    padded = decryptor.update(ct) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:  # only reachable with an authentic tag: a broken sender
        raise DecryptionFailed("the token does not decrypt with this key") from None


def _check_content_shape(enc: ContentEncryption, iv: bytes, ct: bytes, tag: bytes) -> None:
    """Lengths that do not depend on any key, checked before the key is used."""
    if len(iv) != enc.iv_size:
        raise MalformedToken(f"{enc.name} needs a {enc.iv_size}-octet iv, got {len(iv)}")
    if len(tag) != enc.tag_size:
        raise MalformedToken(f"{enc.name} needs a {enc.tag_size}-octet tag, got {len(tag)}")
    if enc.family == "AES-CBC-HMAC" and (not ct or len(ct) % 16):
        raise MalformedToken(f"{enc.name} ciphertext must be a non-empty multiple of 16 octets")


# --------------------------------------------------------------------------- compression


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes, limit: int) -> bytes:
    """Raw DEFLATE (RFC 1951) with at most ``limit`` octets out: a zip bomb stops at the cap."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise MalformedToken("the compressed plaintext is not valid DEFLATE data") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise MalformedToken(
            f"the decompressed plaintext is larger than {limit} bytes", code="plaintext_too_large"
        )
    if not inflater.eof or inflater.unused_data:
        raise MalformedToken("the compressed plaintext is truncated or has trailing data")
    return out


# --------------------------------------------------------------------------- key management


def _b64_param(header: Mapping[str, Any], name: str) -> bytes:
    value = header.get(name)
    if type(value) is not str or not is_canonical(value):
        raise MalformedToken(f"the {name!r} header must be a canonical base64url string")
    return _decode_checked(value)


def _concat_kdf(z: bytes, alg_id: str, size: int, apu: bytes, apv: bytes) -> bytes:
    """Concat KDF with SHA-256 and the JOSE OtherInfo (RFC 7518 §4.6.2, NIST SP 800-56A)."""
    name = alg_id.encode("ascii")
    other = b"".join(
        (
            len(name).to_bytes(4, "big"),
            name,
            len(apu).to_bytes(4, "big"),
            apu,
            len(apv).to_bytes(4, "big"),
            apv,
            (size * 8).to_bytes(4, "big"),
        )
    )
    return ConcatKDFHash(hashes.SHA256(), size, other).derive(z)


def _agree(private: Any, peer: Any) -> bytes:
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey):
            z: bytes = private.exchange(ec.ECDH(), peer)
        else:
            z = private.exchange(peer)
    except ValueError:  # X25519/X448 low-order points (RFC 7748 §6)
        raise MalformedToken("the 'epk' gives no shared secret", code="invalid_epk") from None
    if not any(z):
        raise MalformedToken("the 'epk' gives an all-zero shared secret", code="invalid_epk")
    return z


def _curve_name(public: Any) -> str:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _CURVE_OF[public.curve.name]
    return "X25519" if isinstance(public, x25519.X25519PublicKey) else "X448"


def _parse_epk(epk: Any, crv: str) -> Any:
    """The sender's ephemeral public key, validated on the recipient's curve (RFC 7518 §4.6.1.1)."""
    if type(epk) is not dict:
        raise MalformedToken("the 'epk' header must be a JWK object", code="invalid_epk")
    if epk.get("crv") != crv:
        raise MalformedToken(f"the 'epk' is not on the key's curve {crv}", code="invalid_epk")
    if "d" in epk:
        raise MalformedToken("the 'epk' carries a private member", code="invalid_epk")
    try:
        if crv in _EC_SIZES:
            if epk.get("kty") != "EC":
                raise ValueError("kty is not EC")
            size = _EC_SIZES[crv]
            x, y = _b64_param(epk, "x"), _b64_param(epk, "y")
            if len(x) != size or len(y) != size:
                raise ValueError("bad coordinate length")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), _EC_CURVES[crv]()
            )
            return numbers.public_key()  # refuses points not on the curve
        if epk.get("kty") != "OKP":
            raise ValueError("kty is not OKP")
        raw = _b64_param(epk, "x")
        if len(raw) != _XDH_SIZES[crv]:
            raise ValueError("bad x length")
        cls = x25519.X25519PublicKey if crv == "X25519" else x448.X448PublicKey
        return cls.from_public_bytes(raw)
    except (ValueError, MalformedToken):
        raise MalformedToken(
            f"the 'epk' is not a valid {crv} public key", code="invalid_epk"
        ) from None


def _epk_jwk(public: Any) -> dict[str, str]:
    crv = _curve_name(public)
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers, size = public.public_numbers(), _EC_SIZES[crv]
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64encode(numbers.x.to_bytes(size, "big")),
            "y": b64encode(numbers.y.to_bytes(size, "big")),
        }
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": crv, "x": b64encode(raw)}


def _ephemeral_for(public: Any) -> Any:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(public.curve)
    if isinstance(public, x25519.X25519PublicKey):
        return x25519.X25519PrivateKey.generate()
    return x448.X448PrivateKey.generate()


def _ecdh_key(
    km: KeyManagement, enc: ContentEncryption, z: bytes, header: Mapping[str, Any]
) -> bytes:
    apu = _b64_param(header, "apu") if "apu" in header else b""
    apv = _b64_param(header, "apv") if "apv" in header else b""
    if km.direct:
        return _concat_kdf(z, enc.name, enc.key_size, apu, apv)
    return _concat_kdf(z, km.name, km.wrap_size, apu, apv)


def _pbes2_kek(km: KeyManagement, password: bytes, p2s: bytes, p2c: int) -> bytes:
    """PBKDF2 with salt = alg || 0x00 || p2s (RFC 7518 §4.8.1.1)."""
    salt = km.name.encode("ascii") + b"\x00" + p2s
    return PBKDF2HMAC(_pbkdf2_hash(km), km.wrap_size, salt, p2c).derive(password)


def _pbkdf2_hash(km: KeyManagement) -> hashes.HashAlgorithm:
    return _HASHES[km.hash_name or ""]()


def _oaep(km: KeyManagement) -> padding.OAEP:
    digest = _HASHES[km.hash_name or ""]()
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def _wrap(
    km: KeyManagement,
    enc: ContentEncryption,
    key: Key,
    params: Mapping[str, Any],
    cek: bytes | None,
) -> tuple[bytes, bytes, dict[str, Any]]:
    """Make or wrap the CEK for one recipient: ``(cek, encrypted key, header members)``."""
    extra: dict[str, Any] = {}
    if km.family == "dir":
        secret = _secret_of(key)
        if len(secret) != enc.key_size:
            raise ValueError(f"{enc.name} needs a {enc.key_size}-byte 'dir' key, got {len(secret)}")
        return secret, b"", extra
    if km.family == "ECDH-ES":
        peer = _public_of(key)
        ephemeral = _ephemeral_for(peer)
        extra["epk"] = _epk_jwk(ephemeral.public_key())
        for name in ("apu", "apv"):
            if name in params and not (type(params[name]) is str and is_canonical(params[name])):
                raise ValueError(f"the {name!r} header must be base64url text")
        derived = _ecdh_key(km, enc, _agree(ephemeral, peer), params)
        if km.direct:
            return derived, b"", extra
        cek = cek or secrets.token_bytes(enc.key_size)
        return cek, aes_key_wrap(derived, cek), extra
    cek = cek or secrets.token_bytes(enc.key_size)
    if km.family == "AESKW":
        return cek, aes_key_wrap(_secret_of(key), cek), extra
    if km.family == "AESGCMKW":
        iv = secrets.token_bytes(12)
        sealed = AESGCM(_secret_of(key)).encrypt(iv, cek, None)
        extra["iv"], extra["tag"] = b64encode(iv), b64encode(sealed[-16:])
        return cek, sealed[:-16], extra
    if km.family == "RSA-OAEP":
        return cek, _public_of(key).encrypt(cek, _oaep(km)), extra
    if km.family == "RSA1_5":
        return cek, _public_of(key).encrypt(cek, padding.PKCS1v15()), extra
    # PBES2
    p2c = params.get("p2c", DEFAULT_P2C)
    if type(p2c) is not int or not MIN_P2C <= p2c <= MAX_P2C:
        raise ValueError(f"p2c must be an int from {MIN_P2C} to {MAX_P2C}")
    p2s = secrets.token_bytes(16)
    extra["p2s"], extra["p2c"] = b64encode(p2s), p2c
    kek = _pbes2_kek(km, _secret_of(key), p2s, p2c)
    return cek, aes_key_wrap(kek, cek), extra


def _unwrap(
    km: KeyManagement, enc: ContentEncryption, key: Key, header: Mapping[str, Any], ek: bytes
) -> bytes:
    """Recover the CEK for one recipient (RFC 7516 §5.2 steps 9-11)."""
    family = km.family
    if family == "AESKW" and ek:  # the common cases first: wrapped, then direct
        return _kw_unwrap(_secret_of(key), ek, enc)
    if km.direct:
        if ek:
            raise MalformedToken(f"{km.name} tokens have an empty encrypted key (RFC 7516 §5.2)")
        if family == "dir":
            secret = _secret_of(key)
            if len(secret) != enc.key_size:
                raise KeyMismatch(
                    f"{enc.name} needs a {enc.key_size}-byte key, the key has {len(secret)}"
                )
            return secret
    elif not ek:
        raise MalformedToken(f"{km.name} tokens carry an encrypted key")
    if km.family == "RSA1_5":
        # RFC 7516 §11.5: on any padding or length error continue with a random
        # CEK, so the failure is the same tag error a wrong key gives.
        fake = secrets.token_bytes(enc.key_size)
        private = _private_of(key)
        try:
            cek = private.decrypt(ek, padding.PKCS1v15())
        except ValueError:
            cek = fake
        return cek if len(cek) == enc.key_size else fake
    if km.family == "RSA-OAEP":
        private = _private_of(key)
        try:
            cek = private.decrypt(ek, _oaep(km))
        except ValueError:
            raise DecryptionFailed("the token does not decrypt with this key") from None
        return _sized(cek, enc)
    if km.family == "AESGCMKW":
        iv, tag = _b64_param(header, "iv"), _b64_param(header, "tag")
        if len(iv) != 12 or len(tag) != 16:
            raise MalformedToken(f"{km.name} needs a 12-octet 'iv' and a 16-octet 'tag' header")
        try:
            return _sized(AESGCM(_secret_of(key)).decrypt(iv, ek + tag, None), enc)
        except InvalidTag:
            raise DecryptionFailed("the token does not decrypt with this key") from None
    if km.family == "ECDH-ES":
        private = _private_of(key)
        peer = _parse_epk(header.get("epk"), key.crv or "")
        derived = _ecdh_key(km, enc, _agree(private, peer), header)
        return derived if km.direct else _kw_unwrap(derived, ek, enc)
    if km.family == "PBES2":
        p2s, p2c = _b64_param(header, "p2s"), header.get("p2c")
        if len(p2s) < MIN_P2S:
            raise MalformedToken(f"the 'p2s' salt must have at least {MIN_P2S} octets")
        if type(p2c) is not int or not 1 <= p2c <= MAX_P2C:
            raise MalformedToken(
                f"'p2c' must be an int from 1 to {MAX_P2C} (a cap against denial of service)",
                code="p2c_out_of_range",
            )
        return _kw_unwrap(_pbes2_kek(km, _secret_of(key), p2s, p2c), ek, enc)
    return _kw_unwrap(_secret_of(key), ek, enc)  # AESKW


def _kw_unwrap(kek: bytes, ek: bytes, enc: ContentEncryption) -> bytes:
    try:
        return _sized(aes_key_unwrap(kek, ek), enc)
    except (InvalidUnwrap, ValueError):
        raise DecryptionFailed("the token does not decrypt with this key") from None


def _sized(cek: bytes, enc: ContentEncryption) -> bytes:
    if len(cek) != enc.key_size:
        raise DecryptionFailed("the token does not decrypt with this key")
    return cek


# --------------------------------------------------------------------------- parsing


def _as_text(token: Any, max_size: int) -> str:
    if type(token) is str:
        if len(token) > max_size:
            raise MalformedToken(
                f"the token is larger than {max_size} bytes", code="token_too_large"
            )
        return token
    if isinstance(token, (bytes, bytearray, memoryview)):
        if len(token) > max_size:
            raise MalformedToken(
                f"the token is larger than {max_size} bytes", code="token_too_large"
            )
        try:
            return bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedToken("the token is not UTF-8 text") from None
    if not isinstance(token, str):
        raise MalformedToken(f"a token must be a string or a mapping, not {type(token).__name__}")
    if len(token) > max_size:
        raise MalformedToken(f"the token is larger than {max_size} bytes", code="token_too_large")
    return str(token)


#: Protected headers of compact tokens that parsed as strict JSON objects, by their exact
#: segment text: senders repeat the same few headers, so most tokens skip the decode and the
#: JSON parse. Bounded (cleared when full; short segments only), and only a successful parse
#: is stored. A header with members made per token (an ECDH-ES ``epk``, a GCM key wrap's
#: ``iv``/``tag``, a PBES2 salt) is never stored: it would only churn the cache, and a hit
#: would tell whether that very token had been seen. The dicts are shared and read only:
#: what callers get are copies (and a key resolver gets one too,
#: :func:`jotkit.jws.resolve_key`). Every check of the header's contents
#: (:func:`_joint_header`, :func:`_check_policy`) still runs on every token.
_HEADER_CACHE_SIZE = 256
_HEADER_CACHE_TEXT = 512
_PER_TOKEN = frozenset(("epk", "iv", "tag", "p2s"))
_header_cache: dict[str, dict[str, Any]] = {}


def _parse_compact(text: str) -> _Parsed:
    """Five segments of canonical base64url; the header, iv and tag non-empty (RFC 7516 §7.1)."""
    try:
        stray = text.encode("ascii").translate(None, _COMPACT_ALPHABET)
    except UnicodeEncodeError:
        stray = b"?"
    if stray:  # anything but A-Z a-z 0-9 - _ and the dots
        raise MalformedToken("a JWE segment is not base64url (A-Z a-z 0-9 - _, no padding)")
    segments = text.split(".")
    if len(segments) != 5:
        raise MalformedToken(
            f"a JWE compact token has 5 dot-separated segments, this one has {len(segments)}"
        )
    protected_b64, ek, iv, ct, tag = segments
    if not (protected_b64 and iv and tag):
        raise MalformedToken("the protected header, iv and tag segments must not be empty")
    # The alphabet is checked above (no '+', '/', '=' nor anything else), so decode_urlsafe's
    # own checks are what is left: no stray bits in the last character (RFC 4648 §3.5) and
    # no length of 1 (mod 4). One call per segment; an empty encrypted key (dir) is b"".
    protected = _header_cache.get(protected_b64)  # a header already parsed: same text
    try:
        if protected is None:
            header = decode_urlsafe(protected_b64)
        encrypted_key = decode_urlsafe(ek) if ek else b""
        parts = decode_urlsafe(iv), decode_urlsafe(ct), decode_urlsafe(tag)
    except ValueError:
        for name, seg in zip(_SEGMENTS, segments, strict=True):
            if not _tail_ok(seg):
                raise MalformedToken(f"the {name} segment is not canonical base64url") from None
        # pragma: no cover - every refusal above is a tail or length a segment names
        raise MalformedToken("a JWE segment is not canonical base64url") from None
    if protected is None:
        try:
            protected = _json.loads_object(header)
        except ValueError as exc:
            raise MalformedToken(f"the protected header is not a JSON object: {exc}") from None
        if len(protected_b64) <= _HEADER_CACHE_TEXT and _PER_TOKEN.isdisjoint(protected):
            if len(_header_cache) >= _HEADER_CACHE_SIZE:
                _header_cache.clear()
            _header_cache[protected_b64] = protected
    return _Parsed(
        protected_b64, protected, {}, (_Recipient({}, encrypted_key),), *parts, None
    )


def _json_b64(obj: Mapping[str, Any], name: str, required: bool) -> str | None:
    value = obj.get(name)
    if value is None and name not in obj:
        if required:
            raise MalformedToken(f"the JWE JSON serialization has no {name!r} member")
        return None
    if type(value) is not str or not is_canonical(value):
        raise MalformedToken(f"the {name!r} member must be canonical base64url text")
    return value


def _json_object(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name, {})
    if type(value) is not dict:
        raise MalformedToken(f"the {name!r} member must be a JSON object")
    return value


def _parse_json(obj: Mapping[str, Any]) -> _Parsed:
    """The general or flattened JWE JSON serialization (RFC 7516 §7.2)."""
    protected_b64 = _json_b64(obj, "protected", False)
    protected = load_segment(protected_b64, "protected header") if protected_b64 else {}
    if "recipients" in obj:
        if "header" in obj or "encrypted_key" in obj:
            raise MalformedToken("'recipients' cannot be mixed with flattened members")
        entries = obj["recipients"]
        if type(entries) is not list or not entries:
            raise MalformedToken("'recipients' must be a non-empty array")
        if len(entries) > MAX_RECIPIENTS:
            raise MalformedToken(f"more than {MAX_RECIPIENTS} recipients")
    else:
        entries = [obj]
    recipients = []
    for entry in entries:
        if type(entry) is not dict:
            raise MalformedToken("a recipient must be a JSON object")
        ek = _json_b64(entry, "encrypted_key", False)
        recipients.append(
            _Recipient(_json_object(entry, "header"), _decode_checked(ek) if ek else b"")
        )
    iv = _json_b64(obj, "iv", True) or ""
    tag = _json_b64(obj, "tag", True) or ""
    ct = _json_b64(obj, "ciphertext", True) or ""
    return _Parsed(
        protected_b64 or "",
        protected,
        _json_object(obj, "unprotected"),
        tuple(recipients),
        _decode_checked(iv),
        _decode_checked(ct),
        _decode_checked(tag),
        _json_b64(obj, "aad", False),
    )


def _parse(token: Any, max_size: int) -> _Parsed:
    if isinstance(token, Mapping):
        try:
            size = len(_json.dumps(dict(token)))
        except (TypeError, ValueError, RecursionError):
            raise MalformedToken("the JWE mapping is not JSON data") from None
        if size > max_size:
            raise MalformedToken(
                f"the token is larger than {max_size} bytes", code="token_too_large"
            )
        try:  # the same strict reading as text: no duplicates, no NaN, depth cap
            return _parse_json(_json.loads_object(_json.dumps(dict(token))))
        except ValueError as exc:
            raise MalformedToken(f"the JWE mapping is not strict JSON: {exc}") from None
    text = _as_text(token, max_size)
    first = text[:1]
    if first == "{" or (first.isspace() and text.lstrip()[:1] == "{"):
        try:
            obj = _json.loads_object(text.encode("utf-8"))
        except ValueError as exc:
            raise MalformedToken(
                f"the JWE JSON serialization is not a JSON object: {exc}"
            ) from None
        return _parse_json(obj)
    if not text:
        raise MalformedToken("the token is empty")
    return _parse_compact(text)


def _joint_header(parsed: _Parsed, recipient: _Recipient) -> dict[str, Any]:
    """The JOSE header of one recipient; the three parts must be disjoint (RFC 7516 §7.2.1)."""
    if parsed.unprotected or recipient.header:
        joint = dict(parsed.protected)
        for part in (parsed.unprotected, recipient.header):
            for name, value in part.items():
                if name in joint:
                    raise MalformedToken(f"the header parameter {name!r} appears twice")
                joint[name] = value
    else:
        joint = parsed.protected  # compact: the protected header is the whole header
        if len(joint) == 2 and type(joint.get("alg")) is type(joint.get("enc")) is str:
            return joint  # just alg and enc, both strings: nothing else to check
    for name in ("alg", "enc"):
        if type(joint.get(name)) is not str:
            raise MalformedToken(f"the JOSE header has no {name!r} string (RFC 7516 §4.1)")
    for name in ("kid", "typ", "cty", "zip"):
        if name in joint and type(joint[name]) is not str:
            raise MalformedToken(f"the {name!r} header must be a string")
    if "zip" in joint and "zip" not in parsed.protected:
        raise MalformedToken("'zip' must be in the protected header (RFC 7516 §4.1.3)")
    if "crit" in joint:
        crit = joint["crit"]
        if "crit" not in parsed.protected:
            raise MalformedToken("'crit' must be in the protected header")
        if type(crit) is not list or not crit or not all(type(c) is str for c in crit):
            raise MalformedToken("'crit' must be a non-empty array of strings")
        raise UnsupportedAlgorithm(
            f"unsupported critical header extension(s): {', '.join(crit)}", code="unknown_crit"
        )
    return joint


def _check_policy(
    joint: Mapping[str, Any],
    algs: Collection[str],
    encs: Collection[str],
    allow_compressed_jwt: bool,
) -> tuple[KeyManagement, ContentEncryption]:
    alg, enc = joint["alg"], joint["enc"]
    if alg not in algs:
        if alg.lower() == "none":
            raise UnsupportedAlgorithm("alg 'none' is not a JWE algorithm", code="alg_none")
        raise UnsupportedAlgorithm(
            f"the key management algorithm {alg!r} is not allowed here"
            if alg in KEY_MANAGEMENT
            else f"unsupported key management algorithm {alg!r}"
        )
    if enc not in encs:
        raise UnsupportedAlgorithm(
            f"the content encryption {enc!r} is not allowed here", code="enc_not_allowed"
        )
    if "zip" in joint:
        if joint["zip"] != "DEF":
            raise UnsupportedAlgorithm(
                f"unsupported compression {joint['zip']!r}", code="zip_not_allowed"
            )
        if not allow_compressed_jwt and joint.get("cty", "").upper() in ("JWT", "APPLICATION/JWT"):
            raise UnsupportedAlgorithm(
                "compressed nested JWTs are refused (RFC 8725 §3.6)", code="zip_not_allowed"
            )
    return KEY_MANAGEMENT[alg], CONTENT_ENCRYPTION[enc]


# --------------------------------------------------------------------------- public API


def decrypt_complete(
    token: str | bytes | Mapping[str, Any],
    key: KeyLike,
    *,
    algorithms: Collection[str],
    encryptions: Collection[str],
    max_size: int = DEFAULT_MAX_SIZE,
    max_plaintext_size: int = DEFAULT_MAX_PLAINTEXT_SIZE,
    allow_compressed_jwt: bool = False,
) -> DecryptedToken:
    """Decrypt a JWE and return the header, plaintext and key used (RFC 7516 §5.2).

    ``token`` is the compact serialization, or the JSON serialization (general
    or flattened, RFC 7516 §7.2) as text or a mapping. ``algorithms`` (key
    management) and ``encryptions`` (content encryption) are required
    allow-lists. ``key`` is a :class:`Key`, a :class:`KeySet` or a resolver
    callable, as for JWS. With several recipients, each one the allow-lists
    and keys admit is tried in order; the first that decrypts wins.

    ``zip: DEF`` plaintexts are decompressed up to ``max_plaintext_size``
    octets; a compressed nested JWT (``cty: JWT``) is refused unless
    ``allow_compressed_jwt`` (RFC 8725 §3.6). Raises :class:`InvalidToken`
    subclasses only.
    """
    plaintext, joint, chosen, index, parsed = _decrypt(
        token, key, algorithms, encryptions, max_size, max_plaintext_size, allow_compressed_jwt
    )
    return DecryptedToken(
        header=dict(joint),  # its own dict: the compact path shares the protected one
        protected_header=dict(parsed.protected),  # a copy: it may be a cached one
        plaintext=plaintext,
        key=chosen,
        recipient=index,
        aad=_decode_checked(parsed.aad_b64) if parsed.aad_b64 is not None else None,
    )


def _decrypt(
    token: Any,
    key: KeyLike,
    algorithms: Collection[str],
    encryptions: Collection[str],
    max_size: int,
    max_plaintext_size: int,
    allow_compressed_jwt: bool,
) -> tuple[bytes, dict[str, Any], Key, int, _Parsed]:
    """The shared path: ``(plaintext, header, key, recipient index, parsed token)``."""
    algs = _check_names(algorithms, KEY_MANAGEMENT, "algorithms")
    encs = _check_names(encryptions, CONTENT_ENCRYPTION, "encryptions")
    if type(token) is str and 0 < len(token) <= max_size and token[0] != "{":
        parsed = _parse_compact(token)  # the common case, without the dispatch
    else:
        parsed = _parse(token, max_size)
    aad = _aad(parsed.protected_b64, parsed.aad_b64)
    recipients = parsed.recipients
    if len(recipients) == 1:  # compact and flattened: one recipient, no retry loop
        joint = _joint_header(parsed, recipients[0])
        plaintext, chosen = _open(
            parsed, recipients[0], joint, key, algs, encs, aad, allow_compressed_jwt
        )
        index = 0
    else:
        joints = [_joint_header(parsed, r) for r in recipients]
        if len({j["enc"] for j in joints}) != 1:
            raise MalformedToken("the recipients disagree on 'enc' (RFC 7516 §7.2.1)")
        _check_pbes2_budget(joints)
        failure: InvalidToken | None = None
        for index, (recipient, joint) in enumerate(zip(recipients, joints, strict=True)):  # noqa: B007
            try:
                plaintext, chosen = _open(
                    parsed, recipient, joint, key, algs, encs, aad, allow_compressed_jwt
                )
            except InvalidToken as exc:
                if failure is None or isinstance(exc, DecryptionFailed):
                    failure = exc
                continue
            break
        else:
            assert failure is not None
            raise failure
    if "zip" in joint:
        plaintext = _inflate(plaintext, max_plaintext_size)
    return plaintext, joint, chosen, index, parsed


def _check_pbes2_budget(joints: Sequence[Mapping[str, Any]]) -> None:
    """Every PBES2 recipient costs its ``p2c`` PBKDF2 rounds: the whole token gets the one
    :data:`MAX_P2C` budget, not one per recipient (a denial-of-service guard)."""
    total = 0
    for joint in joints:
        alg, p2c = joint.get("alg"), joint.get("p2c")
        if isinstance(alg, str) and alg.startswith("PBES2") and type(p2c) is int and p2c > 0:
            total += p2c
    if total > MAX_P2C:
        raise MalformedToken(
            f"the recipients' 'p2c' add up to more than {MAX_P2C} (a cap against denial of "
            "service)",
            code="p2c_out_of_range",
        )


def _open(
    parsed: _Parsed,
    recipient: _Recipient,
    joint: dict[str, Any],
    key: KeyLike,
    algs: Collection[str],
    encs: Collection[str],
    aad: bytes,
    allow_compressed_jwt: bool,
) -> tuple[bytes, Key]:
    """Decrypt for one recipient: policy, shape, key, CEK, tag (RFC 7516 §5.2 steps 6-16)."""
    km, enc = _check_policy(joint, algs, encs, allow_compressed_jwt)
    _check_content_shape(enc, parsed.iv, parsed.ciphertext, parsed.tag)
    chosen = resolve_key(key, joint)
    cek = _unwrap(km, enc, chosen, joint, recipient.encrypted_key)
    return _decrypt_content(enc, cek, parsed.iv, parsed.ciphertext, parsed.tag, aad), chosen


def decrypt(
    token: str | bytes | Mapping[str, Any],
    key: KeyLike,
    *,
    algorithms: Collection[str],
    encryptions: Collection[str],
    max_size: int = DEFAULT_MAX_SIZE,
    max_plaintext_size: int = DEFAULT_MAX_PLAINTEXT_SIZE,
    allow_compressed_jwt: bool = False,
) -> bytes:
    """Decrypt a JWE and return the plaintext (RFC 7516 §5.2); see :func:`decrypt_complete`."""
    return _decrypt(
        token, key, algorithms, encryptions, max_size, max_plaintext_size, allow_compressed_jwt
    )[0]


def _prepare(key: Key, alg: str | None, enc: str) -> tuple[KeyManagement, ContentEncryption]:
    if not isinstance(key, Key):
        raise TypeError("key must be a jotkit.Key bound to a JWE algorithm")
    km = key.algorithm
    if not isinstance(km, KeyManagement):
        raise ValueError(f"the key is bound to the JWS algorithm {key.alg}, not a JWE algorithm")
    if alg is not None and alg != km.name:
        raise ValueError(f"the key is bound to {km.name}, not {alg} (RFC 8725 §3.1)")
    if enc not in CONTENT_ENCRYPTION:
        raise ValueError(f"unknown content encryption {enc!r}")
    return km, CONTENT_ENCRYPTION[enc]


def _user_header(headers: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    out = dict(headers or {})
    reserved = _RESERVED & out.keys()
    if reserved:
        raise ValueError(f"{where} cannot set {', '.join(sorted(reserved))}; jotkit sets them")
    return out


def _check_zip(zip: str | None) -> None:
    if zip not in (None, "DEF"):
        raise ValueError("zip must be None or 'DEF' (RFC 7516 §4.1.3)")


def encrypt(
    plaintext: bytes,
    key: Key,
    alg: str | None = None,
    enc: str = "A256GCM",
    headers: Mapping[str, Any] | None = None,
    zip: str | None = None,
) -> str:
    """Encrypt ``plaintext`` to ``key`` as a JWE compact token (RFC 7516 §5.1, §7.1).

    ``alg`` defaults to the key's algorithm and must equal it when given.
    ``headers`` adds protected members (``kid``, ``typ``, ``cty``, ``apu``/``apv``
    for ECDH-ES, ``p2c`` for PBES2); the members the algorithm sets are refused.
    ``zip="DEF"`` compresses first; only on request (RFC 8725 §3.6).
    """
    km, ce = _prepare(key, alg, enc)
    _check_zip(zip)
    if not isinstance(plaintext, (bytes, bytearray)):
        raise TypeError("plaintext must be bytes")
    header: dict[str, Any] = {"alg": km.name, "enc": ce.name}
    if key.kid is not None:
        header["kid"] = key.kid
    if zip:
        header["zip"] = zip
    header.update(_user_header(headers, "headers"))
    cek, ek, extra = _wrap(km, ce, key, header, None)
    header.update(extra)
    protected_b64 = b64encode(_json.dumps(header))
    data = _deflate(bytes(plaintext)) if zip else bytes(plaintext)
    iv, ct, tag = _encrypt_content(ce, cek, data, _aad(protected_b64, None))
    return ".".join((protected_b64, b64encode(ek), b64encode(iv), b64encode(ct), b64encode(tag)))


def encrypt_json(
    plaintext: bytes,
    recipients: Key | Sequence[Key],
    *,
    enc: str = "A256GCM",
    protected: Mapping[str, Any] | None = None,
    unprotected: Mapping[str, Any] | None = None,
    recipient_headers: Sequence[Mapping[str, Any] | None] | None = None,
    aad: bytes | None = None,
    zip: str | None = None,
    flattened: bool | None = None,
) -> dict[str, Any]:
    """Encrypt to one or more keys in the JWE JSON serialization (RFC 7516 §7.2).

    Returns the general form (``recipients``), or the flattened form for one
    recipient (the default then; ``flattened=False`` forces the general form).
    ``enc`` (and ``zip``) go in the protected header; each recipient's ``alg``,
    ``kid`` and key-management members go in its unprotected ``header``.
    ``dir`` and direct ``ECDH-ES`` allow one recipient only.
    """
    keys = [recipients] if isinstance(recipients, Key) else list(recipients)
    if not keys:
        raise ValueError("encrypt_json needs at least one recipient key")
    if len(keys) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipients")
    if flattened is None:
        flattened = len(keys) == 1
    if flattened and len(keys) != 1:
        raise ValueError("the flattened form has exactly one recipient")
    _check_zip(zip)
    if not isinstance(plaintext, (bytes, bytearray)):
        raise TypeError("plaintext must be bytes")
    extras = list(recipient_headers) if recipient_headers is not None else [None] * len(keys)
    if len(extras) != len(keys):
        raise ValueError("recipient_headers needs one entry per recipient")
    specs = [_prepare(k, None, enc) for k in keys]
    ce = specs[0][1]
    if len(keys) > 1 and any(km.direct for km, _ in specs):
        raise ValueError("dir and ECDH-ES (direct) allow a single recipient")
    prot: dict[str, Any] = {"enc": ce.name}
    if zip:
        prot["zip"] = zip
    prot.update(_user_header(protected, "protected"))
    shared = _user_header(unprotected, "unprotected")
    if prot.keys() & shared.keys():
        raise ValueError("protected and unprotected headers must not share names")
    cek: bytes | None = None
    entries = []
    for key, (km, _), extra in _zip(keys, specs, extras, strict=True):
        header: dict[str, Any] = {"alg": km.name}
        if key.kid is not None:
            header["kid"] = key.kid
        header.update(_user_header(extra, "recipient_headers"))
        clash = header.keys() & (prot.keys() | shared.keys())
        if clash:
            raise ValueError(f"header names used twice: {', '.join(sorted(clash))}")
        cek, ek, members = _wrap(km, ce, key, {**prot, **shared, **header}, cek)
        header.update(members)
        entry: dict[str, Any] = {"header": header}
        if ek:
            entry["encrypted_key"] = b64encode(ek)
        entries.append(entry)
    assert cek is not None
    protected_b64 = b64encode(_json.dumps(prot))
    aad_b64 = b64encode(bytes(aad)) if aad is not None else None
    data = _deflate(bytes(plaintext)) if zip else bytes(plaintext)
    iv, ct, tag = _encrypt_content(ce, cek, data, _aad(protected_b64, aad_b64))
    out: dict[str, Any] = {"protected": protected_b64}
    if shared:
        out["unprotected"] = shared
    if flattened:
        out.update(entries[0])
    else:
        out["recipients"] = entries
    if aad_b64 is not None:
        out["aad"] = aad_b64
    out.update(iv=b64encode(iv), ciphertext=b64encode(ct), tag=b64encode(tag))
    return out


def decrypt_nested(
    token: str | bytes,
    key: KeyLike,
    *,
    algorithms: Collection[str],
    encryptions: Collection[str],
    max_size: int = DEFAULT_MAX_SIZE,
) -> bytes:
    """The inner JWS of a nested JWT: decrypt, and insist on ``cty: JWT`` (RFC 7519 §5.2, §11.2).

    Only the compact form; a compressed nested JWT is refused (RFC 8725 §3.6).
    """
    if isinstance(token, Mapping):
        raise MalformedToken("a nested JWT is a compact JWE, not a JSON serialization")
    result = decrypt_complete(
        token, key, algorithms=algorithms, encryptions=encryptions, max_size=max_size
    )
    if result.header.get("cty", "").upper() not in ("JWT", "APPLICATION/JWT"):
        raise MalformedToken("a nested JWT's JWE header must say cty 'JWT' (RFC 7519 §5.2)")
    return result.plaintext
