"""``GET /auth/me`` is served by a plain ASGI route (``MeRoute``) ahead of the FastAPI route.

The fast route must answer exactly what the FastAPI route answers, for every token the
route can be shown: status, RFC 6750 challenge, JSON body, every header (security headers
from the edge middleware, ``Cache-Control``) and the metrics it counts. Each request below is
sent twice on the same live service: once with ``MeRoute`` in front, once with it taken out
of the route list (the FastAPI route then answers, as before the fast route existed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import jotkit
from jotkit import dpop
from jotkit.server.csrf import cookie_names
from jotkit.server.routes.auth import MeRoute
from jotkit.server.routes.models import MeResponse

from .harness import METRICS_TOKEN, Server, bearer, login
from .oauth_util import REDIRECT, make_code, register

API_CSP = "default-src 'none'; frame-ancestors 'none'"
TOKEN_URL = "http://jotkit.test/oauth/token"

Answer = tuple[int, list[tuple[str, str]], bytes]
Send = Callable[[httpx.Client], httpx.Response]


def _answer(r: httpx.Response) -> Answer:
    headers = sorted((k, v) for k, v in r.headers.multi_items() if k != "date")
    return r.status_code, headers, r.content


def _counters(c: httpx.Client) -> dict[str, float]:
    """Status classes and token rejections from /metrics (the audit counts rejections)."""
    text = c.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    out = {}
    for line in text.splitlines():
        if line.startswith(("jotkit_http_requests_total", "jotkit_token_rejections_total")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


@pytest.fixture
def me_route(server: Server) -> Iterator[MeRoute]:
    routes = server.app.router.routes
    assert isinstance(routes[0], MeRoute)  # first: no other route is matched before it
    yield routes[0]
    assert isinstance(routes[0], MeRoute)


def _fast_and_before(
    server: Server, route: MeRoute, requests: list[Send]
) -> tuple[list[Answer], list[Answer], dict[str, float], dict[str, float]]:
    """The answers (and metric deltas) with the fast route, then with the FastAPI route."""
    routes = server.app.router.routes
    with server.client() as c:
        start = _counters(c)
        fast = [_answer(send(c)) for send in requests]
        middle = _counters(c)
        routes.remove(route)
        try:
            before = [_answer(send(c)) for send in requests]
        finally:
            routes.insert(0, route)
        end = _counters(c)
    return fast, before, _delta(start, middle), _delta(middle, end)


def _get(headers: dict[str, str] | list[tuple[str, str]] | None = None) -> Send:
    return lambda c: c.get("/auth/me", headers=headers)


def _dpop_bound_token(server: Server) -> str:
    """A user's access token bound to a DPoP key (public client, code flow, RFC 9449 §5)."""
    client = register(server, "spa", public=True)
    code, verifier = make_code(server, client)
    key = jotkit.Key.generate("ES256")
    with server.client() as c:
        r = c.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": client.id,
        }, headers={"DPoP": dpop.proof(key, "POST", TOKEN_URL, now=server.clock.now())})
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    return str(r.json()["access_token"])


def test_auth_me_fast_route_keeps_errors_and_schema(server: Server, me_route: MeRoute):
    server.add_user("bob@example.com")
    server.add_user("carol@example.com")
    with server.client() as c:
        alice = login(c, "alice@example.com")["access_token"]
        logged_out = login(c, "alice@example.com")["access_token"]
        assert c.post("/auth/logout", headers=bearer(logged_out)).status_code == 200
        bob = login(c, "bob@example.com")["access_token"]
        carol = login(c, "carol@example.com")["access_token"]
        dave = login(c, "alice@example.com")["access_token"]
    server.run(server.service.disable_user("bob@example.com"))
    bound = _dpop_bound_token(server)
    head, payload, sig = alice.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"

    requests: list[Send] = [
        _get(bearer(alice)),
        lambda c: c.head("/auth/me", headers=bearer(alice)),  # 405, as before
        _get(),  # no credentials: a bare challenge
        _get({"Authorization": "Basic YTpi"}),  # another scheme
        _get({"Authorization": "Bearer"}),  # no token
        _get({"Authorization": f"Bearer {alice} {alice}"}),  # two tokens
        _get(bearer("not-a-jwt")),
        _get(bearer(forged)),  # bad signature
        _get(bearer(logged_out)),  # deny-listed by logout
        _get(bearer(bob)),  # the user was disabled
        _get(bearer(bound)),  # DPoP-bound: no bearer token (RFC 9449 §7.2)
        _get([("Authorization", f"Bearer {alice}"), ("Authorization", "Bearer x")]),  # first wins
        _get({**bearer(carol), "Origin": "https://evil.example"}),  # no CORS on /auth/*
        lambda c: c.post("/auth/me", headers=bearer(alice)),  # 405, from the FastAPI route
        lambda c: c.get("/auth/me/", headers=bearer(alice)),  # trailing slash: redirect
        lambda c: c.get("/auth/me?x=1", headers=bearer(alice)),
    ]
    fast, before, fast_counts, before_counts = _fast_and_before(server, me_route, requests)
    assert fast == before
    assert fast_counts == before_counts  # status classes and rejection reasons, as before

    statuses = [status for status, _, _ in fast]
    assert statuses == [200, 405, 401, 401, 401, 401, 401, 401, 401, 401, 401, 200, 200, 405,
                        307, 200]
    for status, headers, _ in fast:
        h = dict(headers)
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "no-referrer"
        assert h["content-security-policy"] == API_CSP
        assert "access-control-allow-origin" not in h
        if status != 307:
            assert h["cache-control"] == "no-store"

    ok = MeResponse.model_validate_json(fast[0][2])
    assert ok.email == "alice@example.com" and ok.roles == ["user"]
    assert dict(fast[0][1])["content-type"] == "application/json"
    assert dict(fast[1][1])["allow"] == "GET"

    def challenge(i: int) -> str:
        return dict(fast[i][1])["www-authenticate"]

    assert challenge(2) == 'Bearer realm="jotkit"'
    for i, reason in ((5, "malformed"), (6, "malformed"), (7, "bad_signature"),
                      (8, "revoked"), (9, "revoked")):
        assert challenge(i).startswith('Bearer realm="jotkit", error="invalid_token"'), i
        body = httpx.Response(401, content=fast[i][2]).json()
        assert (body["error"], body["reason"]) == ("invalid_token", reason), (i, body)
    assert challenge(10).startswith("DPoP ") and 'error="invalid_token"' in challenge(10)
    assert fast_counts['jotkit_token_rejections_total{reason="revoked"}'] == 2
    assert fast_counts['jotkit_http_requests_total{status="4xx"}'] == 11

    # expired, once the clock has passed exp (zero leeway). The first answer comes from the
    # verified-token cache (issuing filled it), which then drops the token; the next ones
    # come from the verifier, whose description names how long ago it expired.
    server.clock.advance(server.settings.access_ttl + 1)
    with server.client() as c:
        cached = c.get("/auth/me", headers=bearer(dave))
    fast, before, fast_counts, before_counts = _fast_and_before(
        server, me_route, [_get(bearer(dave))]
    )
    assert fast == before and fast_counts == before_counts
    for status, content in ((cached.status_code, cached.content), (fast[0][0], fast[0][2])):
        assert status == 401
        assert httpx.Response(401, content=content).json()["reason"] == "expired"


def test_auth_me_is_in_the_openapi_document_with_its_response_model(server: Server):
    with server.client() as c:
        doc = c.get("/openapi.json").json()
    op = doc["paths"]["/auth/me"]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/MeResponse"}
    assert set(doc["components"]["schemas"]["MeResponse"]["properties"]) == set(
        MeResponse.model_fields
    )
    assert op["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(op["responses"])
    assert list(doc["paths"]["/auth/me"]) == ["get"]


def test_auth_me_fast_route_reads_the_access_cookie_in_cookie_mode(make_server: Any):
    srv = make_server(cookie_mode=True, cookie_secure=False)
    srv.add_user("alice@example.com")
    access = cookie_names(False).access
    with srv.client() as c:
        assert "access_token" not in login(c, "alice@example.com")  # it is in a cookie
        cookie = c.cookies.get(access)
    assert cookie
    route = srv.app.router.routes[0]
    assert isinstance(route, MeRoute)
    requests: list[Send] = [
        _get({"Cookie": f"{access}={cookie}"}),  # a GET needs no CSRF header
        _get(),
        _get({"Cookie": f"{access}=not-a-jwt"}),
    ]
    fast, before, fast_counts, before_counts = _fast_and_before(srv, route, requests)
    assert fast == before and fast_counts == before_counts
    assert [status for status, _, _ in fast] == [200, 401, 401]
    assert MeResponse.model_validate_json(fast[0][2]).email == "alice@example.com"
