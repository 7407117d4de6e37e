"""A small "orders" API (FastAPI) that trusts tokens issued by `jotkit serve`.

It never calls the auth service per request: tokens are verified locally
with the published JWKS (cached). Optionally it asks the introspection
endpoint whether a token was revoked (logout), with a short cache.

    JOTKIT_RS_ISSUER=http://127.0.0.1:8000 python examples/orders_api.py
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/orders
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _config import ResourceServerConfig

from jotkit.integrations.fastapi import JotkitAuth, require_token

Claims = dict[str, Any]


def create_app(config: ResourceServerConfig) -> FastAPI:
    """Build the orders API for one auth service."""
    app = FastAPI(title="orders (jotkit example)")
    verifier = config.verifier()
    JotkitAuth(app, verifier)
    orders: dict[str, list[dict[str, Any]]] = {}  # per-app, in memory: it is an example

    @app.get("/health")
    async def health() -> dict[str, Any]:
        status = verifier.revocation_status()
        return {"status": "ok", "revocations_synced": status.synced if status else None}

    @app.get("/orders")
    async def list_orders(claims: Annotated[Claims, Depends(require_token(roles=["user"]))]):
        return {"service": "orders", "sub": claims["sub"], "orders": orders.get(claims["sub"], [])}

    @app.post("/orders")
    async def create_order(claims: Annotated[Claims, Depends(require_token(roles=["user"]))]):
        order = {"id": len(orders.get(claims["sub"], [])) + 1, "status": "new"}
        orders.setdefault(claims["sub"], []).append(order)
        return order

    @app.get("/admin/orders")
    async def all_orders(claims: Annotated[Claims, Depends(require_token(roles=["admin"]))]):
        return {"service": "orders", "count": sum(len(v) for v in orders.values())}

    return app


def server_options(host: str, port: int, **limits: Any) -> dict[str, Any]:
    """uvicorn options with request limits: a bounded request head (400 past 32 KiB), read
    deadlines against slowloris, no ``Server`` header (see docs/deployment.md)."""
    from jotkit.server.serving import http_limits

    return {"host": host, "port": port, "log_level": "warning", **http_limits(**limits)}


def main() -> None:
    """Serve with uvicorn on JOTKIT_RS_HOST:JOTKIT_RS_PORT (default 127.0.0.1:8001)."""
    import uvicorn

    config = ResourceServerConfig.from_env(default_port=8001)
    uvicorn.run(create_app(config), **server_options(config.host, config.port))


if __name__ == "__main__":
    main()
