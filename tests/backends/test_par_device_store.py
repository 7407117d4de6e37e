"""The PAR and device-code stores on every backend (SQLite, PostgreSQL, PostgreSQL + Redis):
single use under concurrency, also from two store objects (as two instances)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jotkit.server import FrozenClock
from jotkit.server.oauth.clients import DEVICE_CODE_GRANT
from jotkit.server.oauth.codes import hash_code
from jotkit.server.store.base import DeviceCodeRecord, FamilyRecord, ParRecord, PollOutcome
from oauth.par_device_helpers import add_device_client, approve, poll, start_device
from server.harness import START, Server, make_settings

T0 = 1_800_000_000.0


def _family() -> FamilyRecord:
    return FamilyRecord(
        id=secrets.token_urlsafe(12), user_id="", created_at=T0, last_used_at=T0,
        idle_expires_at=T0 + 3600, absolute_expires_at=T0 + 86400,
    )


def _device(user_code: str, client_id: str = "tv") -> tuple[str, DeviceCodeRecord]:
    code = secrets.token_urlsafe(32)
    return code, DeviceCodeRecord(
        code_hash=hash_code(code), user_code=user_code, client_id=client_id,
        scope=("openid", "offline_access"), resource=(), created_at=T0, expires_at=T0 + 600,
        interval=5.0,
    )


@pytest.mark.anyio
@pytest.mark.postgres
async def test_par_request_uri_is_spent_once_across_two_store_objects(store: Any,
                                                                     store_factory: Any):
    other = await store_factory()
    try:
        params = (("response_type", "code"), ("client_id", "c1"), ("resource", "a"),
                  ("resource", "b"))
        await store.par.create(ParRecord("h1", "c1", params, T0, T0 + 60))
        assert await store.par.consume("h1", "c2", T0 + 1) is None  # another client
        results = await asyncio.gather(*[
            (store if i % 2 else other).par.consume("h1", "c1", T0 + 1) for i in range(20)
        ])
        won = [r for r in results if r is not None]
        assert len(won) == 1 and won[0].params == params
        await store.par.create(ParRecord("h2", "c1", params, T0, T0 + 60))
        assert await store.par.consume("h2", "c1", T0 + 60) is None  # expired
        assert await store.par.purge(T0 + 2 * 86400) == 2
    finally:
        await other.close()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_device_code_redeemed_once_under_concurrency(store: Any, store_factory: Any):
    other = await store_factory()
    try:
        user_id = secrets.token_hex(16)
        await store.users.create(user_id, f"{user_id}@example.com", "h", ["user"], T0)
        _code, record = _device("BCDFGHJK")
        assert await store.devices.create(record)
        assert not await store.devices.create(_device("BCDFGHJK")[1])  # user code taken
        assert (await store.devices.pending("BCDFGHJK", T0 + 1)) == record
        assert await store.devices.decide("BCDFGHJK", T0 + 1, approve=True, user_id=user_id,
                                          sid="sso-1", auth_time=T0)
        assert not await store.devices.decide("BCDFGHJK", T0 + 1, approve=False,
                                              user_id=user_id, sid="sso-1", auth_time=T0)
        polls = await asyncio.gather(*[
            (store if i % 2 else other).devices.poll(record.code_hash, "tv", T0 + 2)
            for i in range(10)
        ])
        outcomes = [p.outcome for p in polls]
        assert outcomes.count(PollOutcome.APPROVED) == 1
        assert outcomes.count(PollOutcome.SLOW_DOWN) == 9
        redeemed = await asyncio.gather(*[
            (store if i % 2 else other).devices.redeem(
                record.code_hash, T0 + 30, _family(), secrets.token_hex(32),
                access=(secrets.token_urlsafe(8), T0 + 900))
            for i in range(20)
        ])
        winners = [d for d in redeemed if d is not None]
        assert len(winners) == 1 and winners[0].user_id == user_id
        grant = await store.codes.grant(winners[0].family_id)
        assert grant is not None and grant.client_id == "tv" and grant.user_id == user_id
        later = await store.devices.poll(record.code_hash, "tv", T0 + 200)
        assert later.outcome is PollOutcome.REDEEMED
        assert (await store.devices.poll(record.code_hash, "other", T0 + 200)).outcome is (
            PollOutcome.NOT_FOUND)
    finally:
        await other.close()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_device_code_poll_outcomes(store: Any):
    _code, record = _device("CDFGHJKL")
    await store.devices.create(record)
    poll = store.devices.poll
    assert (await poll(record.code_hash, "tv", T0)).outcome is PollOutcome.PENDING
    slow = await poll(record.code_hash, "tv", T0 + 1)
    assert slow.outcome is PollOutcome.SLOW_DOWN and slow.device.interval == 10.0
    assert (await poll(record.code_hash, "tv", T0 + 11)).outcome is PollOutcome.PENDING
    await store.devices.decide("CDFGHJKL", T0 + 12, approve=False, user_id="u", sid="s",
                               auth_time=T0)
    assert (await poll(record.code_hash, "tv", T0 + 30)).outcome is PollOutcome.DENIED
    assert await store.devices.redeem(record.code_hash, T0 + 31, _family(), "r" * 64) is None
    assert (await poll(record.code_hash, "tv", T0 + 600)).outcome is PollOutcome.EXPIRED
    assert await store.devices.pending("CDFGHJKL", T0 + 1) is None  # decided
    assert await store.devices.purge(T0 + 2 * 86400) == 1


@pytest.fixture(params=["sqlite", "postgres+redis"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    overrides: dict[str, object] = {}
    if request.param == "postgres+redis":
        overrides["database_url"] = request.getfixturevalue("pg_db")
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["redis_prefix"] = request.getfixturevalue("redis_prefix")
    srv = Server(make_settings(tmp_path / "data", **overrides), FrozenClock(START)).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.postgres
@pytest.mark.xdist_group("backend-http")
def test_device_code_redeemed_once_under_concurrency_over_http(live: Server):
    """Twenty concurrent polls of an approved code over HTTP: exactly one gets tokens."""
    email = f"u{secrets.token_hex(4)}@example.com"
    live.add_user(email)
    client_id = add_device_client(live)[0].client_id
    with live.client() as c, live.client(follow_redirects=False) as b:
        d = start_device(c, client_id)
        approve(b, d["user_code"], email)
    live.clock.advance(5)
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": d["device_code"],
            "client_id": client_id}

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as ac:
            return await asyncio.gather(*[ac.post("/oauth/token", data=form)
                                          for _ in range(20)])

    responses = asyncio.run(storm())
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, statuses
    assert {r.json()["error"] for r in responses if r.status_code != 200} <= {
        "slow_down", "invalid_grant"}
    live.clock.advance(60)
    with live.client() as c:
        late = poll(c, client_id, d["device_code"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
