"""JSON Web Tokens: encode, and verify-and-validate in one call (RFC 7519 §7, RFC 8725).

:func:`decode` never returns claims that were not both signature-verified and
validated; :func:`decode_unverified` is the one, clearly named, exception.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from . import _json
from ._b64 import b64encode
from .claims import ClaimsPolicy, Clock, Now, TimeSpan, parse_timespan, to_timestamp
from .errors import MalformedToken
from .jws import (
    DEFAULT_MAX_SIZE,
    KeyLike,
    _compile_verify,
    _sign_segments,
    check_algorithms,
    header_segment,
)
from .jws import decode_unverified as _jws_unverified
from .keys import Key, KeySet

__all__ = [
    "VerifiedToken",
    "Verifier",
    "decode",
    "decode_complete",
    "decode_unverified",
    "encode",
    "unsafe_encode_none",
]

_DATE_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature verified and whose claims passed the policy."""

    header: dict[str, Any]
    claims: dict[str, Any]
    key: Key


class _Prepared:
    """Checked options of one verifier (allow-list, claims policy, key, size cap), a bounded
    cache of header segments that passed full validation with this allow-list, and the two
    compiled forms of the one verification path (:func:`jotkit.jws._compile_verify`):
    ``decode(token, *, now=None)`` returns the claims, ``complete`` returns
    ``(header, claims, key)``."""

    __slots__ = ("allowed", "complete", "decode", "header_cache", "key", "max_size", "policy")

    def __init__(
        self,
        allowed: frozenset[str],
        policy: ClaimsPolicy,
        key: KeyLike,
        max_size: int,
        clock: Clock = time.time,
    ) -> None:
        self.allowed = allowed
        self.policy = policy
        self.key = key
        self.max_size = max_size
        self.header_cache: dict[str, tuple[dict[str, Any], Key | None]] = {}
        check = policy.checker
        self.decode: Callable[..., dict[str, Any]] = _compile_verify(
            key, allowed, max_size, self.header_cache, check=check, complete=False, clock=clock
        )
        self.complete: Callable[..., tuple[dict[str, Any], dict[str, Any], Key]] = _compile_verify(
            key, allowed, max_size, self.header_cache, check=check, complete=True, clock=clock
        )


def _prepare(
    key: KeyLike,
    algorithms: Collection[str],
    max_size: int,
    issuer: str | Collection[str] | None,
    audience: str | Collection[str] | None,
    subject: str | None,
    leeway: TimeSpan,
    require: Collection[str],
    max_age: TimeSpan | None,
    typ: str | None,
    clock: Clock = time.time,
) -> _Prepared:
    """Check the caller's options: the one path of :func:`decode` and :class:`Verifier`.

    Returns the allow-list and the frozen :class:`ClaimsPolicy` with the key; misuse
    raises ``TypeError``/``ValueError`` the same way for both APIs.
    """
    allowed = check_algorithms(algorithms)
    if not isinstance(key, (Key, KeySet)) and not callable(key):
        raise TypeError("key must be a jotkit.Key, a jotkit.KeySet or a callable returning one")
    if type(max_size) is not int:
        raise TypeError("max_size must be an int (characters)")
    if max_size <= 0:
        raise ValueError("max_size must be positive")
    policy = ClaimsPolicy.create(
        issuer=issuer,
        audience=audience,
        subject=subject,
        leeway=leeway,
        require=require,
        max_age=max_age,
        typ=typ,
    )
    return _Prepared(frozenset(allowed), policy, key, max_size, clock)


#: The one-shot :func:`decode` reuses the checked options of its recent calls: keyed by the
#: same key object and equal options, with the types of the numeric options (so that
#: ``leeway=True`` is refused even after ``leeway=1``); bounded (cleared when full), and only
#: successful preparations are kept. Unhashable options (lists, sets) are prepared per call.
_PREPARED_MAX = 128
_prepared_cache: dict[tuple[Any, ...], _Prepared] = {}


def _prepare_cached(
    key: KeyLike,
    algorithms: Collection[str],
    max_size: int,
    issuer: str | Collection[str] | None,
    audience: str | Collection[str] | None,
    subject: str | None,
    leeway: TimeSpan,
    require: Collection[str],
    max_age: TimeSpan | None,
    typ: str | None,
) -> _Prepared:
    """:func:`_prepare` through the bounded cache of the one-shot API."""
    if type(algorithms) is list:
        algorithms = tuple(algorithms)
    options = (
        key,
        algorithms,
        max_size,
        type(max_size),
        issuer,
        audience,
        subject,
        typ,
        leeway,
        type(leeway),
        require,
        max_age,
        type(max_age),
    )
    try:
        return _prepared_cache[options]
    except KeyError:
        pass
    except TypeError:  # an unhashable option: prepared per call
        return _prepare(
            key, algorithms, max_size, issuer, audience, subject, leeway, require, max_age, typ
        )
    prepared = _prepare(
        key, algorithms, max_size, issuer, audience, subject, leeway, require, max_age, typ
    )
    if len(_prepared_cache) >= _PREPARED_MAX:
        _prepared_cache.clear()
    _prepared_cache[options] = prepared
    return prepared


class Verifier:
    """A prepared, reusable token verifier: the fast path for services.

    It validates its options once (through the same path as :func:`decode`), keeps the
    allow-list and claims policy, and caches parsed headers (bounded), so each call
    does only the per-token work. Thread-safe: the only state is a header cache whose
    races are benign.
    """

    __slots__ = ("_decode", "_prepared")

    def __init__(
        self,
        key: KeyLike,
        *,
        algorithms: Collection[str],
        issuer: str | Collection[str] | None = None,
        audience: str | Collection[str] | None = None,
        subject: str | None = None,
        leeway: TimeSpan = 0,
        require: Collection[str] = ("exp",),
        typ: str | None = None,
        max_age: TimeSpan | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Clock = time.time,
    ) -> None:
        self._prepared = _prepare(
            key, algorithms, max_size, issuer, audience, subject, leeway, require, max_age, typ,
            clock,
        )
        self._decode = self._prepared.decode

    @property
    def policy(self) -> ClaimsPolicy:
        """The claims policy this verifier applies."""
        return self._prepared.policy

    @property
    def algorithms(self) -> frozenset[str]:
        """The allowed algorithms."""
        return self._prepared.allowed

    def decode_complete(self, token: str | bytes, *, now: Now = None) -> VerifiedToken:
        """Verify the signature and validate the claims; return header, claims and key."""
        return VerifiedToken(*self._prepared.complete(token, now=now))

    if TYPE_CHECKING:

        def decode(self, token: str | bytes, *, now: Now = None) -> dict[str, Any]:
            """Verify the signature and validate the claims; return the claims (RFC 7519 §7.2)."""
            ...

    else:
        # ``decode`` is the compiled path itself (jws._compile_verify), reached through a
        # C-level getter: no Python frame of its own on the hot path of every token check.
        decode = property(
            attrgetter("_decode"),
            doc="decode(token, *, now=None) -> claims: verify the signature and validate the "
            "claims; return the claims (RFC 7519 §7.2).",
        )


def decode_complete(
    token: str | bytes,
    key: KeyLike,
    *,
    algorithms: Collection[str],
    issuer: str | Collection[str] | None = None,
    audience: str | Collection[str] | None = None,
    subject: str | None = None,
    leeway: TimeSpan = 0,
    require: Collection[str] = ("exp",),
    typ: str | None = None,
    max_age: TimeSpan | None = None,
    now: Now = None,
    max_size: int = DEFAULT_MAX_SIZE,
    decryption_key: KeyLike | None = None,
    key_algorithms: Collection[str] | None = None,
    encryptions: Collection[str] | None = None,
) -> VerifiedToken:
    """Like :func:`decode`, but also return the protected header and the key that verified."""
    token = _nested(token, decryption_key, key_algorithms, encryptions, max_size)
    prepared = _prepare_cached(
        key, algorithms, max_size, issuer, audience, subject, leeway, require, max_age, typ
    )
    return VerifiedToken(*prepared.complete(token, now=now))


def decode(
    token: str | bytes,
    key: KeyLike,
    *,
    algorithms: Collection[str],
    issuer: str | Collection[str] | None = None,
    audience: str | Collection[str] | None = None,
    subject: str | None = None,
    leeway: TimeSpan = 0,
    require: Collection[str] = ("exp",),
    typ: str | None = None,
    max_age: TimeSpan | None = None,
    now: Now = None,
    max_size: int = DEFAULT_MAX_SIZE,
    decryption_key: KeyLike | None = None,
    key_algorithms: Collection[str] | None = None,
    encryptions: Collection[str] | None = None,
) -> dict[str, Any]:
    """Verify a JWT's signature and validate its claims; return the claims (RFC 7519 §7.2).

    ``key`` is a :class:`Key`, a :class:`KeySet` (selected by ``kid``) or a
    callable ``header -> Key | KeySet``. ``algorithms`` has no default. ``exp`` is
    required unless ``require`` says otherwise; ``iss``/``aud`` match exactly;
    ``typ`` checks the header (e.g. ``"at+jwt"``, RFC 9068). Every failure is a
    :class:`jotkit.InvalidToken` subclass with a stable ``code``.

    A nested JWT (signed, then encrypted, RFC 7519 §11.2) is decrypted first with
    ``decryption_key``, whose JWE ``key_algorithms`` and ``encryptions`` are
    required allow-lists; then it must be encrypted (a bare JWS is refused).
    """
    if decryption_key is not None or key_algorithms is not None or encryptions is not None:
        token = _nested(token, decryption_key, key_algorithms, encryptions, max_size)
    return _prepare_cached(
        key, algorithms, max_size, issuer, audience, subject, leeway, require, max_age, typ
    ).decode(token, now=now)


def _nested(
    token: str | bytes,
    decryption_key: KeyLike | None,
    key_algorithms: Collection[str] | None,
    encryptions: Collection[str] | None,
    max_size: int,
) -> str | bytes:
    """Unwrap the JWE of a nested JWT when the caller asks for one (RFC 7519 §11.2).

    ``max_size`` caps the inner JWS; the outer JWE may be what encrypting such a JWS makes
    (4/3 for base64url, plus room for the header, encrypted key, IV and tag)."""
    if decryption_key is None:
        if key_algorithms is not None or encryptions is not None:
            raise TypeError("key_algorithms/encryptions need decryption_key")
        return token
    if key_algorithms is None or encryptions is None:
        raise TypeError("decryption_key needs key_algorithms and encryptions (allow-lists)")
    from .jwe import decrypt_nested

    return decrypt_nested(
        token,
        decryption_key,
        algorithms=key_algorithms,
        encryptions=encryptions,
        max_size=max_size * 4 // 3 + 4096,
    )


def decode_unverified(
    token: str | bytes, *, max_size: int = DEFAULT_MAX_SIZE
) -> tuple[dict[str, Any], dict[str, Any]]:
    """UNVERIFIED: parse a JWT's header and claims strictly, checking no signature or claim.

    For debugging and for picking a key issuer; never for authorization.
    """
    header, payload = _jws_unverified(token, max_size=max_size)
    try:
        claims = _json.loads_object(payload)
    except ValueError as exc:
        raise MalformedToken(f"the payload is not a JSON object: {exc}") from None
    return header, claims


def _date_value(value: Any, name: str) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} is a naive datetime; pass an aware one")
        return int(value.timestamp())
    return value


def _set_once(payload: dict[str, Any], name: str, value: Any) -> None:
    if name in payload and payload[name] != value:
        raise ValueError(f"{name!r} is given both in the claims and as an argument")
    payload[name] = value


def encode(
    claims: Mapping[str, Any],
    key: Key,
    *,
    expires_in: TimeSpan | None = None,
    not_before: TimeSpan | datetime | None = None,
    issuer: str | None = None,
    audience: str | list[str] | None = None,
    subject: str | None = None,
    jti: bool | str = False,
    headers: Mapping[str, Any] | None = None,
    now: Now = None,
    iat: bool = True,
    encrypt_to: Key | None = None,
    alg: str | None = None,
    enc: str = "A256GCM",
) -> str:
    """Sign ``claims`` as a JWT with ``key`` (RFC 7519 §7.1).

    ``iat`` is set to now unless ``iat=False``; ``expires_in`` (``"15m"``, seconds,
    timedelta) sets ``exp``; ``not_before`` is a span from now or a datetime;
    ``jti=True`` adds a random 128-bit ID. The header is ``{"alg", "typ": "JWT",
    "kid"}`` plus ``headers``. Datetimes in exp/nbf/iat become NumericDates.

    ``encrypt_to`` makes a nested JWT (RFC 7519 §11.2): the signed JWT is then
    encrypted to that JWE key (``alg`` defaults to the key's, ``enc`` to A256GCM),
    with ``cty: JWT`` in the JWE header and no compression (RFC 8725 §3.6).
    """
    if not isinstance(claims, Mapping):
        raise TypeError("claims must be a mapping")
    if not isinstance(key, Key):
        raise TypeError("key must be a jotkit.Key")
    payload = dict(claims)
    current = to_timestamp(now)
    issued = int(current)
    if iat and "iat" not in payload:
        payload["iat"] = issued
    for name in _DATE_CLAIMS:
        if name in payload:
            payload[name] = _date_value(payload[name], name)
    if expires_in is not None:
        _set_once(payload, "exp", issued + int(parse_timespan(expires_in)))
    if not_before is not None:
        nbf = (
            _date_value(not_before, "not_before")
            if isinstance(not_before, datetime)
            else issued + int(parse_timespan(not_before))
        )
        _set_once(payload, "nbf", nbf)
    if issuer is not None:
        _set_once(payload, "iss", issuer)
    if audience is not None:
        _set_once(payload, "aud", audience)
    if subject is not None:
        _set_once(payload, "sub", subject)
    if jti is True:
        _set_once(payload, "jti", secrets.token_urlsafe(16))
    elif isinstance(jti, str):
        _set_once(payload, "jti", jti)
    header_b64 = header_segment(key, headers, typ="JWT")
    signed = _sign_segments(header_b64, b64encode(_json.dumps(payload)), key)
    if encrypt_to is None:
        return signed
    from .jwe import encrypt

    return encrypt(signed.encode("ascii"), encrypt_to, alg=alg, enc=enc, headers={"cty": "JWT"})


def unsafe_encode_none(claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
    """UNSAFE: an unsecured JWT (``alg: none``, RFC 7519 §6) for tests and tools only.

    No jotkit verifier ever accepts such a token.
    """
    header = {"alg": "none", "typ": "JWT", **(headers or {})}
    header["alg"] = "none"
    return f"{b64encode(_json.dumps(header))}.{b64encode(_json.dumps(dict(claims)))}."
