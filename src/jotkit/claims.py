"""JWT claims: NumericDate, time spans and the validation policy (RFC 7519 §4.1, RFC 8725 §3).

The policy is strict by default: ``exp`` is required, leeway is zero, ``iss``
and ``aud`` must match exactly, and a token that carries an ``aud`` is refused
by a caller that expects none (RFC 7519 §4.1.3).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .errors import (
    ExpiredToken,
    ImmatureToken,
    InvalidAudience,
    InvalidClaim,
    InvalidIssuer,
    InvalidSubject,
    InvalidType,
    MissingClaim,
    TokenTooOld,
)

__all__ = [
    "MAX_TIMESPAN",
    "REGISTERED_CLAIMS",
    "ClaimsPolicy",
    "Clock",
    "Now",
    "TimeSpan",
    "check_typ",
    "normalize_typ",
    "numeric_date",
    "parse_timespan",
    "to_timestamp",
    "validate_claims",
]

TimeSpan = str | int | float | timedelta
Now = int | float | datetime | None
Clock = Callable[[], float]
REGISTERED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")

#: The longest span an option or a setting may hold: 100 years. Anything longer is a typo
#: or a way to switch a check off (an "infinite" leeway accepts every expired token).
MAX_TIMESPAN = 100 * 365.25 * 86400.0
_SPAN_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SPAN_SIMPLE = re.compile(r"(\d{1,12})([smhdw])")  # the common "15m": no float, no findall
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_MISSING: Any = object()
#: The default ``require``; the claim checks skip their loop for it (exp is checked anyway).
_REQUIRE_EXP: tuple[str, ...] = ("exp",)


def parse_timespan(value: TimeSpan) -> float:
    """Seconds in a span: ``"30s"``, ``"15m"``, ``"1h30m"``, ``"7d"``, a number, a timedelta.

    The one duration grammar of jotkit (claims options, ``encode`` and the service settings):
    a string is a plain decimal number of seconds (``"90"``, ``"1.5"``) or one or more
    ``<decimal><unit>`` parts, units ``ms s m h d w``, case-insensitive, spaces allowed
    between parts (``"1h 30m"``). No sign, exponent, ``inf`` or ``nan``. Every span must be
    finite, not negative and at most :data:`MAX_TIMESPAN` (100 years): ``ValueError``
    otherwise, ``TypeError`` for a bool or another type.
    """
    if isinstance(value, bool):
        raise TypeError("a time span cannot be a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        simple = _SPAN_SIMPLE.fullmatch(value)
        if simple is not None:
            seconds = int(simple.group(1)) * _UNITS[simple.group(2)]
        else:
            text = value.strip().lower()
            if _SPAN_NUMBER.fullmatch(text):
                seconds = float(text)
            else:
                compact = text.replace(" ", "")
                parts = _SPAN_PART.findall(compact)
                if not parts or "".join(n + u for n, u in parts) != compact:
                    raise ValueError(
                        f"cannot read time span {value!r}; use e.g. '30s', '15m', '1h', '7d'"
                    )
                seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise TypeError(f"a time span must be str, number or timedelta, not {type(value).__name__}")
    if not 0 <= seconds <= MAX_TIMESPAN:  # also false for nan
        raise ValueError(
            f"a time span must be finite, not negative and at most 100 years, got {value!r}"
        )
    return seconds


def to_timestamp(now: Now, clock: Clock = time.time) -> float:
    """Epoch seconds for ``now`` (``None`` reads ``clock``; datetimes must be aware)."""
    if now is None:
        return clock()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("naive datetime; pass an aware one (e.g. tzinfo=timezone.utc)")
        return now.timestamp()
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise TypeError("now must be epoch seconds or an aware datetime")
    try:
        stamp = float(now)
    except OverflowError:
        stamp = math.inf
    if not math.isfinite(stamp):  # NaN compares false with every exp, and so would accept
        raise ValueError("now must be a finite number of epoch seconds")
    return stamp


def numeric_date(value: Any, claim: str) -> float:
    """Check a NumericDate (RFC 7519 §2): a finite JSON number; bool, string and null fail.

    An integer too large for a float (about 309 digits and more) is no usable time either:
    it fails like a non-finite number, as :class:`InvalidClaim`, never ``OverflowError``.
    """
    kind = type(value)
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise InvalidClaim(
                f"the {claim!r} claim is a number too large to be a NumericDate", claim=claim
            ) from None
    if kind is float and math.isfinite(value):
        return float(value)
    raise InvalidClaim(
        f"the {claim!r} claim must be a NumericDate (a JSON number), got {_json_type(value)}",
        claim=claim,
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "an object"
    return type(value).__name__


def normalize_typ(value: str) -> str:
    """Compare media types as RFC 7515 §4.1.9 says: case-insensitive, ``application/`` optional."""
    lowered = value.lower()
    return lowered[12:] if lowered.startswith("application/") else lowered


def _names(value: str | Collection[str] | None, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    given: object = value
    if not isinstance(given, Collection) or isinstance(given, (bytes, bytearray)):
        raise TypeError(f"{what} must be a string or a collection of strings")
    names = frozenset(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{what} must be a string or a non-empty collection of strings")
    return names


@dataclass(frozen=True, slots=True)
class ClaimsPolicy:
    """What a verifier demands of a token's claims and ``typ`` (RFC 7519 §4.1, RFC 8725 §3.11).

    Build it with :meth:`create`, which normalizes and checks the caller's options.
    """

    issuer: frozenset[str] | None = None
    """Accepted ``iss`` values (exact match), or ``None`` to accept any string."""
    audience: frozenset[str] | None = None
    """This recipient's identities; the token's ``aud`` must contain one of them."""
    subject: str | None = None
    """Required ``sub`` value, or ``None``."""
    leeway: float = 0.0
    """Seconds of clock skew tolerated for ``exp``, ``nbf`` and ``iat``."""
    require: tuple[str, ...] = _REQUIRE_EXP
    """Claims that must be present."""
    max_age: float | None = None
    """Maximum seconds since ``iat``; implies ``iat`` is required."""
    typ: str | None = None
    """Expected ``typ`` header, normalized (e.g. ``at+jwt``)."""
    _check: Callable[[Mapping[str, Any], Mapping[str, Any], float], None] = field(
        init=False, repr=False, compare=False, hash=False
    )
    """The checks of :meth:`check`, specialised to this policy once (see :func:`_compile`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_check", _compile(self))

    @classmethod
    def create(
        cls,
        *,
        issuer: str | Collection[str] | None = None,
        audience: str | Collection[str] | None = None,
        subject: str | None = None,
        leeway: TimeSpan = 0,
        require: Collection[str] = ("exp",),
        max_age: TimeSpan | None = None,
        typ: str | None = None,
    ) -> ClaimsPolicy:
        """Validate and normalize the options (``ValueError``/``TypeError`` on misuse).

        The one constructor behind :func:`jotkit.decode` and :class:`jotkit.Verifier`:
        both build their policy here, so the two APIs cannot drift apart.
        """
        if require == ("exp",):
            names: tuple[str, ...] = _REQUIRE_EXP  # the default, already normalized
        else:
            if isinstance(require, str) or not isinstance(require, Collection):
                raise TypeError("require must be a collection of claim names, e.g. ('exp',)")
            names = tuple(dict.fromkeys(require))
            if not all(type(name) is str for name in names):
                raise TypeError("require must hold claim names (str)")
        if subject is not None and not isinstance(subject, str):
            raise TypeError("subject must be a str")
        if typ is not None and not isinstance(typ, str):
            raise TypeError("typ must be a str")
        return cls(  # positional, in field order (cheaper for jotkit.decode's per-call policy)
            _names(issuer, "issuer"),
            _names(audience, "audience"),
            subject,
            0.0 if leeway == 0 and type(leeway) is int else parse_timespan(leeway),
            names,
            None if max_age is None else parse_timespan(max_age),
            None if typ is None else normalize_typ(typ),
        )

    def check_typ(self, header: Mapping[str, Any]) -> None:
        """Explicit typing (RFC 8725 §3.11): the ``typ`` header must be the expected one."""
        check_typ(header, self.typ)

    def check(self, header: Mapping[str, Any], claims: Mapping[str, Any], now: float) -> None:
        """The one check of a verified token: ``typ`` header, then the claims at ``now``
        (RFC 8725 §3.11, RFC 7519 §4.1)."""
        self._check(header, claims, now)

    @property
    def checker(self) -> Callable[[Mapping[str, Any], Mapping[str, Any], float], None]:
        """:meth:`check` as a plain function ``(header, claims, now) -> None``, for hot paths."""
        return self._check

    def validate(self, claims: Mapping[str, Any], now: float) -> None:
        """Check the registered claims against this policy at time ``now`` (RFC 7519 §4.1)."""
        _check_claims(
            claims,
            now,
            self.issuer,
            self.audience,
            self.subject,
            self.leeway,
            self.require,
            self.max_age,
        )


def check_typ(header: Mapping[str, Any], expected: str | None) -> None:
    """Explicit typing (RFC 8725 §3.11): the ``typ`` header must be the normalized ``expected``."""
    if expected is None:
        return
    got = header.get("typ")
    if not isinstance(got, str):
        raise InvalidType(f"the token has no 'typ' header; expected {expected!r}")
    if normalize_typ(got) != expected:
        raise InvalidType(f"the token's typ is {got!r}; expected {expected!r}")


def validate_claims(
    claims: Mapping[str, Any],
    now: float,
    *,
    issuer: str | Collection[str] | None,
    audience: str | Collection[str] | None,
    subject: str | None,
    leeway: float,
    require: Collection[str],
    max_age: float | None,
) -> None:
    """Check registered claims at time ``now`` (RFC 7519 §4.1); options already normalized.

    ``issuer``/``audience`` are a string or a collection of accepted strings.
    """
    _check_claims(claims, now, issuer, audience, subject, leeway, require, max_age)


#: Integers beyond this are no usable NumericDate for arithmetic here; they take the slow
#: path of :func:`numeric_date` (which refuses what a float cannot hold).
_INT_DATE_LIMIT = 1 << 53
_INT_DATE_MIN = -_INT_DATE_LIMIT


def _check_claims(
    claims: Mapping[str, Any],
    now: float,
    issuer: str | Collection[str] | None,
    audience: str | Collection[str] | None,
    subject: str | None,
    leeway: float,
    require: Collection[str],
    max_age: float | None,
) -> None:
    """The claim checks behind :func:`validate_claims` and :meth:`ClaimsPolicy.check`.

    Written for the hot path: an integer NumericDate in range is used as is (the common
    case), anything else goes through :func:`numeric_date`.
    """
    if require is not _REQUIRE_EXP:
        for name in require:
            if name not in claims:
                raise MissingClaim(f"the {name!r} claim is required", claim=name)
    # `in` then a subscript: cheaper than .get() calls for present and absent claims.
    if "exp" in claims:
        exp = claims["exp"]
        if type(exp) is not int or not _INT_DATE_MIN < exp < _INT_DATE_LIMIT:
            exp = numeric_date(exp, "exp")
        if now >= exp + leeway:  # RFC 7519 §4.1.4
            raise ExpiredToken(f"the token expired {_ago(now - exp)} ago", expired_at=float(exp))
    elif require is _REQUIRE_EXP:
        raise MissingClaim("the 'exp' claim is required", claim="exp")
    if "nbf" in claims:
        not_before = numeric_date(claims["nbf"], "nbf")
        if now + leeway < not_before:  # RFC 7519 §4.1.5
            raise ImmatureToken(
                f"the token is not valid for another {_ago(not_before - now)}", claim="nbf"
            )
    if "iat" in claims:
        iat = claims["iat"]
        if type(iat) is not int or not _INT_DATE_MIN < iat < _INT_DATE_LIMIT:
            iat = numeric_date(iat, "iat")
        if iat > now + leeway:
            raise ImmatureToken(
                f"the token was issued {_ago(iat - now)} in the future",
                claim="iat",
                code="iat_in_future",
            )
        if max_age is not None and now - iat > max_age + leeway:
            raise TokenTooOld(
                f"the token was issued {_ago(now - iat)} ago; max age is {_ago(max_age)}",
                claim="iat",
            )
    elif max_age is not None:
        raise MissingClaim("max_age needs the 'iat' claim", claim="iat")
    if "iss" in claims:
        iss = claims["iss"]
        if type(iss) is not str:
            raise InvalidClaim("the 'iss' claim must be a string", claim="iss")
        if issuer is not None and not (iss == issuer if type(issuer) is str else iss in issuer):
            raise InvalidIssuer(f"the issuer {iss!r} is not accepted", claim="iss")
    elif issuer is not None:
        raise MissingClaim("the 'iss' claim is required", claim="iss")
    aud = claims.get("aud", _MISSING)
    if type(aud) is str and audience is not None:  # the common case: one audience string
        if not (aud == audience if type(audience) is str else aud in audience):
            raise InvalidAudience("the token is not meant for this audience", claim="aud")
    elif aud is not _MISSING or audience is not None:
        _check_audience(aud, audience)
    if "sub" in claims:
        sub = claims["sub"]
        if type(sub) is not str:
            raise InvalidClaim("the 'sub' claim must be a string", claim="sub")
        if subject is not None and sub != subject:
            raise InvalidSubject("the subject does not match", claim="sub")
    elif subject is not None:
        raise MissingClaim("the 'sub' claim is required", claim="sub")
    if "jti" in claims and type(claims["jti"]) is not str:
        raise InvalidClaim("the 'jti' claim must be a string", claim="jti")


def _compile(
    policy: ClaimsPolicy,
) -> Callable[[Mapping[str, Any], Mapping[str, Any], float], None]:
    """Specialise the checks of ``policy`` once: the function behind :meth:`ClaimsPolicy.check`.

    The general checks are :func:`check_typ` then :func:`_check_claims`. For the common
    policy (``exp`` required, at most one accepted issuer and audience, no ``max_age``) a
    closure with the options bound tests the usual token shape first: integer dates in
    range, string ``iss``/``aud``/``sub``/``jti``. It only ever *accepts* on its own; at the
    first test that does not pass it runs the general checks, which raise the precise error
    (or accept what the closure does not handle, e.g. an ``aud`` array or a float ``exp``).
    So it accepts exactly what the general checks accept, with the same errors.
    """
    issuer, audience, subject = policy.issuer, policy.audience, policy.subject
    leeway, require, max_age, typ = policy.leeway, policy.require, policy.max_age, policy.typ

    def general(header: Mapping[str, Any], claims: Mapping[str, Any], now: float) -> None:
        if typ is not None:
            check_typ(header, typ)
        _check_claims(claims, now, issuer, audience, subject, leeway, require, max_age)

    if (
        max_age is not None
        or "exp" not in require
        or (issuer is not None and len(issuer) != 1)
        or (audience is not None and len(audience) != 1)
    ):
        return general

    def settle(claims: Mapping[str, Any], now: float) -> None:
        _check_claims(claims, now, issuer, audience, subject, leeway, require, max_age)

    extra = tuple(name for name in require if name != "exp")
    iss_one = None if issuer is None else next(iter(issuer))
    aud_one = None if audience is None else next(iter(audience))
    aud_fast: object = object() if aud_one is None else aud_one  # equal to no claim value
    lo, hi = _INT_DATE_MIN, _INT_DATE_LIMIT

    def check(header: Mapping[str, Any], claims: Mapping[str, Any], now: float) -> None:
        if typ is not None:
            check_typ(header, typ)
        # The usual shape, in as few steps as possible; anything else (a claim missing, a
        # type the comparisons refuse, a huge integer) goes to by_claim. The bounds keep
        # this path to what the general checks accept: ``1 < iat`` excludes booleans and
        # dates a float cannot hold, ``< hi`` the same for ``exp``; a float date compares
        # as the general checks compare it.
        try:
            if (
                now < claims["exp"] + leeway < hi  # RFC 7519 §4.1.4
                and 1 < claims["iat"] <= now + leeway  # not issued in the future
                and claims["aud"] == aud_fast  # equal to a str: a str (never if none expected)
                and (
                    claims["iss"] == iss_one if iss_one is not None else type(claims["iss"]) is str
                )
                and (
                    claims["sub"] == subject if subject is not None else type(claims["sub"]) is str
                )
                and "nbf" not in claims
                and ("jti" not in claims or type(claims["jti"]) is str)
                and not extra
            ):
                return None
        except (KeyError, TypeError, OverflowError):
            pass
        return by_claim(claims, now)

    def by_claim(claims: Mapping[str, Any], now: float) -> None:
        for name in extra:
            if name not in claims:
                return settle(claims, now)
        if "exp" not in claims:
            return settle(claims, now)
        exp = claims["exp"]
        if type(exp) is not int or not lo < exp < hi or now >= exp + leeway:
            return settle(claims, now)
        if "nbf" in claims:
            nbf = claims["nbf"]
            if type(nbf) is not int or not lo < nbf < hi or now + leeway < nbf:
                return settle(claims, now)
        if "iat" in claims:
            iat = claims["iat"]
            if type(iat) is not int or not lo < iat < hi or iat > now + leeway:
                return settle(claims, now)
        if "iss" in claims:
            iss = claims["iss"]
            if type(iss) is not str or (iss_one is not None and iss != iss_one):
                return settle(claims, now)
        elif iss_one is not None:
            return settle(claims, now)
        if "aud" in claims:
            aud = claims["aud"]
            if type(aud) is not str or aud != aud_one:
                return settle(claims, now)
        elif aud_one is not None:
            return settle(claims, now)
        if "sub" in claims:
            sub = claims["sub"]
            if type(sub) is not str or (subject is not None and sub != subject):
                return settle(claims, now)
        elif subject is not None:
            return settle(claims, now)
        if "jti" in claims and type(claims["jti"]) is not str:
            return settle(claims, now)
        return None

    return check


def _check_audience(aud: Any, audience: str | Collection[str] | None) -> None:
    """RFC 7519 §4.1.3: a string or an array of strings, one of which must be ours."""
    if aud is _MISSING:
        raise MissingClaim("the 'aud' claim is required", claim="aud")
    if type(aud) is str:
        values: tuple[str, ...] | list[Any] = (aud,)
    elif type(aud) is list and aud and all(type(a) is str for a in aud):
        values = aud
    else:
        raise InvalidClaim(
            "the 'aud' claim must be a string or a non-empty array of strings", claim="aud"
        )
    if audience is None:
        raise InvalidAudience(
            "the token is meant for an audience but no expected audience was given",
            claim="aud",
        )
    for value in values:
        if value == audience if type(audience) is str else value in audience:
            return
    raise InvalidAudience("the token is not meant for this audience", claim="aud")


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"
