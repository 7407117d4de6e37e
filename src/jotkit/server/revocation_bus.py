"""Revocation propagation between instances over Redis pub/sub.

Every instance keeps its in-process :class:`~jotkit.server.sessions.RevocationCache` (the hot
path never leaves the process). :class:`RevocationBus` subscribes to the channel the Redis
revocation store publishes on and applies each message to the cache as it arrives, which
typically takes a few milliseconds. A message can still be missed (the subscription dropped,
Redis restarted); two mechanisms bound the damage:

* on every (re)subscription the bus first subscribes, then catches up from the change log
  (``changes_since``), so nothing published while it was away is lost;
* the service's background task re-syncs from the change log (and the database journal) every
  ``revocation_sync_interval`` seconds regardless (the bounded fallback refresh).

While the subscription is down the instance cannot learn revocations within milliseconds.
:class:`BusRevocationCache` then fails closed (default: protected requests get HTTP 503
``temporarily_unavailable``) or, with ``JOTKIT_REVOCATION_FAIL_OPEN=1``, keeps answering
from the local cache, which the periodic sync still updates from the database journal.

A ``{"k": "keys"}`` message (sent by the key store on rotation) makes the instance reload its
key ring at once, so a rotation on one instance is published by all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from .errors import ServiceError
from .sessions import AuthService, RevocationCache
from .store.redis import RedisRevocationStore, RedisStore

__all__ = ["BusRevocationCache", "RevocationBus", "attach_revocation_bus"]

_log = logging.getLogger("jotkit.server")


class BusRevocationCache(RevocationCache):
    """A revocation cache that refuses to answer while its bus is disconnected (fail closed),
    unless configured to fail open."""

    def __init__(self, bus: RevocationBus) -> None:
        super().__init__()
        self._bus = bus

    def reason(self, *args: Any, **kwargs: Any) -> str | None:
        """As :meth:`RevocationCache.reason`; raises 503 when the revocation state may be
        stale and the deployment fails closed."""
        if not self._bus.healthy and not self._bus.fail_open:
            raise ServiceError(
                "temporarily_unavailable",
                "Revocation state is unavailable (Redis is unreachable); retry shortly.",
                headers={"Retry-After": "1"},
            )
        return super().reason(*args, **kwargs)


class RevocationBus:
    """Subscribes to the revocation channel and keeps one service's cache current."""

    def __init__(
        self,
        svc: AuthService,
        store: RedisRevocationStore,
        redis: Any,
        *,
        fail_open: bool = False,
        max_backoff: float = 1.0,
    ) -> None:
        self.svc = svc
        self.store = store
        self.redis = redis
        self.fail_open = fail_open
        self.max_backoff = max_backoff
        self.healthy = False
        self.messages = 0
        self.reconnects = 0
        registry = svc.metrics.registry
        self._m_connected = Gauge(
            "jotkit_revocation_bus_connected",
            "1 while subscribed to the Redis revocation channel.",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self._m_messages = Counter(
            "jotkit_revocation_bus_messages", "Pub/sub messages applied.", registry=registry
        )
        self._m_reconnects = Counter(
            "jotkit_revocation_bus_disconnects",
            "Times the subscription was lost.",
            registry=registry,
        )
        svc.metrics.function_gauge(
            "jotkit_revocation_pending",
            "Revocations written to the database journal but not yet to Redis.",
            lambda: float(store.pending),
        )
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._keys_task: asyncio.Task[None] | None = None
        #: called (on the event loop) after each applied revocation message: the revocation
        #: feed's hub wakes its streams at once instead of at its next poll
        self.listeners: list[Callable[[], None]] = []

    async def start(self, wait: float = 2.0) -> None:
        """Start listening; wait up to ``wait`` seconds for the first subscription."""
        if self._task is not None:
            return
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="jotkit-revocation-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def stop(self) -> None:
        """Stop listening."""
        for task in (self._task, self._keys_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        self._keys_task = None
        self.healthy = False

    def _set_healthy(self, value: bool) -> None:
        self._m_connected.set(1.0 if value else 0.0)
        if value != self.healthy:
            _log.log(
                logging.INFO if value else logging.WARNING,
                "revocation bus %s",
                "connected" if value else "disconnected",
            )
        self.healthy = value

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.store.channel)
                now = self.svc.clock.now()
                await self.store.flush_pending(now)
                await self.store.ensure_epoch(now)
                await self.svc.revocations.sync(self.store, now)  # catch up after subscribing
                self._set_healthy(True)
                self._ready.set()
                backoff = 0.05
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._apply(message.get("data"))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._set_healthy(False)
                self.reconnects += 1
                self._m_reconnects.inc()
                _log.debug("revocation bus: %s", exc)
            except Exception as exc:  # never let the listener die
                self._set_healthy(False)
                self.reconnects += 1
                self._m_reconnects.inc()
                _log.warning("revocation bus error: %s: %s", type(exc).__name__, exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)

    def _apply(self, data: Any) -> None:
        """Apply one published message to the cache."""
        try:
            doc = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(doc, dict):
            return
        self.messages += 1
        self._m_messages.inc()
        if doc.get("k") == "keys":
            if self._keys_task is None or self._keys_task.done():
                self._keys_task = asyncio.create_task(self._reload_keys())
            return
        entries = doc.get("x")
        if not isinstance(entries, list):
            return
        cache = self.svc.revocations
        for entry in entries:
            try:
                value, at, exp = str(entry[0]), float(entry[1]), float(entry[2])
            except (TypeError, ValueError, IndexError):
                continue
            if doc.get("k") == "jti":
                cache.deny([(value, exp)])
            elif doc.get("k") == "user":
                cache.mark(value, at)
        for listener in self.listeners:
            listener()

    async def _reload_keys(self) -> None:
        try:
            await self.svc.sync()
        except Exception as exc:  # the periodic sync retries
            _log.warning("key ring reload failed: %s", exc)


def attach_revocation_bus(svc: AuthService) -> RevocationBus | None:
    """If the service runs on a :class:`RedisStore`, give it a bus-aware revocation cache and
    a :class:`RevocationBus` that starts and stops with the store. Call before ``svc.start()``.
    """
    store = svc.store
    if not isinstance(store, RedisStore):
        return None
    bus = RevocationBus(svc, store.revocations, store.redis, fail_open=store.fail_open)
    svc.revocations = BusRevocationCache(bus)
    store.bus = bus
    return bus
