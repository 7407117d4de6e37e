"""Fixtures of the CLI tests: each module defines ``app`` (the Typer app under test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner


@pytest.fixture
def run(app: Any) -> Callable[..., Any]:
    """``run(*args, input=None, env=None)``: invoke the module's ``app`` in process."""
    runner = CliRunner()

    def _run(*args: object, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(app, [str(a) for a in args], input=input, env=env)

    return _run
