"""The DPoP store on every backend (SQLite, PostgreSQL, PostgreSQL + Redis): the proof replay
cache (RFC 9449 §11.1), also from a second store object as a second instance would use it,
refresh-family bindings (§5), and the ``dpop_bound_access_tokens`` client flag (§5.2)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import pytest

from jotkit.server.oauth.clients import new_client
from jotkit.server.store.base import FamilyRecord

T0 = 1_800_000_000.0


@pytest.mark.anyio
@pytest.mark.postgres
async def test_dpop_proof_replay_across_two_instances_is_refused(store_factory: Any):
    a, b = await store_factory(), await store_factory()
    try:
        jkt, jti = "thumb-" + secrets.token_hex(4), secrets.token_urlsafe(16)
        assert await a.dpop.use_proof(jkt, jti, T0 + 65, T0)
        assert not await b.dpop.use_proof(jkt, jti, T0 + 65, T0 + 1)  # the other instance
        assert not await a.dpop.use_proof(jkt, jti, T0 + 65, T0 + 2)
        assert await b.dpop.use_proof("another-key", jti, T0 + 65, T0)  # jti is per key
    finally:
        await a.close()
        await b.close()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_dpop_bindings_and_purge(store: Any):
    now = T0
    family = FamilyRecord(id=secrets.token_urlsafe(12), user_id="", created_at=now,
                          last_used_at=now, idle_expires_at=now + 3600,
                          absolute_expires_at=now + 86400)
    assert await store.dpop.binding(family.id) is None
    await store.dpop.bind(family.id, "jkt-1")
    await store.dpop.bind(family.id, "jkt-2")  # a family's key never changes
    assert await store.dpop.binding(family.id) == "jkt-1"
    assert await store.dpop.use_proof("k", "old", now + 10, now)
    purged = await store.dpop.purge(now + 20)  # the family is not stored: binding dropped
    assert purged >= 1
    assert await store.dpop.binding(family.id) is None


@pytest.mark.anyio
@pytest.mark.postgres
async def test_dpop_bound_client_flag_round_trips(store: Any):
    record, _ = new_client("svc", now=T0, grant_types=("client_credentials",))
    await store.clients.create(replace(record, dpop_bound_access_tokens=True))
    got = await store.clients.get(record.client_id)
    assert got is not None and got.dpop_bound_access_tokens is True
    other, _ = new_client("svc2", now=T0, grant_types=("client_credentials",))
    await store.clients.create(other)
    got = await store.clients.get(other.client_id)
    assert got is not None and got.dpop_bound_access_tokens is False
