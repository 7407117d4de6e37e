"""The "floor": the least work any correct JWT verifier/signer must do, written directly
against the stdlib and ``cryptography`` with keys prepared once.

Verify+validate (RFC 7515 §5.2, RFC 7519 §7.2): split on '.', base64url-decode the three
segments, ``json.loads`` header and payload, check ``alg``, one HMAC (``hmac.digest`` +
``hmac.compare_digest``) or one signature verify with a prepared key object (ECDSA:
``encode_dss_signature`` of the raw ``r || s`` first), then compare ``exp``, ``iss``, ``aud``.

Sign (RFC 7515 §5.1): build the claims dict with ``iat``/``exp``, ``json.dumps`` header and
payload compactly, base64url-encode, one HMAC or signature (ECDSA: DER -> raw ``r || s``), join.

Nothing here is hardened (no size cap, no strict base64/JSON, no duplicate-member check, no
``crit`` handling); it is a yardstick, not a verifier to use.
"""

from __future__ import annotations

import base64
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


def make_verify(alg: str, key: Any, issuer: str, audience: str) -> Callable[[str], dict[str, Any]]:
    """A minimal verify+validate for one algorithm: ``key`` is the HMAC secret (bytes) or a
    prepared ``cryptography`` public key object. Raises ``ValueError`` on any failure."""

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


def make_sign(
    alg: str, key: Any, claims: dict[str, Any], issuer: str, audience: str, lifetime: int
) -> Callable[[], str]:
    """A minimal signer: ``key`` is the HMAC secret or a prepared private key object."""
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
