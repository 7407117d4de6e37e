"""``jotkit.integrations`` with RFC 9068 access tokens from the OAuth token endpoint: per-route
scopes (``require_token(scopes=...)``) on FastAPI, Starlette and Flask, the audience taken
from the client's resource indicator (RFC 8707), and the token's ``scope`` claim as the
integrations read it."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import jotkit
from jotkit.integrations import TokenVerifier
from jotkit.server import Settings, create_app
from jotkit.server.oauth.clients import new_client
from jotkit.server.store.sql import SqlStore

from .apps import FRAMEWORKS, make_client

ISSUER = "http://auth.test"
ORDERS = "https://orders.example/"


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Tokens from a real token endpoint (in-process ASGI): one with ``orders:read``, one
    with both scopes, one for another resource; and the service's JWKS."""
    data = tmp_path_factory.mktemp("oauth-int")
    record, secret = new_client("orders-job", now=0.0, grant_types=("client_credentials",),
                                scopes=("orders:read", "orders:write"), resources=(ORDERS,))

    async def register() -> None:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(data) / 'jotkit.db'}")
        try:
            await store.start()
            await store.clients.create(record)
        finally:
            await store.close()

    asyncio.run(register())
    settings = Settings(data_dir=Path(data), issuer=ISSUER, argon2_insecure_test_costs=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    with TestClient(create_app(settings), base_url=ISSUER) as tc:
        auth = httpx.BasicAuth(record.client_id, secret or "")

        def token(scope: str, resource: str = ORDERS) -> str:
            r = tc.post("/oauth/token", auth=auth, data={
                "grant_type": "client_credentials", "scope": scope, "resource": resource})
            assert r.status_code == 200, r.text
            return str(r.json()["access_token"])

        yield {
            "read": token("orders:read"),
            "both": token("orders:read orders:write"),
            "default_aud": token("orders:read", resource="jotkit"),
            "jwks": tc.get("/.well-known/jwks.json").json(),
        }


def _client(framework: str, issued: dict[str, Any]) -> Any:
    verifier = TokenVerifier(jotkit.KeySet.from_jwks(issued["jwks"]), issuer=ISSUER,
                             audience=ORDERS, algorithms=["ES256"], realm="api")
    return make_client(framework, verifier)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rfc9068_token_scopes_are_enforced_per_route(framework: str, issued: dict[str, Any]):
    client = _client(framework, issued)
    read = client.get("/orders", token=issued["read"])
    assert read.status == 200, read.body
    assert read.body["scopes"] == "orders:read"
    denied = client.post("/orders", token=issued["read"])
    assert denied.status == 403 and denied.body["error"] == "insufficient_scope"
    assert client.post("/orders", token=issued["both"]).status == 200


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rfc9068_token_for_another_audience_is_refused(framework: str, issued: dict[str, Any]):
    reply = _client(framework, issued).get("/orders", token=issued["default_aud"])
    assert reply.status == 401 and reply.body["reason"] == "invalid_audience"
