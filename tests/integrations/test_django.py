"""Django and DRF specifics: settings.JOTKIT, the middleware under WSGI and ASGI, DRF classes.

The behaviour shared with the other frameworks (statuses, challenges, bodies, attacks) is
tested column by column in test_frameworks.py; this file covers what only Django has.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import jotkit
from jotkit.integrations import DEFAULT_COOKIE_NAME, Introspection, TokenVerifier

from .apps import DRF_SETTINGS, Client
from .conftest import AUDIENCE, ISSUER, FakeClock, JWKSServer, make_token
from .django_site import DjangoApp, configure

configure()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test import AsyncClient, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.views import View  # noqa: E402
from rest_framework.permissions import IsAuthenticated  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from jotkit.integrations.django import (  # noqa: E402
    JotkitMiddleware,
    build_verifier,
    get_verifier,
    require_token,
)
from jotkit.integrations.django.drf import (  # noqa: E402
    HasRoles,
    HasScopes,
    HasToken,
    JotkitAuthentication,
    TokenUser,
)

MIDDLEWARE = ["jotkit.integrations.django.JotkitMiddleware"]


class CountingVerifier(TokenVerifier):
    """A TokenVerifier that counts full verifications (sync and async)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.calls = 0

    def verify(self, token: str, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        return super().verify(token, **kw)

    async def averify(self, token: str, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        return await super().averify(token, **kw)


def verifier(key: Any, clock: FakeClock, **kw: Any) -> CountingVerifier:
    kw.setdefault("realm", "api")
    return CountingVerifier(key, issuer=ISSUER, audience=AUDIENCE, clock=clock, **kw)


# -- settings.JOTKIT ------------------------------------------------------------------------


def test_settings_build_a_jwks_verifier(jwks_server: JWKSServer, es_key):
    config = {
        "JWKS_URL": jwks_server.url,
        "ISSUER": ISSUER,
        "AUDIENCE": AUDIENCE,
        "ALGORITHMS": ["ES256"],
        "LEEWAY": 5,
        "SCOPES": ["orders:read"],
        "REALM": "orders",
        "JWKS_COOLDOWN": 0,
        "COOKIE_MODE": True,
    }
    v = build_verifier(config)
    assert v.issuer == ISSUER
    assert v.audience == AUDIENCE
    assert v.algorithms == ("ES256",)
    assert v.leeway == 5.0
    assert v.scopes == ("orders:read",)
    assert v.cookie_name == DEFAULT_COOKIE_NAME
    assert v.key.url == jwks_server.url
    assert v.key.algorithms == ("ES256",)
    jwks_server.publish(es_key)
    import time

    claims = v.verify(make_token(es_key, now=time.time()))
    assert claims["sub"] == "user-1"


def test_settings_introspection_dict_maps_to_introspection():
    v = build_verifier(
        {
            "JWKS_URL": "https://auth.example.com/.well-known/jwks.json",
            "ISSUER": "https://auth.example.com",
            "AUDIENCE": "orders",
            "INTROSPECTION": {
                "URL": "https://auth.example.com/oauth/introspect",
                "CLIENT_ID": "orders-api",
                "CLIENT_SECRET": "s3cret",
                "CACHE_TTL": 2,
            },
        }
    )
    assert v.introspection == Introspection(
        "https://auth.example.com/oauth/introspect", "orders-api", "s3cret", cache_ttl=2
    )
    assert "s3cret" not in repr(v.introspection)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ISSUER": ISSUER, "AUDIENCE": AUDIENCE}, "JWKS_URL required"),
        ({"JWKS_URL": "https://a/j", "AUDIENCE": AUDIENCE}, "ISSUER required"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER}, "AUDIENCE required"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x", "AUDIENCES": "y"},
         "unknown keys ['AUDIENCES']"),
        ({"JWKS_URL": "http://auth.example.com/j", "ISSUER": ISSUER, "AUDIENCE": "x"}, "https"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x",
          "INTROSPECTION": {"URL": "https://a/i"}}, "INTROSPECTION needs CLIENT_ID, CLIENT_SECRET"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x",
          "INTROSPECTION": {"URL": "https://a/i", "CLIENT_ID": "c", "CLIENT_SECRET": "s",
                            "SECRET": "s"}}, "unknown INTROSPECTION keys ['SECRET']"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x", "SCOPES": "a:b"},
         "SCOPES must be a list of strings"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x", "ALGORITHMS": "ES256"},
         "ALGORITHMS must be a list of strings"),
        ({"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x", "ROLES": 3},
         "ROLES must be a list of strings"),
        ({"VERIFIER": "no.such.module.verifier"}, "VERIFIER"),
        ({"VERIFIER": 42}, "VERIFIER must be a TokenVerifier"),
        ({"VERIFIER": "x", "ISSUER": ISSUER}, "VERIFIER excludes the other verifier keys"),
    ],
)
def test_bad_settings_are_improperly_configured(config: dict[str, Any], message: str):
    """A typo or a missing check never silently weakens verification."""
    with pytest.raises(ImproperlyConfigured) as info:
        build_verifier(config)
    assert message in str(info.value)
    assert str(info.value).startswith("settings.JOTKIT: ")


def test_revocations_keys_map_straight_to_the_verifier_keywords():
    """REVOCATIONS* become TokenVerifier(revocations=..., revocations_auth=...)."""
    from jotkit.integrations.django._settings import _kwargs

    config = {"JWKS_URL": "https://a/j", "ISSUER": ISSUER, "AUDIENCE": "x",
              "REVOCATIONS": "https://a/oauth/revocations",
              "REVOCATIONS_AUTH": ["rs", "secret"], "REVOCATIONS_FAIL_OPEN": False}
    kwargs = _kwargs(config)
    assert kwargs["revocations"] == "https://a/oauth/revocations"
    assert kwargs["revocations_auth"] == ("rs", "secret")
    assert kwargs["revocations_fail_open"] is False
    with pytest.raises(ImproperlyConfigured, match="REVOCATIONS_AUTH"):
        _kwargs({**config, "REVOCATIONS_AUTH": "rs:secret"})


_FACTORY_VERIFIER = TokenVerifier(jotkit.Key.generate("ES256", kid="f1").public(), issuer=ISSUER)


def make_factory_verifier() -> TokenVerifier:
    return _FACTORY_VERIFIER


def test_verifier_setting_takes_an_instance_a_factory_or_a_dotted_path():
    assert build_verifier({"VERIFIER": _FACTORY_VERIFIER}) is _FACTORY_VERIFIER
    assert build_verifier({"VERIFIER": make_factory_verifier}) is _FACTORY_VERIFIER
    dotted = f"{__name__}.make_factory_verifier"
    assert build_verifier({"VERIFIER": dotted}) is _FACTORY_VERIFIER


def test_one_verifier_per_settings_value():
    config = {"JWKS_URL": "https://auth.example.com/j", "ISSUER": ISSUER, "AUDIENCE": "x"}
    with override_settings(JOTKIT=config):
        first = get_verifier()
        assert get_verifier() is first  # the JWKS and token caches live as long as settings
    with override_settings(JOTKIT=dict(config, AUDIENCE="y")):
        assert get_verifier().audience == "y"
    with override_settings(JOTKIT=None), pytest.raises(ImproperlyConfigured, match="not set"):
        get_verifier()


# -- plain Django ---------------------------------------------------------------------------


def _plain_app(v: TokenVerifier, *, middleware: bool, required: bool = False) -> DjangoApp:
    seen: list[Any] = []

    def anyone(request: HttpRequest) -> JsonResponse:
        seen.append(getattr(request, "auth", "unset"))
        return JsonResponse({"auth": getattr(request, "auth", None) is not None})

    @require_token
    def bare(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"]})  # type: ignore[attr-defined]

    @require_token(scopes=["orders:read"])
    async def async_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"]})  # type: ignore[attr-defined]

    class Method(View):
        @require_token(roles=["admin"])
        def get(self, request: HttpRequest) -> JsonResponse:
            return JsonResponse({"admin": request.auth["sub"]})  # type: ignore[attr-defined]

    jotkit_settings: dict[str, Any] = {"VERIFIER": v}
    if required:
        jotkit_settings["REQUIRED"] = True
    app = DjangoApp(
        [
            path("anyone", anyone),
            path("bare", bare),
            path("async", async_view),
            path("method", Method.as_view()),
        ],
        {"JOTKIT": jotkit_settings, "MIDDLEWARE": MIDDLEWARE if middleware else []},
    )
    app.seen = seen  # type: ignore[attr-defined]
    return app


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "decorator-only"])
def test_decorator_with_and_without_middleware(es_key, clock, middleware: bool):
    v = verifier(es_key.public(), clock)
    client = Client("django", _plain_app(v, middleware=middleware))
    token = make_token(es_key, now=clock.now, roles=["admin"])
    for route in ("/bare", "/async"):
        reply = client.get(route, token=token)
        assert reply.status == 200, (route, reply.body)
        assert reply.body == {"sub": "user-1"}
        missing = client.get(route)
        assert missing.status == 401
        assert missing.body["reason"] == "missing_token"
    assert client.get("/method", token=token).body == {"admin": "user-1"}
    reply = client.get("/method", token=make_token(es_key, now=clock.now, roles=["user"]))
    assert reply.status == 403
    assert reply.body["error"] == "insufficient_scope"
    assert client.get("/async", token=make_token(es_key, now=clock.now, scope="x")).status == 403


def test_middleware_sets_request_auth_and_refuses_bad_tokens_before_the_view(es_key, clock):
    v = verifier(es_key.public(), clock)
    app = _plain_app(v, middleware=True)
    client = Client("django", app)
    assert client.get("/anyone").body == {"auth": False}
    assert client.get("/anyone", token=make_token(es_key, now=clock.now)).body == {"auth": True}
    assert app.seen[0] is None
    assert app.seen[1]["sub"] == "user-1"
    bad = client.get("/anyone", token=make_token(es_key, now=clock.now, audience="billing"))
    assert bad.status == 401
    assert bad.body["reason"] == "invalid_audience"
    assert len(app.seen) == 2  # the view never ran


def test_middleware_and_decorator_verify_once(es_key, clock):
    v = verifier(es_key.public(), clock, cache_size=0)
    client = Client("django", _plain_app(v, middleware=True))
    assert client.get("/bare", token=make_token(es_key, now=clock.now)).status == 200
    assert v.calls == 1


def test_required_middleware_refuses_requests_without_token(es_key, clock):
    client = Client("django", _plain_app(verifier(es_key.public(), clock), middleware=True,
                                         required=True))
    reply = client.get("/anyone")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'
    assert client.get("/anyone", token=make_token(es_key, now=clock.now)).status == 200


def test_middleware_under_asgi(es_key, clock):
    """Django's async handler: the middleware and async views use averify (no blocking I/O)."""
    v = verifier(es_key.public(), clock, cache_size=0)
    app = _plain_app(v, middleware=True)
    token = make_token(es_key, now=clock.now, roles=["admin"])

    async def run() -> list[tuple[int, Any]]:
        client = AsyncClient()
        out = []
        with app.active():
            for route, headers in (
                ("/async", {"Authorization": f"Bearer {token}"}),
                ("/anyone", {}),
                ("/bare", {"Authorization": "Bearer abc.def.ghi"}),
                ("/method", {"Authorization": f"Bearer {token}"}),
            ):
                resp = await client.get(route, headers=headers)
                out.append((resp.status_code, resp.json()))
        return out

    results = asyncio.run(run())
    assert results[0] == (200, {"sub": "user-1"})
    assert results[1] == (200, {"auth": False})
    assert results[2][0] == 401
    assert results[2][1]["error"] == "invalid_token"
    assert results[3] == (200, {"admin": "user-1"})
    assert v.calls == 3  # once per request with a token, by the middleware


def test_middleware_is_sync_and_async_capable():
    assert JotkitMiddleware.sync_capable
    assert JotkitMiddleware.async_capable


def test_cookie_mode_reads_the_service_cookie(es_key, clock):
    v = verifier(es_key.public(), clock, cookie_name=DEFAULT_COOKIE_NAME)
    client = Client("django", _plain_app(v, middleware=False))
    token = make_token(es_key, now=clock.now)
    assert client.get("/bare", cookies={DEFAULT_COOKIE_NAME: token}).body == {"sub": "user-1"}
    assert client.get("/bare", cookies={"other": token}).status == 401


# -- Django REST framework ------------------------------------------------------------------


def _drf_app(v: TokenVerifier, views: dict[str, Any], rest: dict[str, Any] | None = None,
             middleware: bool = False) -> DjangoApp:
    return DjangoApp(
        [path(name, view.as_view()) for name, view in views.items()],
        {"JOTKIT": {"VERIFIER": v}, "REST_FRAMEWORK": rest or DRF_SETTINGS,
         "MIDDLEWARE": MIDDLEWARE if middleware else []},
    )


class JotkitView(APIView):
    authentication_classes = (JotkitAuthentication,)


class Me(JotkitView):
    permission_classes = (IsAuthenticated,)

    def get(self, request: Any) -> Response:
        user = request.user
        return Response({"user": str(user), "pk": user.pk, "is_token_user":
                         isinstance(user, TokenUser), "sub": request.auth["sub"]})


class ReadOrAdmin(JotkitView):
    permission_classes = (HasScopes("orders:read") | HasRoles("admin"),)

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class ReadAndAdmin(JotkitView):
    permission_classes = (HasToken(scopes=("orders:read",), roles=("admin",)),)

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


def test_drf_user_is_a_token_user(es_key, clock):
    client = Client("drf", _drf_app(verifier(es_key.public(), clock), {"me": Me}))
    reply = client.get("/me", token=make_token(es_key, now=clock.now))
    assert reply.body == {"user": "TokenUser user-1", "pk": "user-1", "is_token_user": True,
                          "sub": "user-1"}


def test_drf_is_authenticated_without_token_sends_the_bearer_challenge(es_key, clock):
    """DRF's own NotAuthenticated: 401 with this realm's challenge (RFC 6750 §3)."""
    client = Client("drf", _drf_app(verifier(es_key.public(), clock), {"me": Me}))
    reply = client.get("/me")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'


def test_drf_permissions_compose(es_key, clock):
    v = verifier(es_key.public(), clock)
    client = Client("drf", _drf_app(v, {"either": ReadOrAdmin, "both": ReadAndAdmin}))
    read = make_token(es_key, now=clock.now, scope="orders:read")
    admin = make_token(es_key, now=clock.now, scope="x", roles=["admin"])
    both = make_token(es_key, now=clock.now, scope="orders:read", roles=["admin"])
    assert client.get("/either", token=read).status == 200
    assert client.get("/either", token=admin).status == 200
    assert client.get("/either", token=make_token(es_key, now=clock.now, scope="x")).status == 403
    assert client.get("/both", token=read).status == 403
    assert client.get("/both", token=admin).status == 403
    assert client.get("/both", token=both).status == 200
    assert client.get("/both").status == 401


def test_drf_without_the_exception_handler_keeps_status_challenge_and_body(es_key, clock):
    """DRF's default handler alone already sends our status, challenge and body."""
    rest = {k: v for k, v in DRF_SETTINGS.items() if k != "EXCEPTION_HANDLER"}
    client = Client("drf", _drf_app(verifier(es_key.public(), clock), {"both": ReadAndAdmin},
                                    rest))
    reply = client.get("/both", token="abc.def.ghi")
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('Bearer realm="api", error="invalid_token"')
    assert reply.body["reason"] == "malformed"
    assert "cache-control" not in reply.headers  # what exception_handler adds


def test_drf_reuses_the_middleware_verification(es_key, clock):
    v = verifier(es_key.public(), clock, cache_size=0)
    client = Client("drf", _drf_app(v, {"me": Me}, middleware=True))
    assert client.get("/me", token=make_token(es_key, now=clock.now)).status == 200
    assert v.calls == 1


def test_drf_get_user_hook_loads_an_application_user(es_key, clock):
    class Account:
        def __init__(self, sub: str) -> None:
            self.pk = sub
            self.is_authenticated = True

        def __str__(self) -> str:
            return f"Account {self.pk}"

    class AccountAuthentication(JotkitAuthentication):
        def get_user(self, claims: dict[str, Any]) -> Any:
            return Account(claims["sub"])

    class AccountMe(Me):
        authentication_classes = (AccountAuthentication,)

    client = Client("drf", _drf_app(verifier(es_key.public(), clock), {"me": AccountMe}))
    body = client.get("/me", token=make_token(es_key, now=clock.now)).body
    assert body["user"] == "Account user-1"
    assert body["is_token_user"] is False


class NotBanned(JotkitView):
    permission_classes = (HasToken() & ~HasRoles("banned"),)

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


def test_drf_negated_role(es_key, clock):
    client = Client("drf", _drf_app(verifier(es_key.public(), clock), {"nb": NotBanned}))
    assert client.get("/nb", token=make_token(es_key, now=clock.now, roles=["user"])).status == 200
    banned = client.get("/nb", token=make_token(es_key, now=clock.now, roles=["banned"]))
    assert banned.status == 403
    assert client.get("/nb").status == 401


def test_drf_permission_refusal_without_the_exception_handler(es_key, clock):
    """DRF's default handler: 403 still carries the shared body; 401 is DRF's own."""
    rest = {k: v for k, v in DRF_SETTINGS.items() if k != "EXCEPTION_HANDLER"}
    client = Client("drf", _drf_app(verifier(es_key.public(), clock), {"both": ReadAndAdmin},
                                    rest))
    reply = client.get("/both", token=make_token(es_key, now=clock.now, scope="orders:read"))
    assert reply.status == 403
    assert reply.body["error"] == "insufficient_scope"
    assert reply.body["reason"] == "insufficient_scope"
    missing = client.get("/both")
    assert missing.status == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="api"'


def test_drf_permission_instances_are_fresh_per_request():
    """DRF calls each permission_classes entry per request: no state shared across threads."""
    shared = HasScopes("a")
    first, second = shared(), shared()
    assert first is not shared
    assert first is not second
    assert (first.scopes, first.roles) == (("a",), ())


def test_settings_naming_the_drf_classes_import_without_a_cycle(tmp_path):
    """A project's REST_FRAMEWORK names our classes; DRF imports them while importing
    rest_framework.views, so drf.py must not import that module at import time."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                            "rest_framework"],
            REST_FRAMEWORK={
                "DEFAULT_AUTHENTICATION_CLASSES": [
                    "jotkit.integrations.django.drf.JotkitAuthentication"],
                "EXCEPTION_HANDLER": "jotkit.integrations.django.drf.exception_handler",
            },
        )
        django.setup()
        from rest_framework.views import APIView
        from jotkit.integrations.django.drf import JotkitAuthentication, exception_handler
        assert APIView.authentication_classes == [JotkitAuthentication]
        assert APIView.settings.EXCEPTION_HANDLER is exception_handler
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_decorator_with_its_own_verifier_ignores_settings_and_middleware(es_key, clock):
    """``verifier=`` is this view's policy: verified with it even behind the middleware."""
    other_key = jotkit.Key.generate("ES256", kid="k1")
    own = verifier(other_key.public(), clock)

    @require_token(verifier=own)
    def mine(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"]})  # type: ignore[attr-defined]

    app = DjangoApp(
        [path("mine", mine)],
        {"JOTKIT": {"VERIFIER": verifier(es_key.public(), clock)}, "MIDDLEWARE": MIDDLEWARE},
    )
    client = Client("django", app)
    assert client.get("/mine", token=make_token(other_key, now=clock.now)).status == 401  # mw
    assert own.calls == 0
    settings_token = make_token(es_key, now=clock.now)
    reply = client.get("/mine", token=settings_token)
    assert reply.status == 401  # the middleware accepted it, this view's verifier does not
    assert reply.body["reason"] == "bad_signature"
    assert own.calls == 1


def test_public_names_are_all_in_dunder_all():
    import jotkit.integrations.django as facade
    import jotkit.integrations.django.drf as drf

    for module in (facade, drf):
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and callable(value)
            and getattr(value, "__module__", module.__name__).startswith(module.__name__)
        }
        assert public <= set(module.__all__), public - set(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)
    assert set(facade.__all__) >= {"JotkitMiddleware", "require_token", "get_verifier"}


def test_drf_subclass_with_its_own_verifier_does_not_reuse_the_middleware(es_key, clock):
    other_key = jotkit.Key.generate("ES256", kid="k1")
    own = verifier(other_key.public(), clock)

    class OwnAuthentication(JotkitAuthentication):
        verifier = own

    class OwnMe(Me):
        authentication_classes = (OwnAuthentication,)

    settings_verifier = verifier(es_key.public(), clock)
    client = Client("drf", _drf_app(settings_verifier, {"me": OwnMe}, middleware=True))
    reply = client.get("/me", token=make_token(es_key, now=clock.now))
    assert reply.status == 401  # the middleware accepted it; this API's own key did not
    assert reply.body["reason"] == "bad_signature"
    assert (settings_verifier.calls, own.calls) == (1, 1)
