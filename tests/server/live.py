"""Real processes and servers for the peer tests: ``jotkit serve`` as a child process, and a
small API protected by ``jotkit.integrations`` (FastAPI, verifying through the service's
JWKS) under uvicorn, where a real client calls a resource server with a token from a running
jotkit (DPoP included)."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI

from jotkit.dpop import HmacNonces
from jotkit.integrations import TokenVerifier
from jotkit.integrations.fastapi import JotkitAuth, require_token
from jotkit.jwks_client import JWKSClient


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def jotkit_serve(data: Path, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``jotkit serve`` on a free port with its data in ``data``, fast argon2 parameters and
    the ``JOTKIT_*`` variables ``settings`` (``DPOP_REQUIRE_NONCE="1"``, say): yields
    ``(url, env)`` once ``/healthz`` answers; ``env`` runs the CLI on the same data."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(JOTKIT_DATA_DIR=str(data), JOTKIT_ISSUER=url, JOTKIT_LOG_LEVEL="WARNING",
               JOTKIT_ARGON2_INSECURE_TEST_COSTS="1", JOTKIT_ARGON2_TIME_COST="1",
               JOTKIT_ARGON2_MEMORY_COST="1024", JOTKIT_ARGON2_PARALLELISM="1")
    env.update({f"JOTKIT_{k}": v for k, v in settings.items()})
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


@contextmanager
def protected_api(issuer: str, audience: str, scopes: tuple[str, ...] = (),
                  dpop_nonce: HmacNonces | None = None) -> Iterator[str]:
    """Serve ``GET /orders`` (requiring ``scopes``) for tokens of ``issuer`` and ``audience``;
    it answers the token's ``sub`` and its DPoP key thumbprint (``cnf.jkt``, or None).
    With ``dpop_nonce`` DPoP proofs must carry its nonces (RFC 9449 §9). Yields the
    endpoint's URL."""
    verifier = TokenVerifier(
        JWKSClient(issuer + "/.well-known/jwks.json", allow_insecure_http=True),
        issuer=issuer, audience=audience, dpop_nonce=dpop_nonce,
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
