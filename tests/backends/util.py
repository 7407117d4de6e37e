"""Helpers shared by the backend tests: PostgreSQL admin, Redis clean-up, service processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


# -- PostgreSQL -----------------------------------------------------------------------------
def _dsn(postgres_url: str, database: str | None = None) -> str:
    url = make_url(postgres_url)
    if database is not None:
        url = url.set(database=database)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def pg_url_for(postgres_url: str, database: str) -> str:
    """The asyncpg SQLAlchemy URL of ``database`` on the server of ``postgres_url``."""
    url = make_url(postgres_url).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


def admin_execute(postgres_url: str, *statements: str, database: str | None = None) -> list[Any]:
    """Run statements on the server (autocommit); return the rows of the last one."""

    async def run() -> list[Any]:
        conn = await asyncpg.connect(_dsn(postgres_url, database))
        try:
            rows: list[Any] = []
            for sql in statements:
                rows = list(await conn.fetch(sql))
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


def create_database(postgres_url: str, name: str, template: str | None = None) -> None:
    """``CREATE DATABASE name [TEMPLATE template]``."""
    sql = f'CREATE DATABASE "{name}"'
    if template:
        sql += f' TEMPLATE "{template}"'
    for attempt in range(20):
        try:
            admin_execute(postgres_url, sql)
            return
        except asyncpg.ObjectInUseError:  # the template is briefly in use by another clone
            time.sleep(0.05 * (attempt + 1))
    admin_execute(postgres_url, sql)


def drop_database(postgres_url: str, name: str) -> None:
    """Drop a database, terminating its connections first."""
    admin_execute(
        postgres_url,
        f"ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        f'DROP DATABASE IF EXISTS "{name}"',
    )


# -- Redis ----------------------------------------------------------------------------------
def drop_redis_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; return how many."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    except redis.exceptions.ConnectionError:
        return 0
    finally:
        client.close()


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrivateRedis:
    """A private redis-server on a free port (for fault tests that stop and restart Redis
    without disturbing anything else using the shared server)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()  # extra ``jotkit serve`` options, e.g. ("--workers", "2")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
                try:
                    if client.ping():
                        return self
                finally:
                    client.close()
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


# -- service processes ----------------------------------------------------------------------
def service_env(database_url: str, redis_url: str | None, prefix: str | None,
                data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a ``jotkit serve`` process for the tests (cheap argon2, fast syncs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(
        JOTKIT_DATA_DIR=str(data_dir),
        JOTKIT_DATABASE_URL=database_url,
        JOTKIT_ISSUER="http://jotkit.cluster",
        JOTKIT_ARGON2_TIME_COST="1",
        JOTKIT_ARGON2_MEMORY_COST="1024",
        JOTKIT_ARGON2_PARALLELISM="1",
        JOTKIT_ARGON2_INSECURE_TEST_COSTS="1",
        JOTKIT_REVOCATION_SYNC_INTERVAL="0.5",
        JOTKIT_KEYRING_SYNC_INTERVAL="0.5",
        JOTKIT_LOG_LEVEL="WARNING",
        JOTKIT_LOGIN_IP_LIMIT="1000",
        JOTKIT_LOGIN_PAIR_LIMIT="1000",  # bursts of correct logins for one user, one address
    )
    if redis_url:
        env["JOTKIT_REDIS_URL"] = redis_url
    if prefix:
        env["JOTKIT_REDIS_PREFIX"] = prefix
    env.update(extra)
    return env


def jotkit_bin() -> str:
    """The ``jotkit`` console script of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("jotkit")
    return str(candidate) if candidate.exists() else "jotkit"


@dataclass
class ServiceProcess:
    """One ``jotkit serve`` process on a free port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()  # extra ``jotkit serve`` options, e.g. ("--workers", "2")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [jotkit_bin(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"jotkit serve exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"jotkit serve not ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


@dataclass(frozen=True)
class Instances:
    """Two ``jotkit serve`` processes sharing one database, Redis prefix and data dir."""

    url: str  # the SQLAlchemy asyncpg URL of the database
    env: dict[str, str]
    a: ServiceProcess
    b: ServiceProcess


@contextmanager
def two_instances(postgres_url: str, redis_url: str, pg_template: str, tmp: Path, tag: str,
                  **extra_env: str) -> Iterator[Instances]:
    """Two instances on a fresh PostgreSQL database (from the template) and a fresh Redis
    prefix, started together; both stopped and the database and keys dropped afterwards."""
    name = f"jotkit_{tag}_{secrets.token_hex(6)}"
    prefix = f"jotkit:test:{secrets.token_hex(6)}:"
    create_database(postgres_url, name, template=pg_template)
    url = pg_url_for(postgres_url, name)
    env = service_env(url.replace("postgresql+asyncpg://", "postgresql://"), redis_url, prefix,
                      tmp, **extra_env)
    a, b = ServiceProcess(env, tmp / "a.log"), ServiceProcess(env, tmp / "b.log")
    try:
        a.start(wait=False)
        b.start(wait=False)
        a.wait_ready()
        b.wait_ready()
        yield Instances(url, env, a, b)
    finally:
        a.stop()
        b.stop()
        drop_database(postgres_url, name)
        drop_redis_prefix(redis_url, prefix)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_user(database_url: str, email: str, password: str = PASSWORD) -> str:
    """Insert a user straight into the database (cheap argon2 parameters)."""
    import uuid

    from jotkit.server.passwords import PasswordPolicy
    from jotkit.server.store.sql import SqlStore

    store = SqlStore(database_url)
    try:
        user_id = uuid.uuid4().hex
        hashed = PasswordPolicy(1, 1024, 1, insecure_test_costs=True).hash(password)
        await store.users.create(user_id, email, hashed, ["user"], time.time())
        return user_id
    finally:
        await store.close()
