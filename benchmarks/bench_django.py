"""Per-request overhead of the Django adapter (warm JWKS cache), against bare Django and DRF.

Each variant is a request through Django's own WSGI handler (middleware chain, URL
resolution, view, response), called in-process with a prepared environ (no sockets), in
one process and one run, rounds interleaved. The difference to the bare endpoint of the
same stack is the cost of authentication alone; the core ``Verifier.decode`` is measured
alongside as the floor of a full verification.

Variants:
  django-bare     a plain function view, no middleware
  deco            @require_token(scopes=["read"]), verified-token LRU on (the default)
  deco-nolru      the same with a verifier whose LRU is off: full signature check
  middleware      JotkitMiddleware in front of the bare view, LRU on
  drf-bare        a DRF APIView, AllowAny, no authentication classes
  drf             JotkitAuthentication + HasScopes("read"), LRU on
  drf-nolru       the same with the LRU off
  core            jotkit.Verifier(KeySet).decode(token), tight loop

Run: .venv/bin/python benchmarks/bench_django.py [--rounds 15] [--calls 1000]
Writes benchmarks/results-django.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
from _servers import jwks_server  # benchmarks/_servers.py
from django.conf import settings

import jotkit
from jotkit.integrations import TokenVerifier
from jotkit.jwks_client import JWKSClient

ISSUER = "https://auth.bench"
AUDIENCE = "orders"
OUT = Path(__file__).resolve().parent / "results-django.md"



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    key = jotkit.Key.generate("ES256", kid="b1")
    server, url = jwks_server(jotkit.KeySet([key.public()]).to_jwks())
    jwks = JWKSClient(url)
    lru = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
    nolru = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=0)
    token = jotkit.encode({"scope": "read"}, key, expires_in="1h", issuer=ISSUER,
                          audience=AUDIENCE, subject="u1", headers={"typ": "at+jwt"})

    settings.configure(
        DEBUG=False, SECRET_KEY="bench", ALLOWED_HOSTS=["*"], DATABASES={},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        ROOT_URLCONF=__name__, MIDDLEWARE=[], JOTKIT={"VERIFIER": lru}, LOGGING_CONFIG=None,
        REST_FRAMEWORK={"UNAUTHENTICATED_USER": None,
                        "EXCEPTION_HANDLER": "jotkit.integrations.django.drf.exception_handler"},
    )
    django.setup()

    from django.core.handlers.wsgi import WSGIHandler
    from django.http import JsonResponse
    from django.test import override_settings
    from django.urls import path
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from jotkit.integrations.django import require_token
    from jotkit.integrations.django.drf import HasScopes, JotkitAuthentication

    def bare(request: Any) -> JsonResponse:
        return JsonResponse({"ok": True})

    @require_token(scopes=["read"])
    def deco(request: Any) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"]})

    @require_token(scopes=["read"], verifier=nolru)
    def deco_nolru(request: Any) -> JsonResponse:
        return JsonResponse({"sub": request.auth["sub"]})

    class DrfBare(APIView):
        authentication_classes = ()
        permission_classes = (AllowAny,)

        def get(self, request: Any) -> Response:
            return Response({"ok": True})

    class Drf(APIView):
        authentication_classes = (JotkitAuthentication,)
        permission_classes = (HasScopes("read"),)

        def get(self, request: Any) -> Response:
            return Response({"sub": request.auth["sub"]})

    class NoLRUAuthentication(JotkitAuthentication):
        verifier = nolru

    class DrfNoLRU(Drf):
        authentication_classes = (NoLRUAuthentication,)

    module = sys.modules[__name__]
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("bare", bare), path("deco", deco), path("deco-nolru", deco_nolru),
        path("drf-bare", DrfBare.as_view()), path("drf", Drf.as_view()),
        path("drf-nolru", DrfNoLRU.as_view()),
    ]
    plain = WSGIHandler()
    with override_settings(MIDDLEWARE=["jotkit.integrations.django.JotkitMiddleware"]):
        with_mw = WSGIHandler()

    def environ(route: str, auth: bool) -> dict[str, Any]:
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/{route}", "SERVER_NAME": "bench",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr}
        if auth:
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return env

    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        statuses.append(status)

    def request(handler: WSGIHandler, route: str, auth: bool) -> Callable[[], None]:
        def call() -> None:
            for _ in handler(environ(route, auth), start_response):
                pass
        return call

    core = jotkit.Verifier(jotkit.KeySet([key.public()]), algorithms=["ES256"], issuer=ISSUER,
                           audience=AUDIENCE, typ="at+jwt")
    variants: dict[str, Callable[[], None]] = {
        "django-bare": request(plain, "bare", False),
        "deco": request(plain, "deco", True),
        "deco-nolru": request(plain, "deco-nolru", True),
        "middleware": request(with_mw, "bare", True),
        "drf-bare": request(plain, "drf-bare", False),
        "drf": request(plain, "drf", True),
        "drf-nolru": request(plain, "drf-nolru", True),
        "core": lambda: core.decode(token),
    }
    for fn in variants.values():  # warm up: JWKS fetched once, every path checked
        statuses.clear()
        fn()
        assert not statuses or statuses[0].startswith("200"), statuses
    samples: dict[str, list[float]] = {name: [] for name in variants}
    load = os.getloadavg()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            start = time.thread_time_ns()
            for _ in range(args.calls):
                fn()
            samples[name].append((time.thread_time_ns() - start) / args.calls / 1000)
    load_after = os.getloadavg()
    server.shutdown()

    med = {n: statistics.median(v) for n, v in samples.items()}
    low = {n: min(v) for n, v in samples.items()}
    base = {"deco": "django-bare", "deco-nolru": "django-bare", "middleware": "django-bare",
            "drf": "drf-bare", "drf-nolru": "drf-bare"}
    labels = {
        "django-bare": "Django function view, no auth",
        "deco": "@require_token, LRU on (default)",
        "deco-nolru": "@require_token, LRU off (full verify)",
        "middleware": "JotkitMiddleware + bare view, LRU on",
        "drf-bare": "DRF APIView, AllowAny, no authentication",
        "drf": "DRF JotkitAuthentication + HasScopes, LRU on",
        "drf-nolru": "DRF JotkitAuthentication + HasScopes, LRU off",
        "core": "core Verifier(KeySet).decode, tight loop (ES256)",
    }
    lines = [
        "# Django adapter overhead per request",
        "",
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{platform.machine()}, alg ES256; {args.rounds} rounds x {args.calls} in-process WSGI "
        "calls per variant (interleaved), thread CPU clock, warm JWKS cache. "
        f"Load average before / after: {load[0]:.2f} / {load_after[0]:.2f} (2 cores, shared).",
        "",
        "| variant | median µs/req | min µs/req | overhead vs its bare endpoint, median |",
        "|---|---:|---:|---:|",
    ]
    for name in variants:
        over = f"{med[name] - med[base[name]]:.1f}" if name in base else ""
        lines.append(f"| {labels[name]} | {med[name]:.1f} | {low[name]:.1f} | {over} |")
    lines += [
        "",
        "Reproduce: `.venv/bin/python benchmarks/bench_django.py "
        f"--rounds {args.rounds} --calls {args.calls}`",
        "",
    ]
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
