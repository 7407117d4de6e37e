"""The one verifier core shared by the FastAPI, Starlette and Flask adapters.

It reads a bearer token (RFC 6750 §2.1, or a configured cookie) or a DPoP-bound one
(``Authorization: DPoP`` with a ``DPoP`` proof, RFC 9449 §7), verifies it
as a JWT access token (RFC 9068: ``typ`` ``at+jwt``, issuer, audience), checks the
key binding of a token with ``cnf.jkt`` (RFC 9449 §6-7, through :mod:`jotkit.dpop`),
optionally asks the issuer's introspection endpoint (RFC 7662) whether it is
still active, checks scopes and roles, and turns every failure into ONE
:class:`BearerError` whose status, ``WWW-Authenticate`` header (RFC 6750 §3)
and JSON body are identical in every framework.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jotkit
from jotkit.dpop import DEFAULT_ALGORITHMS as DPOP_ALGORITHMS
from jotkit.dpop import HmacNonces, ProofVerifier
from jotkit.errors import (
    InvalidDPoPProof,
    InvalidToken,
    JWKSError,
    KeyNotFound,
    RevokedToken,
    UseDPoPNonce,
)
from jotkit.jwks_client import JWKSClient, _check_url

from ._replay import DpopReplayCache, ReplayCache, ReplayCacheUnavailable
from ._revocations import RevocationStatus, RevocationSubscriber

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_COOKIE_NAME",
    "DPOP_ALGORITHMS",
    "BearerError",
    "Claims",
    "DpopReplayCache",
    "Introspection",
    "ReplayCache",
    "RevocationStatus",
    "RevocationSubscriber",
    "TokenVerifier",
    "check_grants",
    "claim_roles",
    "claim_scopes",
    "uses_dpop",
]

_log = logging.getLogger("jotkit.integrations")

Claims = dict[str, Any]
DEFAULT_COOKIE_NAME = "__Host-jotkit_access"
"""The access-token cookie ``jotkit serve`` sets in cookie mode (``jotkit_access`` when
``JOTKIT_COOKIE_SECURE=0``)."""
KeyArg = Any  # jotkit.Key | jotkit.KeySet | JWKSClient | Callable[[header], Key | KeySet]

# RFC 6750 §3: error_description / scope use %x20-21 / %x23-5B / %x5D-7E only.
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BEARER_PREFIXES = frozenset({"Bearer ", "bearer ", "BEARER "})
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

_DESCRIPTIONS: dict[str, str] = {
    "expired": "The access token expired",
    "revoked": "The access token was revoked",
    "not_yet_valid": "The access token is not valid yet",
    "iat_in_future": "The access token was issued in the future",
    "too_old": "The access token is too old",
    "invalid_issuer": "The access token was issued by an untrusted issuer",
    "invalid_audience": "The access token is not meant for this audience",
    "invalid_subject": "The access token has the wrong subject",
    "missing_claim": "The access token lacks a required claim",
    "invalid_claim": "The access token has an invalid claim",
    "invalid_typ": "The token is not an access token (typ)",
    "bad_signature": "The access token signature is invalid",
    "key_not_found": "The access token was signed by an unknown key",
    "kid_missing": "The access token does not name its signing key",
    "kid_ambiguous": "The access token does not name its signing key",
    "key_mismatch": "The access token was signed by an unknown key",
    "alg_not_allowed": "The access token uses a disallowed algorithm",
    "alg_none": "The access token is unsigned",
    "unknown_crit": "The access token uses an unsupported critical extension",
    "malformed": "The access token is malformed",
    "token_too_large": "The access token is too large",
}


def uses_dpop(authorization: str | None) -> bool:
    """True when the ``Authorization`` header uses the DPoP scheme (RFC 9449 §7.1): only
    then do adapters collect the proof, method and URL for :meth:`TokenVerifier.authenticate`."""
    return authorization is not None and authorization[:5].lower() == "dpop "


def _malformed_header() -> BearerError:
    return BearerError(
        400, "invalid_request", "Malformed Authorization header", reason="malformed_header"
    )


def _quote(text: str) -> str:
    return _UNSAFE.sub("?", text)


class BearerError(Exception):
    """An authentication/authorisation failure, rendered per RFC 6750 §3.

    ``status`` is 401 (missing/invalid token), 403 (``insufficient_scope``),
    400 (``invalid_request``) or 503 (keys or introspection unavailable).
    ``error`` is the RFC 6750 error code, or ``None`` when the request carried
    no credentials at all (RFC 6750 §3.1: then no error code is sent).
    """

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str,
        *,
        scope: Sequence[str] = (),
        reason: str | None = None,
        retry_after: int | None = None,
        dpop_algs: Sequence[str] = (),
        dpop_nonce: str | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = tuple(scope)
        self.reason = reason
        self.retry_after = retry_after
        self.dpop_algs = tuple(dpop_algs)
        """Set for a DPoP failure: the challenge is ``DPoP algs="..."`` (RFC 9449 §7.1)."""
        self.dpop_nonce = dpop_nonce
        """The nonce to send as ``DPoP-Nonce`` (``use_dpop_nonce``, RFC 9449 §9)."""

    def __repr__(self) -> str:
        return f"BearerError({self.status}, {self.error!r}, {self.description!r})"

    def www_authenticate(self, realm: str | None = None) -> str | None:
        """The ``WWW-Authenticate`` challenge (RFC 6750 §3; RFC 9449 §7.1 for DPoP), or None
        for 5xx."""
        if self.status >= 500:
            return None
        params: list[str] = []
        if self.dpop_algs:
            params.append(f'algs="{" ".join(self.dpop_algs)}"')
        if realm:
            params.append(f'realm="{_quote(realm)}"')
        if self.error is not None:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quote(self.description)}"')
        if self.scope:
            params.append(f'scope="{_quote(" ".join(self.scope))}"')
        scheme = "DPoP" if self.dpop_algs else "Bearer"
        return f"{scheme} " + ", ".join(params) if params else scheme

    def headers(self, realm: str | None = None) -> dict[str, str]:
        """Response headers: the challenge, ``Cache-Control: no-store``, ``Retry-After``,
        ``DPoP-Nonce`` (RFC 9449 §9)."""
        out = {"Cache-Control": "no-store"}
        challenge = self.www_authenticate(realm)
        if challenge is not None:
            out["WWW-Authenticate"] = challenge
        if self.dpop_nonce is not None:
            out["DPoP-Nonce"] = self.dpop_nonce
        if self.retry_after is not None:
            out["Retry-After"] = str(self.retry_after)
        return out

    def body(self) -> dict[str, Any]:
        """The JSON body, the same shape in every framework and in ``jotkit serve``.

        ``{"error", "error_description", "reason"}`` (+ ``"scope"`` on 403):
        ``error`` is the RFC 6750 code, ``reason`` the stable jotkit code.
        """
        out: dict[str, Any] = {
            "error": self.error or "invalid_request",
            "error_description": self.description,
            "reason": self.reason or self.error or "missing_token",
        }
        if self.scope:
            out["scope"] = " ".join(self.scope)
        return out


def claim_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes granted by a token: ``scope`` (RFC 8693 §4.2, space-separated) or ``scp``."""
    return frozenset(_granted(claims))


def _granted(claims: Mapping[str, Any]) -> set[str]:
    scope = claims.get("scope")
    out: set[str] = set(scope.split()) if type(scope) is str else set()
    for value in (scope, claims.get("scp")) if type(scope) is not str else (claims.get("scp"),):
        if isinstance(value, str):
            out.update(value.split())
        elif isinstance(value, list):
            out.update(v for v in value if isinstance(v, str))
    return out


def claim_roles(claims: Mapping[str, Any]) -> frozenset[str]:
    """Roles of the subject: the ``roles`` claim (RFC 9068 §7.2.1.1), list or string."""
    value = claims.get("roles")
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def check_grants(
    claims: Mapping[str, Any], scopes: Sequence[str] = (), roles: Sequence[str] = ()
) -> None:
    """Raise 403 ``insufficient_scope`` (RFC 6750 §3.1) unless the token grants them.

    Every scope in ``scopes`` must be granted; of ``roles``, at least one.
    """
    if scopes and not _granted(claims).issuperset(scopes):
        needed = tuple(dict.fromkeys(scopes))
        raise BearerError(
            403,
            "insufficient_scope",
            "The access token lacks the required scope",
            scope=needed,
        )
    if roles and claim_roles(claims).isdisjoint(roles):
        wanted = tuple(dict.fromkeys(roles))
        raise BearerError(
            403,
            "insufficient_scope",
            "The access token lacks a required role (" + " or ".join(wanted) + ")",
        )


@dataclass(frozen=True, slots=True)
class Introspection:
    """Ask the issuer whether a token is still active (RFC 7662 §2).

    The endpoint is called with HTTP Basic client authentication
    (RFC 7662 §2.1, RFC 6749 §2.3.1) and the answer is cached for
    ``cache_ttl`` seconds per token. ``fail_open=False`` (default) answers
    503 when the endpoint is unreachable; ``True`` accepts the locally
    verified token instead. Like the JWKS client, only ``https`` URLs are
    accepted, except loopback hosts or with ``allow_insecure_http=True``: the
    request carries the client secret and the token.
    """

    url: str
    client_id: str
    client_secret: str = field(repr=False)
    cache_ttl: float = 5.0
    timeout: float = 3.0
    fail_open: bool = False
    cache_size: int = 10_000
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        _check_url(self.url, self.allow_insecure_http)
        if self.cache_ttl < 0 or self.timeout <= 0:
            raise ValueError("cache_ttl must be >= 0 and timeout > 0")


_TIME_CLAIMS = ("exp", "nbf", "iat")


@dataclass(slots=True)
class _Entry:
    claims: Claims
    times: Claims  # the time claims (exp, nbf, iat), re-validated on every hit
    kid: Any  # the header's kid: a hit needs it still in the JWK set
    until: float


@dataclass(slots=True)
class _LRU:
    """A small thread-safe LRU map with per-entry deadlines."""

    size: int
    data: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Any:
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def pop(self, key: str) -> None:
        with self.lock:
            self.data.pop(key, None)


_ASYMMETRIC = tuple(name for name in jotkit.ALGORITHM_NAMES if not name.startswith("HS"))


def _algorithms_for(key: KeyArg, algorithms: Sequence[str] | None) -> tuple[str, ...]:
    if algorithms is not None:
        return tuple(algorithms)
    if isinstance(key, jotkit.Key):
        return (key.alg,)
    if isinstance(key, jotkit.KeySet):
        return tuple(sorted({k.alg for k in key}))
    if isinstance(key, JWKSClient):
        # Each key is bound to exactly one algorithm (RFC 8725 §3.1) and the client
        # drops symmetric keys, so "any asymmetric alg" means "the key's own alg".
        return key.algorithms if key.algorithms is not None else _ASYMMETRIC
    raise TypeError("algorithms= is required when key is a custom callable")


class TokenVerifier:
    """Verify bearer access tokens for a resource server (RFC 6750, RFC 9068).

    ``key`` is a :class:`jotkit.Key`, a :class:`jotkit.KeySet`, a
    :class:`jotkit.JWKSClient` or a callable ``header -> Key | KeySet``.
    ``typ`` defaults to ``"at+jwt"`` (RFC 9068 §2.1); pass ``None`` to skip it.
    ``scopes``/``roles`` are required of every request; adapters add
    per-route requirements. ``cookie_name`` also accepts the token from that
    cookie when no ``Authorization`` header is sent. Verified tokens are kept
    in an LRU cache for at most ``cache_ttl`` seconds; ``exp`` is still checked
    on every request. ``clock`` returns epoch seconds (injectable for tests).

    ``revocations`` is the issuer's revocation feed (``jotkit serve``:
    ``<issuer>/oauth/revocations``): a background thread keeps a local deny-set
    current and every verification, cached or not, refuses a revoked ``jti`` or a
    token issued before its user's revoked-before time, with no network call per
    request (see :mod:`jotkit.integrations._revocations`). ``revocations_auth`` is
    the ``(client_id, client_secret)`` the feed authenticates (HTTP Basic),
    ``revocations_client`` an ``httpx.Client`` to use instead of an own one.
    While the feed is not synced, ``revocations_fail_open=True`` accepts tokens
    (counted and logged; each still ends at its ``exp``) and ``False`` answers 503.

    DPoP (RFC 9449 §7): :meth:`authenticate` accepts ``Authorization: DPoP <token>`` with
    one ``DPoP`` proof header, checked by :class:`jotkit.dpop.ProofVerifier`
    (``dpop_algorithms``, ``dpop_max_age``) for this request's method and URL, the token's
    hash (``ath``) and its ``cnf.jkt``; ``dpop_replay`` (a :class:`ReplayCache`) refuses a
    proof seen before: :class:`DpopReplayCache` (default, this process) or
    :class:`RedisReplayCache` (shared by every replica; 503 when Redis cannot answer). A
    token with ``cnf.jkt`` sent as a plain Bearer token is refused. ``dpop_base_url``
    (``https://api.example.com``) replaces the scheme and host the framework reports when a
    proxy rewrites them. ``dpop_nonce`` (an :class:`jotkit.dpop.HmacNonces`) makes proofs
    carry a nonce of this resource server (RFC 9449 §9): without a current one the answer is
    401 ``use_dpop_nonce`` with a ``DPoP-Nonce`` header, and :meth:`dpop_nonce_headers` gives
    adapters the fresh nonce for successful answers.
    """

    def __init__(
        self,
        key: KeyArg,
        *,
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        algorithms: Sequence[str] | None = None,
        typ: str | None = "at+jwt",
        leeway: float = 0.0,
        require: Sequence[str] = ("exp",),
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        cookie_name: str | None = None,
        introspection: Introspection | None = None,
        realm: str | None = None,
        cache_size: int = 1024,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
        revocations: str | None = None,
        revocations_auth: tuple[str, str] | None = None,
        revocations_client: httpx.Client | None = None,
        revocations_fail_open: bool = True,
        revocations_allow_insecure_http: bool = False,
        dpop_algorithms: Sequence[str] = DPOP_ALGORITHMS,
        dpop_max_age: float = 60.0,
        dpop_replay: ReplayCache | None = None,
        dpop_base_url: str | None = None,
        dpop_nonce: HmacNonces | None = None,
    ) -> None:
        """Prepare the verifier; see the class docstring for the arguments."""
        self.dpop = ProofVerifier(dpop_algorithms, max_age=dpop_max_age)
        if dpop_replay is not None and not isinstance(dpop_replay, ReplayCache):
            raise TypeError("dpop_replay must be a ReplayCache (seen / aseen)")
        self.dpop_replay: ReplayCache = (
            dpop_replay if dpop_replay is not None else DpopReplayCache()
        )
        self.dpop_nonce = dpop_nonce
        self.dpop_base_url = None if dpop_base_url is None else dpop_base_url.rstrip("/")
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.algorithms = _algorithms_for(key, algorithms)
        self.typ = typ
        self.leeway = float(leeway)
        self.require = tuple(require)
        self.scopes = tuple(scopes)
        self.roles = tuple(roles)
        self.cookie_name = cookie_name
        self.introspection = introspection
        self.realm = realm
        self.cache_ttl = float(cache_ttl)
        self._clock = clock
        self._cache = _LRU(cache_size)
        self._introspected = _LRU(introspection.cache_size if introspection else 0)
        self._jwks = key if isinstance(key, JWKSClient) else None
        options: dict[str, Any] = {
            "algorithms": list(self.algorithms),
            "issuer": issuer,
            "audience": audience,
            "typ": typ,
            "leeway": self.leeway,
            "require": self.require,
            "clock": clock,
        }
        # the key, or the JWKS client as a resolver (which may fetch synchronously)
        self._verifier = jotkit.Verifier(key, **options)
        # the same policy, restricted to what time can change (exp, nbf, iat): cache hits
        self._time_policy = dataclasses.replace(
            self._verifier.policy, issuer=None, audience=None, subject=None, require=()
        )
        # JWKS fast path: a Verifier over the client's fresh cached KeySet, rebuilt
        # when the client's cache changes; no locks, no I/O (see _fast_verifier)
        self._snap_verifier: tuple[Any, jotkit.Verifier] | None = None
        self._options = options
        self._http_lock = threading.Lock()
        self._http: Any = None  # httpx.Client, created lazily for introspection
        self.revocations: RevocationSubscriber | None = None
        if revocations is not None:
            self.revocations = RevocationSubscriber(
                revocations,
                auth=revocations_auth,
                client=revocations_client,
                fail_open=revocations_fail_open,
                allow_insecure_http=revocations_allow_insecure_http,
                clock=clock,
            ).start()

    # ------------------------------------------------------------ extraction

    def extract(self, authorization: str | None, cookies: Mapping[str, str] | None = None) -> str:
        """Return the bearer token of a request (RFC 6750 §2.1) or raise BearerError.

        No credentials at all: 401 without an error code (RFC 6750 §3.1). A
        malformed ``Authorization: Bearer`` header: 400 ``invalid_request``.
        ``Authorization: DPoP`` goes through :meth:`authenticate`, which checks the proof.
        """
        token, dpop = self._extract(authorization, cookies)
        if dpop:
            raise BearerError(401, None, "A bearer access token is required",
                              reason="missing_token")
        return token

    def _extract(
        self, authorization: str | None, cookies: Mapping[str, str] | None
    ) -> tuple[str, bool]:
        """The token and whether it came with the DPoP scheme (RFC 9449 §7.1)."""
        if authorization:
            if authorization[:7] in _BEARER_PREFIXES:  # the usual "Bearer <token>"
                scheme, rest = "bearer", authorization[7:]
            else:
                scheme, _, rest = authorization.strip().partition(" ")
            kind = scheme.lower()
            if kind in ("bearer", "dpop"):
                token = rest.strip()
                if not token or " " in token:
                    raise _malformed_header()
                # the b64token charset (RFC 6750 §2.1) is checked only when the core
                # rejects the token as malformed (see _token_error): 400, not 401
                return token, kind == "dpop"
        if self.cookie_name and cookies:
            cookie = cookies.get(self.cookie_name)
            if cookie:
                return cookie.strip(), False
        raise BearerError(401, None, "A bearer access token is required", reason="missing_token")

    # ---------------------------------------------------------- verification

    def _from_cache(self, token: str, now: float) -> Claims | None:
        if self._cache.size <= 0:
            return None
        entry: _Entry | None = self._cache.get(token)
        if entry is None:
            return None
        if now >= entry.until:
            self._cache.pop(token)
            return None
        if self._jwks is not None:
            # A key the issuer withdrew (``jotkit keys revoke``) is gone from the set at the
            # next JWKS fetch: from then on its tokens are verified again, and refused.
            key_set = self._jwks.cached_key_set
            if key_set is None or not isinstance(entry.kid, str) or entry.kid not in key_set:
                self._cache.pop(token)
                return None
        try:
            # the core's own check of the time claims at ``now`` (the other claims cannot
            # change): one rule for a hit and a full verification, e.g. a token is refused
            # at exactly ``now == exp`` (RFC 7519 §4.1.4)
            self._time_policy.validate(entry.times, now)
        except InvalidToken as exc:
            self._cache.pop(token)
            raise self._token_error(exc) from None
        return entry.claims

    def _remember(self, token: str, claims: Claims, now: float) -> None:
        if self._cache.size <= 0:
            return
        kid = None
        if self._jwks is not None:
            kid = jotkit.decode_unverified(token)[0].get("kid")
        times = {name: claims[name] for name in _TIME_CLAIMS if name in claims}
        self._cache.put(token, _Entry(claims, times, kid, now + self.cache_ttl))

    def _fast_verifier(self) -> jotkit.Verifier | None:
        """A Verifier over the JWKS client's fresh cached set, or None if a fetch is due."""
        assert self._jwks is not None
        key_set = self._jwks.fresh_key_set()
        if key_set is None:
            return None
        cached = self._snap_verifier
        if cached is not None and cached[0] is key_set:
            return cached[1]
        verifier = jotkit.Verifier(key_set, **self._options)
        self._snap_verifier = (key_set, verifier)
        return verifier

    def _decode_fast(self, token: str, now: float) -> Claims | None:
        """Verify from cached keys; None when the JWKS must be (re)fetched first."""
        fast = self._fast_verifier()
        if fast is None:
            return None
        try:
            return fast.decode(token, now=now)
        except KeyNotFound as exc:
            if exc.code != "key_not_found":
                raise
            return None  # unknown kid: the slow path may refetch (cooldown permitting)

    async def _adecode_fetching(self, token: str, now: float) -> Claims:
        """Slow async path: fetch the JWKS without blocking the loop, then verify."""
        assert self._jwks is not None
        header, _ = jotkit.decode_unverified(token)
        if header.get("alg") not in self.algorithms:
            raise jotkit.UnsupportedAlgorithm("the token's alg is not allowed")
        key = await self._jwks.aresolve(header)
        opts = {k: v for k, v in self._options.items() if k != "clock"}
        return jotkit.decode(token, key, now=now, **opts)

    @staticmethod
    def _token_error(exc: InvalidToken, token: str | None = None) -> BearerError:
        if exc.code == "malformed" and token is not None and not _B64TOKEN.fullmatch(token):
            return _malformed_header()
        description = _DESCRIPTIONS.get(exc.code, "The access token is invalid")
        return BearerError(401, "invalid_token", description, reason=exc.code)

    @staticmethod
    def _unavailable(description: str, reason: str) -> BearerError:
        return BearerError(
            503, "temporarily_unavailable", description, reason=reason, retry_after=5
        )

    def verify(self, token: str, *, allow_bound: bool = False) -> Claims:
        """Verify a bearer token (sync); returns a copy of its claims or raises BearerError.

        A DPoP-bound token (``cnf.jkt``) is no bearer token and is refused (401
        ``dpop_bound_token``, RFC 9449 §7.2) unless ``allow_bound``: the caller then checks
        the binding itself (:meth:`check_binding`, as :meth:`authenticate` does)."""
        now = self._clock()
        claims = self._from_cache(token, now)
        if claims is None:
            try:
                fast = None if self._jwks is None else self._decode_fast(token, now)
                claims = fast if fast is not None else self._verifier.decode(token, now=now)
            except InvalidToken as exc:
                _log.debug("token rejected: %r", exc)
                raise self._token_error(exc, token) from None
            except JWKSError as exc:
                _log.warning("no signing keys available: %s", exc)
                raise self._unavailable("The signing keys are unavailable", exc.code) from None
            if self.introspection is not None:
                self._check_active(token, now)
            self._remember(token, claims, now)
        elif self.introspection is not None:
            self._check_active(token, now)
        if self.revocations is not None:
            self._check_revocations(claims)
        if not allow_bound:  # a bearer request: refuse a bound token (no proof, no I/O)
            self._bound_proof(claims, token, False, (), "GET", None)
        return dict(claims)

    async def averify(self, token: str, *, allow_bound: bool = False) -> Claims:
        """Verify a bearer token without blocking the event loop on key fetches or
        introspection; a DPoP-bound token needs ``allow_bound`` (see :meth:`verify`)."""
        now = self._clock()
        claims = self._from_cache(token, now)
        if claims is None:
            try:
                if self._jwks is None:
                    claims = self._verifier.decode(token, now=now)
                else:
                    claims = self._decode_fast(token, now)
                    if claims is None:
                        claims = await self._adecode_fetching(token, now)
            except InvalidToken as exc:
                _log.debug("token rejected: %r", exc)
                raise self._token_error(exc, token) from None
            except JWKSError as exc:
                _log.warning("no signing keys available: %s", exc)
                raise self._unavailable("The signing keys are unavailable", exc.code) from None
            if self.introspection is not None:
                await self._acheck_active(token, now)
            self._remember(token, claims, now)
        elif self.introspection is not None:
            await self._acheck_active(token, now)
        if self.revocations is not None:
            self._check_revocations(claims)
        if not allow_bound:  # a bearer request: refuse a bound token (no proof, no I/O)
            self._bound_proof(claims, token, False, (), "GET", None)
        return dict(claims)

    def _check_revocations(self, claims: Claims) -> None:
        """Refuse a token the revocation feed revoked (401), or any token while the feed
        is not synced and the verifier fails closed (503)."""
        assert self.revocations is not None
        reason = self.revocations.check(claims)
        if reason == "revoked":
            raise self._token_error(RevokedToken("token revoked (revocation feed)"))
        if reason is not None:
            raise self._unavailable("The revocation feed is unavailable", "revocations_unavailable")

    def revocation_status(self) -> RevocationStatus | None:
        """Health of the revocation feed subscription (``sync_age``: seconds since the feed
        last confirmed the deny-set is current), or None without ``revocations``."""
        return None if self.revocations is None else self.revocations.status()

    # ---------------------------------------------------------- authorisation

    def authorize(
        self, claims: Mapping[str, Any], scopes: Sequence[str] = (), roles: Sequence[str] = ()
    ) -> None:
        """Require this verifier's and the route's scopes/roles (RFC 6750 §3.1, 403)."""
        need_scopes = (*self.scopes, *scopes) if self.scopes else scopes
        need_roles = (*self.roles, *roles) if self.roles else roles
        if need_scopes or need_roles:
            check_grants(claims, need_scopes, need_roles)

    def _dpop_error(self, status: int, error: str, description: str, reason: str) -> BearerError:
        return BearerError(status, error, description, reason=reason,
                           dpop_algs=sorted(self.dpop.algorithms))

    def dpop_nonce_headers(self) -> dict[str, str]:
        """``{"DPoP-Nonce": <current nonce>}`` for a successful DPoP answer when this verifier
        requires nonces (RFC 9449 §9: a fresh nonce before the old one goes stale), else
        ``{}``. Adapters add it to the response of a request that used the DPoP scheme."""
        if self.dpop_nonce is None:
            return {}
        return {"DPoP-Nonce": self.dpop_nonce.current(self._clock())}

    def _bound_proof(
        self,
        claims: Mapping[str, Any],
        token: str,
        dpop_scheme: bool,
        proofs: Sequence[str],
        method: str,
        url: str | None,
    ) -> tuple[str, float, float] | None:
        """The decisions of :meth:`check_binding`, replay excepted (sans-IO): the replay
        cache's arguments for the proof (``"<jkt>:<jti>"``, its expiry, now), or None for a
        bearer token that is not bound."""
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if type(cnf) is dict else None
        if not dpop_scheme:
            if jkt is not None:
                raise self._dpop_error(401, "invalid_token", "The access token is DPoP-bound: "
                                       "use the DPoP scheme with a proof", "dpop_bound_token")
            return None
        if not isinstance(jkt, str):
            raise self._dpop_error(401, "invalid_token", "The access token is not DPoP-bound",
                                   "dpop_unbound_token")
        if len(proofs) != 1 or url is None:
            raise self._dpop_error(401, "invalid_dpop_proof", "Send exactly one DPoP proof "
                                   "header", "dpop_malformed")
        if self.dpop_base_url is not None:
            url = self.dpop_base_url + "/" + url.split("://", 1)[-1].partition("/")[2]
        now = self._clock()
        nonces = self.dpop_nonce
        checker = None if nonces is None else (lambda value: nonces.valid(value, now))
        try:
            proof = self.dpop.verify(proofs[0], method=method, url=url, now=now,
                                     access_token=token, jkt=jkt, nonce=checker)
        except UseDPoPNonce:
            assert nonces is not None
            error = self._dpop_error(401, "use_dpop_nonce", "Resource server requires nonce in "
                                     "DPoP proof", "dpop_nonce_required")
            error.dpop_nonce = nonces.current(now)
            raise error from None
        except InvalidDPoPProof as exc:
            raise self._dpop_error(401, "invalid_dpop_proof", "The DPoP proof is invalid",
                                   exc.code) from None
        return f"{proof.jkt}:{proof.jti}", proof.expires_at, now

    def _replayed(self, replayed: bool) -> None:
        if replayed:
            raise self._dpop_error(401, "invalid_dpop_proof", "The DPoP proof was already used",
                                   "dpop_replayed")

    def _replay_unavailable(self, exc: ReplayCacheUnavailable) -> BearerError:
        _log.warning("DPoP replay cache unavailable: %s", exc)
        return self._unavailable("The DPoP replay cache is unavailable", "dpop_replay_unavailable")

    def check_binding(
        self,
        claims: Mapping[str, Any],
        token: str,
        *,
        dpop_scheme: bool,
        proofs: Sequence[str] = (),
        method: str = "GET",
        url: str | None = None,
    ) -> None:
        """RFC 9449 §7: a token bound to a key (``cnf.jkt``) needs the DPoP scheme and one
        proof of that key for this request and token (and a current nonce with
        ``dpop_nonce``, §9), not seen before (§11.1); the DPoP scheme needs a bound token.
        Raise a 401 :class:`BearerError` with a DPoP challenge otherwise (503 when a shared
        replay cache cannot answer)."""
        found = self._bound_proof(claims, token, dpop_scheme, proofs, method, url)
        if found is not None:
            try:
                replayed = self.dpop_replay.seen(*found)
            except ReplayCacheUnavailable as exc:
                raise self._replay_unavailable(exc) from None
            self._replayed(replayed)

    async def acheck_binding(
        self,
        claims: Mapping[str, Any],
        token: str,
        *,
        dpop_scheme: bool,
        proofs: Sequence[str] = (),
        method: str = "GET",
        url: str | None = None,
    ) -> None:
        """:meth:`check_binding` with the replay cache awaited (:meth:`ReplayCache.aseen`)."""
        found = self._bound_proof(claims, token, dpop_scheme, proofs, method, url)
        if found is not None:
            try:
                replayed = await self.dpop_replay.aseen(*found)
            except ReplayCacheUnavailable as exc:
                raise self._replay_unavailable(exc) from None
            self._replayed(replayed)

    def authenticate(
        self,
        authorization: str | None,
        cookies: Mapping[str, str] | None = None,
        *,
        scopes: Sequence[str] = (),
        roles: Sequence[str] = (),
        dpop: Sequence[str] = (),
        method: str = "GET",
        url: str | None = None,
    ) -> Claims:
        """Extract, verify, check the DPoP binding and authorise in one call (sync).

        ``dpop`` holds the request's ``DPoP`` header values, ``method`` and ``url`` (the
        full request URL) are what the proof must name (RFC 9449 §4.3)."""
        token, dpop_scheme = self._extract(authorization, cookies)
        claims = self.verify(token, allow_bound=True)
        if dpop_scheme:
            self.check_binding(claims, token, dpop_scheme=True, proofs=dpop, method=method,
                               url=url)
        else:  # a bearer request: refuse a bound token (no proof, no I/O)
            self._bound_proof(claims, token, False, (), method, url)
        self.authorize(claims, scopes, roles)
        return claims

    async def aauthenticate(
        self,
        authorization: str | None,
        cookies: Mapping[str, str] | None = None,
        *,
        scopes: Sequence[str] = (),
        roles: Sequence[str] = (),
        dpop: Sequence[str] = (),
        method: str = "GET",
        url: str | None = None,
    ) -> Claims:
        """Extract, verify, check the DPoP binding and authorise in one call (async)."""
        token, dpop_scheme = self._extract(authorization, cookies)
        claims = await self.averify(token, allow_bound=True)
        if dpop_scheme:
            await self.acheck_binding(claims, token, dpop_scheme=True, proofs=dpop,
                                      method=method, url=url)
        else:  # a bearer request: refuse a bound token (no proof, no I/O)
            self._bound_proof(claims, token, False, (), method, url)
        self.authorize(claims, scopes, roles)
        return claims

    # ------------------------------------------------------------ introspection

    def _cached_active(self, token: str, now: float) -> bool | None:
        hit: tuple[bool, float] | None = self._introspected.get(token)
        if hit is None or now >= hit[1]:
            return None
        return hit[0]

    def _introspection_result(self, token: str, now: float, status: int, data: Any) -> None:
        assert self.introspection is not None
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("active"), bool):
            self._introspection_failed(f"HTTP {status}")
            return
        active: bool = data["active"]
        self._introspected.put(token, (active, now + self.introspection.cache_ttl))
        if not active:
            self._cache.pop(token)
            raise self._token_error(RevokedToken("token is not active"))

    def _introspection_failed(self, why: str) -> None:
        assert self.introspection is not None
        _log.warning("token introspection failed: %s", why)
        if not self.introspection.fail_open:
            raise self._unavailable("Token introspection is unavailable", "introspection_failed")

    def _check_active(self, token: str, now: float) -> None:
        import httpx

        assert self.introspection is not None
        active = self._cached_active(token, now)
        if active is True:
            return
        if active is False:
            raise self._token_error(RevokedToken("token is not active"))
        cfg = self.introspection
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=cfg.timeout, trust_env=False)
            client: httpx.Client = self._http
        try:
            resp = client.post(
                cfg.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(cfg.client_id, cfg.client_secret),
                headers={"Accept": "application/json"},
            )
            data = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, RecursionError) as exc:
            self._introspection_failed(f"{type(exc).__name__}: {exc}")
            return
        self._introspection_result(token, now, resp.status_code, data)

    async def _acheck_active(self, token: str, now: float) -> None:
        import httpx

        assert self.introspection is not None
        active = self._cached_active(token, now)
        if active is True:
            return
        if active is False:
            raise self._token_error(RevokedToken("token is not active"))
        cfg = self.introspection
        try:
            async with httpx.AsyncClient(timeout=cfg.timeout, trust_env=False) as client:
                resp = await client.post(
                    cfg.url,
                    data={"token": token, "token_type_hint": "access_token"},
                    auth=(cfg.client_id, cfg.client_secret),
                    headers={"Accept": "application/json"},
                )
                data = resp.json() if resp.status_code == 200 else None
        except (TimeoutError, httpx.HTTPError, ValueError, RecursionError) as exc:
            self._introspection_failed(f"{type(exc).__name__}: {exc}")
            return
        self._introspection_result(token, now, resp.status_code, data)

    def close(self) -> None:
        """Close the pooled HTTP client used for sync introspection, if any, and stop the
        revocation feed subscription."""
        if self.revocations is not None:
            self.revocations.close()
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None
