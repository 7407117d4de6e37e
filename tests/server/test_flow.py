"""End-to-end seed flow over real HTTP with an injected clock."""

from __future__ import annotations

import jotkit

from .harness import PASSWORD, bearer, login


def _me(client, token):
    return client.get("/auth/me", headers=bearer(token))


def test_seed_flow_login_me_expiry_refresh_reuse_logout(server):
    with server.client() as c:
        tokens = login(c, "Alice@Example.com ")  # emails are normalised
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 900
        assert len(tokens["refresh_token"]) >= 43  # 256 bits, base64url

        r = _me(c, tokens["access_token"])
        assert r.status_code == 200
        me = r.json()
        assert me["email"] == "alice@example.com"
        assert me["roles"] == ["user"]
        assert me["session"]["token_expires_at"] - me["session"]["token_issued_at"] == 900

        # The access token is an RFC 9068 JWT verifiable with the published JWKS.
        jwks = jotkit.KeySet.from_jwks(c.get("/.well-known/jwks.json").json())
        vt = jotkit.decode_complete(
            tokens["access_token"], jwks, algorithms=["ES256"], issuer="http://jotkit.test",
            audience="jotkit", typ="at+jwt", now=server.clock.now(),
            require=("exp", "iat", "jti", "sub"),
        )
        assert vt.header["typ"] == "at+jwt"
        assert vt.claims["sub"] == me["id"]
        assert isinstance(vt.claims["sub"], str)

        # Expiry: move the clock past exp.
        server.clock.advance(901)
        r = _me(c, tokens["access_token"])
        assert r.status_code == 401
        assert r.json()["reason"] == "expired"
        assert 'error="invalid_token"' in r.headers["www-authenticate"]

        # Refresh: new pair, old refresh token spent.
        r = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["refresh_token"] != tokens["refresh_token"]
        assert _me(c, second["access_token"]).status_code == 200

        # Reuse of the spent token after the grace window: the family is revoked and its
        # outstanding access token is rejected; the newest refresh token is dead too.
        server.clock.advance(10)
        r = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_grant"
        assert "reuse" in r.json()["error_description"]
        r = _me(c, second["access_token"])
        assert r.status_code == 401
        assert r.json()["reason"] == "revoked"
        r = c.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert r.status_code == 400

        # A fresh login works; logout revokes that session.
        third = login(c, "alice@example.com")
        r = c.post("/auth/logout", headers=bearer(third["access_token"]))
        assert r.status_code == 200
        assert _me(c, third["access_token"]).json()["reason"] == "revoked"
        r = c.post("/auth/refresh", json={"refresh_token": third["refresh_token"]})
        assert r.status_code == 400


def test_logout_all_revokes_every_session(server):
    with server.client() as c, server.client(headers={"User-Agent": "phone"}) as phone:
        a = login(c, "alice@example.com")
        b = login(phone, "alice@example.com")
        r = c.get("/auth/sessions", headers=bearer(a["access_token"]))
        assert r.status_code == 200
        listed = r.json()
        assert len(listed) == 2
        assert {s["user_agent"] for s in listed} == {"jotkit-tests/1", "phone"}
        assert sum(s["current"] for s in listed) == 1

        r = c.post("/auth/logout-all", headers=bearer(a["access_token"]))
        assert r.status_code == 200
        for tok in (a, b):
            assert _me(c, tok["access_token"]).status_code == 401
            r = c.post("/auth/refresh", json={"refresh_token": tok["refresh_token"]})
            assert r.status_code == 400
        # A login after logout-all (same second) is not caught by the marker.
        again = login(c, "alice@example.com")
        assert _me(c, again["access_token"]).status_code == 200


def test_end_one_session(server):
    with server.client() as c:
        a = login(c, "alice@example.com")
        b = login(c, "alice@example.com")
        sessions = c.get("/auth/sessions", headers=bearer(a["access_token"])).json()
        other = next(s["id"] for s in sessions if not s["current"])
        r = c.delete(f"/auth/sessions/{other}", headers=bearer(a["access_token"]))
        assert r.status_code == 200
        assert _me(c, b["access_token"]).status_code == 401
        assert _me(c, a["access_token"]).status_code == 200
        r = c.delete(f"/auth/sessions/{other}", headers=bearer(a["access_token"]))
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        # Someone else's session id is not found either.
        server.add_user("bob@example.com")
        bob = login(c, "bob@example.com")
        bob_sid = c.get("/auth/me", headers=bearer(bob["access_token"])).json()["session"]["id"]
        r = c.delete(f"/auth/sessions/{bob_sid}", headers=bearer(a["access_token"]))
        assert r.status_code == 404
        assert _me(c, bob["access_token"]).status_code == 200


def test_grace_window_duplicate_retry_is_benign(server):
    with server.client() as c, server.client(headers={"User-Agent": "evil"}) as other:
        t = login(c, "alice@example.com")
        r1 = c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r1.status_code == 200
        # Same client retries within the grace window: 409, session stays alive.
        server.clock.advance(2)
        r2 = c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r2.status_code == 409
        assert r2.json()["error"] == "invalid_grant"
        assert _me(c, r1.json()["access_token"]).status_code == 200
        # Another client presenting the spent token, even within grace: reuse.
        r3 = other.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r3.status_code == 400
        assert _me(c, r1.json()["access_token"]).json()["reason"] == "revoked"


def test_idle_and_absolute_lifetimes(server):
    with server.client() as c:
        t = login(c, "alice@example.com")
        server.clock.advance(7 * 86400 + 1)  # idle lifetime is 7 days
        r = c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r.status_code == 400
        assert "expired" in r.json()["error_description"]

        t = login(c, "alice@example.com")
        token = t["refresh_token"]
        for _ in range(4):  # 4 x 6 days = 24 days: within the 30-day absolute lifetime
            server.clock.advance(6 * 86400)
            r = c.post("/auth/refresh", json={"refresh_token": token})
            assert r.status_code == 200, r.text
            token = r.json()["refresh_token"]
        server.clock.advance(6 * 86400 + 1)  # day 30+: the family is over
        r = c.post("/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 400


def test_wrong_password_and_unknown_user_look_identical(server):
    with server.client() as c:
        r1 = c.post("/auth/login", json={"email": "alice@example.com", "password": "nope"})
        r2 = c.post("/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
        assert r1.status_code == r2.status_code == 401
        assert r1.json() == r2.json()
        assert r1.headers["www-authenticate"] == r2.headers["www-authenticate"]


def test_disabled_user_is_locked_out_everywhere(server):
    with server.client() as c:
        t = login(c, "alice@example.com")
        server.run(server.service.disable_user("alice@example.com"))
        assert _me(c, t["access_token"]).status_code == 401
        assert c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]}).status_code == 400
        r = c.post("/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
        assert r.status_code == 401
