from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jotkit.server import FrozenClock

from .harness import START, Server, make_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The server's Typer commands on an app built here (as the top-level CLI does), with a
    private data directory and cheap argon2 costs: ``cli("users", "add", ..., input=...)``."""
    import typer
    from typer.testing import CliRunner

    from jotkit.server.cli import register

    app = typer.Typer()
    register(app)
    monkeypatch.setenv("JOTKIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JOTKIT_ARGON2_MEMORY_COST", "1024")
    monkeypatch.setenv("JOTKIT_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("JOTKIT_ARGON2_PARALLELISM", "1")
    monkeypatch.setenv("JOTKIT_ARGON2_INSECURE_TEST_COSTS", "1")
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: ``make_server(**settings_overrides)`` -> a started :class:`Server`."""
    started: list[Server] = []

    def factory(clock: FrozenClock | None = None, data_dir: Path | None = None,
                **overrides: Any) -> Server:
        settings = make_settings(data_dir or tmp_path / "data", **overrides)
        server = Server(settings, clock or FrozenClock(START)).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    srv = make_server()
    srv.add_user("alice@example.com")
    return srv
