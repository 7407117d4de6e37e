"""X-Forwarded-For: only configured proxies are trusted, and the client address is the
right-most entry that is not a trusted proxy (real HTTP; the TCP peer is 127.0.0.1)."""

from __future__ import annotations

import json
import logging

import pytest

from jotkit.server import Settings, SettingsError

from .harness import bearer, login

REAL = "203.0.113.7"  # what nginx's $proxy_add_x_forwarded_for appends for the real client


def _session_ip(client, token: str) -> str:
    r = client.get("/auth/sessions", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()[0]["client_ip"]


def test_spoofed_x_forwarded_for_from_untrusted_peer_is_ignored(make_server):
    srv = make_server()  # no JOTKIT_TRUSTED_PROXIES: the TCP peer is the client
    srv.add_user("ann@example.com")
    with srv.client(headers={"X-Forwarded-For": "6.6.6.6"}) as c:
        token = login(c, "ann@example.com")["access_token"]
        assert _session_ip(c, token) == "127.0.0.1"


def test_spoofed_x_forwarded_for_from_peer_outside_trusted_proxies_is_ignored(make_server):
    srv = make_server(trusted_proxies=("10.0.0.0/8",))  # 127.0.0.1 is not one of them
    srv.add_user("ann@example.com")
    with srv.client(headers={"X-Forwarded-For": f"6.6.6.6, {REAL}"}) as c:
        token = login(c, "ann@example.com")["access_token"]
        assert _session_ip(c, token) == "127.0.0.1"


def test_spoofed_leftmost_x_forwarded_for_behind_trusted_proxy_is_ignored(make_server, caplog):
    caplog.set_level(logging.INFO, logger="jotkit.server.audit")
    srv = make_server(trusted_proxies=("127.0.0.1",))
    srv.add_user("ann@example.com")
    # The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the real address.
    with srv.client(headers={"X-Forwarded-For": f"6.6.6.6, {REAL}"}) as c:
        token = login(c, "ann@example.com")["access_token"]
        assert _session_ip(c, token) == REAL
    events = [json.loads(rec.getMessage()) for rec in caplog.records
              if rec.name == "jotkit.server.audit"]
    assert [e["ip"] for e in events if e["event"] == "login_ok"] == [REAL]


def test_spoofed_x_forwarded_for_through_proxy_chain_with_cidr(make_server):
    srv = make_server(trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    srv.add_user("ann@example.com")
    chain = f"6.6.6.6, 10.9.9.9, {REAL}, 10.1.2.3"  # client spoof, real, then two proxies
    with srv.client(headers={"X-Forwarded-For": chain}) as c:
        token = login(c, "ann@example.com")["access_token"]
        assert _session_ip(c, token) == REAL


def test_rotating_spoofed_x_forwarded_for_does_not_bypass_address_throttle(make_server):
    srv = make_server(trusted_proxies=("127.0.0.1",), login_ip_limit=3, login_ip_window=60)
    statuses = []
    with srv.client() as c:
        for i in range(6):
            r = c.post(
                "/auth/login",
                json={"email": f"u{i}@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"198.51.100.{i}, {REAL}"},
            )
            statuses.append(r.status_code)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429]


def test_spoofed_x_forwarded_for_does_not_match_refresh_grace_fingerprint(make_server):
    # The grace window answers 409 refresh_retry only to the same client (address + agent).
    srv = make_server(trusted_proxies=("127.0.0.1",))
    srv.add_user("ann@example.com")
    with srv.client(headers={"X-Forwarded-For": REAL, "User-Agent": "app/1"}) as victim:
        refresh = login(victim, "ann@example.com")["refresh_token"]
        assert victim.post("/auth/refresh", json={"refresh_token": refresh}).status_code == 200
    # An attacker elsewhere replays the spent token, claiming the victim's address.
    with srv.client(headers={"X-Forwarded-For": f"{REAL}, 192.0.2.66",
                             "User-Agent": "app/1"}) as attacker:
        r = attacker.post("/auth/refresh", json={"refresh_token": refresh})
    assert r.status_code == 400, r.text  # reuse detected, not "retry"
    assert "reuse" in r.json()["error_description"]


def test_trust_forwarded_for_is_refused_with_a_clear_message():
    with pytest.raises(SettingsError, match="JOTKIT_TRUSTED_PROXIES"):
        Settings.from_env({"JOTKIT_TRUST_FORWARDED_FOR": "1"})
    assert Settings.from_env({"JOTKIT_TRUST_FORWARDED_FOR": "0"}).trusted_proxies == ()
    settings = Settings.from_env({"JOTKIT_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    with pytest.raises(SettingsError, match="JOTKIT_TRUSTED_PROXIES"):
        Settings.from_env({"JOTKIT_TRUSTED_PROXIES": "nginx.local"})
