"""The in-process revocation cache stays bounded by time (memory flat under a long run of
logouts and revocations; issue 10 §5, benchmarks/soak.py)."""

from __future__ import annotations

import asyncio

from jotkit.server.sessions import RevocationCache
from jotkit.server.store.base import RevocationChanges

from .harness import bearer, login


class _NoChanges:
    """A store with nothing new since the last sync."""

    async def changes_since(self, cursor: int, now: float) -> RevocationChanges:
        return RevocationChanges((), (), cursor)


def _sync(cache: RevocationCache, now: float) -> None:
    asyncio.run(cache.sync(_NoChanges(), now))


def test_logout_flood_cannot_grow_the_deny_list_cache_past_the_live_tokens():
    """A denied jti is kept while its token is unexpired (so it stays rejected) and dropped
    after: 10,000 logouts over time leave only the still-live tokens in memory."""
    cache = RevocationCache(marker_lifetime=961.0)
    for i in range(10_000):  # one logout a second, tokens live 900 s
        cache.deny([(f"jti-{i}", 1000.0 + i + 900.0)])
    _sync(cache, 1000.0 + 9_999)
    assert len(cache.denied) == 900
    assert cache.reason("jti-9999", "u", 0.0) == "revoked"
    assert cache.reason("jti-9100", "u", 0.0) == "revoked"  # expires one second from now
    assert cache.reason("jti-9099", "u", 0.0) is None  # expired now: nothing to remember


def test_revoked_user_marker_is_kept_until_every_older_token_expired_then_forgotten():
    """A revoked-before marker rejects tokens issued before it for as long as one of them can
    be unexpired (``marker_lifetime`` >= the access-token lifetime), then it is dropped: one
    marker per revoked user must not pile up for the life of the process."""
    cache = RevocationCache(marker_lifetime=961.0)
    cache.mark("u1", 1000.0)
    cache.mark("u2", 1500.0)
    _sync(cache, 1000.0 + 960.0)
    assert cache.reason("jti", "u1", 999.0) == "revoked"  # a token of iat 999 lived to 1899
    _sync(cache, 1000.0 + 961.0)
    assert cache.markers == {"u2": 1500.0}
    assert cache.reason("jti", "u2", 1499.0) == "revoked"


def test_service_forgets_a_disabled_users_marker_only_after_its_tokens_expired(make_server):
    """End to end: the service's cache keeps the marker of a disabled user (the token issued
    before it is refused) through the token's whole lifetime, and drops it after."""
    srv = make_server(access_ttl=60.0, key_retire_margin=10.0)
    srv.add_user("alice@example.com")
    with srv.client() as c:
        token = login(c, "alice@example.com")["access_token"]
        srv.clock.advance(1)
        user = srv.run(srv.service.disable_user("alice@example.com"))
        assert user is not None and user.id in srv.service.revocations.markers
        srv.clock.advance(58)  # the token is still unexpired: still refused
        srv.sync()
        assert c.get("/auth/me", headers=bearer(token)).status_code == 401
        assert user.id in srv.service.revocations.markers
        srv.clock.advance(60 + 10 + 1)  # every token issued before the marker has expired
        srv.sync()
        assert user.id not in srv.service.revocations.markers
        assert c.get("/auth/me", headers=bearer(token)).status_code == 401  # and is expired
