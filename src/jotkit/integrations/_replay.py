"""DPoP proof replay detection at resource servers (RFC 9449 §11.1).

A proof is identified by its key's thumbprint and its ``jti`` (``"<jkt>:<jti>"``: a jkt is
43 base64url characters, so the key is unambiguous) and must be remembered until it leaves
the ``iat`` window (:attr:`jotkit.dpop.VerifiedProof.expires_at`). :class:`ReplayCache` is the
one role; :meth:`TokenVerifier.authenticate <jotkit.integrations.TokenVerifier.authenticate>`
calls :meth:`~ReplayCache.seen`, :meth:`~TokenVerifier.aauthenticate` awaits
:meth:`~ReplayCache.aseen`, so an async application never blocks its loop on the network.

- :class:`DpopReplayCache` (the default): this process only, bounded (when full, expired
  entries go first, then the oldest);
- :class:`RedisReplayCache` (``jotkit[redis]``): one ``SET key 1 NX PX ttl`` per proof on a
  Redis server that every replica of the resource server shares, so a proof used on one
  replica is refused by all. When Redis cannot answer, :class:`ReplayCacheUnavailable` is
  raised and the verifier answers 503 (it fails closed: a replay check that did not run is
  not a pass).
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["DpopReplayCache", "RedisReplayCache", "ReplayCache", "ReplayCacheUnavailable"]


class ReplayCacheUnavailable(Exception):
    """The shared replay cache could not answer (the verifier fails closed: 503)."""


@runtime_checkable
class ReplayCache(Protocol):
    """Remembers DPoP proofs until they expire (RFC 9449 §11.1)."""

    def seen(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; True when it was already recorded (a
        replay). Raise :class:`ReplayCacheUnavailable` when the answer is unknown."""
        ...

    async def aseen(self, key: str, expires_at: float, now: float) -> bool:
        """:meth:`seen` without blocking the event loop."""
        ...


class DpopReplayCache:
    """The default :class:`ReplayCache`: proofs seen by this process, each kept until it
    leaves the ``iat`` window (at most ``size``; when full, expired entries go first, then
    the oldest). Several processes or replicas need :class:`RedisReplayCache` instead."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: dict[str, float] = {}  # insertion order: oldest first
        self._size = size
        self._lock = threading.Lock()

    def seen(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key``; True when it was seen before and has not expired (a replay)."""
        with self._lock:
            seen = self._seen
            until = seen.get(key)
            if until is not None and until > now:
                return True
            seen[key] = expires_at
            if len(seen) > self._size:
                for old, exp in list(seen.items()):
                    if exp <= now:
                        del seen[old]
                while len(seen) > self._size:
                    del seen[next(iter(seen))]
        return False

    async def aseen(self, key: str, expires_at: float, now: float) -> bool:
        """:meth:`seen` (no I/O: nothing to await)."""
        return self.seen(key, expires_at, now)


def _ttl_ms(expires_at: float, now: float) -> int:
    """Milliseconds to keep a key: at least 1 (``PX`` must be positive)."""
    left = expires_at - now
    if not math.isfinite(left):
        raise ValueError("expires_at must be finite")
    return max(1, math.ceil(left * 1000))


class RedisReplayCache:
    """A :class:`ReplayCache` shared by every replica through Redis (``jotkit[redis]``):
    ``SET <prefix><key> 1 NX PX <ttl>`` per proof, atomic on the server, so of two replicas
    that get the same proof exactly one accepts it.

    Pass ``url`` (``redis://host:6379/0``; clients are made on first use, sync and async
    separately), or ready ``client`` (``redis.Redis``) / ``aclient`` (``redis.asyncio.Redis``).
    With ``url`` each event loop gets its own asyncio client (a redis-py asyncio client
    belongs to the loop it first ran on); a given ``aclient`` is used on every loop.
    ``prefix`` namespaces the keys (one per protected API, say)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        aclient: redis.asyncio.Redis | None = None,
        prefix: str = "jotkit:dpop-rs:",
        timeout: float = 2.0,
    ) -> None:
        if url is None and client is None and aclient is None:
            raise ValueError("RedisReplayCache needs url=, client= or aclient=")
        self._url = url
        self._client = client
        self._aclient = aclient
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]
        self._per_loop = weakref.WeakKeyDictionary()
        self.prefix = prefix
        self._timeout = timeout
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisReplayCache(prefix={self.prefix!r})"  # the URL may hold a password

    def _sync(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                if self._url is None:
                    raise ReplayCacheUnavailable("no synchronous Redis client (pass url=)")
                import redis

                self._client = redis.Redis.from_url(
                    self._url, socket_timeout=self._timeout,
                    socket_connect_timeout=self._timeout,
                )
            return self._client

    def _async(self) -> redis.asyncio.Redis:
        if self._aclient is not None:
            return self._aclient
        if self._url is None:
            raise ReplayCacheUnavailable("no asyncio Redis client (pass url=)")
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
            )
            self._per_loop[loop] = client
        return client

    def seen(self, key: str, expires_at: float, now: float) -> bool:
        """``SET NX PX``: True when the key existed (a replay)."""
        import redis

        try:
            stored: Any = self._sync().set(self.prefix + key, b"1", nx=True,
                                           px=_ttl_ms(expires_at, now))
        except redis.RedisError as exc:
            raise ReplayCacheUnavailable(f"Redis: {type(exc).__name__}") from None
        return not stored

    async def aseen(self, key: str, expires_at: float, now: float) -> bool:
        """``SET NX PX`` on the asyncio client: True when the key existed (a replay)."""
        import redis

        try:
            stored: Any = await self._async().set(self.prefix + key, b"1", nx=True,
                                                  px=_ttl_ms(expires_at, now))
        except redis.RedisError as exc:
            raise ReplayCacheUnavailable(f"Redis: {type(exc).__name__}") from None
        return not stored

    def close(self) -> None:
        """Close the synchronous client (the asyncio one: :meth:`aclose`)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def aclose(self) -> None:
        """Close the asyncio client of the running loop (or the given ``aclient``)."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
            return
        client = self._per_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
