"""The revocation bus in-process: two services on one PostgreSQL database and Redis prefix,
fail-closed / fail-open behaviour with Redis unreachable, robustness against junk messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from jotkit.server.audit_log import AuditLog
from jotkit.server.clock import SystemClock
from jotkit.server.errors import ServiceError
from jotkit.server.metrics import Metrics
from jotkit.server.revocation_bus import RevocationBus, attach_revocation_bus
from jotkit.server.sessions import AuthService, ClientInfo
from jotkit.server.settings import Settings
from jotkit.server.store.redis import RedisStore
from jotkit.server.store.sql import SqlStore

from .util import PASSWORD, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

CLIENT = ClientInfo("127.0.0.1", "tests")


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        issuer="http://jotkit.test",
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        argon2_insecure_test_costs=True,
        **changes,
    )


@pytest.fixture
async def make_service(
    pg_db: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    started: list[AuthService] = []

    async def make(redis: str | None = None, fail_open: bool = False) -> AuthService:
        clock = SystemClock()
        metrics = Metrics()
        store = RedisStore(SqlStore(pg_db), redis or redis_url, redis_prefix,
                           fail_open=fail_open, clock=clock.now)
        svc = AuthService(_settings(tmp_path), store, clock, metrics, AuditLog(clock, metrics))
        bus = attach_revocation_bus(svc)
        assert isinstance(bus, RevocationBus)
        await svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        await svc.store.close()


async def _rejected(svc: AuthService, token: str, bound: float = 1.0) -> float:
    start = time.perf_counter()
    while True:
        try:
            await svc.authenticate(token)
        except ServiceError as exc:
            code = exc.code
            if code != "revoked":
                pytest.fail(f"rejected for the wrong reason: {code}")
            return time.perf_counter() - start
        if time.perf_counter() - start > bound:
            pytest.fail("the other instance still accepts the token")
        await asyncio.sleep(0.001)


async def test_logout_reaches_the_other_instance(make_service: Callable[..., Any]) -> None:
    a = await make_service()
    b = await make_service()
    await a.add_user("alice@example.com", PASSWORD)
    issued = await a.login("alice@example.com", PASSWORD, CLIENT)
    claims = await b.authenticate(issued.access_token)  # B verified and cached it
    await a.logout(claims)
    await _rejected(b, issued.access_token)
    metrics = b.metrics.render().decode()
    assert "jotkit_revocation_bus_connected 1.0" in metrics
    assert "jotkit_revocation_pending 0.0" in metrics
    assert "jotkit_revocation_bus_messages_total" in metrics
    # logout-all sets a revoked-before marker; it reaches B as well
    second = await a.login("alice@example.com", PASSWORD, CLIENT)
    third = await b.login("alice@example.com", PASSWORD, CLIENT)
    await b.authenticate(second.access_token)
    await b.logout_all(await b.authenticate(third.access_token))
    await _rejected(a, second.access_token)


async def test_fail_closed_and_fail_open(make_service: Callable[..., Any]) -> None:
    live = await make_service()
    await live.add_user("bob@example.com", PASSWORD)
    token = (await live.login("bob@example.com", PASSWORD, CLIENT)).access_token
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    closed = await make_service(redis=dead_redis)
    opened = await make_service(redis=dead_redis, fail_open=True)
    with pytest.raises(ServiceError) as exc:
        await closed.authenticate(token)
    assert exc.value.code == "temporarily_unavailable" and exc.value.spec.status == 503
    assert exc.value.headers["Retry-After"] == "1"
    assert (await opened.authenticate(token))["email"] == "bob@example.com"
    assert not await closed.store.ping()
    assert await opened.store.ping()  # fail open: healthy for the load balancer
    # the fail-open instance still learns revocations from the PostgreSQL journal
    await live.logout(await live.authenticate(token))
    await opened.sync()
    with pytest.raises(ServiceError) as exc:
        await opened.authenticate(token)
    assert exc.value.code == "revoked"


async def test_junk_messages_are_ignored(
    make_service: Callable[..., Any], redis_url: str, redis_prefix: str
) -> None:
    a = await make_service()
    b = await make_service()
    raw = aioredis.Redis.from_url(redis_url)
    try:
        for junk in (b"not json", b"[]", b'{"k":"jti","x":[[1]]}', b'{"x":"y"}', b"\xff"):
            await raw.publish(f"{redis_prefix}events", junk)
    finally:
        await raw.aclose()
    await a.add_user("carol@example.com", PASSWORD)
    issued = await a.login("carol@example.com", PASSWORD, CLIENT)
    await b.authenticate(issued.access_token)
    await a.logout(await a.authenticate(issued.access_token))
    await _rejected(b, issued.access_token)


async def test_missed_message_recovered_by_periodic_sync(
    make_service: Callable[..., Any], pg_db: str
) -> None:
    """B misses the pub/sub message (its subscription is down): the periodic sync, which the
    app runs every ``revocation_sync_interval`` seconds, still delivers the revocation, both
    from the Redis change log and, for a revocation that never reached Redis, from the
    PostgreSQL journal."""
    a = await make_service()
    b = await make_service()
    await a.add_user("dave@example.com", PASSWORD)
    first = await a.login("dave@example.com", PASSWORD, CLIENT)
    second = await a.login("dave@example.com", PASSWORD, CLIENT)
    await b.authenticate(first.access_token)
    await b.authenticate(second.access_token)
    bus = b.store.bus  # type: ignore[attr-defined]
    await bus.stop()
    bus.fail_open = True  # keep answering while the subscription is down
    await a.logout(await a.authenticate(first.access_token))
    await asyncio.sleep(0.05)
    assert (await b.authenticate(first.access_token))["sub"]  # missed: still accepted
    await b.sync()
    with pytest.raises(ServiceError) as exc:
        await b.authenticate(first.access_token)
    assert exc.value.code == "revoked"
    # a revocation written only to the journal (Redis never saw it)
    journal = SqlStore(pg_db)
    try:
        claims = await a.authenticate(second.access_token)
        await journal.revocations.deny([(claims["jti"], float(claims["exp"]))], time.time())
    finally:
        await journal.close()
    await b.sync()
    with pytest.raises(ServiceError) as exc:
        await b.authenticate(second.access_token)
    assert exc.value.code == "revoked"
