"""Redis-specific guarantees: TTLs equal to the remaining lifetime, nothing left behind,
re-seeding from the durable journal after Redis lost its data, pub/sub on every change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from jotkit.server.store.redis import RedisStore
from jotkit.server.store.sql import SqlStore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

T0 = 1_800_000_000.0


@pytest.fixture
async def rstore(pg_db: str, redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(SqlStore(pg_db), redis_url, redis_prefix, marker_lifetime=960.0)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def test_ttls_match_remaining_lifetime(rstore: RedisStore, raw: Any) -> None:
    p = rstore.prefix
    await rstore.revocations.deny([("j1", T0 + 600), ("j2", T0 + 30)], T0)
    await rstore.revocations.set_user_marker("u1", T0, T0 + 960)
    await rstore.rate_limits.hit("acct:x", 300, T0)
    ttl_j1 = await raw.pttl(f"{p}deny:j1")
    ttl_j2 = await raw.pttl(f"{p}deny:j2")
    assert 590_000 < ttl_j1 <= 600_000
    assert 20_000 < ttl_j2 <= 30_000
    assert 950_000 < await raw.pttl(f"{p}marker:u1") <= 960_000
    assert 290_000 < await raw.pttl(f"{p}rl:acct:x") <= 300_000
    # the change log lives exactly as long as its longest entry
    assert 950_000 < await raw.pttl(f"{p}log") <= 960_000
    # every key has a TTL: the epoch and sequence go with the log
    keys = [k async for k in raw.scan_iter(match=p + "*")]
    assert len(keys) == 8
    assert [k for k in keys if await raw.pttl(k) < 0] == []
    assert 950_000 < await raw.pttl(f"{p}epoch") <= 960_000


async def test_expired_entries_leave_the_log(rstore: RedisStore, raw: Any) -> None:
    p = rstore.prefix
    await rstore.revocations.deny([("short", T0 + 5)], T0)
    await rstore.revocations.deny([("long", T0 + 500)], T0 + 10)  # prunes "short"
    members = await raw.zrange(f"{p}log", 0, -1)
    assert [json.loads(m)[2] for m in members] == ["long"]
    await rstore.revocations.purge(T0 + 600)
    assert await raw.zcard(f"{p}log") == 0


async def test_reseed_after_redis_lost_its_data(rstore: RedisStore, raw: Any) -> None:
    """Redis restarted without persistence: the journal in PostgreSQL brings every revocation
    back, and cursors from the old epoch get everything again."""
    rev = rstore.revocations
    await rev.deny([("j1", T0 + 600)], T0)
    await rev.set_user_marker("u1", T0, T0 + 960)
    before = await rev.changes_since(0, T0)
    keys = [k async for k in raw.scan_iter(match=rstore.prefix + "*")]
    await raw.delete(*keys)  # what a restart without persistence does
    assert not await rev.is_denied("j1", T0 + 1)
    after = await rev.changes_since(before.cursor, T0 + 1)
    assert ("j1", T0 + 600) in after.denied
    assert ("u1", T0) in after.markers
    assert after.cursor != before.cursor
    assert await rev.is_denied("j1", T0 + 1)
    assert await rev.user_marker("u1", T0 + 1) == T0


async def test_every_change_is_published(rstore: RedisStore, raw: Any) -> None:
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(rstore.revocations.channel)
    try:
        await rstore.revocations.deny([("j1", T0 + 60)], T0)
        await rstore.revocations.set_user_marker("u1", T0, T0 + 60)
        from jotkit.server.store.base import KeyRecord

        await rstore.keys.add(KeyRecord("kid-1", "ES256", "{}", T0, T0))
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(got) < 3:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None:
                    got.append(json.loads(msg["data"]))
        assert got[0]["k"] == "jti" and got[0]["x"][0][0] == "j1"
        assert got[1]["k"] == "user" and got[1]["x"][0][0] == "u1"
        assert got[2] == {"k": "keys"}
    finally:
        await pubsub.aclose()


async def test_unreachable_redis_keeps_writes_for_resend(pg_db: str, redis_url: str,
                                                         redis_prefix: str) -> None:
    """A write while Redis is unreachable lands in the journal and is re-sent later; reads
    fall back to the journal meanwhile."""
    from .util import free_port

    dead = RedisStore(SqlStore(pg_db), f"redis://127.0.0.1:{free_port()}/0", redis_prefix)
    await dead.start()
    try:
        await dead.revocations.deny([("j1", T0 + 60)], T0)
        assert dead.revocations.pending == 1
        assert await dead.revocations.is_denied("j1", T0)  # from the journal
        assert not await dead.ping()
    finally:
        await dead.close()
    live = RedisStore(SqlStore(pg_db), redis_url, redis_prefix)
    await live.start()  # a fresh prefix: seeded from the journal
    try:
        assert await live.revocations.is_denied("j1", T0)
        live.revocations._pending.append(("jti", [("j2", T0, T0 + 60)]))
        assert await live.revocations.flush_pending(T0) == 1
        assert await live.revocations.is_denied("j2", T0)
        assert live.revocations.pending == 0
    finally:
        await live.close()


async def test_grace_state_in_redis(rstore: RedisStore, raw: Any) -> None:
    """A won rotation leaves ``grace:<hash>`` (who, when) for exactly the grace window; a
    benign retry is answered from it; reuse by another client still goes to SQL and clears it."""
    from jotkit.server.store.base import FamilyRecord, RotateOutcome

    await rstore.users.create("u1", "u1@example.com", "h", ["user"], T0)
    fam = FamilyRecord("fam-1", "u1", T0, T0, T0 + 3600, T0 + 86400)
    old, new = "a" * 64, "b" * 64
    await rstore.sessions.create_family(fam, old)
    res = await rstore.sessions.rotate_refresh(old, new, T0, 5.0, client="c1", idle_ttl=3600)
    assert res.outcome is RotateOutcome.ROTATED
    key = f"{rstore.prefix}grace:{old}"
    assert await raw.get(key) == f"c1|{T0!r}"
    assert 4_000 < await raw.pttl(key) <= 5_000
    # the retry is answered from Redis: it does not even need the token row
    await raw.set(f"{rstore.prefix}grace:{'c' * 64}", f"c1|{T0!r}", px=5000)
    res = await rstore.sessions.rotate_refresh("c" * 64, "d" * 64, T0 + 1, 5.0, client="c1",
                                               idle_ttl=3600)
    assert res.outcome is RotateOutcome.RETRY
    # past the window (by the caller's clock) the SQL store decides: reuse
    res = await rstore.sessions.rotate_refresh(old, "e" * 64, T0 + 6, 5.0, client="c1",
                                               idle_ttl=3600)
    assert res.outcome is RotateOutcome.REUSED
    assert await raw.get(key) is None
