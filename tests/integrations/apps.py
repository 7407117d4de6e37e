"""The same small protected API in FastAPI, Starlette and Flask, for the shared tests."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from jotkit.integrations import TokenVerifier

FRAMEWORKS = ("fastapi", "starlette", "flask")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class Client:
    """A uniform, synchronous client over the framework's own test client."""

    def __init__(self, framework: str, app: Any) -> None:
        self.framework = framework
        self.app = app
        if framework == "flask":
            self._flask = app.test_client()
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
            return Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)
        if cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        raw = {k: v.encode("latin-1") for k, v in hdrs.items()}  # HTTP headers are latin-1
        resp = self._asgi.request(method, path, headers=raw)
        try:
            body = resp.json()
        except ValueError:
            body = None
        return Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)

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


BUILDERS: dict[str, Callable[[TokenVerifier], Any]] = {
    "fastapi": build_fastapi,
    "starlette": build_starlette,
    "flask": build_flask,
}


def make_client(framework: str, verifier: TokenVerifier) -> Client:
    return Client(framework, BUILDERS[framework](verifier))
