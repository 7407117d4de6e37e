"""The same protected API in FastAPI, Starlette and Flask behaves identically (RFC 6750)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
from jotkit.integrations import Introspection, TokenVerifier
from jotkit.jwks_client import JWKSClient

from .apps import FRAMEWORKS, Client, make_client
from .conftest import AUDIENCE, ISSUER, FakeClock, IntrospectionServer, JWKSServer, make_token

CHALLENGE = re.compile(
    r'^Bearer realm="api"(, error="(?P<error>[a-z_]+)", error_description="(?P<desc>[^"\\]*)")?'
    r'(, scope="(?P<scope>[^"\\]*)")?$'
)


def verifier_for(key: Any, clock: FakeClock, **kw: Any) -> TokenVerifier:
    kw.setdefault("realm", "api")
    return TokenVerifier(key, issuer=ISSUER, audience=AUDIENCE, clock=clock, **kw)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(framework: str, es_key: jotkit.Key, clock: FakeClock) -> Client:
    return make_client(framework, verifier_for(es_key.public(), clock))


def challenge(reply: Any) -> re.Match[str]:
    match = CHALLENGE.match(reply.headers["www-authenticate"])
    assert match, reply.headers["www-authenticate"]
    return match


def test_valid_token_gives_claims(client: Client, es_key, clock):
    reply = client.get("/orders", token=make_token(es_key, now=clock.now))
    assert reply.status == 200
    assert reply.body == {"sub": "user-1", "scopes": "orders:read"}


def test_public_route_needs_nothing(client: Client):
    assert client.get("/public").status == 200


def test_missing_token_is_401_without_error_code(client: Client):
    reply = client.get("/orders")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'
    assert reply.body == {
        "error": "invalid_request",
        "reason": "missing_token",
        "error_description": "A bearer access token is required",
    }
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"


def test_other_auth_scheme_is_treated_as_missing(client: Client):
    reply = client.get("/orders", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer <script>"])
def test_malformed_authorization_is_400_invalid_request(client: Client, header: str):
    reply = client.get("/orders", headers={"Authorization": header})
    assert reply.status == 400
    assert challenge(reply)["error"] == "invalid_request"
    assert reply.body["error"] == "invalid_request"
    assert reply.body["reason"] == "malformed_header"


def test_expired_token_is_401_invalid_token(client: Client, es_key, clock):
    token = make_token(es_key, now=clock.now - 3600, expires_in=60)
    reply = client.get("/orders", token=token)
    assert reply.status == 401
    m = challenge(reply)
    assert m["error"] == "invalid_token"
    assert m["desc"] == "The access token expired"
    assert reply.body == {
        "error": "invalid_token",
        "reason": "expired",
        "error_description": "The access token expired",
    }


def test_cached_token_still_expires(client: Client, es_key, clock):
    token = make_token(es_key, now=clock.now, expires_in=60)
    assert client.get("/orders", token=token).status == 200
    clock.advance(61)
    reply = client.get("/orders", token=token)
    assert reply.status == 401
    assert reply.body["error_description"] == "The access token expired"


@pytest.mark.parametrize(
    ("mutate", "description"),
    [
        ({"audience": "billing"}, "The access token is not meant for this audience"),
        ({"issuer": "https://evil.test"}, "The access token was issued by an untrusted issuer"),
        ({"typ": "JWT"}, "The token is not an access token (typ)"),
    ],
)
def test_wrong_claims_are_401(client: Client, es_key, clock, mutate, description):
    reply = client.get("/orders", token=make_token(es_key, now=clock.now, **mutate))
    assert reply.status == 401
    assert challenge(reply)["error"] == "invalid_token"
    assert reply.body["error_description"] == description


def test_foreign_key_and_tampering_are_401(client: Client, es_key, clock):
    other = jotkit.Key.generate("ES256", kid="k1")
    assert client.get("/orders", token=make_token(other, now=clock.now)).status == 401
    good = make_token(es_key, now=clock.now)
    h, p, s = good.split(".")
    flipped = s[:-4] + ("AAAA" if s[-4:] != "AAAA" else "BBBB")
    reply = client.get("/orders", token=f"{h}.{p}.{flipped}")
    assert reply.status == 401
    assert reply.body["error"] == "invalid_token"


def test_alg_none_and_garbage_are_401(client: Client, clock):
    none = jotkit.unsafe_encode_none(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": clock.now + 60},
        headers={"typ": "at+jwt"},
    )
    for token in (none, "abc.def.ghi", "a.b", "e30.e30.e30"):
        reply = client.get("/orders", token=token)
        assert reply.status == 401, token
        assert reply.body["error"] == "invalid_token"


def test_missing_scope_is_403_insufficient_scope(client: Client, es_key, clock):
    reply = client.post("/orders", token=make_token(es_key, now=clock.now))
    assert reply.status == 403
    m = challenge(reply)
    assert m["error"] == "insufficient_scope"
    assert m["scope"] == "orders:read orders:write"
    assert reply.body == {
        "error": "insufficient_scope",
        "reason": "insufficient_scope",
        "error_description": "The access token lacks the required scope",
        "scope": "orders:read orders:write",
    }
    ok = client.post(
        "/orders", token=make_token(es_key, now=clock.now, scope="orders:read orders:write")
    )
    assert ok.status == 200
    assert ok.body == {"created_by": "user-1"}


def test_roles_any_of(client: Client, es_key, clock):
    assert client.get("/admin", token=make_token(es_key, now=clock.now)).status == 403
    assert (
        client.get("/admin", token=make_token(es_key, now=clock.now, roles=["user"])).status == 403
    )
    reply = client.get("/admin", token=make_token(es_key, now=clock.now, roles=["ops"]))
    assert reply.status == 200
    assert reply.body == {"admin": "user-1"}


def test_optional_auth(client: Client, es_key, clock):
    assert client.get("/maybe").body == {"sub": None}
    assert client.get("/maybe", token=make_token(es_key, now=clock.now)).body == {"sub": "user-1"}
    assert client.get("/maybe", token="abc.def.ghi").status == 401


def test_same_shape_in_every_framework(es_key, clock):
    """Every failure mode answers byte-for-byte the same status, challenge and body."""
    clients = {fw: make_client(fw, verifier_for(es_key.public(), clock)) for fw in FRAMEWORKS}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/orders", {}),
        ("GET", "/orders", {"headers": {"Authorization": "Bearer"}}),
        ("GET", "/orders", {"token": "abc.def.ghi"}),
        ("GET", "/orders", {"token": make_token(es_key, now=clock.now - 9999)}),
        ("GET", "/orders", {"token": make_token(es_key, now=clock.now, audience="x")}),
        ("POST", "/orders", {"token": make_token(es_key, now=clock.now)}),
        ("GET", "/admin", {"token": make_token(es_key, now=clock.now)}),
        ("GET", "/orders", {"token": make_token(es_key, now=clock.now)}),
    ]
    for method, path, kw in cases:
        replies = {fw: c.request(method, path, **kw) for fw, c in clients.items()}
        shapes = {
            fw: (r.status, r.headers.get("www-authenticate"), r.body) for fw, r in replies.items()
        }
        first = shapes["fastapi"]
        assert all(shape == first for shape in shapes.values()), shapes


def test_cookie_token_when_configured(framework: str, es_key, clock):
    verifier = verifier_for(es_key.public(), clock, cookie_name="jotkit_access")
    client = make_client(framework, verifier)
    token = make_token(es_key, now=clock.now)
    assert client.get("/orders", cookies={"jotkit_access": token}).status == 200
    # without cookie support configured the cookie is ignored
    plain = make_client(framework, verifier_for(es_key.public(), clock))
    assert plain.get("/orders", cookies={"jotkit_access": token}).status == 401
    # the Authorization header wins over the cookie
    reply = client.get("/orders", token="abc.def.ghi", cookies={"jotkit_access": token})
    assert reply.status == 401


def test_jwks_backed_verifier(framework: str, jwks_server: JWKSServer, es_key, clock):
    jwks_server.publish(es_key)
    jwks = JWKSClient(jwks_server.url, clock=clock)
    client = make_client(framework, verifier_for(jwks, clock))
    assert client.get("/orders", token=make_token(es_key, now=clock.now)).status == 200
    rotated = jotkit.Key.generate("ES256", kid="k2")
    jwks_server.publish(es_key, rotated)
    clock.advance(31)
    assert client.get("/orders", token=make_token(rotated, now=clock.now)).status == 200
    unknown = jotkit.Key.generate("ES256", kid="zz")
    reply = client.get("/orders", token=make_token(unknown, now=clock.now))
    assert reply.status == 401
    assert reply.body["error_description"] == "The access token was signed by an unknown key"
    assert jwks_server.hits == 2  # the unknown kid is inside the cooldown


def test_jwks_unavailable_is_503(framework: str, jwks_server: JWKSServer, es_key, clock):
    url = jwks_server.url
    jwks_server.stop()
    client = make_client(framework, verifier_for(JWKSClient(url, clock=clock), clock))
    reply = client.get("/orders", token=make_token(es_key, now=clock.now))
    assert reply.status == 503
    assert reply.body["error"] == "temporarily_unavailable"
    assert reply.body["reason"] == "jwks_fetch_failed"
    assert "www-authenticate" not in reply.headers
    assert reply.headers["retry-after"] == "5"


def test_introspection_rejects_revoked_tokens(
    framework: str, introspection_server: IntrospectionServer, es_key, clock
):
    cfg = Introspection(
        introspection_server.url,
        introspection_server.client_id,
        introspection_server.client_secret,
        cache_ttl=5,
    )
    client = make_client(framework, verifier_for(es_key.public(), clock, introspection=cfg))
    token = make_token(es_key, now=clock.now)
    assert client.get("/orders", token=token).status == 200
    assert client.get("/orders", token=token).status == 200
    assert introspection_server.calls == [token]  # cached
    introspection_server.revoked.add(token)
    assert client.get("/orders", token=token).status == 200  # still inside the cache TTL
    clock.advance(5)
    reply = client.get("/orders", token=token)
    assert reply.status == 401
    assert reply.body["error_description"] == "The access token was revoked"
    assert reply.body["reason"] == "revoked"
    assert len(introspection_server.calls) == 2
    # a garbage token is refused locally, without asking the issuer
    assert client.get("/orders", token="abc.def.ghi").status == 401
    assert len(introspection_server.calls) == 2


def test_introspection_failures(
    framework: str, introspection_server: IntrospectionServer, es_key, clock
):
    wrong = Introspection(introspection_server.url, "orders-api", "wrong-secret")
    client = make_client(framework, verifier_for(es_key.public(), clock, introspection=wrong))
    reply = client.get("/orders", token=make_token(es_key, now=clock.now))
    assert reply.status == 503
    assert reply.body["error"] == "temporarily_unavailable"
    url = introspection_server.url
    introspection_server.stop()
    closed = Introspection(url, "a", "b", timeout=1)
    client = make_client(framework, verifier_for(es_key.public(), clock, introspection=closed))
    assert client.get("/orders", token=make_token(es_key, now=clock.now)).status == 503
    open_ = Introspection(url, "a", "b", timeout=1, fail_open=True)
    client = make_client(framework, verifier_for(es_key.public(), clock, introspection=open_))
    assert client.get("/orders", token=make_token(es_key, now=clock.now)).status == 200


def test_fastapi_openapi_bearer_scheme(es_key, clock):
    client = make_client("fastapi", verifier_for(es_key.public(), clock))
    spec = client.get("/openapi.json").body
    assert spec["components"]["securitySchemes"]["BearerJWT"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert spec["paths"]["/orders"]["get"]["security"] == [{"BearerJWT": []}]
    assert spec["paths"]["/orders"]["post"]["security"] == [{"BearerJWT": []}]
    assert "security" not in spec["paths"]["/public"]["get"]


def test_keyset_backed_verifier(framework: str, es_key, clock):
    rsa = jotkit.Key.generate("RS256", kid="r1")
    client = make_client(framework, verifier_for(jotkit.KeySet([es_key.public(), rsa]), clock))
    for key in (es_key, rsa):
        reply = client.get("/orders", token=make_token(key, now=clock.now))
        assert reply.status == 200, key.alg
    stranger = jotkit.Key.generate("ES256", kid="k9")
    assert client.get("/orders", token=make_token(stranger, now=clock.now)).status == 401


def test_middleware_wraps_a_plain_asgi_app(es_key, clock):
    """JotkitAuthMiddleware works in front of any ASGI callable, not only Starlette."""
    from starlette.testclient import TestClient

    from jotkit.integrations.starlette import JotkitAuthMiddleware

    seen: list[dict] = []

    async def raw_app(scope, receive, send):
        user = scope["user"]
        seen.append({"auth": user.is_authenticated, "scopes": list(scope["auth"].scopes)})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    verifier = verifier_for(es_key.public(), clock)
    client = TestClient(JotkitAuthMiddleware(raw_app, verifier))
    token = make_token(es_key, now=clock.now, scope="a b")
    assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert client.get("/").status_code == 204
    assert seen == [{"auth": True, "scopes": ["a", "b"]}, {"auth": False, "scopes": []}]
    bad = client.get("/", headers={"Authorization": "Bearer abc.def.ghi"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_token"
    assert len(seen) == 2  # the app was not called
    strict = TestClient(JotkitAuthMiddleware(raw_app, verifier, required=True, scopes=["c"]))
    assert strict.get("/").status_code == 401
    reply = strict.get("/", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 403
    assert reply.json()["scope"] == "c"


def test_flask_init_app_factory_pattern(es_key, clock):
    from flask import Flask

    from jotkit.integrations.flask import JotkitAuth, current_claims

    auth = JotkitAuth(verifier=verifier_for(es_key.public(), clock))

    def create_app() -> Flask:
        app = Flask(__name__)
        auth.init_app(app)

        @app.get("/me")
        @auth.require_token(roles=["user"])
        def me():
            return {"sub": current_claims["sub"]}

        return app

    client = create_app().test_client()
    token = make_token(es_key, now=clock.now, roles=["user"])
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).json == {"sub": "user-1"}
    assert client.get("/me").status_code == 401


_header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=120,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.one_of(_header_text, _header_text.map(lambda t: "Bearer " + t)),
    cookie=st.text(alphabet="abcdefXYZ0123456789.-_", max_size=60),
)
def test_any_credentials_give_400_or_401_never_500(header: str, cookie: str):
    key = jotkit.Key.from_secret(b"f" * 32, "HS256")
    clock = FakeClock()
    for framework in FRAMEWORKS:
        client = _fuzz_clients(framework, key, clock)
        reply = client.get(
            "/orders",
            headers={"Authorization": header.strip() or "x"},
            cookies={"jotkit_access": cookie} if cookie else None,
        )
        assert reply.status in (400, 401), (framework, header, reply.body)
        assert reply.body["error"] in ("invalid_request", "invalid_token")


_FUZZ: dict[str, Client] = {}


def _fuzz_clients(framework: str, key: jotkit.Key, clock: FakeClock) -> Client:
    if framework not in _FUZZ:
        verifier = verifier_for(key, clock, cookie_name="jotkit_access")
        _FUZZ[framework] = make_client(framework, verifier)
    return _FUZZ[framework]


# -- attacks, in every column (FastAPI, Starlette, Flask, Django, DRF) -----------------------


def test_token_in_query_string_is_ignored_rfc6750_2_3(client: Client, es_key, clock):
    """A token in the URI leaks into logs and Referer: it is never read (RFC 6750 §2.3, §5.3)."""
    token = make_token(es_key, now=clock.now)
    for param in ("access_token", "token", "jwt"):
        reply = client.get(f"/orders?{param}={token}")
        assert reply.status == 401, param
        assert reply.headers["www-authenticate"] == 'Bearer realm="api"'
        assert reply.body["reason"] == "missing_token"


def test_token_in_form_body_is_ignored(client: Client, es_key, clock):
    """The form-body method (RFC 6750 §2.2) is not supported either: no token, 401."""
    token = make_token(es_key, now=clock.now, scope="orders:read orders:write")
    reply = client.request(
        "POST",
        f"/orders?access_token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 401
    assert reply.body["reason"] == "missing_token"


@pytest.mark.parametrize("size", [8 * 1024, 64 * 1024])
def test_huge_authorization_header_is_a_4xx_never_a_500(client: Client, size: int):
    for token in ("a" * size, ".".join(["eyJ" + "A" * (size // 3)] * 3)):
        reply = client.get("/orders", token=token)
        assert reply.status == 401, (size, reply.body)
        assert reply.body["error"] == "invalid_token"
        assert reply.body["reason"] in ("token_too_large", "malformed")


@pytest.mark.parametrize(
    "header",
    ["Bearer é.é.é", "Bearer \u00ff\u00fe", "Bearer abc.d\u00e9f.ghi", "B\u00e9arer abc.def.ghi"],
)
def test_non_ascii_authorization_header_is_a_4xx_never_a_500(client: Client, header: str):
    reply = client.get("/orders", headers={"Authorization": header})
    assert reply.status in (400, 401), reply.body
    assert reply.body["error"] in ("invalid_request", "invalid_token")


def test_alg_none_token_with_valid_claims_is_refused(client: Client, clock):
    """RFC 8725 §3.1: an unsigned token is never accepted, even with perfect claims."""
    none = jotkit.unsafe_encode_none(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": clock.now + 60,
         "scope": "orders:read"},
        headers={"typ": "at+jwt"},
    )
    reply = client.get("/orders", token=none)
    assert reply.status == 401
    assert reply.body["reason"] in ("alg_none", "alg_not_allowed")


def test_error_bodies_are_byte_identical_in_asgi_and_django_columns(es_key, clock):
    """FastAPI, Starlette, Django and DRF send the very same bytes (compact UTF-8 JSON).

    Flask's JSON provider sorts keys and escapes non-ASCII: same JSON, other bytes.
    """
    columns = ("fastapi", "starlette", "django", "drf")
    clients = {fw: make_client(fw, verifier_for(es_key.public(), clock)) for fw in columns}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/orders", {}),
        ("GET", "/orders", {"headers": {"Authorization": "Bearer <x>"}}),
        ("GET", "/orders", {"token": "abc.def.ghi"}),
        ("GET", "/orders", {"token": make_token(es_key, now=clock.now - 9999)}),
        ("POST", "/orders", {"token": make_token(es_key, now=clock.now)}),
        ("GET", "/admin", {"token": make_token(es_key, now=clock.now, roles=["édition"])}),
    ]
    for method, path, kw in cases:
        replies = {fw: c.request(method, path, **kw) for fw, c in clients.items()}
        raw = {fw: (r.status, r.headers.get("www-authenticate"), r.raw) for fw, r in replies.items()}
        assert len(set(raw.values())) == 1, raw
        assert all(r.headers["cache-control"] == "no-store" for r in replies.values())
        assert all(r.headers["content-type"] == "application/json" for r in replies.values())
