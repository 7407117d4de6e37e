"""``jotkit call``: a real HTTP request to a FastAPI API protected by jotkit.integrations,
with a DPoP-bound token (RFC 9449 §7) and its proof, the nonce retry against a resource server
that requires its nonces (§9, ``TokenVerifier(dpop_nonce=...)``), and a bearer token."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import uvicorn
from fastapi import Depends, FastAPI

import jotkit
from jotkit.cli import build_app
from jotkit.dpop import HmacNonces
from jotkit.integrations import TokenVerifier
from jotkit.integrations.fastapi import JotkitAuth, require_token

ISSUER = "https://auth.test"
ISSUER_KEY = jotkit.Key.generate("ES256", kid="k1")
CLIENT_KEY = jotkit.Key.generate("ES256")


@pytest.fixture(scope="module")
def app() -> Any:
    return build_app(include_server=False)


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """``/orders`` (jotkit.integrations) and ``/nonce`` (the same, requiring DPoP nonces)."""
    verifier = TokenVerifier(ISSUER_KEY.public(), issuer=ISSUER, audience="api")
    with_nonces = TokenVerifier(ISSUER_KEY.public(), issuer=ISSUER, audience="api",
                                dpop_nonce=HmacNonces(b"nonce secret of the test API"))
    web = FastAPI()
    JotkitAuth(web, verifier)

    @web.get("/orders")
    async def orders(claims: Annotated[dict[str, Any], Depends(require_token())]):
        return {"sub": claims["sub"]}

    needs_nonce = require_token(verifier=with_nonces)  # a local: not usable in Annotated

    @web.get("/nonce")
    async def nonce(claims: dict[str, Any] = Depends(needs_nonce)):  # noqa: B008
        return {"sub": claims["sub"], "nonce": "ok"}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _token(bound: bool) -> str:
    claims: dict[str, Any] = {"client_id": "c1"}
    if bound:
        claims["cnf"] = {"jkt": CLIENT_KEY.thumbprint()}
    return jotkit.encode(claims, ISSUER_KEY, expires_in=900, issuer=ISSUER, audience="api",
                         subject="svc-1", jti=True, headers={"typ": "at+jwt"})


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(CLIENT_KEY.to_jwk(private=True)))
    return path


def test_call_with_a_dpop_key_sends_a_proof(run, api: str, key_file: Path):
    result = run("call", f"{api}/orders", "--token-env", "T", "--dpop-key", key_file,
                 env={"T": _token(bound=True)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sub": "svc-1"}


def test_call_retries_once_with_the_servers_dpop_nonce(run, api: str, key_file: Path):
    result = run("call", f"{api}/nonce", "--token-env", "T", "--dpop-key", key_file,
                 env={"T": _token(bound=True)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sub": "svc-1", "nonce": "ok"}


def test_dpop_bound_token_as_bearer_is_refused_by_the_api(run, api: str):
    result = run("call", f"{api}/orders", "--token", _token(bound=True))
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr and 'DPoP algs="' in result.stderr


def test_call_with_a_bearer_token(run, api: str):
    result = run("call", f"{api}/orders", "--token", _token(bound=False))
    assert result.exit_code == 0 and json.loads(result.stdout) == {"sub": "svc-1"}


def test_call_refuses_a_public_or_secret_dpop_key(run, api: str, tmp_path: Path):
    public = tmp_path / "public.jwk"
    public.write_text(json.dumps(CLIENT_KEY.public().to_jwk()))
    result = run("call", f"{api}/orders", "--token", "t", "--dpop-key", public)
    assert result.exit_code == 2 and "asymmetric private key" in result.stderr
    assert run("call", f"{api}/orders").exit_code == 2  # no token
