"""Fixtures of the forward-auth tests: an issuer's key and JWK set served over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import jotkit

ISSUER = "https://auth.test"
AUDIENCE = "orders"


class _Server:
    """A threaded HTTP server on 127.0.0.1 running ``handler`` for every GET."""

    def __init__(self, handler: Callable[[BaseHTTPRequestHandler], None]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                handler(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send_json(request: BaseHTTPRequestHandler, obj: Any) -> None:
    body = json.dumps(obj).encode()
    request.send_response(200)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


@pytest.fixture(scope="session")
def issuer_key() -> jotkit.Key:
    return jotkit.Key.generate("ES256", kid="fa-1")


@pytest.fixture(scope="session")
def jwks_url(issuer_key: jotkit.Key) -> Iterator[str]:
    """``http://127.0.0.1:<port>/jwks.json`` serving the issuer's public key."""
    jwks = jotkit.KeySet([issuer_key.public()]).to_jwks()
    server = _Server(lambda request: _send_json(request, jwks))
    yield f"http://127.0.0.1:{server.port}/jwks.json"
    server.close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """The protected app: echoes the path and the headers it received as JSON."""
    server = _Server(
        lambda request: _send_json(
            request, {"path": request.path, "headers": [list(h) for h in request.headers.items()]}
        )
    )
    yield f"127.0.0.1:{server.port}"
    server.close()


@pytest.fixture(scope="session")
def mint(issuer_key: jotkit.Key) -> Callable[..., str]:
    """Sign an RFC 9068 access token for the test issuer and audience."""

    def make(key: jotkit.Key | None = None, audience: str = AUDIENCE, **claims: Any) -> str:
        claims.setdefault("sub", "alice")
        lifetime = {} if "exp" in claims else {"expires_in": "5m"}
        return jotkit.encode(
            claims, key or issuer_key, issuer=ISSUER, audience=audience,
            headers={"typ": "at+jwt"}, **lifetime,
        )  # fmt: skip

    return make
