"""The SSO store (sessions, participants, consents, back-channel deliveries) on SQLite,
PostgreSQL and PostgreSQL + Redis: same behaviour, and two store objects (two instances)
never both claim one delivery attempt."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from jotkit.server.store.sso import DeliveryRecord, SsoSessionRecord

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

NOW = 1_800_000_000.0


async def _user(store: Any, email: str) -> str:
    user = await store.users.create(hashlib.sha256(email.encode()).hexdigest()[:32], email,
                                    "x", ["user"], NOW)
    return str(user.id)


async def test_sso_sessions_participants_and_end(store: Any) -> None:
    uid = await _user(store, "s@example.com")
    record = SsoSessionRecord("sid-1", uid, NOW, NOW, NOW + 3600)
    await store.sso.create_session(record, "h" * 64)
    assert await store.sso.find_session("h" * 64) == record
    assert await store.sso.find_session("x" * 64) is None
    await store.sso.add_participant("sid-1", "app-a", NOW)
    await store.sso.add_participant("sid-1", "app-b", NOW + 1)
    await store.sso.add_participant("sid-1", "app-a", NOW + 2)  # idempotent
    assert sorted(await store.sso.participants("sid-1")) == ["app-a", "app-b"]
    assert await store.sso.end_session("sid-1", NOW + 5) == ["app-a", "app-b"]
    assert await store.sso.end_session("sid-1", NOW + 6) == []  # once only
    ended = await store.sso.get_session("sid-1")
    assert ended is not None and ended.ended_at == NOW + 5 and not ended.active(NOW + 7)
    assert await store.sso.purge(NOW + 5 + 86400 + 1) >= 1
    assert await store.sso.get_session("sid-1") is None


async def test_consents_merge_list_and_revoke(store: Any) -> None:
    uid = await _user(store, "c@example.com")
    await store.sso.grant_consent(uid, "app", ["openid", "email"], NOW)
    await store.sso.grant_consent(uid, "app", ["profile"], NOW + 1)
    (consent,) = await store.sso.list_consents(uid)
    assert consent.scopes == ("email", "openid", "profile") and consent.granted_at == NOW + 1
    assert await store.sso.revoke_consent(uid, "app") is True
    assert await store.sso.revoke_consent(uid, "app") is False
    assert await store.sso.get_consent(uid, "app") is None


async def test_two_instances_claim_one_delivery_attempt_once(store_factory: Any) -> None:
    a, b = await store_factory(), await store_factory()
    try:
        record = DeliveryRecord("d1", "app", "http://rp/bc", "tok", 0, NOW, NOW)
        await a.sso.add_deliveries([record])
        (due,) = await b.sso.due_deliveries(NOW)
        wins = await asyncio.gather(
            *(s.sso.claim_delivery(due.id, due.attempts, NOW + 60) for s in (a, b) * 5)
        )
        assert wins.count(True) == 1
        assert await a.sso.due_deliveries(NOW + 1) == []  # leased
        await b.sso.settle_delivery("d1", delivered_at=NOW + 1, next_attempt_at=None,
                                    error=None)
        assert await a.sso.due_deliveries(NOW + 3600) == []
        done = await a.sso.get_delivery("d1")
        assert done is not None and done.delivered_at == NOW + 1 and done.attempts == 1
    finally:
        await a.close()
        await b.close()
