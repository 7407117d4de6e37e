"""Key rotation with tokens in flight, discovery documents, restart persistence."""

from __future__ import annotations

import jotkit

from .harness import bearer, login


def _kid(token: str) -> str:
    header, _ = jotkit.decode_unverified(token)
    return str(header["kid"])


def _jwks_kids(client) -> list[str]:
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    return [k["kid"] for k in keys if k["alg"] != "RS256"]  # RS256: the ID-token ring


def test_rotation_publishes_first_and_logs_nobody_out(server):
    svc = server.service
    with server.client() as c:
        before = login(c, "alice@example.com")
        old_kid = _kid(before["access_token"])
        assert _jwks_kids(c) == [old_kid]

        new = server.run(svc.keyring.rotate("ES256", server.clock.now(), 300))
        # Published at once, but the old key still signs during the publish delay.
        assert set(_jwks_kids(c)) == {old_kid, new.kid}
        during = login(c, "alice@example.com")
        assert _kid(during["access_token"]) == old_kid

        server.clock.advance(301)
        after = c.post("/auth/refresh", json={"refresh_token": during["refresh_token"]}).json()
        assert _kid(after["access_token"]) == new.kid
        # Tokens signed by the old key before the switch still work.
        assert c.get("/auth/me", headers=bearer(during["access_token"])).status_code == 200
        assert set(_jwks_kids(c)) == {old_kid, new.kid}

        # Once every old-key token has expired (+ margin) the old key is unpublished.
        server.clock.advance(900 + 61)
        assert _jwks_kids(c) == [new.kid]
        r = c.get("/auth/me", headers=bearer(during["access_token"]))
        assert r.status_code == 401
        # Refresh tokens are opaque: the old session survives the rotation.
        r = c.post("/auth/refresh", json={"refresh_token": before["refresh_token"]})
        assert r.status_code == 200
        assert _kid(r.json()["access_token"]) == new.kid


def test_rotation_by_another_process_is_picked_up(server):
    """A key added straight to the store (as `jotkit keys rotate` does) is loaded on sync."""
    from jotkit.server.keyring import new_key_record

    with server.client() as c:
        server.clock.advance(1)
        rec = new_key_record("ES256", server.clock.now(), server.clock.now())
        server.run(server.service.store.keys.add(rec))
        server.sync()
        assert rec.kid in _jwks_kids(c)
        t = login(c, "alice@example.com")
        assert _kid(t["access_token"]) == rec.kid


def test_discovery_documents(server):
    with server.client() as c:
        r = c.get("/.well-known/jwks.json")
        assert r.headers["cache-control"] == "public, max-age=300"
        assert r.headers["content-type"].startswith("application/jwk-set+json")
        keys = r.json()["keys"]
        assert all("d" not in k for k in keys)  # public keys only
        r2 = c.get("/.well-known/jwks.json", headers={"If-None-Match": r.headers["etag"]})
        assert r2.status_code == 304
        meta = c.get("/.well-known/openid-configuration").json()
        assert meta["issuer"] == "http://jotkit.test"
        assert meta["jwks_uri"] == "http://jotkit.test/.well-known/jwks.json"
        assert meta["access_token_signing_alg_values_supported"] == ["ES256"]
        assert meta["revocation_endpoint"].endswith("/oauth/revoke")
        assert c.get("/.well-known/oauth-authorization-server").json() == meta


def test_restart_loses_no_user_session_or_key(make_server, tmp_path):
    first = make_server()
    first.add_user("carol@example.com")
    with first.client() as c:
        t = login(c, "carol@example.com")
        kid = _jwks_kids(c)
    clock = first.clock
    first.stop()

    second = make_server(clock=clock)
    with second.client() as c:
        assert _jwks_kids(c) == kid
        assert c.get("/auth/me", headers=bearer(t["access_token"])).status_code == 200
        r = c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r.status_code == 200
        sessions = c.get("/auth/sessions", headers=bearer(r.json()["access_token"])).json()
        assert len(sessions) == 1
        login(c, "carol@example.com")
    second.stop()


def test_restart_keeps_revocations(make_server):
    first = make_server()
    first.add_user("dave@example.com")
    with first.client() as c:
        t = login(c, "dave@example.com")
        assert c.post("/auth/logout", headers=bearer(t["access_token"])).status_code == 200
    clock = first.clock
    first.stop()
    second = make_server(clock=clock)
    with second.client() as c:
        r = c.get("/auth/me", headers=bearer(t["access_token"]))
        assert r.status_code == 401
        assert r.json()["reason"] == "revoked"
