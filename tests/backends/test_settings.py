"""Settings of the multi-instance backends: parsing, validation, backend selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from jotkit.server.settings import Settings, SettingsError
from jotkit.server.store.factory import build_store, normalize_database_url
from jotkit.server.store.redis import RedisStore
from jotkit.server.store.sql import SqlStore


def test_env_parsing() -> None:
    s = Settings.from_env({
        "JOTKIT_DATABASE_URL": "postgresql://u@h/db",
        "JOTKIT_REDIS_URL": "redis://127.0.0.1:6379/0",
        "JOTKIT_REDIS_PREFIX": "app1:",
        "JOTKIT_REVOCATION_FAIL_OPEN": "yes",
    })
    assert (s.redis_prefix, s.revocation_fail_open) == ("app1:", True)
    assert Settings.from_env({}).revocation_fail_open is False  # fail closed by default
    assert Settings.from_env({}).redis_prefix == "jotkit:"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOTKIT_REDIS_URL": "http://127.0.0.1:6379"}, "JOTKIT_REDIS_URL"),
        ({"JOTKIT_REDIS_PREFIX": "has space:"}, "JOTKIT_REDIS_PREFIX"),
        ({"JOTKIT_REVOCATION_FAIL_OPEN": "maybe"}, "JOTKIT_REVOCATION_FAIL_OPEN"),
    ],
)
def test_invalid(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_normalize_database_url() -> None:
    assert normalize_database_url("postgresql://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert normalize_database_url("postgres://h/db") == "postgresql+asyncpg://h/db"
    assert normalize_database_url("sqlite:///x/y.db") == "sqlite+aiosqlite:///x/y.db"
    assert normalize_database_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"
    with pytest.raises(ValueError):
        normalize_database_url("not a url")


async def _close(store: object) -> None:
    await store.close()  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_build_store_picks_the_backend(tmp_path: Path) -> None:
    plain = build_store(Settings(data_dir=tmp_path))
    assert isinstance(plain, SqlStore) and plain.url.startswith("sqlite+aiosqlite:///")
    pg = build_store(Settings(data_dir=tmp_path, database_url="postgresql://u@127.0.0.1/db"))
    assert isinstance(pg, SqlStore) and pg.url.startswith("postgresql+asyncpg://")
    both = build_store(Settings(data_dir=tmp_path, database_url="postgresql://u@127.0.0.1/db",
                                redis_url="redis://127.0.0.1:6379/0", redis_prefix="p:",
                                revocation_fail_open=True))
    assert isinstance(both, RedisStore)
    assert (both.prefix, both.fail_open) == ("p:", True)
    for store in (plain, pg, both):
        await _close(store)


def test_pool_settings_size_the_sql_and_redis_pools() -> None:
    s = Settings.from_env({
        "JOTKIT_DATABASE_URL": "postgresql://u@h/db",
        "JOTKIT_REDIS_URL": "redis://127.0.0.1:6379/0",
        "JOTKIT_DATABASE_POOL_SIZE": "7",
        "JOTKIT_DATABASE_MAX_OVERFLOW": "0",
        "JOTKIT_DATABASE_POOL_TIMEOUT": "3s",
        "JOTKIT_REDIS_MAX_CONNECTIONS": "12",
        "JOTKIT_REDIS_POOL_TIMEOUT": "250",
    })
    store = build_store(s)
    assert isinstance(store, RedisStore)
    pool = store.redis.connection_pool
    assert type(pool).__name__ == "BlockingConnectionPool"  # queues instead of failing
    assert (pool.max_connections, pool.timeout) == (12, 250.0)
    assert isinstance(store.sql, SqlStore)
    engine_pool = store.sql.engine.pool
    assert (engine_pool.size(), engine_pool._max_overflow, engine_pool._timeout) == (7, 0, 3.0)


@pytest.mark.parametrize(
    "env",
    [
        {"JOTKIT_REDIS_MAX_CONNECTIONS": "0"},
        {"JOTKIT_DATABASE_POOL_SIZE": "0"},
        {"JOTKIT_DATABASE_MAX_OVERFLOW": "-1"},
        {"JOTKIT_DATABASE_POOL_TIMEOUT": "0"},
        {"JOTKIT_REDIS_POOL_TIMEOUT": "inf"},
    ],
)
def test_invalid_pool_settings(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
