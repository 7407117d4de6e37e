"""Faults with real servers: Redis restarted (empty) under running instances, PostgreSQL
connections dropped. No mocks: a private redis-server is stopped and started again, and
PostgreSQL backends are terminated with ``pg_terminate_backend``."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from jotkit.cli import build_app
from jotkit.server.store.availability import is_unavailable

from .util import (
    PASSWORD,
    PrivateRedis,
    ServiceProcess,
    add_user,
    admin_execute,
    bearer,
    create_database,
    drop_database,
    pg_url_for,
    service_env,
)

pytestmark = [
    pytest.mark.xdist_group("backend-processes"),  # server processes: not two modules at once
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
]


def _poll(check: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out waiting for: {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def _login(base: str, email: str) -> dict[str, str]:
    r = httpx.post(base + "/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def _me(base: str, token: str) -> httpx.Response:
    return httpx.get(base + "/auth/me", headers=bearer(token), timeout=10)


@pytest.fixture
def database(postgres_url: str, pg_template: str) -> Iterator[tuple[str, str]]:
    """(admin URL, database name) of a migrated throw-away database."""
    name = f"jotkit_f_{secrets.token_hex(6)}"
    create_database(postgres_url, name, template=pg_template)
    try:
        yield postgres_url, name
    finally:
        drop_database(postgres_url, name)


@pytest.fixture
def private_redis(redis_url: str, tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of our own, so stopping it disturbs no other test."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not on PATH: apt-get install redis-server"
        if os.environ.get("JOTKIT_STRICT_SERVICES") == "1":
            pytest.fail(message + " (JOTKIT_STRICT_SERVICES=1: CI must not skip this)")
        pytest.skip(message)
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_restart(
    database: tuple[str, str], private_redis: PrivateRedis, tmp_path: Path
) -> None:
    admin, name = database
    url = pg_url_for(admin, name).replace("postgresql+asyncpg://", "postgresql://")
    prefix = "jotkit:"
    closed = ServiceProcess(service_env(url, private_redis.url, prefix, tmp_path),
                           tmp_path / "closed.log")
    opened = ServiceProcess(
        service_env(url, private_redis.url, prefix, tmp_path, JOTKIT_REVOCATION_FAIL_OPEN="1"),
        tmp_path / "open.log",
    )
    late = ServiceProcess(service_env(url, private_redis.url, prefix, tmp_path),
                          tmp_path / "late.log")
    try:
        closed.start(wait=False)
        opened.start(wait=False)
        closed.wait_ready()
        opened.wait_ready()
        email = f"{secrets.token_hex(5)}@example.com"
        asyncio.run(add_user(pg_url_for(admin, name), email))
        s1 = _login(closed.url, email)
        s2 = _login(closed.url, email)
        other = f"{secrets.token_hex(5)}@example.com"
        asyncio.run(add_user(pg_url_for(admin, name), other))
        s_other = _login(opened.url, other)
        s4 = _login(closed.url, email)
        assert _me(opened.url, s1["access_token"]).status_code == 200
        r = httpx.post(closed.url + "/auth/logout", headers=bearer(s1["access_token"]))
        assert r.status_code == 200
        _poll(lambda: _me(opened.url, s1["access_token"]).status_code == 401, "propagation")

        private_redis.stop()  # no persistence: Redis comes back empty
        # fail closed (default): protected requests get 503 while Redis is unreachable
        _poll(lambda: _me(closed.url, s2["access_token"]).status_code == 503, "fail closed")
        r = _me(closed.url, s2["access_token"])
        assert r.json()["error"] == "temporarily_unavailable" and "retry-after" in r.headers
        assert httpx.get(closed.url + "/healthz").status_code == 503
        # refresh needs only PostgreSQL: it keeps working, on either policy
        r = httpx.post(closed.url + "/auth/refresh", json={"refresh_token": s4["refresh_token"]})
        assert r.status_code == 200, r.text
        assert httpx.get(closed.url + "/.well-known/jwks.json").status_code == 200
        # fail open: the local cache answers; what it knows stays revoked
        assert _me(opened.url, s2["access_token"]).status_code == 200
        assert _me(opened.url, s1["access_token"]).status_code == 401
        assert httpx.get(opened.url + "/healthz").status_code == 200
        # login throttling lives in Redis: logins are refused with 503, never a 500
        r = httpx.post(opened.url + "/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 503, r.text
        # a revocation while Redis is down (on the fail-open instance) is journaled
        r = httpx.post(opened.url + "/auth/logout", headers=bearer(s2["access_token"]))
        assert r.status_code == 200, r.text
        assert _me(opened.url, s2["access_token"]).status_code == 401
        # an operator disables a user meanwhile: the CLI cannot reach Redis, the revocation
        # goes to the PostgreSQL journal, and the fail-open instance reads it from there
        assert _me(opened.url, s_other["access_token"]).status_code == 200
        done = CliRunner().invoke(build_app(), ["users", "disable", other], env=opened.env)
        assert done.exit_code == 0, done.output
        _poll(lambda: _me(opened.url, s_other["access_token"]).status_code == 401,
              "journal fallback", 10)

        private_redis.start()
        # both revocations reach the fail-closed instance once Redis is back ...
        waited = _poll(
            lambda: _me(closed.url, s2["access_token"]).status_code == 401, "recovery", 15
        )
        assert _me(closed.url, s1["access_token"]).json()["reason"] == "revoked"
        assert _me(closed.url, s2["access_token"]).json()["reason"] == "revoked"
        # ... and to an instance started after the restart (Redis was re-seeded)
        late.start()
        for token in (s1["access_token"], s2["access_token"], s_other["access_token"]):
            r = _me(late.url, token)
            assert r.status_code == 401 and r.json()["reason"] == "revoked"
        # and service is back to normal
        s3 = _login(late.url, email)
        assert _me(closed.url, s3["access_token"]).status_code == 200
        print(f"\nfail-closed instance recovered {waited:.2f} s after Redis came back")
    finally:
        for proc in (closed, opened, late):
            proc.stop()


@pytest.mark.parametrize("with_redis", [False, True], ids=["postgres", "postgres+redis"])
def test_postgres_connections_dropped(
    database: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest, with_redis: bool
) -> None:
    admin, name = database
    url = pg_url_for(admin, name).replace("postgresql+asyncpg://", "postgresql://")
    redis_url = request.getfixturevalue("redis_url") if with_redis else None
    prefix = request.getfixturevalue("redis_prefix") if with_redis else None
    svc = ServiceProcess(service_env(url, redis_url, prefix, tmp_path), tmp_path / "svc.log")
    try:
        svc.start()
        email = f"{secrets.token_hex(5)}@example.com"
        asyncio.run(add_user(pg_url_for(admin, name), email))
        tokens = _login(svc.url, email)
        admin_execute(
            admin,
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        try:
            for _ in range(3):
                r = httpx.post(svc.url + "/auth/refresh",
                               json={"refresh_token": tokens["refresh_token"]})
                assert r.status_code == 503, r.text
                assert r.json()["error"] == "temporarily_unavailable"
            r = httpx.post(svc.url + "/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 503, r.text
            assert httpx.get(svc.url + "/healthz").status_code == 503
            # verification is stateless: access tokens keep working without the database
            # (also past a periodic sync, which now fails on the database)
            time.sleep(0.6)
            assert _me(svc.url, tokens["access_token"]).status_code == 200
            assert httpx.get(svc.url + "/.well-known/jwks.json").status_code == 200
        finally:
            admin_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # recovery: the failed attempts did not spend the refresh token
        r = httpx.post(svc.url + "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
        assert httpx.get(svc.url + "/healthz").status_code == 200
        assert _login(svc.url, email)["access_token"]
    finally:
        svc.stop()


def test_availability_classification(postgres_url: str) -> None:
    """Connection trouble is transient (503); an SQL error is a bug (500)."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    async def probe(url: str, sql: str) -> BaseException:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text(sql))
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("expected an error")

    live = pg_url_for(postgres_url, "postgres")
    assert not is_unavailable(asyncio.run(probe(live, "SELECT 1/0")))
    assert not is_unavailable(asyncio.run(probe(live, "SELEC nonsense")))
    dead = live.replace(":5432", ":1")
    assert is_unavailable(asyncio.run(probe(dead, "SELECT 1")))
    assert not is_unavailable(ValueError("x"))


def test_code_exchange_while_postgres_drops_connections(database: tuple[str, str],
                                                        tmp_path: Path) -> None:
    """The code redemption's asyncpg fast path: terminated connections are replaced, a
    database refusing connections is 503 ``temporarily_unavailable`` and spends nothing,
    and the same code is redeemed once the database is back."""
    from jotkit.server.clock import SystemClock
    from jotkit.server.oauth.clients import new_client
    from jotkit.server.oauth.codes import AuthorizationRequest, issue_code, pkce_s256
    from jotkit.server.store.sql import SqlStore

    admin, name = database
    url = pg_url_for(admin, name)
    email = f"{secrets.token_hex(5)}@example.com"
    user_id = asyncio.run(add_user(url, email))
    record, secret = new_client("web", now=time.time(), redirect_uris=("https://app/cb",))
    verifier = secrets.token_urlsafe(48)

    async def setup() -> list[str]:
        store = SqlStore(url)
        try:
            await store.clients.create(record)
            service = type("S", (), {"clock": SystemClock(), "store": store})()
            request = AuthorizationRequest(
                client_id=record.client_id, user_id=user_id, redirect_uri="https://app/cb",
                code_challenge=pkce_s256(verifier), scope=("openid",), nonce=None,
                auth_time=time.time(), sid="sso-f", resource=())
            return [await issue_code(service, request) for _ in range(3)]  # type: ignore[arg-type]
        finally:
            await store.close()

    first, second, third = asyncio.run(setup())
    plain = pg_url_for(admin, name).replace("postgresql+asyncpg://", "postgresql://")
    svc = ServiceProcess(service_env(plain, None, None, tmp_path), tmp_path / "svc.log")

    def redeem(code: str) -> httpx.Response:
        return httpx.post(svc.url + "/oauth/token", auth=(record.client_id, secret or ""),
                          data={"grant_type": "authorization_code", "code": code,
                                "redirect_uri": "https://app/cb", "code_verifier": verifier},
                          timeout=30)

    try:
        svc.start()
        assert redeem(first).status_code == 200  # the pool now holds live connections
        admin_execute(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        r = redeem(second)  # its pooled connection was terminated: a new one serves it
        assert r.status_code == 200, r.text
        admin_execute(
            admin,
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        try:
            r = redeem(third)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "temporarily_unavailable"
        finally:
            admin_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        r = redeem(third)  # the failed attempt spent nothing
        assert r.status_code == 200, r.text
        r = redeem(second)  # redeemed before the outage: a replay
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    finally:
        svc.stop()
