"""A single-file Django + DRF "invoices" API that trusts tokens issued by `jotkit serve`.

Same idea as orders_api.py and flask_api.py, with Django REST framework views and a
plain Django view, all verified through the published JWKS (settings.JOTKIT):

    JOTKIT_RS_ISSUER=http://127.0.0.1:8000 python examples/django_api.py
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8003/invoices

In a real project the settings below go to settings.py and the views to views.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _config import ResourceServerConfig

DEFAULT_PORT = 8003


def create_app(config: ResourceServerConfig) -> dict[str, Any]:
    """The Django settings of the invoices API for one auth service (a Django "app")."""
    jotkit: dict[str, Any] = {
        "JWKS_URL": config.jwks_url or f"{config.issuer}/.well-known/jwks.json",
        "ISSUER": config.issuer,
        "AUDIENCE": config.audience,
        "TYP": "at+jwt",  # RFC 9068 access tokens only
        "JWKS_COOLDOWN": config.jwks_cooldown,
    }
    if config.cookie_name:
        jotkit["COOKIE_NAME"] = config.cookie_name
    if config.introspection_url:
        if not (config.client_id and config.client_secret):
            raise SystemExit(
                "JOTKIT_RS_CLIENT_ID and JOTKIT_RS_CLIENT_SECRET are required "
                "with JOTKIT_RS_INTROSPECTION_URL"
            )
        jotkit["INTROSPECTION"] = {
            "URL": config.introspection_url,
            "CLIENT_ID": config.client_id,
            "CLIENT_SECRET": config.client_secret,
            "CACHE_TTL": config.introspection_cache_ttl,
        }
        # keep verified tokens only as long as an introspection answer is cached
        jotkit["CACHE_TTL"] = config.introspection_cache_ttl
    return {
        "JOTKIT": jotkit,
        "MIDDLEWARE": ["jotkit.integrations.django.JotkitMiddleware"],
        "REST_FRAMEWORK": {
            "DEFAULT_AUTHENTICATION_CLASSES": [
                "jotkit.integrations.django.drf.JotkitAuthentication"
            ],
            "EXCEPTION_HANDLER": "jotkit.integrations.django.drf.exception_handler",
            "UNAUTHENTICATED_USER": None,  # no django.contrib.auth models needed
        },
    }


def base_settings(config: ResourceServerConfig) -> dict[str, Any]:
    """Everything else a Django project needs; no database, no templates."""
    return {
        "DEBUG": False,
        "SECRET_KEY": "example-only-not-secret",  # Django requires one; unused here
        "ALLOWED_HOSTS": sorted({config.host, "127.0.0.1", "localhost"}),
        "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        "DATABASES": {},
        "ROOT_URLCONF": __name__,
        "USE_TZ": True,
        **create_app(config),
    }


if not settings.configured:  # run as a script: this file is the whole project
    settings.configure(**base_settings(ResourceServerConfig.from_env(DEFAULT_PORT)))
    django.setup()

from django.http import HttpRequest, JsonResponse  # noqa: E402  (after settings)
from django.urls import path  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from jotkit.integrations.django import require_token  # noqa: E402
from jotkit.integrations.django.drf import HasRoles, JotkitAuthentication  # noqa: E402


def health(request: HttpRequest) -> JsonResponse:
    """Liveness, no token needed."""
    return JsonResponse({"status": "ok"})


class Invoices(APIView):
    """DRF: any user (role ``user``) reads their invoices."""

    authentication_classes = (JotkitAuthentication,)
    permission_classes = (HasRoles("user"),)

    def get(self, request: Request) -> Response:
        claims = request.auth
        return Response(
            {"service": "invoices", "sub": claims["sub"], "email": claims.get("email"),
             "invoices": []}
        )


class AdminInvoices(APIView):
    """DRF: only the ``admin`` role."""

    authentication_classes = (JotkitAuthentication,)
    permission_classes = (HasRoles("admin"),)

    def get(self, request: Request) -> Response:
        return Response({"service": "invoices", "admin": request.user.pk})


@require_token
def me(request: HttpRequest) -> JsonResponse:
    """Plain Django: the verified claims are in ``request.auth``."""
    claims = request.auth  # type: ignore[attr-defined]
    return JsonResponse({"service": "invoices", "sub": claims["sub"]})


urlpatterns = [
    path("health", health),
    path("invoices", Invoices.as_view()),
    path("admin/invoices", AdminInvoices.as_view()),
    path("me", me),
]


def main() -> None:
    """Serve with Django's threaded WSGI server on JOTKIT_RS_HOST:JOTKIT_RS_PORT (8003)."""
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    config = ResourceServerConfig.from_env(default_port=DEFAULT_PORT)
    run(config.host, config.port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
