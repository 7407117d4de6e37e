"""panva's oauth4webapi (npm) as a real DPoP client (RFC 9449) of a running ``jotkit serve``
that requires DPoP nonces, with a client registered by ``jotkit clients add --dpop-bound``:
client_credentials with a DPoP handle (the nonce dance: ``use_dpop_nonce``, then a retry with
the ``DPoP-Nonce`` value), then a FastAPI API protected by ``jotkit.integrations`` called with
``protectedResourceRequest`` and the handle. The same token as a plain bearer is refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI

import jotkit
from jotkit.integrations import TokenVerifier
from jotkit.integrations.fastapi import JotkitAuth, require_token
from jotkit.jwks_client import JWKSClient

pytestmark = pytest.mark.xdist_group("oauth-peers")

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """``jotkit serve`` (a real process) requiring DPoP nonces: ``(url, env)``."""
    port = _free_port()
    data = tmp_path_factory.mktemp("serve-dpop")
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(JOTKIT_DATA_DIR=str(data), JOTKIT_ISSUER=url, JOTKIT_LOG_LEVEL="WARNING",
               JOTKIT_DPOP_REQUIRE_NONCE="1", JOTKIT_ARGON2_INSECURE_TEST_COSTS="1",
               JOTKIT_ARGON2_TIME_COST="1", JOTKIT_ARGON2_MEMORY_COST="1024",
               JOTKIT_ARGON2_PARALLELISM="1")
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("jotkit")), "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                data / "serve.log").read_text()
            time.sleep(0.05)
        yield url, env
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def api(serve: tuple[str, dict[str, str]]) -> Iterator[str]:
    """A FastAPI API (``GET /orders``, scope ``orders:read``) protected by
    ``jotkit.integrations`` with the service's JWKS, under uvicorn: its URL."""
    issuer = serve[0]
    verifier = TokenVerifier(
        JWKSClient(issuer + "/.well-known/jwks.json", allow_insecure_http=True),
        issuer=issuer, audience="jotkit",
    )
    app = FastAPI()
    JotkitAuth(app, verifier)

    @app.get("/orders")
    async def orders(claims: Annotated[dict[str, Any],
                                       Depends(require_token(scopes=["orders:read"]))]):
        return {"sub": claims["sub"], "jkt": claims["cnf"]["jkt"]}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/orders"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        verifier.close()


def test_oauth4webapi_dpop_client_credentials_with_nonce_then_protected_api(
    serve: tuple[str, dict[str, str]], api: str, node_bin: str
):
    url, env = serve
    jotkit_cli = str(Path(sys.executable).with_name("jotkit"))
    added = subprocess.run(
        [jotkit_cli, "clients", "add", "orders-svc", "--grant", "client_credentials",
         "--scope", "orders:read", "--dpop-bound", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    reg = json.loads(added.stdout)
    assert reg["dpop_bound_access_tokens"] is True
    # the registration is enforced: a token request without a proof is refused
    r = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(reg["client_id"], reg["client_secret"]))
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    payload = {"issuer": url, "client_id": reg["client_id"],
               "client_secret": reg["client_secret"], "scope": "orders:read",
               "resource_url": api}
    proc = subprocess.run([node_bin, str(NODE_DIR / "dpop.mjs")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=120, cwd=NODE_DIR, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "ES256" in out["algs"]
    assert out["first_error"] == "use_dpop_nonce" and out["token_requests"] == 2
    assert out["token_type"].lower() == "dpop"
    jkt = jotkit.decode_unverified(out["access_token"])[1]["cnf"]["jkt"]
    assert out["api"] == {"status": 200, "body": {"sub": reg["client_id"], "jkt": jkt},
                          "challenge": None}
    assert out["api_again"]["status"] == 200
    assert out["as_bearer"]["status"] == 401
    assert out["as_bearer"]["challenge"].startswith('DPoP algs="')
