"""Every bad request gets a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
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
