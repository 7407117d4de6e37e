"""Fixtures for the resource-server integration tests: a real local JWKS server."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import jotkit

from .apps import FRAMEWORKS

ISSUER = "https://auth.test"
AUDIENCE = "orders"


@dataclass
class ServerControl:
    """What the local JWKS server answers; tests mutate it between requests."""

    jwks: Any = field(default_factory=lambda: {"keys": []})
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw_body: bytes | None = None
    requests: list[str] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class JWKSServer:
    """A threaded HTTP server on 127.0.0.1 serving a JWK set at /jwks.json."""

    def __init__(self) -> None:
        self.control = ServerControl()
        control = self.control

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with control.lock:
                    control.requests.append(self.path)
                    control.request_headers.append(dict(self.headers.items()))
                if control.delay:
                    time.sleep(control.delay)
                if self.path != "/jwks.json":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = control.raw_body
                if body is None:
                    body = json.dumps(control.jwks).encode()
                try:
                    self.send_response(control.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in control.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.running = True

    def publish(self, *keys: jotkit.Key) -> None:
        self.control.jwks = jotkit.KeySet([k.public() for k in keys]).to_jwks()

    @property
    def hits(self) -> int:
        with self.control.lock:
            return sum(1 for p in self.control.requests if p == "/jwks.json")

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    try:
        yield server
    finally:
        server.stop()


class FakeClock:
    """A settable clock; tests move time instead of sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def es_key() -> jotkit.Key:
    return jotkit.Key.generate("ES256", kid="k1")


def make_token(
    key: jotkit.Key,
    *,
    now: float,
    scope: str = "orders:read",
    roles: list[str] | None = None,
    typ: str = "at+jwt",
    audience: str | None = AUDIENCE,
    issuer: str | None = ISSUER,
    expires_in: float = 900,
    sub: str = "user-1",
    extra_headers: dict[str, Any] | None = None,
) -> str:
    claims: dict[str, Any] = {"scope": scope, "client_id": "web"}
    if roles is not None:
        claims["roles"] = roles
    return jotkit.encode(
        claims,
        key,
        expires_in=expires_in,
        issuer=issuer,
        audience=audience,
        subject=sub,
        jti=True,
        headers={"typ": typ, **(extra_headers or {})},
        now=now,
    )


NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="session")
def node(request: pytest.FixtureRequest) -> str:
    """``node`` with tests/node's npm packages; runs ``npm ci`` first when they are missing."""
    npm = shutil.which("npm")
    if npm and not (NODE_DIR / "node_modules").exists():
        import fcntl
        import tempfile

        # xdist workers may get here together: one `npm ci` at a time
        with (Path(tempfile.gettempdir()) / "jotkit-npm-ci.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (NODE_DIR / "node_modules").exists():
                subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--silent"],
                    cwd=NODE_DIR,
                    check=False,
                    timeout=300,
                    capture_output=True,
                )
    node_bin: str = request.getfixturevalue("node_bin")
    return node_bin


class IntrospectionServer:
    """A local RFC 7662 endpoint: POST /introspect with HTTP Basic client credentials."""

    def __init__(
        self, client_id: str = "orders-api", client_secret: str = "s3cret-introspect"
    ) -> None:
        import base64
        from urllib.parse import parse_qs

        self.client_id = client_id
        self.client_secret = client_secret
        self.revoked: set[str] = set()
        self.calls: list[str] = []
        self.status_override: int | None = None
        expected = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                outer.calls.append(token)
                if outer.status_override is not None:
                    status, body = outer.status_override, {"error": "server_error"}
                elif self.headers.get("Authorization") != expected:
                    status, body = 401, {"error": "invalid_client"}
                else:
                    status, body = 200, {"active": token not in outer.revoked}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/introspect"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False


@pytest.fixture
def introspection_server() -> Iterator[IntrospectionServer]:
    server = IntrospectionServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def holder() -> jotkit.Key:
    """A client's DPoP key (RFC 9449): the tokens of the DPoP tests are bound to it."""
    return jotkit.Key.generate("ES256")


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    """Each adapter in turn (the DPoP tests)."""
    return str(request.param)
