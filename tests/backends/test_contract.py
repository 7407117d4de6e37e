"""The storage contract: every backend (SQLite, PostgreSQL, PostgreSQL + Redis) behaves the
same behind the interfaces of :mod:`jotkit.server.store.base`. Real servers, no mocks."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from jotkit.server.store.base import (
    AccessTokenRecord,
    FamilyRecord,
    KeyRecord,
    RotateOutcome,
    UserExists,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

T0 = 1_800_000_000.0
IDLE = 3600.0


def _family(user_id: str, now: float = T0, absolute: float = 86400.0) -> FamilyRecord:
    return FamilyRecord(
        id=secrets.token_urlsafe(12),
        user_id=user_id,
        created_at=now,
        last_used_at=now,
        idle_expires_at=now + IDLE,
        absolute_expires_at=now + absolute,
        user_agent="tests",
        client_ip="127.0.0.1",
    )


async def _user(store: Any, email: str | None = None) -> str:
    user_id = secrets.token_hex(16)
    await store.users.create(
        user_id, email or f"{user_id}@example.com", "$argon2id$x", ["user"], T0
    )
    return user_id


def _h() -> str:
    return secrets.token_hex(32)


# -- users ----------------------------------------------------------------------------------
async def test_users_create_get_list(store: Any) -> None:
    created = await store.users.create("u1", "a@example.com", "hash-a", ["user", "admin"], T0)
    await store.users.create("u2", "b@example.com", "hash-b", ["user"], T0 + 1)
    assert created.roles == ("user", "admin")
    got = await store.users.get("u1")
    assert got == created
    assert (await store.users.get_by_email("b@example.com")).id == "u2"
    assert await store.users.get("nope") is None
    assert await store.users.get_by_email("nope@example.com") is None
    assert [u.id for u in await store.users.list()] == ["u1", "u2"]
    with pytest.raises(UserExists):
        await store.users.create("u3", "a@example.com", "h", ["user"], T0)


async def test_users_update(store: Any) -> None:
    await store.users.create("u1", "a@example.com", "old", ["user"], T0)
    await store.users.set_password_hash("u1", "new")
    await store.users.set_disabled("u1", True)
    user = await store.users.get("u1")
    assert (user.password_hash, user.disabled) == ("new", True)
    await store.users.set_disabled("u1", False)
    assert not (await store.users.get("u1")).disabled


# -- sessions -------------------------------------------------------------------------------
async def test_family_create_find(store: Any) -> None:
    uid = await _user(store)
    fam = _family(uid)
    first = _h()
    await store.sessions.create_family(fam, first)
    found = await store.sessions.find_refresh(first)
    assert found is not None
    token, family = found
    assert (token.family_id, token.spent_at, token.created_at) == (fam.id, None, T0)
    assert family == fam
    assert await store.sessions.get_family(fam.id) == fam
    assert await store.sessions.find_refresh(_h()) is None
    assert await store.sessions.get_family("missing") is None


async def test_rotation_outcomes(store: Any) -> None:
    uid = await _user(store)
    fam = _family(uid)
    t1, t2, t3 = _h(), _h(), _h()
    await store.sessions.create_family(fam, t1)
    await store.sessions.record_access_token(AccessTokenRecord("jti-1", fam.id, uid, T0 + 900))
    await store.sessions.record_access_token(AccessTokenRecord("jti-old", fam.id, uid, T0 - 1))

    now = T0 + 10
    res = await store.sessions.rotate_refresh(t1, t2, now, 5.0, client="c1", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.ROTATED
    assert res.family.last_used_at == now and res.family.idle_expires_at == now + IDLE
    # the same client again within the grace window: a benign retry
    res = await store.sessions.rotate_refresh(t1, t3, now + 1, 5.0, client="c1", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.RETRY
    # another client: reuse; the family is revoked and its live access tokens returned
    res = await store.sessions.rotate_refresh(t1, t3, now + 2, 5.0, client="c2", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.REUSED
    assert [a.jti for a in res.outstanding] == ["jti-1"]
    family = await store.sessions.get_family(fam.id)
    assert family.revoked_at == now + 2 and family.revoke_reason == "reuse"
    # the successor is dead too
    res = await store.sessions.rotate_refresh(t2, t3, now + 3, 5.0, client="c1", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.REVOKED
    res = await store.sessions.rotate_refresh(_h(), t3, now, 5.0, client="c1", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.NOT_FOUND


async def test_rotation_reuse_after_grace(store: Any) -> None:
    uid = await _user(store)
    fam = _family(uid)
    t1, t2 = _h(), _h()
    await store.sessions.create_family(fam, t1)
    await store.sessions.rotate_refresh(t1, t2, T0, 5.0, client="c1", idle_ttl=IDLE)
    res = await store.sessions.rotate_refresh(t1, _h(), T0 + 6, 5.0, client="c1", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.REUSED


async def test_rotation_expired(store: Any) -> None:
    uid = await _user(store)
    fam = _family(uid, absolute=7200.0)
    t1 = _h()
    await store.sessions.create_family(fam, t1)
    res = await store.sessions.rotate_refresh(
        t1, _h(), T0 + IDLE + 1, 5.0, client="c", idle_ttl=IDLE
    )
    assert res.outcome is RotateOutcome.EXPIRED
    # the idle window never extends past the absolute lifetime
    fam2 = _family(uid, absolute=100.0)
    t2 = _h()
    await store.sessions.create_family(fam2, t2)
    res = await store.sessions.rotate_refresh(t2, _h(), T0 + 50, 5.0, client="c", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.ROTATED
    assert res.family.idle_expires_at == T0 + 100.0


async def test_concurrent_rotation_two_instances(store_factory: Any) -> None:
    """Two store objects (two instances) race 40 rotations of one token: exactly one wins."""
    a = await store_factory()
    b = await store_factory()
    try:
        uid = await _user(a)
        fam = _family(uid)
        t1 = _h()
        await a.sessions.create_family(fam, t1)

        async def attempt(i: int) -> RotateOutcome:
            s = a if i % 2 else b
            res = await s.sessions.rotate_refresh(
                t1, _h(), T0 + 1, 5.0, client=f"client-{i}", idle_ttl=IDLE
            )
            return res.outcome

        outcomes = await asyncio.gather(*(attempt(i) for i in range(40)))
        assert outcomes.count(RotateOutcome.ROTATED) == 1
        assert RotateOutcome.REUSED in outcomes
        assert set(outcomes) <= {RotateOutcome.ROTATED, RotateOutcome.REUSED, RotateOutcome.REVOKED}
        assert (await b.sessions.get_family(fam.id)).revoke_reason == "reuse"
    finally:
        await a.close()
        await b.close()


async def test_list_revoke_purge(store: Any) -> None:
    uid = await _user(store)
    other = await _user(store)
    f1 = _family(uid, now=T0)
    f2 = _family(uid, now=T0 + 5)
    f3 = _family(other)
    for fam in (f1, f2, f3):
        await store.sessions.create_family(fam, _h())
    await store.sessions.record_access_token(AccessTokenRecord("a1", f1.id, uid, T0 + 900))
    await store.sessions.record_access_token(AccessTokenRecord("a2", f2.id, uid, T0 + 900))
    await store.sessions.record_access_token(AccessTokenRecord("a3", f3.id, other, T0 + 900))
    assert [f.id for f in await store.sessions.list_families(uid, T0 + 10)] == [f2.id, f1.id]

    out = await store.sessions.revoke_family(f1.id, T0 + 10, "logout")
    assert [a.jti for a in out] == ["a1"]
    again = await store.sessions.revoke_family(f1.id, T0 + 20, "logout")
    assert (await store.sessions.get_family(f1.id)).revoked_at == T0 + 10  # idempotent
    assert [a.jti for a in again] == ["a1"]
    out = await store.sessions.revoke_user(uid, T0 + 30, "logout_all")
    assert sorted(a.jti for a in out) == ["a1", "a2"]
    assert await store.sessions.list_families(uid, T0 + 31) == []
    assert len(await store.sessions.list_families(other, T0 + 31)) == 1

    removed = await store.sessions.purge(T0 + 2 * 86400 + 100)
    assert removed >= 5  # three access-token rows, two dead families (+ their tokens)
    assert await store.sessions.get_family(f1.id) is None


# -- revocations ----------------------------------------------------------------------------
async def test_deny_list(store: Any) -> None:
    rev = store.revocations
    await rev.deny([("j1", T0 + 100), ("j2", T0 + 10), ("dead", T0 - 1)], T0)
    assert await rev.is_denied("j1", T0)
    assert await rev.is_denied("j2", T0 + 5)
    assert not await rev.is_denied("j2", T0 + 10)  # expired with its token
    assert not await rev.is_denied("dead", T0)
    assert not await rev.is_denied("other", T0)
    await rev.deny([], T0)


async def test_user_markers(store: Any) -> None:
    rev = store.revocations
    assert await rev.user_marker("u", T0) is None
    await rev.set_user_marker("u", T0, T0 + 1000)
    await rev.set_user_marker("u", T0 - 50, T0 + 500)  # older marker never wins
    assert await rev.user_marker("u", T0 + 1) == T0
    await rev.set_user_marker("u", T0 + 100, T0 + 1100)
    assert await rev.user_marker("u", T0 + 101) == T0 + 100
    assert await rev.user_marker("u", T0 + 1200) is None
    assert await rev.user_marker("v", T0) is None


async def test_changes_since(store_factory: Any) -> None:
    a = await store_factory()
    b = await store_factory()
    try:
        await a.revocations.deny([("j1", T0 + 100)], T0)
        await a.revocations.set_user_marker("u1", T0, T0 + 100)
        first = await b.revocations.changes_since(0, T0)
        assert first.reset
        assert first.denied == (("j1", T0 + 100),)
        assert first.markers == (("u1", T0),)
        # Nothing new: at most earlier entries again (PostgreSQL re-reads a window behind the
        # cursor so that out-of-order commits are never skipped; callers merge idempotently).
        same = await b.revocations.changes_since(first.cursor, T0)
        assert not same.reset
        assert set(same.denied) <= set(first.denied)
        assert set(same.markers) <= set(first.markers)
        assert same.cursor == first.cursor
        await a.revocations.deny([("j2", T0 + 50), ("j3", T0 + 5)], T0 + 1)
        nxt = await b.revocations.changes_since(first.cursor, T0 + 10)
        assert ("j2", T0 + 50) in nxt.denied
        assert set(nxt.denied) <= {("j1", T0 + 100), ("j2", T0 + 50)}  # j3 already expired
        assert nxt.cursor > first.cursor
        later = await b.revocations.changes_since(0, T0 + 60)
        assert later.denied == (("j1", T0 + 100),)
    finally:
        await a.close()
        await b.close()


async def test_revocations_purge(store: Any) -> None:
    rev = store.revocations
    await rev.deny([("j1", T0 + 10), ("j2", T0 + 1000)], T0)
    await rev.set_user_marker("u", T0, T0 + 10)
    assert await rev.purge(T0 + 20) >= 2
    assert await rev.is_denied("j2", T0 + 20)
    changes = await rev.changes_since(0, T0 + 20)
    assert changes.denied == (("j2", T0 + 1000),)
    assert changes.markers == ()


# -- rate limits ----------------------------------------------------------------------------
async def test_rate_limiter_window(store: Any) -> None:
    rl = store.rate_limits
    assert await rl.peek("k", 60, T0) == (0, 0.0)
    assert await rl.hit("k", 60, T0) == (1, 60.0)
    assert await rl.hit("k", 60, T0 + 10) == (2, 50.0)
    assert await rl.peek("k", 60, T0 + 20) == (2, 40.0)
    assert await rl.hit("k", 60, T0 + 61) == (1, 60.0)  # a new window
    await rl.reset("k")
    assert await rl.peek("k", 60, T0 + 62) == (0, 0.0)
    assert await rl.peek("other", 60, T0) == (0, 0.0)


async def test_rate_limiter_concurrent_hits(store_factory: Any) -> None:
    a = await store_factory()
    b = await store_factory()
    try:
        results = await asyncio.gather(
            *((a if i % 2 else b).rate_limits.hit("burst", 60, T0) for i in range(30))
        )
        assert sorted(n for n, _ in results) == list(range(1, 31))
        assert (await a.rate_limits.peek("burst", 60, T0))[0] == 30
    finally:
        await a.close()
        await b.close()


# -- keys -----------------------------------------------------------------------------------
async def test_key_store(store_factory: Any) -> None:
    a = await store_factory()
    b = await store_factory()
    try:
        k1 = KeyRecord("k1", "ES256", '{"kty":"EC"}', T0, T0)
        k2 = KeyRecord("k0", "ES256", '{"kty":"EC"}', T0, T0 + 300)
        await a.keys.add(k2)
        await a.keys.add(k1)
        assert await b.keys.list() == [k1, k2]  # a second instance sees the shared ring
        await b.keys.delete("k1")
        assert [k.kid for k in await a.keys.list()] == ["k0"]
        # withdrawal: the mark and the replacement land together, once
        k3 = KeyRecord("k3", "ES256", '{"kty":"EC"}', T0 + 10, T0 + 10)
        assert await a.keys.revoke("k0", T0 + 10, k3) is True
        listed = await b.keys.list()
        assert [(k.kid, k.revoked_at) for k in listed] == [("k3", None), ("k0", T0 + 10)]
        assert await b.keys.revoke("k0", T0 + 11, None) is False  # already revoked
        assert await b.keys.revoke("nope", T0 + 11, None) is False
        assert len(await a.keys.list()) == 2
    finally:
        await a.close()
        await b.close()


async def test_ping(store: Any) -> None:
    assert await store.ping()


# -- rotation: client binding, disabled users, races (every backend) -------------------------
def _oauth_family(user_id: str, client_id: str | None) -> FamilyRecord:
    fam = _family(user_id)
    return FamilyRecord(
        fam.id, fam.user_id, fam.created_at, fam.last_used_at, fam.idle_expires_at,
        fam.absolute_expires_at, user_agent="tests", client_ip="127.0.0.1", client_id=client_id,
    )


@pytest.mark.parametrize(
    ("owner", "presenter"), [("victim", "thief"), ("victim", None), (None, "thief")]
)
async def test_refresh_token_of_another_client_is_refused(
    store: Any, owner: str | None, presenter: str | None
) -> None:
    """RFC 6749 §6: a refresh token is bound to its client. Presented by another one it does
    not rotate, and the family is revoked in the same transaction with its access tokens."""
    uid = await _user(store)
    fam = _oauth_family(uid, owner)
    t1 = _h()
    await store.sessions.create_family(fam, t1)
    await store.sessions.record_access_token(AccessTokenRecord("jti-live", fam.id, uid, T0 + 900))
    res = await store.sessions.rotate_refresh(
        t1, _h(), T0 + 1, 5.0, client="c1", idle_ttl=IDLE, access=("jti-new", T0 + 901),
        client_id=presenter,
    )
    assert res.outcome is RotateOutcome.WRONG_CLIENT
    assert [a.jti for a in res.outstanding] == ["jti-live"]  # nothing new was recorded
    family = await store.sessions.get_family(fam.id)
    assert family.revoke_reason == "wrong_client" and family.revoked_at == T0 + 1
    token, _ = await store.sessions.find_refresh(t1)
    assert token.spent_at is None  # not spent: no successor exists
    # the rightful client cannot use it any more either
    res = await store.sessions.rotate_refresh(
        t1, _h(), T0 + 2, 5.0, client="c1", idle_ttl=IDLE, client_id=owner
    )
    assert res.outcome is RotateOutcome.REVOKED


async def test_refresh_of_a_disabled_user_revokes_the_family(store: Any) -> None:
    uid = await _user(store)
    fam = _family(uid)
    t1 = _h()
    await store.sessions.create_family(fam, t1)
    await store.users.set_disabled(uid, True)
    res = await store.sessions.rotate_refresh(t1, _h(), T0 + 1, 5.0, client="c1", idle_ttl=IDLE)
    assert res.outcome is RotateOutcome.USER_DISABLED
    assert (await store.sessions.get_family(fam.id)).revoke_reason == "disabled"


async def test_rotation_returns_the_user_and_records_the_access_token(store: Any) -> None:
    uid = await _user(store, "rot@example.com")
    fam = _family(uid)
    t1, t2 = _h(), _h()
    await store.sessions.create_family(fam, t1)
    res = await store.sessions.rotate_refresh(
        t1, t2, T0 + 5, 5.0, client="c1", idle_ttl=IDLE, access=("jti-a", T0 + 905)
    )
    assert res.outcome is RotateOutcome.ROTATED
    assert (res.user.id, res.user.email, res.user.roles) == (uid, "rot@example.com", ("user",))
    assert res.family.last_used_at == T0 + 5 and res.family.idle_expires_at == T0 + 5 + IDLE
    stored = await store.sessions.get_family(fam.id)
    assert (stored.last_used_at, stored.idle_expires_at) == (T0 + 5, T0 + 5 + IDLE)
    spent, _ = await store.sessions.find_refresh(t1)
    assert (spent.spent_at, spent.spent_by) == (T0 + 5, "c1")
    successor, _ = await store.sessions.find_refresh(t2)
    assert (successor.family_id, successor.spent_at) == (fam.id, None)
    outstanding = await store.sessions.revoke_family(fam.id, T0 + 6, "logout")
    assert [(a.jti, a.user_id, a.exp) for a in outstanding] == [("jti-a", uid, T0 + 905)]


async def test_concurrent_retries_of_one_token_one_rotation_the_rest_grace(
    store_factory: Any,
) -> None:
    """A client that double-submits one token through two instances: exactly one rotation,
    every other attempt is a benign retry within the grace window (no revocation)."""
    a = await store_factory()
    b = await store_factory()
    try:
        uid = await _user(a)
        fam = _family(uid)
        t1 = _h()
        await a.sessions.create_family(fam, t1)

        async def attempt(i: int) -> RotateOutcome:
            s = a if i % 2 else b
            res = await s.sessions.rotate_refresh(
                t1, _h(), T0 + 1, 5.0, client="same", idle_ttl=IDLE, access=(f"j{i}", T0 + 900)
            )
            return res.outcome

        outcomes = await asyncio.gather(*(attempt(i) for i in range(30)))
        assert outcomes.count(RotateOutcome.ROTATED) == 1
        assert outcomes.count(RotateOutcome.RETRY) == 29
        assert (await a.sessions.get_family(fam.id)).revoked_at is None
    finally:
        await a.close()
        await b.close()


async def test_rotation_racing_revocation_leaves_no_unlisted_access_token(
    store_factory: Any,
) -> None:
    """A rotation and a revocation of the same family at once, on two instances: either the
    rotation sees the revocation (REVOKED), or the revocation returns the access token the
    rotation recorded (so the caller deny-lists it). Never a live token after the logout."""
    a = await store_factory()
    b = await store_factory()
    try:
        uid = await _user(a)
        for trial in range(20):
            fam = _family(uid)
            t1 = _h()
            await a.sessions.create_family(fam, t1)
            jti = f"race-{trial}"
            rotated, outstanding = await asyncio.gather(
                a.sessions.rotate_refresh(
                    t1, _h(), T0 + 1, 5.0, client="c", idle_ttl=IDLE, access=(jti, T0 + 900)
                ),
                b.sessions.revoke_family(fam.id, T0 + 1, "logout"),
            )
            if rotated.outcome is RotateOutcome.ROTATED:
                assert jti in [r.jti for r in outstanding], trial
            else:
                assert rotated.outcome is RotateOutcome.REVOKED, trial
    finally:
        await a.close()
        await b.close()
