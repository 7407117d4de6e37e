from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jotkit.server import FrozenClock

from .harness import START, Server, make_settings


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
