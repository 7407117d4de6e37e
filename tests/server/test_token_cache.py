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
