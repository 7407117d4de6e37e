"""Shared fixtures: the external services some tests need.

A test that needs PostgreSQL, Redis, Chromium or Node skips with a message
naming what to install when it is missing, unless JOTKIT_STRICT_SERVICES=1
(CI sets it), in which case the missing service is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

STRICT = os.environ.get("JOTKIT_STRICT_SERVICES") == "1"
ROOT = Path(__file__).resolve().parent.parent


def _missing(what: str, install: str) -> None:
    message = f"{what} is not available: {install}"
    if STRICT:
        pytest.fail(f"{message} (JOTKIT_STRICT_SERVICES=1: CI must not skip this)")
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Admin URL of the PostgreSQL server (database ``postgres``); tests create their own DBs.

    Override with JOTKIT_TEST_POSTGRES_URL.
    """
    url = os.environ.get(
        "JOTKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    if not _port_open("127.0.0.1", 5432) and "JOTKIT_TEST_POSTGRES_URL" not in os.environ:
        _missing(
            "PostgreSQL on 127.0.0.1:5432",
            "install and start postgresql (apt-get install postgresql)",
        )
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis server; tests use their own key prefix or database number.

    Override with JOTKIT_TEST_REDIS_URL.
    """
    url = os.environ.get("JOTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if not _port_open("127.0.0.1", 6379) and "JOTKIT_TEST_REDIS_URL" not in os.environ:
        _missing(
            "Redis on 127.0.0.1:6379", "install and start redis (apt-get install redis-server)"
        )
    return url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's Chromium for Playwright (``executable_path``)."""
    path = os.environ.get("JOTKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        _missing("Chromium", "apt-get install chromium")
    return path


@pytest.fixture(scope="session")
def node_bin() -> str:
    """Path of the ``node`` binary, with the npm packages of tests/node installed."""
    node = shutil.which("node")
    if node is None:
        _missing("Node.js", "install Node.js >= 18 and npm")
    assert node is not None
    if (ROOT / "tests" / "node" / "package.json").exists() and not (
        ROOT / "tests" / "node" / "node_modules"
    ).exists():
        _missing("the npm packages of tests/node", "run `npm ci` in tests/node (make test does)")
    return node


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """Path of Debian's nginx (``scripts/setup-test-deps.sh`` installs it)."""
    path = os.environ.get("JOTKIT_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(path):
        _missing("nginx", "apt-get install nginx")
    return path


@pytest.fixture(scope="session")
def caddy_bin() -> str:
    """Path of Debian's caddy (``scripts/setup-test-deps.sh`` installs it)."""
    path = os.environ.get("JOTKIT_CADDY") or shutil.which("caddy") or "/usr/bin/caddy"
    if not os.path.exists(path):
        _missing("caddy", "apt-get install caddy")
    return path
