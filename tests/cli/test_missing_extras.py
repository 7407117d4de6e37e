"""Optional dependencies stay optional (the fast half; tests/test_extras_install.py installs
each extra in a clean virtualenv).

* A SQLite service never imports redis or asyncpg, so ``jotkit[server,cli]`` runs it.
* A missing extra is one line naming it (``pip install 'jotkit[cli]'``) and exit status 2,
  never a traceback. The missing packages are simulated by a ``None`` entry in
  ``sys.modules``, which makes ``import`` raise ``ModuleNotFoundError`` as if not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SERVICE_DRIVERS = ("redis", "asyncpg")


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    environ.update(JOTKIT_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sqlite_service_imports_neither_redis_nor_asyncpg(tmp_path):
    result = _python(
        """
        import json, sys
        from fastapi.testclient import TestClient
        from jotkit.server import Settings, create_app

        settings = Settings.from_env().replace(argon2_time_cost=1, argon2_memory_cost=1024,
                                               argon2_parallelism=1, demo=True,
                                               argon2_insecure_test_costs=True)
        with TestClient(create_app(settings)) as client:  # runs the lifespan: start, demo user
            assert client.get("/healthz").status_code == 200
            assert client.get("/.well-known/jwks.json").status_code == 200
        print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules})))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "aiosqlite" in loaded  # the check itself sees drivers
    for driver in SERVICE_DRIVERS:
        assert driver not in loaded


def _cli_without(modules: tuple[str, ...], args: list[str], tmp_path: Path, **env: str):
    blocked = ", ".join(repr(m) for m in modules)
    return _python(
        f"""
        import sys
        for name in ({blocked},):
            sys.modules[name] = None  # as if the package were not installed
        from jotkit.cli import main
        main({args!r})
        """,
        tmp_path,
        **env,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [[], ["--help"], ["decode", "x.y.z"], ["serve"]])
def test_jotkit_without_the_cli_extra_names_it(tmp_path, args):
    result = _cli_without(("typer", "rich", "click"), args, tmp_path)
    assert result.returncode == 2
    assert "pip install 'jotkit[cli]'" in _one_line(result)


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (["serve"], "uvicorn"),
        (["serve"], "fastapi"),
        (["serve"], "prometheus_client"),
        (["serve"], "sqlalchemy"),
        (["users", "list"], "argon2"),
        (["users", "list"], "sqlalchemy"),
        (["keys", "list"], "prometheus_client"),
    ],
)
def test_service_commands_without_the_server_extra_name_it(tmp_path, command, missing):
    result = _cli_without((missing,), command, tmp_path)
    assert result.returncode == 2
    line = _one_line(result)
    assert f"`jotkit {command[0]}` needs the [server] extra" in line
    assert "pip install 'jotkit[server]'" in line


def test_redis_url_without_the_redis_extra_names_it(tmp_path):
    result = _cli_without(
        ("redis",), ["serve"], tmp_path,
        JOTKIT_DATABASE_URL="postgresql://u@127.0.0.1:1/db",
        JOTKIT_ISSUER="https://auth.example.com",
        JOTKIT_REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert result.returncode == 2
    assert "pip install 'jotkit[redis]'" in _one_line(result)


def test_postgres_url_without_the_postgres_extra_names_it(tmp_path):
    result = _cli_without(
        ("asyncpg",), ["serve"], tmp_path,
        JOTKIT_DATABASE_URL="postgresql://u@127.0.0.1:1/db",
        JOTKIT_ISSUER="https://auth.example.com",
    )
    assert result.returncode == 2
    assert "pip install 'jotkit[postgres]'" in _one_line(result)


@pytest.mark.parametrize("missing", ["uvicorn", "prometheus_client", "httpx"])
def test_forward_auth_without_its_extra_names_it(tmp_path, missing):
    result = _cli_without((missing,), ["forward-auth", "--jwks-url", "https://a/j", "--issuer",
                                       "https://a", "--audience", "x"], tmp_path)
    assert result.returncode == 2
    line = _one_line(result)
    assert "`jotkit forward-auth` needs the [forward-auth] extra" in line
    assert "pip install 'jotkit[forward-auth]'" in line
