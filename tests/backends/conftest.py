"""Fixtures for the backend tests: throw-away PostgreSQL databases and Redis key prefixes.

Every test gets its own database, cloned from a template that already has the schema
(``CREATE DATABASE ... TEMPLATE``), and its own Redis key prefix; both are removed afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .util import (
    admin_execute,
    create_database,
    drop_database,
    drop_redis_prefix,
    pg_url_for,
)

BACKENDS = ("sqlite", "postgres", "postgres+redis")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_template(postgres_url: str) -> Iterator[str]:
    """A migrated database used as the template of every per-test database."""
    from jotkit.server.store.sql import SqlStore

    name = f"jotkit_tpl_{secrets.token_hex(4)}"
    create_database(postgres_url, name)

    async def migrate() -> None:
        store = SqlStore(pg_url_for(postgres_url, name))
        try:
            await store.start()
        finally:
            await store.close()

    try:
        asyncio.run(migrate())
        yield name
    finally:
        drop_database(postgres_url, name)


@pytest.fixture
def pg_db(postgres_url: str, pg_template: str) -> Iterator[str]:
    """URL (``postgresql+asyncpg://``) of a fresh, migrated database; dropped afterwards."""
    name = f"jotkit_t_{secrets.token_hex(6)}"
    create_database(postgres_url, name, template=pg_template)
    try:
        yield pg_url_for(postgres_url, name)
    finally:
        drop_database(postgres_url, name)


@pytest.fixture
def empty_pg_db(postgres_url: str) -> Iterator[str]:
    """URL of a fresh database without any schema."""
    name = f"jotkit_e_{secrets.token_hex(6)}"
    create_database(postgres_url, name)
    try:
        yield pg_url_for(postgres_url, name)
    finally:
        drop_database(postgres_url, name)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted afterwards."""
    prefix = f"jotkit:test:{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        drop_redis_prefix(redis_url, prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: sqlite, postgres or postgres+redis."""
    name: str = request.param
    return name


@pytest.fixture
def backend_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> dict[str, Any]:
    """The settings that select the backend under test (its own database / Redis prefix)."""
    if backend == "sqlite":
        return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'jotkit.db'}"}
    out: dict[str, Any] = {"database_url": request.getfixturevalue("pg_db")}
    if backend == "postgres+redis":
        out["redis_url"] = request.getfixturevalue("redis_url")
        out["redis_prefix"] = request.getfixturevalue("redis_prefix")
    return out


@pytest.fixture
def store_factory(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A zero-argument async callable returning a started store of the current backend (each
    call: a new store object on the same database / prefix, as a second instance would)."""
    from jotkit.server.store.redis import RedisStore
    from jotkit.server.store.sql import SqlStore

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'jotkit.db'}"
        redis_url = prefix = None
    else:
        url = request.getfixturevalue("pg_db")
        redis_url = prefix = None
        if backend == "postgres+redis":
            redis_url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("redis_prefix")

    async def make() -> object:
        sql = SqlStore(url)
        store = sql if redis_url is None else RedisStore(sql, redis_url, prefix or "")
        await store.start()
        return store

    return make


@pytest.fixture
async def store(store_factory: object) -> AsyncIterator[object]:
    """A started store of the current backend."""
    made = await store_factory()  # type: ignore[operator]
    try:
        yield made
    finally:
        await made.close()  # type: ignore[attr-defined]


__all__ = ["admin_execute"]
