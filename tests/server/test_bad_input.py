"""Every bad request gets a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jotkit

from .harness import bearer, login

BAD_BODIES = [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b"[]", "application/json"),
    (b'"x"', "application/json"),
    (b"null", "application/json"),
    (b'{"email": 1, "password": 2}', "application/json"),
    (b'{"email": "a@b.c"}', "application/json"),
    (b'{"email": "a@b.c", "password": "x", "extra": 1}', "application/json"),
    (b'{"email": ["a"], "password": {"p": 1}}', "application/json"),
    (b"email=a@b.c&password=x", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00", "application/json"),
    (b'{"email": "a@b.c", "password": "' + b"x" * 2000 + b'"}', "application/json"),
]


@pytest.mark.parametrize(("body", "ctype"), BAD_BODIES)
def test_bad_login_bodies(server, body, ctype):
    with server.client() as c:
        r = c.post("/auth/login", content=body, headers={"Content-Type": ctype})
        assert 400 <= r.status_code < 500, r.text
        data = r.json()
        assert data["error"] and data["error_description"]
        assert "Traceback" not in r.text


def test_invalid_json_says_so(server):
    with server.client() as c:
        r = c.post("/auth/login", content=b"{oops", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert r.json()["reason"] == "invalid_json"
        assert "JSON" in r.json()["error_description"]
        r = c.post("/auth/login", json={"email": "a@b.c"})
        assert "password" in r.json()["error_description"]


def test_oversized_body_is_413(server):
    with server.client() as c:
        big = json.dumps({"email": "a@b.c", "password": "x" * 70000})
        r = c.post("/auth/login", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"

        def chunks():  # no Content-Length: chunked upload is capped while streaming
            for _ in range(20):
                yield b"x" * 8192

        r = c.post("/auth/refresh", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer  x y",
        "Bearer a b",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer ....",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer " + "A" * 20000,
        "bearer eyJ.eyJ.sig",
    ],
)
def test_malformed_authorization_is_401(server, header):
    with server.client() as c:
        r = c.get("/auth/me", headers={"Authorization": header})
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith('Bearer realm="jotkit"')
        assert r.json()["error"] in {"invalid_token", "invalid_request"}


def test_missing_token_challenge_has_no_error_code(server):
    with server.client() as c:
        r = c.get("/auth/me")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="jotkit"'  # RFC 6750 §3.1


def test_forged_tokens_are_rejected_with_reason(server):
    with server.client() as c:
        good = login(c, "alice@example.com")["access_token"]
        header, claims = jotkit.decode_unverified(good)
        none_tok = jotkit.unsafe_encode_none(claims, headers={"typ": "at+jwt"})
        other_key = jotkit.Key.generate("ES256", kid=header["kid"])
        forged = jotkit.encode(claims, other_key, headers={"typ": "at+jwt"}, iat=False)
        real_key = server.service.keyring.signing_key(server.clock.now())
        wrong_typ = jotkit.encode(claims, real_key, iat=False)  # typ JWT, not at+jwt
        wrong_aud = jotkit.encode({**claims, "aud": "other"}, real_key,
                                  headers={"typ": "at+jwt"}, iat=False)
        hs = jotkit.encode(claims, jotkit.Key.from_secret(b"k" * 32, "HS256"), iat=False)
        parts = good.split(".")
        tampered = ".".join([parts[0], base64.urlsafe_b64encode(
            json.dumps({**claims, "roles": ["admin"]}).encode()).decode().rstrip("="), parts[2]])
        expected = {none_tok: "alg_not_allowed", forged: "bad_signature", hs: "alg_not_allowed",
                    tampered: "bad_signature", wrong_typ: "invalid_typ",
                    wrong_aud: "invalid_audience"}
        for tok, reason in expected.items():
            r = c.get("/auth/me", headers=bearer(tok))
            assert r.status_code == 401
            assert r.json()["reason"] in {reason, "alg_none", "key_not_found"}, (reason, r.json())


def test_unknown_routes_and_methods(server):
    with server.client() as c:
        assert c.get("/nope").json()["error"] == "not_found"
        r = c.get("/auth/login")
        assert r.status_code == 405
        assert r.json()["error"] == "method_not_allowed"
        r = c.delete("/auth/sessions/" + "x" * 100, headers=bearer("a.b.c"))
        assert 400 <= r.status_code < 500


def test_refresh_bad_tokens(server):
    with server.client() as c:
        for token in ["", "x", "a" * 43, "!" * 43, "é" * 50]:
            r = c.post("/auth/refresh", json={"refresh_token": token})
            assert r.status_code in (400, 422), r.text
        r = c.post("/auth/refresh", json={})
        assert r.status_code == 422
        r = c.post("/auth/refresh")
        assert r.status_code == 400
        assert "refresh_token" in r.json()["error_description"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["email", "password", "refresh_token", "x"]),
                          children, max_size=4),
        max_leaves=10,
    ),
    path=st.sampled_from(["/auth/login", "/auth/refresh"]),
)
def test_fuzzed_json_bodies_never_5xx(server, body, path):
    with server.client() as c:
        r = c.post(path, json=body)
        assert r.status_code < 500, r.text


def test_deeply_nested_json_is_4xx(server):
    with server.client() as c:
        for depth in (5000, 30000):
            body = b"[" * depth + b"]" * depth
            r = c.post("/auth/login", content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (depth, r.status_code, r.text[:200])


def test_form_endpoints_reject_garbage(server):
    with server.client() as c:
        cases = [
            (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
            (b"token=%ZZ", "application/x-www-form-urlencoded"),
            (b"\x00\x01\x02", "application/octet-stream"),
            (b'{"token": "abc"}', "application/json"),
        ]
        for body, ctype in cases:
            for path in ("/oauth/revoke", "/oauth/introspect"):
                r = c.post(path, content=body, headers={"Content-Type": ctype})
                ok = 400 <= r.status_code < 500 or (path == "/oauth/revoke" and r.status_code == 200)
                assert ok, (path, ctype, r.status_code, r.text[:200])


# -- unbounded text: NUL, non-ASCII, lone surrogates, control characters ------------------
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _raw(url: str, request: bytes) -> int:
    """Send raw bytes (the HTTP clients refuse NUL in headers); return the status code."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    return int(data[9:12])


def _header_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")


@FUZZ
@given(
    email=st.just("alice@example.com") | ANY_TEXT, password=ANY_TEXT, refresh=ANY_TEXT,
    path=st.sampled_from(["/auth/login", "/auth/refresh"]),
)
@example(email="alice\x00@example.com", password="x", refresh="", path="/auth/login")
@example(email="", password="", refresh="a" * 42 + "\x00", path="/auth/refresh")
def test_unbounded_json_strings_never_5xx(server, email, password, refresh, path):
    body = {"email": email, "password": password} if path == "/auth/login" else {
        "refresh_token": refresh}
    with server.client() as c:
        r = c.post(path, content=json.dumps(body).encode(),
                   headers={"Content-Type": "application/json"})
        assert r.status_code < 500, r.text


@pytest.mark.parametrize("name", ["Authorization", "X-CSRF-Token", "User-Agent",
                                  "X-Forwarded-For", "Content-Type", "If-None-Match"])
@FUZZ
@given(
    value=st.tuples(st.sampled_from(["", "Basic ", "Bearer "]), ANY_TEXT).map("".join),
    target=st.sampled_from([b"GET /auth/me", b"POST /auth/logout", b"POST /oauth/introspect",
                            b"GET /.well-known/jwks.json", b"POST /auth/refresh",
                            b"GET /metrics"]),
)
@example(value="Basic \u00e9", target=b"POST /oauth/introspect")  # issue 9 point 6
@example(value="Basic a\u00e9\x00:b", target=b"POST /oauth/revoke")
@example(value="\u00e9\x00", target=b"POST /auth/logout")
def test_unbounded_header_values_never_5xx(server, name, value, target):
    form = b"" if name == "Content-Type" else b"Content-Type: application/x-www-form-urlencoded\r\n"
    request = (target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 7\r\n"
               + form + name.encode() + b": " + _header_bytes(value) + b"\r\n\r\ntoken=x")
    assert _raw(server.url, request) < 500


@FUZZ
@given(
    values=st.lists(ANY_TEXT, min_size=3, max_size=3),
    csrf=ANY_TEXT,
    target=st.sampled_from([b"POST /auth/logout", b"POST /auth/refresh",
                            b"DELETE /auth/sessions/abc"]),
)
@example(values=["a", "\u00e9", "b"], csrf="\u00e9", target=b"POST /auth/logout")
@example(values=["a", "x", "b"], csrf="\u00e9\x00", target=b"POST /auth/refresh")
def test_unbounded_cookies_never_5xx(cookie_server, values, csrf, target):
    pairs = [(prefix + name, value) for prefix in ("", "__Host-")
             for name, value in zip(("jotkit_access", "jotkit_csrf", "jotkit_refresh"), values,
                                       strict=True)]
    cookie = b"; ".join(n.encode() + b"=" + _header_bytes(v) for n, v in pairs)
    request = (target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n"
               b"Cookie: " + cookie + b"\r\nX-CSRF-Token: " + _header_bytes(csrf) + b"\r\n\r\n")
    assert _raw(cookie_server.url, request) < 500


@pytest.fixture
def cookie_server(make_server):
    srv = make_server(cookie_mode=True)
    srv.add_user("alice@example.com")
    return srv
