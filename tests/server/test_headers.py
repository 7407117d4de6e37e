"""Response headers on every answer (API, errors from the routes and from the edge
middleware, pages), /metrics behind a token, /docs offline and switchable."""

from __future__ import annotations

import re
import socket

from .harness import METRICS_TOKEN, bearer, login

API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _assert_hardened(r, csp: str | None = API_CSP) -> None:
    h = r.headers
    assert h["x-content-type-options"] == "nosniff", r.url
    assert h["x-frame-options"] == "DENY", r.url
    assert h["referrer-policy"] == "no-referrer", r.url
    assert "server" not in h, (r.url, h.get("server"))
    policy = h["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    if csp is not None:
        assert policy == csp, (r.url, policy)
    assert "strict-transport-security" not in h  # plain http to the app, http issuer


def test_clickjacking_and_sniffing_headers_on_api_answers_and_errors(server):
    server.app.add_api_route("/test-bug", _bug)
    with server.client() as c:
        tokens = login(c, "alice@example.com")
        answers = [
            c.get("/healthz"),
            c.get("/auth/me", headers=bearer(tokens["access_token"])),
            c.get("/.well-known/jwks.json"),
            c.get("/auth/me"),  # 401
            c.get("/nope"),  # 404
            c.post("/auth/login", content=b"{", headers={"Content-Type": "application/json"}),
            c.post("/auth/login", content=b"x" * 70000,  # 413 from the edge middleware
                   headers={"Content-Type": "application/json"}),
            c.get("/healthz", headers={"X-Big": "x" * 40000}),  # 431 from the edge
            c.get("/test-bug"),  # 500 from the last-resort handler
        ]
    assert [r.status_code for r in answers] == [200, 200, 200, 401, 404, 400, 413, 431, 500]
    for r in answers:
        _assert_hardened(r)


async def _bug() -> None:
    raise RuntimeError("boom")


def test_no_server_uvicorn_header_on_protocol_errors(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")  # parser error: 400
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"uvicorn" not in answer.lower()


def test_hsts_when_behind_https_proxy_or_https_issuer(make_server):
    srv = make_server(trusted_proxies=("127.0.0.1",))
    with srv.client() as c:
        assert "strict-transport-security" not in c.get("/healthz").headers
        r = c.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert r.headers["strict-transport-security"].startswith("max-age=63072000")
    untrusted = make_server(data_dir=srv.settings.data_dir.parent / "other")
    with untrusted.client() as c:  # X-Forwarded-Proto from an untrusted peer is ignored
        r = c.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in r.headers
    https = make_server(issuer="https://auth.example", data_dir=srv.settings.data_dir.parent / "s")
    with https.client() as c:
        r = c.get("/nope")
        assert r.headers["strict-transport-security"].startswith("max-age=63072000")


def test_metrics_are_not_public(make_server):
    srv = make_server()
    with srv.client() as c:
        r = c.get("/metrics")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert c.get("/metrics", headers=bearer("wrong")).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Basic eDp5"}).status_code == 401
        r = c.get("/metrics", headers=bearer(METRICS_TOKEN))
        assert r.status_code == 200
        assert "jotkit_http_requests_total" in r.text
        _assert_hardened(r)
    off = make_server(metrics_token=None, data_dir=srv.settings.data_dir.parent / "off")
    with off.client() as c:  # no token configured: metrics are off
        assert c.get("/metrics").status_code == 404
        assert c.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 404


def test_docs_are_served_offline_with_their_own_csp(server):
    with server.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        _assert_hardened(page, csp=None)
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        assert "http" not in policy  # no external host allowed
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(urls) >= 3
        assert "<script>" not in page.text  # no inline script (the CSP would refuse it)
        for url in urls:
            assert "//" not in url and not url.startswith("/"), url  # same origin, relative
            r = c.get("/" + url)
            assert r.status_code == 200, url
            assert r.content
            _assert_hardened(r, csp=None)
        init = c.get("/docs/init.js").text
        assert "SwaggerUIBundle" in init
        assert "http" not in init
        assert c.get("/docs/other.js").status_code == 404
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/redoc").status_code == 404  # the CDN-backed page is not served


def test_docs_can_be_turned_off(make_server):
    srv = make_server(docs=False)
    with srv.client() as c:
        for path in ("/docs", "/docs/swagger-ui-bundle.js", "/openapi.json", "/redoc"):
            assert c.get(path).status_code == 404, path
        meta = c.get("/.well-known/openid-configuration").json()
        assert "service_documentation" not in meta


def test_debugger_page_keeps_its_own_csp(make_server):
    from jotkit.debugger import CSP

    srv = make_server(demo=True)
    with srv.client() as c:
        r = c.get("/debugger/")
        assert r.status_code == 200
        _assert_hardened(r, csp=CSP)
        assert len(r.headers.get_list("content-security-policy")) == 1
