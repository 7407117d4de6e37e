"""The floors: the least work any correct JWT verifier/signer must do per token, written
directly against the stdlib and ``cryptography``.

The TIGHT floor (``make_verify``, ``make_sign``; the reference for the targets) precomputes
everything a library may precompute once per key or issuer, and does only the unavoidable
per-token work:

* prepared once: the ``cryptography`` key object and its padding/ECDSA parameters, an
  ``hmac.new(secret, digestmod=sha256)`` object (each call ``.copy()``-s it, so the key
  schedule is not redone), a ``json.JSONDecoder`` (its C scanner ``scan_once``) and a compact
  ``json.JSONEncoder``, the encoded header segment (sign) and the last parsed header segment
  with its ``alg`` already checked (verify; a library may cache parsed headers by segment);
* per token, verify (RFC 7515 §5.2, RFC 7519 §7.2): ``split('.')``, base64url-decode the
  signature and payload (``binascii.a2b_base64`` after mapping ``-_`` to ``+/``), one HMAC or
  one signature check (ECDSA: ``encode_dss_signature`` of the raw ``r || s``), the payload's
  UTF-8 decode and JSON scan, then ``exp`` against ``time.time()`` and ``iss``/``aud``
  (the benchmark requires every verifier to refuse a wrong ``iss``/``aud``);
* per token, sign (RFC 7515 §5.1): the claims dict with ``iat``/``exp``, one JSON encode,
  base64url, one HMAC or signature, join.

The LOOSE floor (``make_verify_loose``, ``make_sign_loose``) is the one used before issue 9:
``json.loads``/``json.dumps`` and ``base64.urlsafe_b64*`` per call, the header parsed on
every verify and encoded on every sign, one-shot ``hmac.digest``. It stays in the benchmark
so that old and new ratios come from the same run.

Nothing here is hardened (no size cap, no strict base64/JSON, no duplicate-member check, no
``crit``, no end-of-document check); it is a yardstick, not a verifier to use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

_b64d = base64.urlsafe_b64decode
_b64e = base64.urlsafe_b64encode
_loads = json.loads
_dumps = json.dumps
_SEP = (",", ":")
_PAD = ("", "", "==", "=")


def _dec(segment: str) -> bytes:
    return _b64d(segment + _PAD[len(segment) & 3])


def _enc(data: bytes) -> str:
    return _b64e(data).rstrip(b"=").decode("ascii")


def _rsa_parts(alg: str) -> tuple[padding.AsymmetricPadding, hashes.HashAlgorithm]:
    sha = hashes.SHA256()
    if alg.startswith("PS"):  # RFC 7518 §3.5: MGF1 with the same hash, salt = hash length
        return padding.PSS(mgf=padding.MGF1(sha), salt_length=32), sha
    return padding.PKCS1v15(), sha


def make_verify_loose(
    alg: str, key: Any, issuer: str, audience: str
) -> Callable[[str], dict[str, Any]]:
    """The LOOSE floor (before issue 9): verify+validate for one algorithm. ``key`` is the
    HMAC secret (bytes) or a prepared ``cryptography`` public key object. Raises on failure."""

    def claims_ok(header: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        if header["alg"] != alg:
            raise ValueError("alg")
        if not time.time() < payload["exp"]:
            raise ValueError("exp")
        if payload["iss"] != issuer:
            raise ValueError("iss")
        if payload["aud"] != audience:
            raise ValueError("aud")
        return payload

    if alg == "HS256":
        digest, same = hmac.digest, hmac.compare_digest

        def verify_hs(token: str) -> dict[str, Any]:
            h, p, s = token.split(".")
            header, payload = _loads(_dec(h)), _loads(_dec(p))
            if not same(digest(key, f"{h}.{p}".encode(), "sha256"), _dec(s)):
                raise ValueError("signature")
            return claims_ok(header, payload)

        return verify_hs

    if alg in ("RS256", "PS256"):
        pad, sha = _rsa_parts(alg)
        rsa_verify = key.verify

        def verify_rsa(token: str) -> dict[str, Any]:
            h, p, s = token.split(".")
            header, payload = _loads(_dec(h)), _loads(_dec(p))
            rsa_verify(_dec(s), f"{h}.{p}".encode(), pad, sha)  # raises InvalidSignature
            return claims_ok(header, payload)

        return verify_rsa

    if alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())
        ec_verify = key.verify

        def verify_ec(token: str) -> dict[str, Any]:
            h, p, s = token.split(".")
            header, payload = _loads(_dec(h)), _loads(_dec(p))
            raw = _dec(s)
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            ec_verify(der, f"{h}.{p}".encode(), ecdsa)
            return claims_ok(header, payload)

        return verify_ec

    if alg == "EdDSA":
        ed_verify = key.verify

        def verify_ed(token: str) -> dict[str, Any]:
            h, p, s = token.split(".")
            header, payload = _loads(_dec(h)), _loads(_dec(p))
            ed_verify(_dec(s), f"{h}.{p}".encode())
            return claims_ok(header, payload)

        return verify_ed

    raise ValueError(f"no floor for {alg}")


def make_sign_loose(
    alg: str, key: Any, claims: dict[str, Any], issuer: str, audience: str, lifetime: int
) -> Callable[[], str]:
    """The LOOSE floor's signer (a new encoder and header per call): ``key`` is the HMAC
    secret or a prepared private key object."""
    header = {"alg": alg, "typ": "JWT"}

    def signing_input() -> str:
        now = int(time.time())
        payload = {**claims, "iat": now, "exp": now + lifetime, "iss": issuer, "aud": audience}
        h = _enc(_dumps(header, separators=_SEP).encode())
        p = _enc(_dumps(payload, separators=_SEP).encode())
        return f"{h}.{p}"

    if alg == "HS256":
        digest = hmac.digest

        def sign_hs() -> str:
            si = signing_input()
            return f"{si}.{_enc(digest(key, si.encode(), 'sha256'))}"

        return sign_hs

    if alg in ("RS256", "PS256"):
        pad, sha = _rsa_parts(alg)
        rsa_sign = key.sign

        def sign_rsa() -> str:
            si = signing_input()
            return f"{si}.{_enc(rsa_sign(si.encode(), pad, sha))}"

        return sign_rsa

    if alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())
        ec_sign = key.sign

        def sign_ec() -> str:
            si = signing_input()
            r, s = decode_dss_signature(ec_sign(si.encode(), ecdsa))
            return f"{si}.{_enc(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

        return sign_ec

    if alg == "EdDSA":
        ed_sign = key.sign

        def sign_ed() -> str:
            si = signing_input()
            return f"{si}.{_enc(ed_sign(si.encode()))}"

        return sign_ed

    raise ValueError(f"no floor for {alg}")


# --------------------------------------------------------------------------- the tight floor
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _tdec(segment: str) -> bytes:
    return _a2b(segment.replace("-", "+").replace("_", "/") + _PAD[len(segment) & 3])


def _tenc(data: bytes) -> str:
    return _b2a(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def make_verify(alg: str, key: Any, issuer: str, audience: str) -> Callable[[str], dict[str, Any]]:
    """The TIGHT floor's verify+validate for one algorithm (see the module docstring): ``key``
    is the HMAC secret (bytes) or a prepared ``cryptography`` public key. Raises on failure."""
    scan = json.JSONDecoder().scan_once
    now = time.time
    seen: list[str] = [""]  # the last header segment whose alg was checked

    def header_ok(h: str) -> None:
        if h != seen[0]:  # a new header: parse and check it once
            if scan(_tdec(h).decode("utf-8"), 0)[0]["alg"] != alg:
                raise ValueError("alg")
            seen[0] = h

    if alg == "HS256":
        prepared = hmac.new(key, digestmod=hashlib.sha256)
        same = hmac.compare_digest

        def verify_hs(token: str) -> dict[str, Any]:
            h, p, s = token.split(".")
            header_ok(h)
            mac = prepared.copy()
            mac.update(token[: len(h) + len(p) + 1].encode("ascii"))
            if not same(mac.digest(), _tdec(s)):
                raise ValueError("signature")
            claims: dict[str, Any] = scan(_tdec(p).decode("utf-8"), 0)[0]
            if not now() < claims["exp"] or claims["iss"] != issuer or claims["aud"] != audience:
                raise ValueError("claims")
            return claims

        return verify_hs

    check: Callable[[bytes, bytes], None]
    if alg in ("RS256", "PS256"):
        pad, sha = _rsa_parts(alg)
        rsa_verify = key.verify

        def check_rsa(sig: bytes, msg: bytes) -> None:
            rsa_verify(sig, msg, pad, sha)  # raises InvalidSignature

        check = check_rsa
    elif alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())
        ec_verify = key.verify
        from_bytes = int.from_bytes

        def check_ec(sig: bytes, msg: bytes) -> None:
            der = encode_dss_signature(from_bytes(sig[:32], "big"), from_bytes(sig[32:], "big"))
            ec_verify(der, msg, ecdsa)

        check = check_ec
    elif alg == "EdDSA":
        check = key.verify
    else:
        raise ValueError(f"no floor for {alg}")

    def verify_asym(token: str) -> dict[str, Any]:
        h, p, s = token.split(".")
        header_ok(h)
        check(_tdec(s), token[: len(h) + len(p) + 1].encode("ascii"))
        claims: dict[str, Any] = scan(_tdec(p).decode("utf-8"), 0)[0]
        if not now() < claims["exp"] or claims["iss"] != issuer or claims["aud"] != audience:
            raise ValueError("claims")
        return claims

    return verify_asym


def make_sign(
    alg: str, key: Any, claims: dict[str, Any], issuer: str, audience: str, lifetime: int
) -> Callable[[], str]:
    """The TIGHT floor's signer: ``key`` is the HMAC secret or a prepared private key; the
    header segment and the JSON encoder are built once."""
    head = _tenc(json.dumps({"alg": alg, "typ": "JWT"}, separators=_SEP).encode()) + "."
    encode = json.JSONEncoder(separators=_SEP).encode
    now = time.time

    def signing_input() -> str:
        t = int(now())
        payload = {**claims, "iat": t, "exp": t + lifetime, "iss": issuer, "aud": audience}
        return head + _tenc(encode(payload).encode("ascii"))

    if alg == "HS256":
        prepared = hmac.new(key, digestmod=hashlib.sha256)

        def sign_hs() -> str:
            si = signing_input()
            mac = prepared.copy()
            mac.update(si.encode("ascii"))
            return f"{si}.{_tenc(mac.digest())}"

        return sign_hs

    raw_sign: Callable[[bytes], bytes]
    if alg in ("RS256", "PS256"):
        pad, sha = _rsa_parts(alg)
        rsa_sign = key.sign

        def raw_rsa(msg: bytes) -> bytes:
            return rsa_sign(msg, pad, sha)  # type: ignore[no-any-return]

        raw_sign = raw_rsa
    elif alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())
        ec_sign = key.sign

        def raw_ec(msg: bytes) -> bytes:
            r, s = decode_dss_signature(ec_sign(msg, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        raw_sign = raw_ec
    elif alg == "EdDSA":
        raw_sign = key.sign
    else:
        raise ValueError(f"no floor for {alg}")

    def sign_asym() -> str:
        si = signing_input()
        return f"{si}.{_tenc(raw_sign(si.encode('ascii')))}"

    return sign_asym
