"""The service commands (serve, users, keys, db) show an example in --help, like the rest."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jotkit.cli import build_app

SERVICE_COMMANDS = [
    "serve",
    "users add",
    "users disable",
    "users list",
    "keys rotate",
    "keys list",
    "keys revoke",
    "db upgrade",
    "db copy",
]


@pytest.fixture(scope="module")
def app():
    return build_app()


@pytest.mark.parametrize("command", SERVICE_COMMANDS)
def test_service_command_help_has_an_example(app, command):
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples" in result.stdout
    assert f"$ jotkit {command}" in result.stdout or f"jotkit {command}" in result.stdout
