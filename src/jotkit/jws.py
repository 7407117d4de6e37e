"""JWS compact serialization: strict parsing, signing and verification (RFC 7515 §3.1, §5, §7.1).

Checks run in this order, so that nothing is decoded past a cap and no key is
resolved for an algorithm the caller did not allow (RFC 8725 §3.1):
size cap -> three canonical base64url segments -> strict JSON header ->
``alg`` allow-list and ``crit`` -> key resolution -> signature -> payload.
Header keys that point at keys (``jku``, ``jwk``, ``x5u``, ``x5c``) are never used.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from . import _json
from ._b64 import _decode_checked, b64encode, decode_urlsafe, is_canonical
from ._json import loads_object
from .algorithms import ALGORITHMS
from .claims import Clock, Now, to_timestamp
from .errors import (
    InvalidSignature,
    InvalidToken,
    KeyMismatch,
    MalformedToken,
    UnsupportedAlgorithm,
)
from .keys import Key, KeySet

__all__ = [
    "DEFAULT_MAX_SIZE",
    "KeyLike",
    "check_algorithms",
    "decode_unverified",
    "load_segment",
    "sign",
    "verify",
]

#: Default cap on token length in characters, applied before any decoding.
DEFAULT_MAX_SIZE = 16 * 1024
KeyResolver = Callable[[Mapping[str, Any]], Key | KeySet]
KeyLike = Key | KeySet | KeyResolver

_SEGMENT_NAMES = ("header", "payload", "signature")
#: Header parameters registered by RFC 7515 §4.1 and RFC 7519 §5; ``crit`` may not name them.
_REGISTERED_HEADERS = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}
)
_HEADER_CACHE_SIZE = 64


def check_algorithms(algorithms: Collection[str]) -> Collection[str]:
    """Validate a caller's allow-list: a non-empty collection of known names, never ``none``."""
    if type(algorithms) is list and len(algorithms) == 1 and algorithms[0] in ALGORITHMS:
        return algorithms  # the common case, e.g. ["ES256"]: already a valid allow-list
    if isinstance(algorithms, str):
        raise TypeError(f"algorithms must be a list of names, e.g. [{algorithms!r}], not a str")
    if algorithms is None:
        raise TypeError("algorithms is required: pass the names you accept, e.g. ['ES256']")
    allowed = frozenset(algorithms)
    if not allowed:
        raise ValueError("algorithms must name at least one algorithm")
    for name in allowed:
        if not isinstance(name, str) or name not in ALGORITHMS:
            if isinstance(name, str) and name.lower() == "none":
                raise ValueError("'none' cannot be allowed; unsecured JWTs are never accepted")
            raise ValueError(f"unknown algorithm {name!r}")
    return allowed


def _as_text(token: Any, max_size: int) -> str:
    if type(token) is not str:
        if isinstance(token, (bytes, bytearray, memoryview)):
            if len(token) > max_size:
                raise MalformedToken(
                    f"the token is larger than {max_size} bytes", code="token_too_large"
                )
            try:
                token = bytes(token).decode("ascii")
            except UnicodeDecodeError:
                raise MalformedToken("the token contains non-ASCII bytes") from None
        elif isinstance(token, str):
            token = str(token)
        else:
            raise MalformedToken(f"a token must be a string, not {type(token).__name__}")
    if len(token) > max_size:
        raise MalformedToken(f"the token is larger than {max_size} bytes", code="token_too_large")
    return token  # type: ignore[no-any-return]


def _explain_shape(token: str) -> InvalidToken:
    if not token:
        return MalformedToken("the token is empty")
    parts = token.split(".")
    if len(parts) == 3 and parts[0] and not parts[2] and is_canonical(parts[0]):
        try:
            alg = load_segment(parts[0], "header").get("alg")
        except MalformedToken:
            alg = None
        if isinstance(alg, str) and alg.lower() == "none":
            return UnsupportedAlgorithm(
                "unsecured tokens (alg 'none') are never accepted (RFC 8725 §3.2)",
                code="alg_none",
            )
    if len(parts) != 3:
        return MalformedToken(
            f"a JWS compact token has 3 dot-separated segments, this one has {len(parts)}"
        )
    for name, part in zip(_SEGMENT_NAMES, parts, strict=True):
        if not part and name != "payload":
            return MalformedToken(f"the {name} segment is empty")
        if re.fullmatch(r"[A-Za-z0-9_-]*", part, re.ASCII) is None:
            return MalformedToken(
                f"the {name} segment is not base64url (only A-Z a-z 0-9 - _ and no padding)"
            )
    return MalformedToken("the token is not a JWS compact serialization")  # pragma: no cover


def _bad_segment(name: str, part: str) -> MalformedToken:
    """The error for a segment that :func:`decode_unpadded` refused, naming the problem."""
    if not part:
        return MalformedToken(f"the {name} segment is empty")
    if re.fullmatch(r"[A-Za-z0-9_-]*", part, re.ASCII) is None:
        return MalformedToken(
            f"the {name} segment is not base64url (only A-Z a-z 0-9 - _ and no padding)"
        )
    return MalformedToken(
        f"the {name} segment is not canonical base64url (bad length or stray bits)"
    )


def load_segment(segment: str, name: str) -> dict[str, Any]:
    """Decode one base64url segment holding a JSON object (a JOSE header, RFC 7515 §5.2 /
    RFC 7516 §5.2); ``MalformedToken`` names the segment when it is not one."""
    try:
        return _json.loads_object(_decode_checked(segment))
    except ValueError as exc:
        raise MalformedToken(f"the {name} is not a JSON object: {exc}") from None


def _parse_header(header_b64: str) -> dict[str, Any]:
    header = load_segment(header_b64, "header")
    alg = header.get("alg")
    if type(alg) is not str:
        raise MalformedToken("the header has no 'alg' string (RFC 7515 §4.1.1)")
    for name in ("kid", "typ", "cty"):
        if name in header and type(header[name]) is not str:
            raise MalformedToken(f"the {name!r} header must be a string")
    if "crit" in header:
        crit = header["crit"]
        # RFC 7515 §4.1.11: a non-empty array of names that the recipient must understand.
        if type(crit) is not list or not crit or not all(type(c) is str for c in crit):
            raise MalformedToken("'crit' must be a non-empty array of strings")
        if any(c in _REGISTERED_HEADERS for c in crit):
            raise MalformedToken("'crit' must not list registered header names")
        raise UnsupportedAlgorithm(
            f"unsupported critical header extension(s): {', '.join(crit)}", code="unknown_crit"
        )
    if "b64" in header and header["b64"] is not True:
        raise UnsupportedAlgorithm(
            "unencoded payloads (RFC 7797 b64=false) are not supported", code="unknown_crit"
        )
    return header


def _check_alg(alg: str, allowed: Collection[str]) -> None:
    if alg in allowed:
        return
    if alg.lower() == "none":
        raise UnsupportedAlgorithm(
            "unsecured tokens (alg 'none') are never accepted (RFC 8725 §3.2)", code="alg_none"
        )
    if alg not in ALGORITHMS:
        raise UnsupportedAlgorithm(f"unsupported algorithm {alg!r}")
    raise UnsupportedAlgorithm(f"the algorithm {alg} is not allowed here")


def resolve_key(key: KeyLike, header: Mapping[str, Any]) -> Key:
    """Choose the key for a verified-header token: a Key, a KeySet or a resolver callable."""
    alg: str = header["alg"]
    if isinstance(key, Key):
        if key.alg != alg:
            raise KeyMismatch(f"the key is for {key.alg}, the token uses {alg} (RFC 8725 §3.1)")
        return key
    if isinstance(key, KeySet):
        return key.select(alg, header.get("kid"))
    if callable(key):
        resolved = key(dict(header))  # a copy: the header may be a cached one
        if not isinstance(resolved, (Key, KeySet)):
            raise TypeError("a key resolver must return a jotkit.Key or jotkit.KeySet")
        return resolve_key(resolved, header)
    raise TypeError("key must be a jotkit.Key, a jotkit.KeySet or a callable returning one")


def _parse_allowed_header(header_b64: str, allowed: Collection[str]) -> dict[str, Any]:
    """Fully validate a header segment: canonical base64url, strict JSON, ``alg`` allowed."""
    if not header_b64 or not is_canonical(header_b64):
        raise _bad_segment("header", header_b64)
    header = _parse_header(header_b64)
    _check_alg(header["alg"], allowed)
    return header


#: A claims policy as :func:`_compile_verify` applies it: ``(header, claims, now) -> None``,
#: raising on a token it refuses (:attr:`jotkit.ClaimsPolicy.checker`).
ClaimsCheck = Callable[[Mapping[str, Any], Mapping[str, Any], float], None]


def _compile_verify(
    key: KeyLike,
    allowed: Collection[str],
    max_size: int,
    header_cache: dict[str, tuple[dict[str, Any], Key | None]],
    *,
    check: ClaimsCheck | None = None,
    complete: bool = True,
    clock: Clock = time.time,
) -> Callable[..., Any]:
    """The one verification path of :func:`verify`, :func:`jotkit.decode` and
    :class:`jotkit.Verifier`, compiled once per set of checked options: ``run(token, *, now=None)``.

    ``run`` verifies a compact JWS (RFC 7515 §5.2). Without ``check`` it returns
    ``(header, payload bytes, key)``. With ``check`` the token is a JWT (RFC 7519 §7.2): the
    payload must be a JSON object that passes ``check(header, claims, now)``, and ``run``
    returns ``(header copy, claims, key)`` when ``complete``, else the claims alone.
    ``now`` is ``None`` (read ``clock``), epoch seconds or an aware datetime.

    ``allowed`` must come from :func:`check_algorithms`. ``header_cache`` (bounded here)
    maps header segments that passed :func:`_parse_allowed_header` with this ``allowed`` to
    their header and, for a fixed ``Key`` or ``KeySet``, the key it resolved to. An entry is
    stored only after that full validation and resolution, and a hit needs the exact same
    segment text, so a segment that failed is never served.

    Everything per token is in one frame on purpose: this is the hot path of every token
    check, and a Python call per step costs a few percent of an HS256 verify.
    """
    fixed = isinstance(key, Key | KeySet)  # a resolver callable may answer differently
    cache_get = header_cache.get

    def run(token: Any, *, now: Now = None) -> Any:
        now = clock() if now is None else to_timestamp(now)
        if type(token) is not str or len(token) > max_size:
            token = _as_text(token, max_size)
        try:
            header_b64, payload_b64, sig_b64 = token.split(".")
        except ValueError:
            raise _explain_shape(token) from None
        entry = cache_get(header_b64)
        if entry is None:
            header = _parse_allowed_header(header_b64, allowed)
            chosen = resolve_key(key, header)
            if len(header_cache) >= _HEADER_CACHE_SIZE:
                header_cache.clear()
            header_cache[header_b64] = (header, chosen if fixed else None)
        else:
            header, cached = entry
            chosen = resolve_key(key, header) if cached is None else cached
        # The header is canonical base64url (checked above or when cached), so a '+' or '/'
        # of the standard alphabet can only be in the payload or the signature: one look.
        if "+" in token or "/" in token:
            if "+" in payload_b64 or "/" in payload_b64:
                raise _bad_segment("payload", payload_b64)
            raise _bad_segment("signature", sig_b64)
        try:
            payload = decode_urlsafe(payload_b64)
        except ValueError:
            raise _bad_segment("payload", payload_b64) from None
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        by_text = chosen._verify_segment  # HMAC: the segment is checked as text, not decoded
        if by_text is None or not by_text(signing_input, sig_b64):
            # Decode it: a malformed segment is named as such, before any verdict.
            try:
                if not sig_b64:
                    raise ValueError("empty")
                signature = decode_urlsafe(sig_b64)
            except ValueError:
                raise _bad_segment("signature", sig_b64) from None
            # A canonical segment that by_text refused decodes to bytes other than the MAC.
            if by_text is not None or not chosen._verify(signing_input, signature):
                raise InvalidSignature("the signature does not verify")
        if check is None:
            return header, payload, chosen
        try:
            claims = loads_object(payload)
        except ValueError as exc:
            if not payload:
                raise MalformedToken(
                    "the payload is empty; a JWT's payload is a JSON object"
                ) from None
            raise MalformedToken(f"the payload is not a JSON object: {exc}") from None
        check(header, claims, now)
        if complete:
            return dict(header), claims, chosen  # a copy: the header may be a cached one
        return claims

    run.__doc__ = _RUN_DOC
    return run


_RUN_DOC = """run(token, *, now=None): verify one token (jotkit.jws._compile_verify)."""


def verify(
    token: str | bytes,
    key: KeyLike,
    *,
    algorithms: Collection[str],
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[dict[str, Any], bytes]:
    """Verify a JWS compact token and return ``(header, payload bytes)`` (RFC 7515 §5.2).

    ``algorithms`` is required. The payload may be empty (``b""``, RFC 7515 §7.1); a JWT
    never is (:func:`jotkit.decode` refuses it as ``malformed``). Raises
    :class:`jotkit.InvalidToken` subclasses only.
    """
    run = _compile_verify(key, check_algorithms(algorithms), max_size, {})
    header, payload, _ = run(token)
    return header, payload


def sign(payload: bytes, key: Key, *, headers: Mapping[str, Any] | None = None) -> str:
    """Produce a JWS compact token over ``payload`` (RFC 7515 §5.1, §7.1).

    The header gets ``alg`` from the key and ``kid`` when the key has one;
    ``headers`` adds members but cannot change ``alg``. An empty payload gives an
    empty middle segment, as RFC 7515 allows.
    """
    if not isinstance(key, Key):
        raise TypeError("key must be a jotkit.Key")
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be bytes")
    return _sign_segments(header_segment(key, headers), b64encode(bytes(payload)), key)


def header_segment(key: Key, headers: Mapping[str, Any] | None, typ: str | None = None) -> str:
    """The encoded protected header: ``alg`` from the key, ``typ``, ``kid``, then ``headers``."""
    if not headers and typ == "JWT":
        return key._jwt_header  # the common case, encoded once per key
    header: dict[str, Any] = {"alg": key.alg}
    if typ is not None:
        header["typ"] = typ
    if key.kid is not None:
        header["kid"] = key.kid
    if headers:
        if "alg" in headers and headers["alg"] != key.alg:
            raise ValueError(
                f"the key is for {key.alg}; headers cannot set alg to {headers['alg']!r}"
            )
        header.update(headers)
    return b64encode(_json.dumps(header))


def _sign_segments(header_b64: str, payload_b64: str, key: Key) -> str:
    signing_input = f"{header_b64}.{payload_b64}"
    return f"{signing_input}.{b64encode(key.sign(signing_input.encode('ascii')))}"


def decode_unverified(
    token: str | bytes, *, max_size: int = DEFAULT_MAX_SIZE
) -> tuple[dict[str, Any], bytes]:
    """Parse a compact JWS strictly WITHOUT verifying it: ``(header, payload bytes)``.

    The result is untrusted. Unsecured tokens (``alg: none``, empty signature)
    are parsed too, so that tools can show them.
    """
    text = _as_text(token, max_size)
    parts = text.split(".")
    if len(parts) != 3 or not parts[0]:
        raise _explain_shape(text)
    for name, part in zip(_SEGMENT_NAMES, parts, strict=True):
        if not is_canonical(part):
            raise MalformedToken(f"the {name} segment is not canonical base64url")
    return load_segment(parts[0], "header"), _decode_checked(parts[1])


# JSON serialization, RFC 7797 unencoded payloads and detached content live in
# their own module (jotkit.jws_json); re-exported here as the JWS API.
from .jws_json import VerifiedJWS as VerifiedJWS  # noqa: E402
from .jws_json import sign_detached as sign_detached  # noqa: E402
from .jws_json import sign_json as sign_json  # noqa: E402
from .jws_json import verify_detached as verify_detached  # noqa: E402
from .jws_json import verify_json as verify_json  # noqa: E402

__all__ += ["VerifiedJWS", "sign_detached", "sign_json", "verify_detached", "verify_json"]
