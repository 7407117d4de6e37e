"""Run the auth service for real: uvicorn in a background thread on a free port."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from jotkit.server import FrozenClock, Settings, create_app
from jotkit.server.serving import uvicorn_options
from jotkit.server.sessions import AuthService

START = 1_800_000_000.0
PASSWORD = "correct horse battery staple"
METRICS_TOKEN = "metrics-token-for-tests"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Fast argon2 parameters (defaults stay strong) and a fixed issuer."""
    base = Settings(
        data_dir=data_dir,
        issuer="http://jotkit.test",
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        argon2_insecure_test_costs=True,
        cookie_secure=True,
        revocation_sync_interval=0.2,
        keyring_sync_interval=0.2,
        introspection_clients=(("rs1", "rs1-secret"),),
        metrics_token=METRICS_TOKEN,
        # bursts in tests test other things; login shedding has tests/backends/test_login_flood.py
        argon2_queue=256,
    )
    return base.replace(**overrides) if overrides else base


@dataclass
class Server:
    """A running service: ``url``, ``clock``, ``client`` (httpx) and the app's service."""

    settings: Settings
    clock: FrozenClock
    url: str = ""
    banner: io.StringIO = field(default_factory=io.StringIO)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    app: Any = None
    port: int = 0  # 0: a free port; set it when the issuer must name the port up front

    def start(self) -> Server:
        self.app = create_app(self.settings, clock=self.clock, banner_stream=self.banner)
        config = uvicorn.Config(  # with the HTTP-level limits of `jotkit serve`
            self.app, **uvicorn_options(self.settings, host="127.0.0.1", port=self.port,
                                        log_level="warning", lifespan="on"),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None

    @property
    def service(self) -> AuthService:
        svc: AuthService = self.app.state.service
        return svc

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = kwargs.pop("headers", {"User-Agent": "jotkit-tests/1"})
        return httpx.Client(base_url=self.url, timeout=30, headers=headers, **kwargs)

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's event loop (e.g. store calls)."""
        assert self._server is not None
        loop = self._loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    def _loop(self) -> asyncio.AbstractEventLoop:
        assert self._server is not None
        for server in self._server.servers:
            return server.get_loop()  # type: ignore[no-any-return]
        raise RuntimeError("no server socket")

    def add_user(self, email: str, password: str = PASSWORD, roles: tuple[str, ...] = ("user",)):
        return self.run(self.service.add_user(email, password, roles=roles))

    def sync(self) -> None:
        self.run(self.service.sync())


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
