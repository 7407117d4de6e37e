"""Several instances on one PostgreSQL database must share one issuer (RFC 7519 §4.1.1):
without ``JOTKIT_ISSUER`` each would default to its own ``http://host:port`` and refuse the
others' tokens with ``invalid_issuer``. The service refuses to start instead; SQLite keeps
the ``http://host:port`` default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jotkit.server import Settings, SettingsError, create_app

PG_URL = "postgresql://jotkit@127.0.0.1:1/jotkit"  # never connected to: the check comes first


def _jotkit() -> str:
    candidate = Path(sys.executable).with_name("jotkit")
    return str(candidate) if candidate.exists() else "jotkit"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(JOTKIT_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


@pytest.mark.parametrize("url", [PG_URL, "postgres://h/db", "postgresql+asyncpg://h/db"])
def test_create_app_refuses_a_shared_database_without_an_issuer(tmp_path, url):
    with pytest.raises(SettingsError, match="JOTKIT_ISSUER"):
        create_app(Settings(data_dir=tmp_path, database_url=url))


def test_create_app_accepts_a_shared_database_with_an_issuer(tmp_path):
    app = create_app(
        Settings(data_dir=tmp_path, database_url=PG_URL, issuer="https://auth.example.com")
    )
    assert app.state.service.settings.effective_issuer == "https://auth.example.com"


def test_sqlite_keeps_the_host_port_default_issuer(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, port=8123))
    assert app.state.service.settings.effective_issuer == "http://127.0.0.1:8123"


def test_serve_on_postgres_without_issuer_exits_with_one_line(tmp_path):
    result = subprocess.run(
        [_jotkit(), "serve", "--port", "0"],
        env=_env(tmp_path, JOTKIT_DATABASE_URL=PG_URL),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: JOTKIT_ISSUER must be set")
    assert "Traceback" not in result.stderr
