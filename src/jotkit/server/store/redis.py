"""Redis backends for the hot, expiring state of a multi-instance deployment.

* :class:`RedisRevocationStore`: the deny-list (``jti`` until the token's ``exp``) and per-user
  revoked-before markers. Every key carries a TTL equal to the remaining lifetime of what it
  protects, so nothing outlives its token. Writes go first to a durable journal (the SQL
  ``revocations`` table, same process) and then to Redis in one Lua script that also appends to
  an ordered change log and publishes the change on a pub/sub channel
  (:mod:`jotkit.server.revocation_bus` delivers it to every instance's in-process cache).
  If Redis lost its data (restart without persistence) the first instance to notice re-seeds it
  from the journal, so no revocation is lost once Redis is back; and :meth:`changes_since`
  also returns journal rows this process has not seen, so the periodic sync finds revocations
  that never reached Redis.
* :class:`RedisRateLimiter`: fixed-window login-throttle counters, one hash per key with a TTL of
  one window.
* :class:`GraceSessionStore`: the rotation grace state (who spent a refresh token, when) in
  Redis with a TTL of the grace window, so benign retries are answered without the database.
  Rotation itself stays a conditional UPDATE in SQL, which remains authoritative.
* :class:`RedisDpopStore`: DPoP proofs already seen (RFC 9449 §11.1), one ``SET NX`` key per
  proof with a TTL of the proof's ``iat`` window; refresh bindings stay in SQL.
* :class:`RedisStore`: the SQL store for durable state (users, refresh families, key ring) with
  the Redis parts swapped in.

Times are the caller's clock (the service's injectable clock); TTLs are computed relative to it
(``exp - now``), and every read also compares the stored expiry with ``now``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .base import (
    DpopStore,
    KeyRecord,
    KeyStore,
    RateLimiter,
    RevocationChanges,
    RevocationStore,
    RotateOutcome,
    RotateResult,
    SessionStore,
    Store,
)
from .rotation import REVOKE_REASON, within_grace

__all__ = [
    "GraceSessionStore",
    "RedisDpopStore",
    "RedisKeyStore",
    "RedisRateLimiter",
    "RedisRevocationStore",
    "RedisStore",
    "connect_redis",
]

_log = logging.getLogger("jotkit.server")

_MAX_PENDING = 10_000  # batches kept for re-sending while Redis is unreachable
_EPOCH_BITS = 32  # cursor = epoch << 32 | seq
_SEQ_MASK = (1 << _EPOCH_BITS) - 1


def connect_redis(
    url: str, *, max_connections: int = 64, pool_timeout: float = 5.0
) -> aioredis.Redis:
    """A redis-py asyncio client that fails fast on a dead server (no retries, short
    timeouts) so callers can apply their fail-open/fail-closed policy instead of hanging.

    The pool is a :class:`redis.asyncio.BlockingConnectionPool`: when all
    ``max_connections`` are busy a command waits up to ``pool_timeout`` seconds for one
    (redis-py's default pool raises ``MaxConnectionsError`` at once, which turned a login
    burst into 503s); after the timeout it raises ``ConnectionError``, answered with 503 and
    ``Retry-After``. The revocation bus's subscription holds one of the connections."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        decode_responses=True,
        encoding_errors="replace",  # a junk message on the channel must not break the bus
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=5,
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return client


def _ttl_ms(until: float, now: float) -> int:
    """Milliseconds from ``now`` to ``until`` (at least 1)."""
    return max(1, math.ceil((until - now) * 1000.0))


# KEYS: seq counter, epoch, log (by seq), log expiry index (by exp)
# ARGV: prefix, now, new_epoch, kind, n, then n x (value, at, expires_at, ttl_ms)
_APPEND = """
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local epoch = redis.call('GET', KEYS[2])
local fresh = 0
if not epoch then
  redis.call('SET', KEYS[2], ARGV[3])
  epoch = ARGV[3]
  fresh = 1
end
local kind = ARGV[4]
local n = tonumber(ARGV[5])
local last = nil
local out = {}
for i = 0, n - 1 do
  local value = ARGV[6 + i * 4]
  local at = ARGV[7 + i * 4]
  local exp = ARGV[8 + i * 4]
  local ttl = ARGV[9 + i * 4]
  local seq = redis.call('INCR', KEYS[1])
  last = seq
  local member = cjson.encode({seq, kind, value, at, exp})
  redis.call('ZADD', KEYS[3], seq, member)
  redis.call('ZADD', KEYS[4], exp, member)
  if kind == 'jti' then
    redis.call('SET', prefix .. 'deny:' .. value, exp, 'PX', ttl)
  else
    local key = prefix .. 'marker:' .. value
    local cur = redis.call('GET', key)
    local new_at, new_exp, new_ttl = at, exp, tonumber(ttl)
    if cur then
      local sep = string.find(cur, '|', 1, true)
      local cur_at = string.sub(cur, 1, sep - 1)
      local cur_exp = string.sub(cur, sep + 1)
      if tonumber(cur_at) > tonumber(new_at) then new_at = cur_at end
      if tonumber(cur_exp) > tonumber(new_exp) then new_exp = cur_exp end
      local pttl = redis.call('PTTL', key)
      if pttl > new_ttl then new_ttl = pttl end
    end
    redis.call('SET', key, new_at .. '|' .. new_exp, 'PX', new_ttl)
  end
  table.insert(out, {value, at, exp})
end
-- drop log entries whose tokens have expired
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
for _, member in ipairs(dead) do
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
end
-- the log (and its epoch and sequence) lives as long as its longest-lived entry
local ttl_all = tonumber(ARGV[6 + n * 4])
if ttl_all > 0 then
  local cur = redis.call('PTTL', KEYS[3])
  if cur < ttl_all then
    for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], ttl_all) end
  end
end
local msg = cjson.encode({e = tonumber(epoch), k = kind, s = last, x = out})
redis.call('PUBLISH', prefix .. 'events', msg)
return {epoch, last, fresh}
"""

_READ_LOG = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then return {false, 0, {}} end
local top = tonumber(redis.call('GET', KEYS[1]) or '0')
local rows = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf')
return {epoch, top, rows}
"""

# KEYS: counter hash. ARGV: now, window, ttl_ms, op (1 = count, 0 = peek, -1 = release)
_HIT = """
local start = redis.call('HGET', KEYS[1], 's')
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if (not start) or tonumber(start) <= now - window then
  if ARGV[4] ~= '1' then return {0, ARGV[1]} end
  redis.call('HSET', KEYS[1], 's', ARGV[1], 'c', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, ARGV[1]}
end
if ARGV[4] == '0' then
  return {tonumber(redis.call('HGET', KEYS[1], 'c') or '0'), start}
end
-- a window that grew (login backoff) keeps the counter alive until its new end
local ttl = math.ceil((tonumber(start) + window - now) * 1000)
if ttl > redis.call('PTTL', KEYS[1]) then redis.call('PEXPIRE', KEYS[1], ttl) end
if ARGV[4] == '-1' then
  local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
  if c > 0 then c = redis.call('HINCRBY', KEYS[1], 'c', -1) end
  return {c, start}
end
return {redis.call('HINCRBY', KEYS[1], 'c', 1), start}
"""


class RedisRevocationStore(RevocationStore):
    """Deny-list and revoked-before markers in Redis, journaled to a durable store.

    ``durable`` (normally the SQL revocation store) is written first and is the source of truth
    for recovery; Redis serves lookups, the change log and pub/sub propagation. A Redis write
    that fails is kept and re-sent by :meth:`flush_pending` (the revocation bus calls it when
    Redis is reachable again).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        durable: RevocationStore | None = None,
        *,
        marker_lifetime: float = 86400.0,
    ) -> None:
        self._redis = client
        self.prefix = prefix
        self._durable = durable
        self._marker_lifetime = marker_lifetime
        self._pending: list[tuple[str, list[tuple[str, float, float]]]] = []
        self._journal_cursor = 0
        self._append = client.register_script(_APPEND)
        self._read = client.register_script(_READ_LOG)
        self._seed_lock = asyncio.Lock()
        k = prefix
        self._keys = [f"{k}seq", f"{k}epoch", f"{k}log", f"{k}logexp"]

    @property
    def channel(self) -> str:
        """The pub/sub channel revocations are published on."""
        return f"{self.prefix}events"

    @property
    def pending(self) -> int:
        """Number of writes that did not reach Redis yet."""
        return sum(len(rows) for _kind, rows in self._pending)

    # -- writes -----------------------------------------------------------------------------
    async def _write(self, kind: str, rows: list[tuple[str, float, float]], now: float) -> bool:
        """Run the append script; return True when Redis had lost its data (new epoch)."""
        args: list[Any] = [self.prefix, repr(now), str(_new_epoch()), kind, len(rows)]
        longest = 0
        for value, at, exp in rows:
            ttl = _ttl_ms(exp, now)
            longest = max(longest, ttl)
            args += [value, repr(at), repr(exp), ttl]
        args.append(longest)
        result = await self._append(keys=self._keys, args=args)
        return bool(int(result[2]))

    async def _send(self, kind: str, rows: list[tuple[str, float, float]], now: float) -> None:
        if not rows:
            return
        try:
            fresh = await self._write(kind, rows, now)
        except (RedisError, OSError) as exc:
            if self._durable is None:
                raise
            _log.warning("redis unavailable, revocation kept for re-send: %s", exc)
            self._pending.append((kind, rows))
            if len(self._pending) > _MAX_PENDING:  # the journal still has them
                del self._pending[0]
            return
        if fresh:
            await self.reseed(now)

    async def deny(self, entries: Sequence[tuple[str, float]], now: float) -> None:
        """Deny-list ``(jti, exp)`` pairs until their ``exp`` (TTL = remaining lifetime)."""
        live = [(jti, exp) for jti, exp in entries if exp > now]
        if not live:
            return
        if self._durable is not None:
            await self._durable.deny(live, now)
        await self._send("jti", [(jti, now, exp) for jti, exp in live], now)

    async def set_user_marker(self, user_id: str, revoked_before: float, keep_until: float) -> None:
        """Reject the user's access tokens issued before ``revoked_before`` until
        ``keep_until`` (when every such token has expired)."""
        if self._durable is not None:
            await self._durable.set_user_marker(user_id, revoked_before, keep_until)
        now = revoked_before
        await self._send("user", [(user_id, revoked_before, max(keep_until, now + 0.001))], now)

    async def flush_pending(self, now: float) -> int:
        """Re-send writes that failed while Redis was unreachable; return how many were sent."""
        sent = 0
        while self._pending:
            kind, rows = self._pending[0]
            live = [r for r in rows if r[2] > now]
            if live:
                fresh = await self._write(kind, live, now)
                if fresh:
                    await self.reseed(now)
            self._pending.pop(0)
            sent += len(live)
        return sent

    async def ensure_epoch(self, now: float) -> bool:
        """Make sure Redis holds this deployment's state; re-seed it from the durable journal
        when it does not (first start, or Redis restarted empty). Return True if re-seeded."""
        if await self._redis.exists(self._keys[1]):
            return False
        return await self.reseed(now)

    async def reseed(self, now: float) -> bool:
        """Copy every still-relevant journal entry into Redis (idempotent)."""
        if self._durable is None:
            if not await self._redis.exists(self._keys[1]):
                await self._redis.set(self._keys[1], str(_new_epoch()), nx=True)
            return False
        async with self._seed_lock:
            changes = await self._durable.changes_since(0, now)
            denied = [(jti, now, exp) for jti, exp in changes.denied if exp > now]
            # the journal returns markers without their keep-until: a marker matters for at
            # most the lifetime of a token issued just before it
            markers = [
                (user_id, at, at + self._marker_lifetime)
                for user_id, at in changes.markers
                if at + self._marker_lifetime > now
            ]
            for start in range(0, len(denied), 500):
                await self._write("jti", denied[start : start + 500], now)
            if markers:
                await self._write("user", markers, now)
            if not denied and not markers:
                await self._redis.set(self._keys[1], str(_new_epoch()), nx=True)
            _log.info("redis re-seeded: %d denied, %d markers", len(denied), len(markers))
        return True

    # -- reads ------------------------------------------------------------------------------
    async def is_denied(self, jti: str, now: float) -> bool:
        """Authoritative lookup (Redis; the durable journal when Redis is unreachable)."""
        try:
            value = await self._redis.get(f"{self.prefix}deny:{jti}")
        except (RedisError, OSError):
            if self._durable is None:
                raise
            return await self._durable.is_denied(jti, now)
        return value is not None and float(_text(value)) > now

    async def user_marker(self, user_id: str, now: float) -> float | None:
        """The user's revoked-before marker while it matters."""
        try:
            value = await self._redis.get(f"{self.prefix}marker:{user_id}")
        except (RedisError, OSError):
            if self._durable is None:
                raise
            return await self._durable.user_marker(user_id, now)
        if value is None:
            return None
        at, _, exp = _text(value).partition("|")
        return float(at) if float(exp) > now else None

    async def changes_since(self, cursor: int, now: float) -> RevocationChanges:
        """Entries after ``cursor`` from the Redis change log, plus the journal entries this
        store object has not returned yet (so a revocation that never reached Redis, e.g.
        written while Redis was unreachable, is still found by the periodic sync).

        The cursor carries Redis's epoch: after Redis lost its data every entry is returned
        again (merged, never dropped, by the caller). While Redis is unreachable only the
        journal part is returned and the cursor stays where it was."""
        if cursor == 0:
            self._journal_cursor = 0
        try:
            from_redis = await self._redis_changes(cursor, now)
        except (RedisError, OSError):
            if self._durable is None:
                raise
            from_redis = RevocationChanges((), (), cursor, reset=cursor == 0)
        if self._durable is None:
            return from_redis
        try:
            journal = await self._durable.changes_since(self._journal_cursor, now)
        except Exception as exc:  # database down: Redis alone still answers
            _log.debug("revocation journal unavailable: %s", exc)
            return from_redis
        self._journal_cursor = max(self._journal_cursor, journal.cursor)
        if not journal.denied and not journal.markers:
            return from_redis
        denied: dict[str, float] = {}
        for jti, exp in from_redis.denied + journal.denied:
            denied[jti] = max(exp, denied.get(jti, exp))
        markers: dict[str, float] = {}
        for user_id, at in from_redis.markers + journal.markers:
            markers[user_id] = max(at, markers.get(user_id, at))
        return RevocationChanges(
            tuple(denied.items()),
            tuple(markers.items()),
            from_redis.cursor,
            reset=from_redis.reset,
        )

    async def _redis_changes(self, cursor: int, now: float) -> RevocationChanges:
        epoch_raw, top, rows = await self._read(keys=self._keys, args=[cursor & _SEQ_MASK])
        if not epoch_raw:
            await self.reseed(now)
            epoch_raw, top, rows = await self._read(keys=self._keys, args=[0])
            if not epoch_raw:
                raise RedisError("redis epoch missing after re-seed")
        epoch = int(epoch_raw)
        if cursor >> _EPOCH_BITS != epoch:
            # a different epoch (or the first sync): read from the start
            _raw, top, rows = await self._read(keys=self._keys, args=[0])
        denied: list[tuple[str, float]] = []
        markers: list[tuple[str, float]] = []
        for member in rows:
            _seq, kind, value, at, exp = json.loads(member)
            if float(exp) <= now:
                continue
            if kind == "jti":
                denied.append((value, float(exp)))
            else:
                markers.append((value, float(at)))
        return RevocationChanges(
            tuple(denied), tuple(markers), (epoch << _EPOCH_BITS) | int(top), reset=cursor == 0
        )

    async def purge(self, now: float) -> int:
        """Drop expired log entries (keys expire by themselves) and expired journal rows."""
        total = 0
        if self._durable is not None:
            total += await self._durable.purge(now)
        try:
            dead = await self._redis.zrangebyscore(self._keys[3], "-inf", now)
            if dead:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(self._keys[2], *dead)
                    pipe.zrem(self._keys[3], *dead)
                    await pipe.execute()
                total += len(dead)
        except (RedisError, OSError) as exc:
            _log.warning("redis purge failed: %s", exc)
        return total


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def _new_epoch() -> int:
    return secrets.randbelow(1 << 20) + 1


class RedisRateLimiter(RateLimiter):
    """Fixed-window counters: a hash ``{s: window start, c: count}`` with a TTL of one window."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self.prefix = prefix
        self._hit = client.register_script(_HIT)

    async def _run(self, key: str, window: float, now: float, op: str) -> tuple[int, float]:
        result = await self._hit(
            keys=[f"{self.prefix}rl:{key}"],
            args=[repr(now), repr(window), _ttl_ms(now + window, now), op],
        )
        n, start = int(result[0]), float(result[1])
        if n == 0:
            return 0, 0.0
        return n, max(0.0, start + window - now)

    async def hit(self, key: str, window: float, now: float) -> tuple[int, float]:
        """Count one event in the current window (the TTL follows a window that grew)."""
        return await self._run(key, window, now, "1")

    async def peek(self, key: str, window: float, now: float) -> tuple[int, float]:
        """The current count without counting."""
        return await self._run(key, window, now, "0")

    async def release(self, key: str, window: float, now: float) -> None:
        """Take back one event of the current window."""
        await self._run(key, window, now, "-1")

    async def reset(self, key: str) -> None:
        """Forget a counter."""
        await self._redis.delete(f"{self.prefix}rl:{key}")

    async def purge(self, started_before: float) -> int:
        """Nothing to do: every counter has a TTL of its window."""
        return 0


class RedisDpopStore(DpopStore):
    """The DPoP replay cache in Redis (``SET NX PX``: the first instance to see a proof wins),
    the refresh bindings in the SQL store (durable, read once per refresh)."""

    def __init__(self, sql: DpopStore, client: aioredis.Redis, prefix: str) -> None:
        self._sql = sql
        self._redis = client
        self.prefix = prefix

    async def use_proof(self, jkt: str, jti: str, exp: float, now: float) -> bool:
        """``SET prefix dpop:<hash> NX`` with the remaining window as TTL."""
        from .dpop_sql import proof_hash

        if exp <= now:
            return True  # already outside the window: the verifier refuses it anyway
        done = await self._redis.set(
            f"{self.prefix}dpop:{proof_hash(jkt, jti)}", b"1", nx=True, px=_ttl_ms(exp, now)
        )
        return bool(done)

    async def bind(self, family_id: str, jkt: str) -> None:
        """In SQL."""
        await self._sql.bind(family_id, jkt)

    async def binding(self, family_id: str) -> str | None:
        """From SQL."""
        return await self._sql.binding(family_id)

    async def purge(self, now: float) -> int:
        """SQL bindings (and proofs left there by an SQL-only phase); Redis keys expire."""
        return await self._sql.purge(now)


class RedisKeyStore(KeyStore):
    """The SQL key store, plus a pub/sub notice on every change so that all instances reload
    their key ring (and publish the new JWKS) at once instead of at their next poll."""

    def __init__(self, inner: KeyStore, client: aioredis.Redis, prefix: str) -> None:
        self._inner = inner
        self._redis = client
        self._channel = f"{prefix}events"

    async def list(self) -> list[KeyRecord]:
        """All keys, oldest activation first."""
        return await self._inner.list()

    async def _notify(self) -> None:
        try:
            await self._redis.publish(self._channel, json.dumps({"k": "keys"}))
        except (RedisError, OSError) as exc:  # instances still poll the database
            _log.warning("could not announce a key-ring change: %s", exc)

    async def add(self, record: KeyRecord) -> None:
        """Insert a key and announce it."""
        await self._inner.add(record)
        await self._notify()

    async def add_first(self, record: KeyRecord, same_ring: Callable[[KeyRecord], bool]) -> bool:
        """Insert the ring's first key (atomically, in SQL) and announce it."""
        added = await self._inner.add_first(record, same_ring)
        if added:
            await self._notify()
        return added

    async def delete(self, kid: str) -> None:
        """Remove a key and announce it."""
        await self._inner.delete(kid)
        await self._notify()

    async def revoke(self, kid: str, now: float, replacement: KeyRecord | None = None) -> bool:
        """Withdraw a key and announce it: every instance reloads its ring at once."""
        done = await self._inner.revoke(kid, now, replacement)
        if done:
            await self._notify()
        return done


class GraceSessionStore:
    """The SQL session store with the rotation grace state also kept in Redis.

    When a rotation wins, ``grace:<sha256 of the old token>`` records who spent it and when,
    with a TTL of the grace window. A benign retry by the same client within the window (a
    double-submitted refresh, a retry storm across instances) is then answered from Redis
    without touching the database. Everything else, and any retry that arrives before the
    winner recorded its grace entry, goes to the SQL store, which decides atomically with the
    spend (its row keeps ``spent_at``/``spent_by``), so Redis never changes an outcome from
    reuse to retry or back. Every other method is the SQL store's.
    """

    def __init__(self, inner: SessionStore, client: aioredis.Redis, prefix: str) -> None:
        self._inner = inner
        self._redis = client
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _key(self, token_hash: str) -> str:
        return f"{self._prefix}grace:{token_hash}"

    async def rotate_refresh(
        self,
        old_hash: str,
        new_hash: str,
        now: float,
        grace: float,
        *,
        client: str,
        idle_ttl: float,
        access: tuple[str, float] | None = None,
        client_id: str | None = None,
    ) -> RotateResult:
        """As :meth:`SessionStore.rotate_refresh`, with a Redis fast path for benign retries
        (the grace rule of :func:`.rotation.within_grace`)."""
        key = self._key(old_hash)
        if grace > 0:
            try:
                entry = await self._redis.get(key)
            except (RedisError, OSError):
                entry = None
            if entry is not None:
                who, _, spent = _text(entry).partition("|")
                if within_grace(float(spent), who, now, grace, client):
                    return RotateResult(RotateOutcome.RETRY)
        result: RotateResult = await self._inner.rotate_refresh(
            old_hash, new_hash, now, grace, client=client, idle_ttl=idle_ttl, access=access,
            client_id=client_id,
        )
        try:
            if result.outcome is RotateOutcome.ROTATED and grace > 0:
                await self._redis.set(key, f"{client}|{now!r}", px=_ttl_ms(now + grace, now))
            elif result.outcome is RotateOutcome.REVOKED or result.outcome in REVOKE_REASON:
                await self._redis.delete(key)
        except (RedisError, OSError) as exc:  # the SQL row stays authoritative
            _log.debug("grace state not written to redis: %s", exc)
        return result


class _Lifecycle(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RedisStore(Store):
    """SQL for durable state (users, sessions, keys, revocation journal), Redis for the
    deny-list, markers and rate limits."""

    def __init__(
        self,
        sql: Store,
        redis_url: str,
        prefix: str = "jotkit:",
        *,
        fail_open: bool = False,
        marker_lifetime: float = 86400.0,
        clock: Callable[[], float] = time.time,
        max_connections: int = 64,
        pool_timeout: float = 5.0,
    ) -> None:
        self.sql = sql
        self._clock = clock
        self.redis = connect_redis(
            redis_url, max_connections=max_connections, pool_timeout=pool_timeout
        )
        self.prefix = prefix
        self.fail_open = fail_open
        self.users = sql.users
        self.sso = sql.sso  # SSO sessions and consents stay in SQL (durable, read per login)
        self.sessions = cast(SessionStore, GraceSessionStore(sql.sessions, self.redis, prefix))
        self.keys = RedisKeyStore(sql.keys, self.redis, prefix)
        self.revocations: RedisRevocationStore = RedisRevocationStore(
            self.redis, prefix, durable=sql.revocations, marker_lifetime=marker_lifetime
        )
        self.rate_limits = RedisRateLimiter(self.redis, prefix)
        self.clients = sql.clients
        self.codes = sql.codes  # single use is one conditional UPDATE in the shared database
        self.assertions = sql.assertions
        self.dpop = RedisDpopStore(sql.dpop, self.redis, prefix)
        self.par = sql.par  # single use: one conditional UPDATE, like codes
        self.devices = sql.devices
        self.feed = sql.feed  # the feed reads the SQL journal, written before Redis
        self.bus: _Lifecycle | None = None  # set by jotkit.server.revocation_bus

    async def start(self) -> None:
        """Migrate the database, then make sure Redis holds the revocation state (re-seeding
        it from the journal if needed). Redis being down is not fatal: the revocation bus
        keeps retrying and the fail-open/closed policy applies meanwhile."""
        await self.sql.start()
        try:
            await self.revocations.ensure_epoch(self._clock())
        except (RedisError, OSError) as exc:
            _log.warning("redis unavailable at start: %s", exc)
        if self.bus is not None:
            await self.bus.start()

    async def close(self) -> None:
        """Stop the bus, try once more to send pending revocations, close the Redis client and
        the database engine."""
        if self.bus is not None:
            await self.bus.stop()
        if self.revocations.pending:
            try:
                await self.revocations.flush_pending(self._clock())
            except (RedisError, OSError) as exc:
                _log.warning(
                    "%d revocation(s) are in the database journal but could not be sent to "
                    "Redis (%s); instances pick them up from the journal at their next sync",
                    self.revocations.pending,
                    exc,
                )
        try:
            await self.redis.aclose()
        finally:
            await self.sql.close()

    async def ping(self) -> bool:
        """The database answers, and Redis too unless the deployment fails open."""
        if not await self.sql.ping():
            return False
        if self.fail_open:
            return True
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

