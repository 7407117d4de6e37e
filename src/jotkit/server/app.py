"""The app factory: ``create_app(settings, clock=...)`` builds one self-contained service."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, TextIO

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from .audit_log import AuditLog
from .clock import Clock, SystemClock
from .demo import DEMO_EMAIL, demo_banner
from .errors import ServiceError, describe_validation, error_response
from .hashpool import PoolFull
from .metrics import Metrics
from .routes import auth, docs, oauth, ops, wellknown
from .sessions import AuthService
from .settings import Settings
from .store.availability import is_unavailable
from .store.base import Store, UserExists
from .store.factory import build_store, require_shared_issuer, uses_redis

__all__ = ["DEMO_EMAIL", "create_app"]

_log = logging.getLogger("jotkit.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


#: Content-Security-Policy of every API response: nothing may load, nothing may frame it.
#: Pages (``/docs``, ``/debugger/``) set their own, which the edge keeps.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
HSTS = b"max-age=63072000; includeSubDomains"
_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", API_CSP),
)


class _Edge:
    """Pure-ASGI middleware: refuses oversized request heads (431) and bodies (413) before
    the app sees them, counts responses by status class, and adds the security headers
    (CSP, ``X-Frame-Options``, ``Referrer-Policy``, ``nosniff``; HSTS over https) to every
    response, errors included."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body: int,
        max_head: int,
        https: bool,
        worker: bytes | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.max_head = max_head
        self.https = https  # the issuer is https: send HSTS whatever the hop scheme
        # JOTKIT_EXPOSE_WORKER_PID: X-Jotkit-Worker names the process that answered
        self.extra = ((b"x-jotkit-worker", worker),) if worker is not None else ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        started = False

        hsts = self.https or scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                metrics.count_status(message["status"])
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in _SECURITY_HEADERS if h[0] not in present]
                if hsts:
                    headers.append((b"strict-transport-security", HSTS))
                headers += self.extra
                message["headers"] = headers
            await send(message)

        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        declared = None
        for name, value in scope.get("headers", ()):
            head += len(name) + len(value) + 4
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if head > self.max_head:  # the server bounds what it buffers; this is the hard cap
            await self._refuse(send_wrapper, ServiceError("header_too_large"))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self._answer(scope, receive, send_wrapper, lambda: started)
            return
        if declared is not None and (declared < 0 or declared > self.max_body):
            await self._too_large(send_wrapper, declared < 0)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(send_wrapper, False)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._answer(scope, replay, send_wrapper, lambda: started)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]
    ) -> None:
        """Run the app; an exception it did not handle is answered here rather than by
        Starlette's outermost handler, which re-raises after responding (uvicorn then drops
        the connection instead of keeping it)."""
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if started():
                raise
            await last_resort_response(exc)(scope, receive, send)

    async def _too_large(self, send: Send, bad_length: bool) -> None:
        if bad_length:
            exc = ServiceError("invalid_request", "Invalid Content-Length header.")
        else:
            exc = ServiceError(
                "payload_too_large", f"The request body exceeds {self.max_body} bytes."
            )
        await self._refuse(send, exc)

    @staticmethod
    async def _refuse(send: Send, exc: ServiceError) -> None:
        response = error_response(exc)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class _ShedLogins:
    """Pure-ASGI middleware: while the argon2 pool and its queue are full, ``POST
    /auth/login`` is shed (503 ``temporarily_unavailable``, ``Retry-After``) before routing and
    body parsing, and the answer is held for ``delay`` seconds (1 s by default, as long as its
    ``Retry-After``) while fewer than ``held`` answers are held (beyond that, at once).

    Why both: a login flood is mostly sheds. Through the route a shed cost the event loop about
    110 µs (routing, dependencies, body model, exception handler), and a client that ignores
    ``Retry-After`` sends its next login as soon as the answer arrives, so instant sheds turn a
    flood of logins into a flood of requests that takes the loop from token checks. Holding the
    answer (a timer, no thread, a few KiB) paces each flooding connection to one login per
    ``delay``; the bound on held answers keeps that from becoming a way to pin memory. The pool
    re-checks when a hash is submitted, so this is an early answer, never the only guard. Runs
    inside :class:`_Edge` (security headers, status count).
    """

    def __init__(
        self,
        app: ASGIApp,
        service: AuthService,
        paths: frozenset[str],
        delay: float,
        held: int,
    ) -> None:
        self.app = app
        self.service = service
        self.paths = paths
        self.delay = delay
        self.max_held = held if delay > 0 else 0
        self.held = 0  # answers now waiting out the delay (one event loop: a plain counter)
        shed = error_response(PoolFull())
        self.start: Message = {
            "type": "http.response.start",
            "status": shed.status_code,
            "headers": shed.raw_headers,
        }
        self.body: Message = {"type": "http.response.body", "body": shed.body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (  # the pool's `full` (two property calls) only for a login, not on every request
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.paths
            and self.service.hash_pool.full
        ):
            client = scope.get("client")
            self.service.note_shed(str(client[0])[:64] if client else "unknown")
            if self.held < self.max_held:
                self.held += 1
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.held -= 1
            await send(dict(self.start))
            await send(self.body)
            return
        await self.app(scope, receive, send)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        code, description = describe_validation(exc)
        return error_response(ServiceError(code, description))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        mapping = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }
        code = mapping.get(exc.status_code, "invalid_request")
        detail = exc.detail if isinstance(exc.detail, str) else None
        response = error_response(ServiceError(code, detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Only for errors raised outside _Edge (which answers the app's own): count it here.
        response = last_resort_response(exc)
        request.app.state.service.metrics.count_status(response.status_code)
        return response


def last_resort_response(exc: Exception) -> Response:
    """The answer to an exception no route handled: 503 when a backend is unreachable (the
    client retries), else a generic 500 without details. Every known bad input has its own
    4xx path; this is the last line of defence."""
    if is_unavailable(exc):  # database / Redis down
        _log.warning("backend unavailable: %s: %s", type(exc).__name__, exc)
        return error_response(
            ServiceError(
                "temporarily_unavailable",
                "A backend is unreachable; retry shortly.",
                headers={"Retry-After": "1"},
            )
        )
    _log.error("unhandled error: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return JSONResponse(
        {"error": "server_error", "error_description": "Internal error."},
        status_code=500,
        headers={name.decode(): value.decode() for name, value in _SECURITY_HEADERS},
    )


def _install_openapi(app: FastAPI, cookie_mode: bool) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "clientBasic": {"type": "http", "scheme": "basic"},
            "metricsBearer": {"type": "http", "scheme": "bearer"},
        }
        if not cookie_mode:  # the refresh token can only come in the body
            body = schema["paths"]["/auth/refresh"]["post"]["requestBody"]
            body["required"] = True
            body["content"]["application/json"]["schema"] = {
                "$ref": "#/components/schemas/RefreshRequest"
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _ensure_demo_user(svc: AuthService) -> str:
    """Create (or reset the password of) the demo user; return the new password."""
    password = secrets.token_urlsafe(12)
    try:
        await svc.add_user(DEMO_EMAIL, password, roles=("user", "admin"))
    except UserExists:
        user = await svc.store.users.get_by_email(DEMO_EMAIL)
        assert user is not None
        await svc.store.users.set_password_hash(user.id, svc.passwords.hash(password))
        await svc.store.users.set_disabled(user.id, False)
    return password


def _freeze_startup_heap() -> None:
    """Once per process, after the first app started: move what start-up built (modules,
    routes, models, the store's engines) out of the cyclic garbage collector's reach
    (``gc.freeze``). Otherwise every full collection walks that whole heap with the event
    loop stopped: about 75 ms each, a dozen times in 10 s of refreshes under load, which was
    most of the refresh p99 (benchmarks/results-refresh.md). Later apps in the same process
    (tests) leave the frozen set alone."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    banner_stream: TextIO | None = None,
    demo_user: bool = True,
) -> FastAPI:
    """Build the auth service. Nothing is shared between apps: each has its own store,
    key ring, caches and metrics registry. ``clock`` defaults to the wall clock. In demo
    mode the app creates the demo user and prints the banner when it starts, unless
    ``demo_user`` is False (the workers of ``jotkit serve --workers N``: their parent did it)."""
    require_shared_issuer(settings)  # PostgreSQL: every instance must sign with one `iss`
    the_clock = clock or SystemClock()
    metrics = Metrics()
    audit = AuditLog(the_clock, metrics)
    the_store = store or build_store(settings, the_clock.now)
    svc = AuthService(settings, the_store, the_clock, metrics, audit)
    bus = None
    if uses_redis(the_store):  # PostgreSQL + Redis: pub/sub revocation propagation
        from .revocation_bus import attach_revocation_bus  # imports redis: only when used

        bus = attach_revocation_bus(svc)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await svc.start()
        if settings.demo and demo_user:
            password = await _ensure_demo_user(svc)
            print(demo_banner(settings, password), file=banner_stream or sys.stdout, flush=True)
        _freeze_startup_heap()
        task = asyncio.create_task(_background(svc))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await feed_hub.aclose()
            await the_store.close()
            svc.close()
            metrics.close()

    app = FastAPI(
        title="jotkit auth service",
        version="0.1.0",
        description="Login, refresh-token rotation, revocation and JWKS for jotkit.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served offline by routes/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.service = svc
    from .csrf import CsrfSigner, load_csrf_key

    csrf_key = load_csrf_key(settings)
    signer = CsrfSigner(csrf_key)
    if settings.cookie_mode:
        app.state.csrf = signer
    app.state.sso_csrf = signer  # hosted OAuth pages (oauth/sso.py: domain-separated tokens)
    # /auth/me: GET is answered by a plain ASGI route ahead of all others (the hot
    # path, routes/auth.py: MeRoute); the FastAPI route documents it and answers the rest.
    app.router.routes.insert(0, auth.MeRoute(svc))
    app.add_api_route(auth.ME_PATH, auth.me, **auth.ME_ROUTE)
    app.include_router(auth.router)
    app.include_router(wellknown.router)
    app.include_router(oauth.router)
    from .oauth import routes as oauth_provider

    app.state.oauth_jwks = {}  # private_key_jwt: JWKSClient per registered jwks_uri
    app.state.oauth_clients = oauth_provider.ClientCache(settings.revocation_sync_interval)
    app.state.client_auth_clear = {}  # throttle.ClientAuthThrottle: addresses under the limit
    from .oauth.dpop import DpopGate

    app.state.dpop = DpopGate(csrf_key, settings)  # RFC 9449 proofs, replay cache, nonces
    app.include_router(oauth_provider.router)
    from .oauth import device, par

    app.include_router(par.router)
    app.include_router(device.router)
    from .oauth.revocation_feed import FeedHub
    from .oauth.revocation_feed import router as feed_router

    feed_hub = FeedHub(svc)
    app.state.revocation_feed = feed_hub  # GET /oauth/revocations (resource servers)
    if bus is not None:  # Redis pub/sub: wake the feed's streams at once on any instance
        bus.listeners.append(feed_hub.wake)
    app.include_router(feed_router)
    app.include_router(ops.router)
    from .oauth import authorize, consents, logout, pages

    for module in (authorize, logout, pages, consents):
        app.include_router(module.router)
    if settings.docs:
        app.include_router(docs.router)
    if settings.demo:  # the local token debugger (runs in the browser, sends no token)
        from jotkit.debugger import mount

        mount(app, "/debugger")
    _install_handlers(app)
    _install_openapi(app, settings.cookie_mode)
    from .oauth.cors import BrowserCors

    app.add_middleware(
        _ShedLogins,
        service=svc,
        paths=frozenset({"/auth/login"}),
        delay=settings.login_shed_delay,
        held=settings.login_shed_held,
    )
    app.add_middleware(BrowserCors, service=svc)  # single-page apps (oauth/cors.py)
    app.add_middleware(
        _Edge,
        metrics=metrics,
        max_body=settings.max_body_bytes,
        max_head=settings.max_header_bytes,
        https=settings.effective_issuer.startswith("https://"),
        worker=str(os.getpid()).encode() if settings.expose_worker_pid else None,
    )
    if settings.trusted_proxies:  # outermost: everything inside sees the real client
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


async def _background(svc: AuthService) -> None:
    """Re-sync revocations and the key ring; retry back-channel logouts; purge expired rows
    every ten minutes."""
    from .oauth.logout import deliver_due

    interval = max(
        0.05, min(svc.settings.revocation_sync_interval, svc.settings.keyring_sync_interval)
    )
    loop = asyncio.get_running_loop()
    next_purge = loop.time() + 600
    while True:
        await asyncio.sleep(interval)
        try:
            await svc.sync()
            await deliver_due(svc)  # back-channel logout retries (oauth/logout.py)
            if loop.time() >= next_purge:
                next_purge = loop.time() + 600
                await svc.purge()
        except Exception as exc:  # keep syncing even if the database hiccups
            _log.warning("background sync failed: %s", exc)
