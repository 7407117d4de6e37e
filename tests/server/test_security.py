"""Throttling, cookie + CSRF mode, password rehash, audit log and metrics."""

from __future__ import annotations

import json
import logging
from http.cookies import SimpleCookie

from .harness import METRICS_TOKEN, PASSWORD, bearer, login


def test_account_throttle_429_with_retry_after(make_server):
    srv = make_server(login_account_limit=3, login_account_window=60)
    srv.add_user("erin@example.com")
    with srv.client() as c:
        for _ in range(3):
            r = c.post("/auth/login", json={"email": "erin@example.com", "password": "bad"})
            assert r.status_code == 401
        r = c.post("/auth/login", json={"email": "erin@example.com", "password": PASSWORD})
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # Unknown accounts are throttled the same way (no existence oracle).
        for _ in range(3):
            c.post("/auth/login", json={"email": "ghost@example.com", "password": "bad"})
        r = c.post("/auth/login", json={"email": "ghost@example.com", "password": "bad"})
        assert r.status_code == 429
        # After the window the account can log in again.
        srv.clock.advance(61)
        assert login(c, "erin@example.com")["access_token"]


def test_address_throttle(make_server):
    srv = make_server(login_ip_limit=4, login_ip_window=30)
    srv.add_user("fay@example.com")
    with srv.client() as c:
        for i in range(4):
            r = c.post("/auth/login", json={"email": f"u{i}@example.com", "password": "x"})
            assert r.status_code == 401
        r = c.post("/auth/login", json={"email": "fay@example.com", "password": PASSWORD})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) <= 30
        srv.clock.advance(31)
        assert login(c, "fay@example.com")["access_token"]


def test_success_resets_account_failures_from_that_address(make_server):
    srv = make_server(login_pair_limit=3)
    srv.add_user("gus@example.com")
    with srv.client() as c:
        for _ in range(2):
            c.post("/auth/login", json={"email": "gus@example.com", "password": "bad"})
        login(c, "gus@example.com")
        for _ in range(2):
            c.post("/auth/login", json={"email": "gus@example.com", "password": "bad"})
        login(c, "gus@example.com")


def _cookies(response) -> dict[str, SimpleCookie]:
    out = {}
    for raw in response.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(raw)
        for name, morsel in jar.items():
            out[name] = morsel
    return out


def test_cookie_mode_with_csrf(make_server):
    srv = make_server(cookie_mode=True)
    srv.add_user("hal@example.com")
    with srv.client() as c:
        r = c.post("/auth/login", json={"email": "hal@example.com", "password": PASSWORD})
        assert r.status_code == 200
        body = r.json()
        assert "access_token" not in body and "refresh_token" not in body
        cookies = _cookies(r)
        access, refresh, csrf = (cookies[n] for n in ("__Host-jotkit_access",
                                                       "__Host-jotkit_refresh",
                                                       "__Host-jotkit_csrf"))
        for m in (access, refresh):
            assert m["httponly"] and m["secure"] and m["samesite"].lower() == "strict"
        for m in (access, refresh, csrf):  # __Host-: Path=/ and no Domain
            assert m["path"] == "/" and not m["domain"]
        assert not csrf["httponly"]
        assert csrf.value == body["csrf_token"]
        c.cookies.clear()  # the jar would not send Secure cookies over http: send by hand

        def cookie_header(*morsels):
            return "; ".join(f"{m.key}={m.value}" for m in morsels)

        # Safe method: cookie alone is enough.
        r = c.get("/auth/me", headers={"Cookie": cookie_header(access)})
        assert r.status_code == 200
        assert r.json()["email"] == "hal@example.com"
        # Unsafe method without / with a wrong CSRF header: 403.
        hdr = {"Cookie": cookie_header(refresh, csrf)}
        r = c.post("/auth/refresh", headers=hdr)
        assert r.status_code == 403
        assert r.json()["error"] == "csrf_failed"
        r = c.post("/auth/refresh", headers={**hdr, "X-CSRF-Token": "wrong"})
        assert r.status_code == 403
        r = c.post("/auth/refresh", headers={**hdr, "X-CSRF-Token": csrf.value})
        assert r.status_code == 200, r.text
        new = _cookies(r)
        assert new["__Host-jotkit_refresh"].value != refresh.value

        access2, csrf2 = new["__Host-jotkit_access"], new["__Host-jotkit_csrf"]
        r = c.post("/auth/logout", headers={"Cookie": cookie_header(access2, csrf2)})
        assert r.status_code == 403
        r = c.post(
            "/auth/logout",
            headers={"Cookie": cookie_header(access2, csrf2), "X-CSRF-Token": csrf2.value},
        )
        assert r.status_code == 200
        cleared = _cookies(r)
        assert cleared["__Host-jotkit_access"]["max-age"] == "0"
        r = c.get("/auth/me", headers={"Cookie": cookie_header(access2)})
        assert r.status_code == 401


def test_password_rehash_on_parameter_change(make_server, tmp_path):
    srv = make_server()
    user = srv.add_user("ivy@example.com")
    clock = srv.clock
    assert "m=1024" in user.password_hash
    srv.stop()
    srv2 = make_server(clock=clock, argon2_memory_cost=2048)
    with srv2.client() as c:
        login(c, "ivy@example.com")
    stored = srv2.run(srv2.service.store.users.get_by_email("ivy@example.com"))
    assert "m=2048" in stored.password_hash
    with srv2.client() as c:
        login(c, "ivy@example.com")


def test_audit_events_are_json_lines_and_counted(server, caplog):
    caplog.set_level(logging.INFO, logger="jotkit.server.audit")
    with server.client() as c:
        c.post("/auth/login", json={"email": "alice@example.com", "password": "bad"})
        t = login(c, "alice@example.com")
        c.get("/auth/me", headers=bearer("not.a.token"))
        r = c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        server.clock.advance(30)
        c.post("/auth/refresh", json={"refresh_token": t["refresh_token"]})
        c.post("/auth/logout", headers=bearer(r.json()["access_token"]))
        metrics = c.get("/metrics", headers=bearer(METRICS_TOKEN))
    events = [json.loads(rec.getMessage()) for rec in caplog.records
              if rec.name == "jotkit.server.audit"]
    names = [e["event"] for e in events]
    for expected in ("login_failed", "login_ok", "token_rejected", "refresh", "reuse_detected"):
        assert expected in names, names
    failed = next(e for e in events if e["event"] == "login_failed")
    assert failed["reason"] == "password" and "ts" in failed
    rejected = next(e for e in events if e["event"] == "token_rejected")
    assert rejected["reason"] == "malformed"
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'jotkit_auth_events_total{event="reuse_detected"} 1.0' in text
    assert 'jotkit_token_rejections_total{reason="malformed"} 1.0' in text
    assert 'jotkit_http_requests_total{status="2xx"}' in text


def test_healthz(server):
    with server.client() as c:
        r = c.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "database": True}


def test_responses_of_the_last_resort_handler_are_counted(server):
    """A backend outage (503) or a bug (500) in a route gets a clean JSON answer, on GET and
    POST alike, the connection stays usable, and both reach jotkit_http_requests_total."""

    async def outage() -> None:
        raise ConnectionRefusedError("database unreachable")

    async def bug() -> None:
        raise RuntimeError("boom")

    server.app.add_api_route("/test-outage", outage)
    server.app.add_api_route("/test-bug", bug, methods=["POST"])
    with server.client() as c:
        r = c.get("/test-outage")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"] == "temporarily_unavailable"
        r = c.post("/test-bug", json={})
        assert r.status_code == 500
        assert r.json() == {"error": "server_error", "error_description": "Internal error."}
        assert "Traceback" not in r.text
        text = c.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    assert 'jotkit_http_requests_total{status="5xx"} 2.0' in text
