"""The service's verified-token cache (``AuthService.authenticate``)."""

from __future__ import annotations

from .harness import bearer, login


def _hits(srv) -> float:
    value = srv.service.metrics.registry.get_sample_value(
        "jotkit_token_cache_total", {"result": "hit"}
    )
    return value or 0.0


def test_token_cache_evicts_least_recently_used_not_first_inserted(make_server):
    """A bounded LRU: a token used since it was cached survives the eviction that a newer
    token causes; the one not used since goes (a FIFO would evict the busy token)."""
    srv = make_server(token_cache_size=2)
    srv.add_user("alice@example.com")
    with srv.client() as c:
        busy = login(c, "alice@example.com")["access_token"]  # cached when issued
        idle = login(c, "alice@example.com")["access_token"]
        assert c.get("/auth/me", headers=bearer(busy)).status_code == 200
        before = _hits(srv)
        login(c, "alice@example.com")  # a third token: one entry must go
        assert c.get("/auth/me", headers=bearer(busy)).status_code == 200
        assert _hits(srv) == before + 1  # still cached: the recently used entry survived
        assert c.get("/auth/me", headers=bearer(idle)).status_code == 200
        assert _hits(srv) == before + 1  # evicted: verified again (a miss)


def test_token_flood_cannot_grow_the_verified_cache_past_its_bound(make_server):
    """Every new token a client presents adds a cache entry; the cache must stop at
    ``JOTKIT_TOKEN_CACHE_SIZE`` however many distinct tokens arrive (the soak's memory is
    flat only once it is full: benchmarks/results-soak.md)."""
    srv = make_server(token_cache_size=3)
    srv.add_user("alice@example.com")
    with srv.client() as c:
        tokens = [login(c, "alice@example.com")["access_token"] for _ in range(8)]
        for token in tokens:
            assert c.get("/auth/me", headers=bearer(token)).status_code == 200
    assert len(srv.service._verified) == 3
    assert set(srv.service._verified) == set(tokens[-3:])  # the most recently used three
