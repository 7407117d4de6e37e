"""DPoP: sender-constrained tokens through proof-of-possession JWTs (RFC 9449).

Client side, :func:`proof` makes the ``DPoP`` header for one request (RFC 9449 §4.2)::

    key = jotkit.Key.generate("ES256")
    header = jotkit.dpop.proof(key, "GET", "https://api.example.com/orders", access_token=at)

Server side, :func:`verify_proof` (or a prepared :class:`ProofVerifier`, which keeps the
parsed public keys of recent clients) runs every check of RFC 9449 §4.3 that needs no
storage, sans-IO: the caller passes the method, URL, clock and what it expects, and gets
a :class:`VerifiedProof` (the RFC 7638 thumbprint ``jkt`` of the proof's key, and the
``jti``/``iat`` its replay cache must remember) or an :class:`jotkit.InvalidDPoPProof`
whose ``code`` names the failed check. Replay detection (§11.1) needs shared state and is
the caller's job: remember ``jti`` until :attr:`VerifiedProof.expires_at`.

Nonces (RFC 9449 §8 at an authorization server, §9 at a resource server): :class:`HmacNonces`
makes and checks stateless nonces, ``<window>.<HMAC tag>``, so that every instance sharing
the secret accepts every instance's nonces without storing them.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, NamedTuple, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac

from . import _json
from ._b64 import b64encode, decode_unpadded, is_canonical
from .algorithms import ALGORITHMS
from .errors import InvalidDPoPProof, InvalidKey, MalformedToken, UseDPoPNonce
from .jws import load_segment
from .keys import Key

__all__ = [
    "DEFAULT_ALGORITHMS",
    "MAX_PROOF_SIZE",
    "HmacNonces",
    "ProofVerifier",
    "VerifiedProof",
    "access_token_hash",
    "normalize_htu",
    "proof",
    "verify_proof",
]

#: The asymmetric JWS algorithms accepted by default (RFC 9449 §4.2: no MAC, no ``none``).
DEFAULT_ALGORITHMS: Final = ("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "RS256")
#: Cap on a proof's length in characters, checked before anything is decoded.
MAX_PROOF_SIZE: Final = 8 * 1024
_TYP: Final = "dpop+jwt"
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_MAX_JTI: Final = 256
_KEY_CACHE_SIZE: Final = 256


class VerifiedProof(NamedTuple):
    """A proof that passed every stateless check of RFC 9449 §4.3 (a named tuple: it is
    made once per request on a resource server's hot path)."""

    jkt: str
    """RFC 7638 SHA-256 thumbprint of the proof's public key (compare with ``cnf.jkt``, §6.1)."""
    jti: str
    """The proof's unique identifier; a replay cache keeps it until :attr:`expires_at`."""
    iat: float
    htm: str
    htu: str
    nonce: str | None
    expires_at: float
    """When the proof falls out of the ``iat`` window: no replay check is needed after it."""


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim: base64url of the SHA-256 of the token's ASCII octets (RFC 9449 §4.2)."""
    return b64encode(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())


def normalize_htu(url: str) -> str:
    """The ``htu`` form of a request URI: scheme and host lower-cased, default port dropped,
    empty path as ``/``, query and fragment removed (RFC 9449 §4.2-4.3; RFC 3986 §6.2.2-6.2.3).
    ``ValueError`` for something that is not an absolute http(s) URI."""
    if not isinstance(url, str) or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("not a URI")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        raise ValueError("not an absolute http(s) URI without userinfo")
    port = parts.port  # ValueError for a bad port
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def proof(
    key: Key,
    method: str,
    url: str,
    access_token: str | None = None,
    nonce: str | None = None,
    *,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """A DPoP proof JWT for one request (RFC 9449 §4.2): header ``typ dpop+jwt``, ``alg`` and
    the public ``jwk``; claims ``jti htm htu iat``, ``ath`` with an access token, ``nonce``
    when the server gave one. ``key`` is an asymmetric private key."""
    if not isinstance(key, Key):
        raise TypeError("key must be a jotkit.Key")
    if key.is_symmetric or not key.is_private or key.is_encryption_key:
        raise ValueError("a DPoP key is an asymmetric private signing key (RFC 9449 §4.2)")
    if not isinstance(method, str) or not method:
        raise ValueError("method must be the HTTP method, e.g. 'POST'")
    public = key.public().to_jwk()
    jwk = {k: v for k, v in public.items() if k not in ("kid", "use", "alg")}
    header = {"typ": _TYP, "alg": key.alg, "jwk": jwk}
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": method,
        "htu": normalize_htu(url),
        "iat": int(time.time() if now is None else now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    signing_input = f"{b64encode(_json.dumps(header))}.{b64encode(_json.dumps(claims))}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64encode(signature)}"


def _mac(key: bytes, data: bytes) -> bytes:
    mac = _hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


class HmacNonces:
    """Stateless DPoP nonces (RFC 9449 §8, §9): ``<window>.<tag>``, the tag a truncated
    HMAC-SHA256 of the time window (``now // window`` seconds) under a key derived from
    ``secret`` and ``label`` (domain separation: the same secret can serve other purposes).

    :meth:`valid` accepts a nonce of the current window or the previous one, so a nonce lives
    between ``window`` and ``2 * window`` seconds. Instances (or replicas) built with the same
    secret, label and window accept each other's nonces; nothing is stored."""

    def __init__(self, secret: bytes, *, window: float = 300.0,
                 label: bytes = b"jotkit dpop nonce v1") -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("secret must be at least 16 random bytes")
        if not (math.isfinite(window) and window > 0):
            raise ValueError("window must be a finite number of seconds > 0")
        self.window = float(window)
        self._key = _mac(secret, label)
        self._last: tuple[int, str] = (-1, "")

    def __repr__(self) -> str:
        return f"HmacNonces(window={self.window!r})"

    def _tag(self, window: int) -> str:
        last = self._last
        if last[0] == window:
            return last[1]
        tag = b64encode(_mac(self._key, str(window).encode("ascii"))[:16])
        self._last = (window, tag)
        return tag

    def current(self, now: float) -> str:
        """The nonce to hand out at ``now`` (the ``DPoP-Nonce`` header, RFC 9449 §8.1, §9)."""
        window = int(now // self.window)
        return f"{window}.{self._tag(window)}"

    def valid(self, value: str, now: float) -> bool:
        """True for a nonce of this window or the previous one, made under this key
        (constant-time tag comparison)."""
        if type(value) is not str:
            return False
        window_text, _, tag = value.partition(".")
        if not window_text.isascii() or not window_text.isdigit() or len(window_text) > 12:
            return False
        window = int(window_text)
        current = int(now // self.window)
        if window not in (current, current - 1):
            return False
        return secrets.compare_digest(tag.encode("utf-8", "surrogatepass"),
                                      self._tag(window).encode("ascii"))


def _fail(message: str, code: str) -> InvalidDPoPProof:
    return InvalidDPoPProof(message, code=code)


def _check_algorithms(algorithms: Collection[str]) -> frozenset[str]:
    if isinstance(algorithms, str):
        raise TypeError("algorithms must be a list of names, not a str")
    allowed = frozenset(algorithms)
    if not allowed:
        raise ValueError("algorithms must name at least one algorithm")
    for name in allowed:
        spec = ALGORITHMS.get(name)
        if spec is None:
            raise ValueError(f"unknown algorithm {name!r}")
        if spec.family == "HMAC":
            raise ValueError(f"{name} is symmetric; DPoP proofs use asymmetric algorithms")
    return allowed


def _key_from_header(header: Mapping[str, Any], allowed: frozenset[str]) -> tuple[Key, str]:
    """Steps 4-7 of RFC 9449 §4.3 on the header: ``typ``, ``alg``, the public ``jwk``."""
    if header.get("typ") != _TYP:
        raise _fail("the proof's typ must be dpop+jwt (RFC 9449 §4.2)", "dpop_invalid_typ")
    alg = header.get("alg")
    if type(alg) is not str or alg not in allowed:
        raise _fail(f"the proof's alg {str(alg)[:20]!r} is not allowed", "dpop_alg_not_allowed")
    if "crit" in header:
        raise _fail("the proof uses an unsupported critical extension", "dpop_malformed")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise _fail("the proof's header has no jwk object (RFC 9449 §4.2)", "dpop_invalid_jwk")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise _fail("the proof's jwk holds a private key (RFC 9449 §4.3)", "dpop_invalid_jwk")
    try:
        key = Key.from_jwk(jwk, alg)
    except (InvalidKey, ValueError, TypeError) as exc:
        raise _fail(f"the proof's jwk is unusable: {exc}"[:200], "dpop_invalid_jwk") from None
    return key, key.thumbprint()


def _parse(text: object) -> tuple[str, bytes, bytes, dict[str, Any]]:
    """Split a compact JWS; decode the signature and the claims strictly (canonical
    base64url, strict JSON). The header segment is checked by :meth:`ProofVerifier._key`."""
    if type(text) is not str:
        raise _fail("the DPoP header must be one text value", "dpop_malformed")
    if len(text) > MAX_PROOF_SIZE:
        raise _fail(f"the proof is larger than {MAX_PROOF_SIZE} characters", "dpop_malformed")
    parts = text.split(".")
    if len(parts) != 3 or not all(parts) or not text.isascii():
        raise _fail("the proof is not a JWS compact serialization", "dpop_malformed")
    try:
        signature = decode_unpadded(parts[2])  # canonical base64url only
        claims = _json.loads_object(decode_unpadded(parts[1]))
    except ValueError:
        raise _fail("the proof's payload is not a JSON object", "dpop_malformed") from None
    signing_input = text[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
    return parts[0], signing_input, signature, claims


class ProofVerifier:
    """Prepared checks of RFC 9449 §4.3 for one server: allowed algorithms and ``iat`` window.

    ``max_age`` is how old ``iat`` may be, ``leeway`` how far in the future (clock skew), in
    seconds. The public keys of the last few hundred proof headers are kept parsed (a
    client sends the same header with every proof), which is safe: an entry is stored only
    after its header passed every check, and a hit needs the same header text."""

    def __init__(
        self,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        *,
        max_age: float = 60.0,
        leeway: float = 5.0,
    ) -> None:
        self.algorithms = _check_algorithms(algorithms)
        if not (math.isfinite(max_age) and max_age > 0 and math.isfinite(leeway) and leeway >= 0):
            raise ValueError("max_age must be > 0 and leeway >= 0 (finite seconds)")
        self.max_age = float(max_age)
        self.leeway = float(leeway)
        self._keys: OrderedDict[str, tuple[Key, str]] = OrderedDict()
        self._last_ath: tuple[str, str] = ("", "")

    def _key(self, header_b64: str) -> tuple[Key, str]:
        hit = self._keys.get(header_b64)
        if hit is not None:
            return hit
        if not is_canonical(header_b64):
            raise _fail("the proof's header is not canonical base64url", "dpop_malformed")
        try:
            header = load_segment(header_b64, "header")
        except MalformedToken:
            raise _fail("the proof's header is not a JSON object", "dpop_malformed") from None
        found = _key_from_header(header, self.algorithms)
        self._keys[header_b64] = found
        if len(self._keys) > _KEY_CACHE_SIZE:
            self._keys.popitem(last=False)
        return found

    def verify(
        self,
        proof: object,
        *,
        method: str,
        url: str,
        now: float,
        access_token: str | None = None,
        nonce: str | Callable[[str], bool] | None = None,
        jkt: str | None = None,
    ) -> VerifiedProof:
        """Check one proof for a request (RFC 9449 §4.3 steps 2-12, replay excepted).

        ``url`` is the request's target URI (query and fragment are ignored); with
        ``access_token``, ``ath`` must be its hash (§4.3 step 12, §7.1); with ``jkt`` (the
        token's ``cnf.jkt``, §6.1) the proof's key must be that one; with ``nonce`` (the
        expected value, or a predicate for stateless nonces) the proof must carry a good
        one, else :class:`jotkit.UseDPoPNonce`. Raise :class:`jotkit.InvalidDPoPProof`."""
        header_b64, signing_input, signature, claims = _parse(proof)
        key, thumbprint = self._key(header_b64)
        if not key.verify(signing_input, signature):
            raise _fail("the proof's signature does not verify", "dpop_bad_signature")
        get = claims.get
        jti, htm, htu, iat = get("jti"), get("htm"), get("htu"), cast(float, get("iat"))
        if type(jti) is not str or not jti or len(jti) > _MAX_JTI:
            raise _fail("the proof needs a jti string (RFC 9449 §4.2)", "dpop_invalid_claim")
        if (type(htm) is not str or type(htu) is not str or type(iat) not in (int, float)
                or (type(iat) is float and not math.isfinite(iat))):
            raise _fail("the proof needs htm, htu and iat (RFC 9449 §4.2)", "dpop_invalid_claim")
        if htm != method:
            raise _fail(f"the proof is for {htm[:10]!r}, not {method}", "dpop_htm_mismatch")
        # the exact request URI without query and fragment (RFC 9449 §4.3 step 9), else
        # both sides normalized (RFC 3986 §6.2.2-6.2.3)
        matches = htu == url.partition("?")[0].partition("#")[0]
        if not matches:
            try:
                matches = normalize_htu(htu) == normalize_htu(url)
            except ValueError:
                matches = False
        if not matches:
            raise _fail("the proof's htu is not this request's URI", "dpop_htu_mismatch")
        got_nonce = claims.get("nonce")
        if got_nonce is not None and type(got_nonce) is not str:
            raise _fail("the proof's nonce must be a string", "dpop_invalid_claim")
        if nonce is not None:
            good = got_nonce is not None and (
                nonce(got_nonce) if callable(nonce) else secrets.compare_digest(
                    got_nonce.encode("utf-8", "surrogatepass"), nonce.encode("utf-8")
                )
            )
            if not good:
                raise UseDPoPNonce("the proof must carry the server's current DPoP nonce")
        if not (now - self.max_age <= iat <= now + self.leeway):
            raise _fail("the proof's iat is outside the accepted window", "dpop_iat_out_of_window")
        # ath and jkt are no secrets (a hash of the token, a public key's thumbprint): ==
        if access_token is not None and claims.get("ath") != self._ath(access_token):
            raise _fail("the proof's ath is not the access token's hash", "dpop_ath_mismatch")
        if jkt is not None and jkt != thumbprint:
            raise _fail("the proof's key is not the one the token is bound to", "dpop_key_mismatch")
        return VerifiedProof(thumbprint, jti, float(iat), htm, htu, got_nonce,
                             iat + self.max_age + self.leeway)

    def _ath(self, access_token: str) -> str:
        """``ath`` of a token, remembered for the last one (a client repeats its token)."""
        last = self._last_ath
        if last[0] == access_token:
            return last[1]
        ath = access_token_hash(access_token)
        self._last_ath = (access_token, ath)
        return ath


def verify_proof(
    proof: object,
    *,
    method: str,
    url: str,
    now: float,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
    access_token: str | None = None,
    nonce: str | Callable[[str], bool] | None = None,
    jkt: str | None = None,
    max_age: float = 60.0,
    leeway: float = 5.0,
) -> VerifiedProof:
    """Check a DPoP proof once (RFC 9449 §4.3); see :meth:`ProofVerifier.verify`. Services
    keep one :class:`ProofVerifier` instead, which keeps recent clients' keys parsed."""
    return ProofVerifier(algorithms, max_age=max_age, leeway=leeway).verify(
        proof, method=method, url=url, now=now, access_token=access_token, nonce=nonce,
        jkt=jkt,
    )
