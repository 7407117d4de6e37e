"""A small API protected by ``jotkit.integrations`` (FastAPI, verifying through the
service's JWKS), served by uvicorn on a free port, for the tests where a real client calls
a resource server with a token from a running jotkit (DPoP included)."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI

from jotkit.integrations import TokenVerifier
from jotkit.integrations.fastapi import JotkitAuth, require_token
from jotkit.jwks_client import JWKSClient


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def protected_api(issuer: str, audience: str, scopes: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve ``GET /orders`` (requiring ``scopes``) for tokens of ``issuer`` and ``audience``;
    it answers the token's ``sub`` and its DPoP key thumbprint (``cnf.jkt``, or None).
    Yields the endpoint's URL."""
    verifier = TokenVerifier(
        JWKSClient(issuer + "/.well-known/jwks.json", allow_insecure_http=True),
        issuer=issuer, audience=audience,
    )
    app = FastAPI()
    JotkitAuth(app, verifier)

    @app.get("/orders")
    async def orders(
        claims: Annotated[dict[str, Any], Depends(require_token(scopes=list(scopes)))],
    ) -> dict[str, Any]:
        return {"sub": claims["sub"], "jkt": claims.get("cnf", {}).get("jkt")}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/orders"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        verifier.close()
