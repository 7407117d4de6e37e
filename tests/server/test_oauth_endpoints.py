"""``/oauth/introspect`` (RFC 7662) and ``/oauth/revoke`` (RFC 7009) as RFC 6749 §2.3 / §5.2
ask: the client is authenticated first, form errors are 400 ``invalid_request``, the hint is
only a hint, and client-secret guessing is throttled."""

from __future__ import annotations

import pytest

from .harness import bearer, login

RS = ("rs1", "rs1-secret")
ENDPOINTS = ("/oauth/introspect", "/oauth/revoke")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("content", "ctype"),
    [(b"", "application/x-www-form-urlencoded"), (b"token=abc", "application/x-www-form-urlencoded"),
     (b"{oops", "application/json"), (b"token_type_hint=" + b"x" * 200,
                                      "application/x-www-form-urlencoded")],
)
def test_rfc6749_2_3_client_is_authenticated_before_the_form_is_validated(
    server, path, content, ctype
):
    with server.client() as c:
        r = c.post(path, content=content, headers={"Content-Type": ctype})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic ")
        r = c.post(path, content=content, headers={"Content-Type": ctype}, auth=("rs1", "wrong"))
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_client"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_rfc6749_5_2_missing_token_is_400_invalid_request(server, path):
    with server.client() as c:
        for form in ({}, {"token": ""}, {"token_type_hint": "access_token"}):
            r = c.post(path, data=form, auth=RS)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid_request"
            assert "token" in r.json()["error_description"]


def test_rfc7662_2_1_hint_refresh_token_does_not_hide_a_live_access_token(server):
    with server.client() as c:
        tokens = login(c, "alice@example.com")
        for hint in ("refresh_token", "access_token", "something_else"):
            r = c.post("/oauth/introspect", auth=RS,
                       data={"token": tokens["access_token"], "token_type_hint": hint})
            assert r.status_code == 200
            assert r.json()["active"] is True, (hint, r.json())
            assert r.json()["token_type"] == "access_token"
            r = c.post("/oauth/introspect", auth=RS,
                       data={"token": tokens["refresh_token"], "token_type_hint": hint})
            assert r.json()["active"] is True
            assert r.json()["token_type"] == "refresh_token"


def test_rfc7009_2_1_revoke_works_whatever_the_hint(server):
    with server.client() as c:
        a = login(c, "alice@example.com")
        r = c.post("/oauth/revoke", auth=RS,
                   data={"token": a["access_token"], "token_type_hint": "refresh_token"})
        assert r.status_code == 200
        assert c.get("/auth/me", headers=bearer(a["access_token"])).json()["reason"] == "revoked"
        b = login(c, "alice@example.com")
        r = c.post("/oauth/revoke", auth=RS,
                   data={"token": b["refresh_token"], "token_type_hint": "access_token"})
        assert r.status_code == 200
        assert c.post("/auth/refresh", json={"refresh_token": b["refresh_token"]}).status_code == 400


def test_client_secret_guessing_is_throttled_per_address(make_server):
    srv = make_server(client_auth_limit=3, client_auth_window=60)
    with srv.client() as c:
        for i in range(3):
            r = c.post("/oauth/introspect", data={"token": "x"}, auth=("rs1", f"guess-{i}"))
            assert r.status_code == 401
        r = c.post("/oauth/introspect", data={"token": "x"}, auth=RS)  # even the right one
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert c.post("/oauth/revoke", data={"token": "x"}, auth=RS).status_code == 429
        srv.clock.advance(61)
        r = c.post("/oauth/introspect", data={"token": "x"}, auth=RS)
        assert r.status_code == 200
        assert r.json() == {"active": False}


def test_introspection_answers_are_not_cached(server):
    with server.client() as c:
        r = c.post("/oauth/introspect", data={"token": "x"}, auth=RS)
        assert r.headers["cache-control"] == "no-store"  # RFC 7662 §2.2 carries token state
        assert r.headers["content-type"] == "application/json"
