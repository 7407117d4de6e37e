"""The same small protected API in FastAPI, Starlette, Flask, Django and DRF, for the shared tests."""

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from jotkit.integrations import TokenVerifier

FRAMEWORKS = ("fastapi", "starlette", "flask", "django", "drf")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


class Client:
    """A uniform, synchronous client over the framework's own test client."""

    def __init__(self, framework: str, app: Any) -> None:
        self.framework = framework
        self.app = app
        if framework == "flask":
            self._flask = app.test_client()
        elif framework in ("django", "drf"):
            from django.test import Client as DjangoClient

            self._django = DjangoClient(raise_request_exception=True)
        else:
            with warnings.catch_warnings():
                # starlette 1.x suggests httpx2 for its TestClient; httpx works the same here
                warnings.simplefilter("ignore")
                from starlette.testclient import TestClient

            self._asgi = TestClient(app, raise_server_exceptions=True)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if self.framework == "flask":
            client = self._flask
            for name, value in (cookies or {}).items():
                client.set_cookie(name, value)
            resp = client.open(path, method=method, headers=hdrs)
            for name in cookies or {}:
                client.delete_cookie(name)
            body = resp.get_json(silent=True)
            headers = {k.lower(): v for k, v in resp.headers.items()}
            return Reply(resp.status_code, headers, body, resp.get_data())
        if self.framework in ("django", "drf"):
            return self._django_request(method, path, hdrs, cookies)
        if cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        raw = {k: v.encode("latin-1") for k, v in hdrs.items()}  # HTTP headers are latin-1
        resp = self._asgi.request(method, path, headers=raw)
        try:
            body = resp.json()
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Reply(resp.status_code, headers, body, resp.content)

    def _django_request(
        self, method: str, path: str, hdrs: dict[str, str], cookies: dict[str, str] | None
    ) -> Reply:
        from http.cookies import SimpleCookie

        client = self._django
        client.cookies = SimpleCookie(cookies or {})
        with self.app.active():
            resp = client.generic(method, path, headers=hdrs)
        try:
            body = json.loads(resp.content)
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Reply(resp.status_code, headers, body, resp.content)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)


def build_fastapi(verifier: TokenVerifier) -> Any:
    from fastapi import Depends, FastAPI

    from jotkit.integrations.fastapi import JotkitAuth, require_token

    app = FastAPI()
    JotkitAuth(app, verifier)

    @app.get("/public")
    def public() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/orders")
    async def orders(claims: Annotated[dict, Depends(require_token(scopes=["orders:read"]))]):
        return {"sub": claims["sub"], "scopes": claims.get("scope")}

    @app.post("/orders")
    def create(
        claims: Annotated[dict, Depends(require_token(scopes=["orders:read", "orders:write"]))],
    ):
        return {"created_by": claims["sub"]}

    @app.get("/admin")
    def admin(claims: Annotated[dict, Depends(require_token(roles=["admin", "ops"]))]):
        return {"admin": claims["sub"]}

    @app.get("/maybe")
    def maybe(claims: Annotated[dict | None, Depends(require_token(optional=True))]):
        return {"sub": claims["sub"] if claims else None}

    return app


def build_starlette(verifier: TokenVerifier) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from jotkit.integrations.starlette import JotkitAuthMiddleware, requires_token

    async def public(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @requires_token(scopes=["orders:read"])
    async def orders(request: Request) -> JSONResponse:
        claims = request.user.claims
        return JSONResponse({"sub": claims["sub"], "scopes": claims.get("scope")})

    @requires_token(scopes=["orders:read", "orders:write"])
    async def create(request: Request) -> JSONResponse:
        return JSONResponse({"created_by": request.user.claims["sub"]})

    @requires_token(roles=["admin", "ops"])
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"admin": request.user.claims["sub"]})

    async def maybe(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"sub": user.claims["sub"] if user.is_authenticated else None})

    return Starlette(
        routes=[
            Route("/public", public),
            Route("/orders", orders, methods=["GET"]),
            Route("/orders", create, methods=["POST"]),
            Route("/admin", admin),
            Route("/maybe", maybe),
        ],
        middleware=[Middleware(JotkitAuthMiddleware, verifier=verifier)],
    )


def build_flask(verifier: TokenVerifier) -> Any:
    from flask import Flask

    from jotkit.integrations.flask import (
        JotkitAuth,
        current_claims,
        get_current_claims,
        require_token,
    )

    app = Flask(__name__)
    JotkitAuth(app, verifier)

    @app.get("/public")
    def public() -> Any:
        return {"ok": True}

    @app.get("/orders")
    @require_token(scopes=["orders:read"])
    def orders() -> Any:
        return {"sub": current_claims["sub"], "scopes": current_claims.get("scope")}

    @app.post("/orders")
    @require_token(scopes=["orders:read", "orders:write"])
    def create() -> Any:
        return {"created_by": current_claims["sub"]}

    @app.get("/admin")
    @require_token(roles=["admin", "ops"])
    def admin() -> Any:
        return {"admin": current_claims["sub"]}

    @app.get("/maybe")
    @require_token(optional=True)
    def maybe() -> Any:
        claims = get_current_claims()
        return {"sub": claims["sub"] if claims else None}

    return app


def build_django(verifier: TokenVerifier) -> Any:
    """Plain Django: the middleware in front, ``@require_token`` on function views."""
    from .django_site import DjangoApp, configure

    configure()
    from django.http import JsonResponse
    from django.urls import path
    from django.views.decorators.http import require_http_methods

    from jotkit.integrations.django import require_token

    def public(request: Any) -> JsonResponse:
        return JsonResponse({"ok": True})

    @require_token(scopes=["orders:read"])
    def orders_get(request: Any) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"], "scopes": request.auth.get("scope")})

    @require_token(scopes=["orders:read", "orders:write"])
    def orders_post(request: Any) -> JsonResponse:
        return JsonResponse({"created_by": request.auth["sub"]})

    @require_http_methods(["GET", "POST"])
    def orders(request: Any) -> JsonResponse:
        return orders_post(request) if request.method == "POST" else orders_get(request)

    @require_token(roles=["admin", "ops"])
    async def admin(request: Any) -> JsonResponse:  # an async view, under WSGI
        return JsonResponse({"admin": request.auth["sub"]})

    @require_token(optional=True)
    def maybe(request: Any) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"] if request.auth else None})

    return DjangoApp(
        [
            path("public", public),
            path("orders", orders),
            path("admin", admin),
            path("maybe", maybe),
        ],
        {
            "JOTKIT": {"VERIFIER": verifier},
            "MIDDLEWARE": ["jotkit.integrations.django.JotkitMiddleware"],
        },
    )


DRF_SETTINGS = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["jotkit.integrations.django.drf.JotkitAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "jotkit.integrations.django.drf.exception_handler",
    "UNAUTHENTICATED_USER": None,
}


def build_drf(verifier: TokenVerifier) -> Any:
    """Django REST framework: ``JotkitAuthentication`` + ``HasScopes``/``HasRoles``."""
    from .django_site import DjangoApp, configure

    configure()
    from django.urls import path
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from jotkit.integrations.django.drf import HasRoles, HasScopes, JotkitAuthentication

    class APIView(APIView):  # type: ignore[no-redef]
        # DRF reads DEFAULT_AUTHENTICATION_CLASSES when rest_framework.views is first
        # imported; a project sets it in settings.py before that, these tests cannot
        authentication_classes = (JotkitAuthentication,)

    class Public(APIView):
        permission_classes = (AllowAny,)

        def get(self, request: Any) -> Response:
            return Response({"ok": True})

    class Orders(APIView):
        def get_permissions(self) -> list[Any]:
            if self.request.method == "POST":
                return [HasScopes("orders:read", "orders:write")]
            return [HasScopes("orders:read")]

        def get(self, request: Any) -> Response:
            return Response({"sub": request.auth["sub"], "scopes": request.auth.get("scope")})

        def post(self, request: Any) -> Response:
            return Response({"created_by": request.user.pk})

    class Admin(APIView):
        permission_classes = (HasRoles("admin", "ops"),)

        def get(self, request: Any) -> Response:
            return Response({"admin": request.auth["sub"]})

    class Maybe(APIView):
        permission_classes = (AllowAny,)

        def get(self, request: Any) -> Response:
            return Response({"sub": request.auth["sub"] if request.auth else None})

    return DjangoApp(
        [
            path("public", Public.as_view()),
            path("orders", Orders.as_view()),
            path("admin", Admin.as_view()),
            path("maybe", Maybe.as_view()),
        ],
        {"JOTKIT": {"VERIFIER": verifier}, "REST_FRAMEWORK": DRF_SETTINGS, "MIDDLEWARE": []},
    )


BUILDERS: dict[str, Callable[[TokenVerifier], Any]] = {
    "fastapi": build_fastapi,
    "starlette": build_starlette,
    "flask": build_flask,
    "django": build_django,
    "drf": build_drf,
}


def make_client(framework: str, verifier: TokenVerifier) -> Client:
    return Client(framework, BUILDERS[framework](verifier))
