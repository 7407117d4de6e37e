"""Parallel refreshes of one token, and the RFC 7009 / RFC 7662 endpoints."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from .harness import bearer, login


def test_fifty_parallel_refreshes_exactly_one_wins(server):
    with server.client() as c:
        t = login(c, "alice@example.com")

    async def storm():
        async with httpx.AsyncClient(
            base_url=server.url, timeout=60, headers={"User-Agent": "jotkit-tests/1"},
            limits=httpx.Limits(max_connections=50),
        ) as ac:
            return await asyncio.gather(*[
                ac.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
                for _ in range(50)
            ])

    responses = asyncio.run(storm())
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, statuses
    # The losers are the same client within the grace window: benign, not a reuse.
    assert statuses[409] == 49, statuses
    winner = next(r for r in responses if r.status_code == 200).json()
    with server.client() as c:
        assert c.get("/auth/me", headers=bearer(winner["access_token"])).status_code == 200
        r = c.post("/auth/refresh", json={"refresh_token": winner["refresh_token"]})
        assert r.status_code == 200


def test_parallel_refreshes_from_different_clients_revoke_the_family(server):
    with server.client() as c:
        t = login(c, "alice@example.com")

    async def storm():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as ac:
            return await asyncio.gather(*[
                ac.post("/auth/refresh", json={"refresh_token": t["refresh_token"]},
                        headers={"User-Agent": f"client-{i}"})
                for i in range(20)
            ])

    responses = asyncio.run(storm())
    statuses = Counter(r.status_code for r in responses)
    # One request spends the token; the others are reuse from other clients, which revokes
    # the family, possibly before the winner has signed its access token (then it gets 400).
    assert statuses[200] <= 1, statuses
    assert statuses[200] + statuses[400] == 20, statuses
    tokens = server.run(_family_tokens(server, t["refresh_token"]))
    assert len(tokens) == 2  # the original and exactly one successor
    with server.client() as c:
        for r in responses:
            if r.status_code == 200:
                me = c.get("/auth/me", headers=bearer(r.json()["access_token"]))
                assert me.status_code == 401
                assert me.json()["reason"] == "revoked"
        r = c.get("/auth/me", headers=bearer(t["access_token"]))
        assert r.status_code == 401


async def _family_tokens(server, refresh_token):
    import sqlalchemy as sa

    from jotkit.server.sessions import hash_refresh_token
    from jotkit.server.store.tables import refresh_tokens

    store = server.service.store
    found = await store.sessions.find_refresh(hash_refresh_token(refresh_token))
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(refresh_tokens).where(refresh_tokens.c.family_id == found[1].id)
        )
        return rows.all()


def _basic(client_id="rs1", secret="rs1-secret"):
    return httpx.BasicAuth(client_id, secret)


def test_introspection(server):
    with server.client() as c:
        t = login(c, "alice@example.com")
        r = c.post("/oauth/introspect", data={"token": t["access_token"]})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Basic realm="jotkit"'
        r = c.post("/oauth/introspect", data={"token": t["access_token"]},
                   auth=_basic(secret="wrong"))
        assert r.status_code == 401
        r = c.post("/oauth/introspect", data={"token": t["access_token"]}, auth=_basic())
        assert r.status_code == 200
        info = r.json()
        assert info["active"] is True
        assert info["token_type"] == "access_token"
        assert info["username"] == "alice@example.com"
        assert info["iss"] == "http://jotkit.test"
        r = c.post("/oauth/introspect", data={"token": t["refresh_token"]}, auth=_basic())
        assert r.json()["active"] is True
        assert r.json()["token_type"] == "refresh_token"
        for junk in ["junk", "a.b.c", "x" * 50]:
            r = c.post("/oauth/introspect", data={"token": junk}, auth=_basic())
            assert r.json() == {"active": False}
        server.clock.advance(901)
        r = c.post("/oauth/introspect", data={"token": t["access_token"]}, auth=_basic())
        assert r.json() == {"active": False}
        r = c.post("/oauth/introspect", data={}, auth=_basic())
        assert r.status_code == 400


def test_revocation_endpoint(server):
    with server.client() as c:
        a = login(c, "alice@example.com")
        r = c.post("/oauth/revoke", data={"token": a["refresh_token"],
                                         "token_type_hint": "refresh_token"}, auth=_basic())
        assert r.status_code == 200
        assert c.post("/auth/refresh", json={"refresh_token": a["refresh_token"]}).status_code == 400
        assert c.get("/auth/me", headers=bearer(a["access_token"])).status_code == 401

        b = login(c, "alice@example.com")
        r = c.post("/oauth/revoke", data={"token": b["access_token"]}, auth=_basic())
        assert r.status_code == 200
        r = c.get("/auth/me", headers=bearer(b["access_token"]))
        assert r.json()["reason"] == "revoked"
        # The session itself survives an access-token revocation.
        assert c.post("/auth/refresh", json={"refresh_token": b["refresh_token"]}).status_code == 200
        # Unknown tokens: still 200 (RFC 7009 §2.2).
        for junk in ("whatever", "a.b.c"):
            r = c.post("/oauth/revoke", data={"token": junk}, auth=_basic())
            assert r.status_code == 200
        assert c.post("/oauth/revoke", data={}, auth=_basic()).status_code == 400
