"""A caching client for a remote JWK Set (RFC 7517 §5), sync and async.

A resource server verifies access tokens on its own by fetching the issuer's
published JWK Set (``/.well-known/jwks.json``) and caching it::

    client = jotkit.JWKSClient("https://auth.example.com/.well-known/jwks.json")
    claims = jotkit.decode(token, client, algorithms=["ES256"], issuer=..., audience=...)

    # asyncio: resolve the key without blocking the loop, then verify
    header, _ = jotkit.decode_unverified(token)
    key = await client.aresolve(header)
    claims = jotkit.decode(token, key, algorithms=[key.alg], ...)

Behaviour:

* The set is cached for ``max_age`` seconds, or less when the response's
  ``Cache-Control`` (RFC 9111 §5.2.2.1 ``max-age``, minus ``Age``) says so;
  ``no-store``/``no-cache`` cache it for the shortest allowed time
  (``min_refetch_interval``). The cache never outlives ``max_age``.
* A token naming an unknown ``kid`` triggers one refetch, at most once per
  ``min_refetch_interval`` (cooldown), so garbage tokens cannot make the
  client hammer the issuer.
* When a refetch fails (network error, timeout, bad status, malformed or
  oversized body), the cached set keeps being served (stale-if-error, RFC 5861
  §4 in spirit) and is never dropped; a failed fetch is not retried before
  the cooldown has passed. Without any cached set, the failure raises
  :class:`jotkit.JWKSError` (retried after at most a second, not on every call).
* Each fetch has a timeout and a response size limit; redirects are not
  followed. A cached set's ``ETag`` is revalidated with ``If-None-Match``
  (a ``304`` renews it without a download).
* Only ``https`` URLs are accepted, except loopback hosts (``localhost``,
  ``127.0.0.0/8``, ``::1``) or when ``allow_insecure_http=True``.
* The client only ever fetches the URL it was constructed with. Header
  parameters such as ``jku`` or ``x5u`` are ignored (RFC 8725 §3.10).

The cache lives on the instance (no module state). Sync fetches are
serialised with a thread lock and async fetches with an ``asyncio.Lock``
(per event loop); concurrent callers wait for one fetch instead of each
starting their own ("single flight").
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from jotkit.errors import JWKSError, KeyNotFound

if TYPE_CHECKING:
    from jotkit.keys import Key, KeySet

__all__ = ["JWKSClient"]

_log = logging.getLogger("jotkit.jwks")

_DEFAULT_MAX_BYTES = 256 * 1024
_NO_CACHE_RETRY = 1.0
_ACCEPT = "application/jwk-set+json, application/json;q=0.9"


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, allow_insecure_http: bool) -> str:
    if not isinstance(url, str):
        raise TypeError("JWKS url must be a str")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"JWKS url must be an absolute https URL, got {url!r}")
    if parts.username or parts.password:
        raise ValueError("JWKS url must not embed credentials")
    if scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ValueError(
            "refusing a plain-http JWKS url for a non-loopback host; use https "
            "(or pass allow_insecure_http=True for a trusted network)"
        )
    return url


def _cache_ttl(headers: httpx.Headers) -> float | None:
    """Seconds the response may be cached per RFC 9111 §5.2.2 (None: not stated)."""
    directives: dict[str, str | None] = {}
    for header in headers.get_list("cache-control"):
        for raw in header.split(","):
            name, _, value = raw.strip().partition("=")
            if name:
                directives[name.strip().lower()] = value.strip().strip('"') or None
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    max_age = directives.get("max-age")
    if max_age is None:
        return None
    try:
        ttl = float(int(max_age))
    except ValueError:
        return None
    try:
        age = float(int(headers.get("age", "0")))
    except ValueError:
        age = 0.0
    return max(0.0, ttl - max(0.0, age))


class _CappedBody:
    """A response body collected chunk by chunk, refused once it passes ``max_bytes``."""

    __slots__ = ("_chunks", "_client", "_size")

    def __init__(self, client: JWKSClient) -> None:
        self._client = client
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._client.max_bytes:
            raise self._client._too_large()
        self._chunks.append(chunk)

    def value(self) -> bytes:
        return b"".join(self._chunks)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One successfully fetched JWK set and when it goes stale."""

    key_set: KeySet
    fetched_at: float
    fresh_until: float
    etag: str | None = None


class JWKSClient:
    """Fetch, cache and resolve keys from a remote JWK Set (RFC 7517 §5).

    The instance is callable with a JOSE header (``client(header) -> Key``),
    so it can be passed as the key argument of :func:`jotkit.decode` and
    :class:`jotkit.Verifier` on the sync path. For asyncio use
    :meth:`aresolve` / :meth:`aget_key_set`.
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Sequence[str] | None = None,
        max_age: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout: float = 5.0,
        max_bytes: int = _DEFAULT_MAX_BYTES,
        allow_insecure_http: bool = False,
        max_stale: float | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a client for ``url``; nothing is fetched until first use.

        ``algorithms`` keeps only keys bound to those algorithms;
        ``max_stale`` (seconds past freshness, ``None`` = unlimited) bounds
        how long a stale set is served while the issuer is unreachable;
        ``clock`` is a monotonic clock in seconds (injectable for tests).
        """
        self.url = _check_url(url, allow_insecure_http)
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        if min_refetch_interval < 0:
            raise ValueError("min_refetch_interval must not be negative")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.algorithms: tuple[str, ...] | None = (
            tuple(algorithms) if algorithms is not None else None
        )
        self.max_age = float(max_age)
        self.min_refetch_interval = float(min_refetch_interval)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.max_stale = None if max_stale is None else float(max_stale)
        self._http_client = http_client
        self._async_http_client = async_http_client
        # identity: a JWK set is small, and compressed bodies could hide a "zip bomb"
        # (a compressed body is still decoded and cut off at max_bytes)
        self._headers = {"Accept": _ACCEPT, "Accept-Encoding": "identity", **dict(headers or {})}
        self._clock = clock
        self._state_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        # one asyncio.Lock per event loop (a lock is bound to the loop it first waits on)
        self._alocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float | None = None
        self._last_error: JWKSError | None = None
        self._generation = 0
        self.fetch_count = 0
        """Number of HTTP fetches attempted (for monitoring and tests)."""

    def __repr__(self) -> str:
        return f"JWKSClient({self.url!r})"

    # ------------------------------------------------------------------ state

    def _now(self) -> float:
        return self._clock()

    def _cooldown_over(self, now: float) -> bool:
        last = self._last_attempt
        return last is None or now - last >= self.min_refetch_interval

    def _usable(self, snap: _Snapshot, now: float) -> bool:
        """A stale snapshot is still usable unless ``max_stale`` has passed."""
        return self.max_stale is None or now <= snap.fresh_until + self.max_stale

    def _needs_fetch(self, now: float) -> bool:
        snap = self._snapshot
        if snap is None:
            # Without a cache, retry soon (the issuer may just be starting),
            # but not on every call while it is down.
            last = self._last_attempt
            return (
                self._last_error is None
                or last is None
                or now - last >= min(self.min_refetch_interval, _NO_CACHE_RETRY)
            )
        return now >= snap.fresh_until and self._cooldown_over(now)

    def _current(self, now: float) -> KeySet:
        snap = self._snapshot
        if snap is not None and self._usable(snap, now):
            return snap.key_set
        if self._last_error is not None:
            raise self._last_error
        raise JWKSError(f"no usable JWK set from {self.url}", code="jwks_fetch_failed")

    def _record(self, result: _Snapshot | JWKSError, started: float) -> None:
        with self._state_lock:
            self._generation += 1
            self._last_attempt = started
            if isinstance(result, JWKSError):
                self._last_error = result
                if self._snapshot is not None:
                    _log.warning(
                        "JWKS refetch from %s failed (%s); serving the cached set", self.url, result
                    )
            else:
                self._snapshot = result
                self._last_error = None

    # ----------------------------------------------------------------- parsing

    def _parse(self, status: int, headers: httpx.Headers, body: bytes, started: float) -> _Snapshot:
        from jotkit.keys import KeySet

        previous = self._snapshot
        if status == 304 and previous is not None:
            # RFC 9110 §15.4.5: the cached set is still current; only freshness changes.
            return _Snapshot(
                key_set=previous.key_set,
                fetched_at=started,
                fresh_until=started + self._ttl(headers),
                etag=previous.etag,
            )
        if status != 200:
            raise JWKSError(
                f"JWKS fetch from {self.url} returned HTTP {status}", code="jwks_fetch_failed"
            )
        try:
            # strict parsing by the core: no duplicate members, NaN or deep nesting
            key_set = KeySet.from_jwks(body, algorithms=self.algorithms)
        except JWKSError as exc:
            raise JWKSError(f"JWKS from {self.url}: {exc}", code="jwks_invalid") from exc
        except (ValueError, TypeError, RecursionError) as exc:
            raise JWKSError(f"JWKS from {self.url} is invalid: {exc}", code="jwks_invalid") from exc
        symmetric = [k for k in key_set if k.is_symmetric]
        if symmetric:
            # A secret published in a JWK set is no secret: never verify HS* with it.
            key_set = KeySet(
                [k for k in key_set if not k.is_symmetric],
                skipped=(
                    *key_set.skipped,
                    *(f"kid {k.kid!r}: symmetric key in a public JWK set" for k in symmetric),
                ),
            )
        if len(key_set) == 0:
            raise JWKSError(f"JWKS from {self.url} has no usable keys", code="jwks_invalid")
        return _Snapshot(
            key_set=key_set,
            fetched_at=started,
            fresh_until=started + self._ttl(headers),
            etag=headers.get("etag"),
        )

    def _ttl(self, headers: httpx.Headers) -> float:
        """Freshness lifetime: Cache-Control, capped by max_age, floored by the cooldown."""
        ttl = _cache_ttl(headers)
        ttl = self.max_age if ttl is None else min(self.max_age, ttl)
        return max(ttl, min(self.min_refetch_interval, self.max_age))

    def _request_headers(self) -> dict[str, str]:
        snap = self._snapshot
        if snap is not None and snap.etag:
            return {**self._headers, "If-None-Match": snap.etag}
        return self._headers

    def _check_length(self, headers: httpx.Headers) -> None:
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise JWKSError(
                f"JWKS from {self.url} is too large ({length} bytes > {self.max_bytes})",
                code="jwks_invalid",
            )

    def _too_large(self) -> JWKSError:
        return JWKSError(
            f"JWKS from {self.url} is larger than {self.max_bytes} bytes", code="jwks_invalid"
        )

    def _fetch_failed(self, exc: httpx.HTTPError) -> JWKSError:
        """The error for a failed request (sync and async alike)."""
        if isinstance(exc, httpx.TimeoutException):
            reason = f"timed out after {self.timeout}s"
        else:
            reason = f"failed: {type(exc).__name__}: {exc}"
        return JWKSError(f"JWKS fetch from {self.url} {reason}", code="jwks_fetch_failed")

    # -------------------------------------------------------------- sync fetch

    def _fetch_sync(self) -> _Snapshot:
        started = self._now()
        self.fetch_count += 1
        client = self._http_client
        own = client is None
        if client is None:
            client = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False)
        try:
            with client.stream(
                "GET",
                self.url,
                headers=self._request_headers(),
                timeout=self.timeout,
                follow_redirects=False,
            ) as resp:
                self._check_length(resp.headers)
                body = _CappedBody(self)
                for chunk in resp.iter_bytes():
                    body.add(chunk)
                return self._parse(resp.status_code, resp.headers, body.value(), started)
        except httpx.HTTPError as exc:
            raise self._fetch_failed(exc) from exc
        finally:
            if own:
                client.close()

    def _refresh_sync(self, *, force: bool) -> KeySet:
        with self._state_lock:
            generation = self._generation
        with self._fetch_lock:
            now = self._now()
            with self._state_lock:
                fetched_meanwhile = self._generation != generation
                needed = (force and self._cooldown_over(now)) or self._needs_fetch(now)
            if needed and not fetched_meanwhile:
                started = now
                try:
                    result: _Snapshot | JWKSError = self._fetch_sync()
                except JWKSError as exc:
                    result = exc
                self._record(result, started)
            with self._state_lock:
                return self._current(self._now())

    def get_key_set(self, *, force_refresh: bool = False) -> KeySet:
        """Return the cached JWK set, fetching it when missing or stale.

        ``force_refresh`` refetches unless the cooldown forbids it. Raises
        :class:`jotkit.JWKSError` only when no usable set is cached.
        """
        now = self._now()
        with self._state_lock:
            if not force_refresh and not self._needs_fetch(now):
                return self._current(now)
        return self._refresh_sync(force=force_refresh)

    def resolve(self, header: Mapping[str, Any]) -> Key:
        """Pick the key for a JOSE header by ``alg``/``kid`` (RFC 7515 §4.1.4).

        An unknown ``kid`` triggers one refetch (subject to the cooldown);
        still unknown afterwards raises :class:`jotkit.KeyNotFound`. The
        header's ``jku``/``x5u``/``jwk`` are never used.
        """
        alg, kid = self._alg_kid(header)
        key_set = self.get_key_set()
        try:
            return key_set.select(alg, kid)
        except KeyNotFound as exc:
            if exc.code in ("kid_missing", "kid_ambiguous"):
                raise
            with self._state_lock:
                if not self._cooldown_over(self._now()):
                    raise
            return self.get_key_set(force_refresh=True).select(alg, kid)

    def resolve_cached(self, header: Mapping[str, Any]) -> Key | None:
        """Resolve from the cache without any I/O; ``None`` when a fetch is due first.

        Lets asyncio code take a fast synchronous path and fall back to
        :meth:`aresolve` only when the set is stale or the ``kid`` is unknown
        and the cooldown allows a refetch.
        """
        alg, kid = self._alg_kid(header)
        now = self._now()
        with self._state_lock:
            if self._needs_fetch(now):
                return None
            key_set = self._current(now)
            try:
                return key_set.select(alg, kid)
            except KeyNotFound as exc:
                if exc.code in ("kid_missing", "kid_ambiguous") or not self._cooldown_over(now):
                    raise
                return None

    def __call__(self, header: Mapping[str, Any]) -> Key:
        """Alias of :meth:`resolve`, so the client can be used as a key resolver."""
        return self.resolve(header)

    @staticmethod
    def _alg_kid(header: Mapping[str, Any]) -> tuple[str, str | None]:
        from jotkit.errors import MalformedToken

        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str):
            raise MalformedToken("the JOSE header has no string 'alg'")
        if kid is not None and not isinstance(kid, str):
            raise MalformedToken("the JOSE header 'kid' must be a string")
        return alg, kid

    # ------------------------------------------------------------- async fetch

    def _alock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._state_lock:
            lock = self._alocks.get(loop)
            if lock is None:
                lock = self._alocks[loop] = asyncio.Lock()
            return lock

    async def _fetch_async(self) -> _Snapshot:
        started = self._now()
        self.fetch_count += 1
        client = self._async_http_client
        own = client is None
        if client is None:
            client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, trust_env=False
            )
        try:
            async with client.stream(
                "GET",
                self.url,
                headers=self._request_headers(),
                timeout=self.timeout,
                follow_redirects=False,
            ) as resp:
                self._check_length(resp.headers)
                body = _CappedBody(self)
                async for chunk in resp.aiter_bytes():
                    body.add(chunk)
                return self._parse(resp.status_code, resp.headers, body.value(), started)
        except httpx.HTTPError as exc:
            raise self._fetch_failed(exc) from exc
        finally:
            if own:
                await client.aclose()

    async def _refresh_async(self, *, force: bool) -> KeySet:
        with self._state_lock:
            generation = self._generation
        async with self._alock():
            now = self._now()
            with self._state_lock:
                fetched_meanwhile = self._generation != generation
                needed = (force and self._cooldown_over(now)) or self._needs_fetch(now)
            if needed and not fetched_meanwhile:
                started = now
                try:
                    result: _Snapshot | JWKSError = await self._fetch_async()
                except JWKSError as exc:
                    result = exc
                self._record(result, started)
            with self._state_lock:
                return self._current(self._now())

    async def aget_key_set(self, *, force_refresh: bool = False) -> KeySet:
        """Async :meth:`get_key_set`: never blocks the event loop on network I/O."""
        now = self._now()
        with self._state_lock:
            if not force_refresh and not self._needs_fetch(now):
                return self._current(now)
        return await self._refresh_async(force=force_refresh)

    async def aresolve(self, header: Mapping[str, Any]) -> Key:
        """Async :meth:`resolve` (RFC 7515 §4.1.4), with the same refetch rules."""
        alg, kid = self._alg_kid(header)
        key_set = await self.aget_key_set()
        try:
            return key_set.select(alg, kid)
        except KeyNotFound as exc:
            if exc.code in ("kid_missing", "kid_ambiguous"):
                raise
            with self._state_lock:
                if not self._cooldown_over(self._now()):
                    raise
            return (await self.aget_key_set(force_refresh=True)).select(alg, kid)

    # ------------------------------------------------------------- inspection

    @property
    def cached_key_set(self) -> KeySet | None:
        """The cached set (possibly stale), or ``None`` before the first success."""
        snap = self._snapshot
        return None if snap is None else snap.key_set

    @property
    def last_error(self) -> JWKSError | None:
        """The error of the most recent fetch, ``None`` if it succeeded."""
        return self._last_error

    def fresh_key_set(self) -> KeySet | None:
        """The cached set if it is fresh, else ``None``; lock-free and never does I/O.

        The hot path of servers: verify against this set and fall back to
        :meth:`resolve`/:meth:`aresolve` only when it is ``None`` or lacks the kid.
        """
        snap = self._snapshot
        if snap is None or self._clock() >= snap.fresh_until:
            return None
        return snap.key_set

    def is_fresh(self) -> bool:
        """Whether a cached set exists and has not passed its freshness lifetime."""
        snap = self._snapshot
        return snap is not None and self._now() < snap.fresh_until
