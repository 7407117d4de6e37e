"""Pick the storage backend from the settings: SQLite (default), PostgreSQL, plus Redis.

``JOTKIT_DATABASE_URL`` selects the SQL database; plain ``postgresql://`` / ``postgres://`` and
``sqlite:///`` URLs get their async driver (asyncpg, aiosqlite). ``JOTKIT_REDIS_URL`` moves the
deny-list, user markers and login counters to Redis (:class:`~.redis.RedisStore`).

Each driver is imported only when its backend is configured: a SQLite service never imports
redis or asyncpg, so ``pip install 'jotkit[server,cli]'`` is enough for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from ..settings import SettingsError
from .base import Store

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["build_store", "normalize_database_url", "require_shared_issuer", "uses_redis"]

_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalize_database_url(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+asyncpg://...``, ``sqlite:///...`` ->
    ``sqlite+aiosqlite:///...``; URLs that name a driver are returned unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    driver = _DRIVERS.get(scheme.lower())
    if driver is None:
        return url
    normalized = f"{driver}://{rest}"
    make_url(normalized)  # raises ArgumentError on garbage
    return normalized


def build_store(settings: Settings, clock: Callable[[], float] | None = None) -> Store:
    """The store for ``settings``: :class:`~.sql.SqlStore` on the configured database, wrapped
    in a :class:`~.redis.RedisStore` when ``redis_url`` is set. ``clock`` (epoch seconds) is the
    service clock, used when Redis must be re-seeded."""
    from .sql import PoolSettings, SqlStore

    pool = PoolSettings(
        settings.database_pool_size,
        settings.database_max_overflow,
        settings.database_pool_timeout,
    )
    sql = SqlStore(normalize_database_url(settings.effective_database_url), pool)
    if not settings.redis_url:
        return sql
    from .redis import RedisStore

    return RedisStore(
        sql,
        settings.redis_url,
        prefix=settings.redis_prefix,
        fail_open=settings.revocation_fail_open,
        marker_lifetime=float(settings.access_ttl) + float(settings.key_retire_margin) + 1.0,
        clock=clock or time.time,
        max_connections=settings.redis_max_connections,
        pool_timeout=settings.redis_pool_timeout,
    )


def require_shared_issuer(settings: Settings) -> None:
    """Refuse a shared database without ``JOTKIT_ISSUER``.

    Instances on one PostgreSQL database serve the same users and keys, so they must put the
    same ``iss`` in their tokens (RFC 7519 §4.1.1) and publish the same metadata (RFC 8414 §2).
    The fallback issuer is the instance's own ``http://host:port``, which differs between
    instances: a token from one would fail on another with ``invalid_issuer``. The embedded
    SQLite default keeps the fallback. Raises :class:`SettingsError`.
    """
    if settings.issuer:
        return
    backend = make_url(normalize_database_url(settings.effective_database_url)).get_backend_name()
    if backend != "sqlite":
        raise SettingsError(
            "JOTKIT_ISSUER must be set when several instances can share the database "
            f"({backend}): set it to the public base URL every instance answers on, "
            "e.g. JOTKIT_ISSUER=https://auth.example.com"
        )


def uses_redis(store: Store) -> bool:
    """True when ``store`` is a :class:`~.redis.RedisStore`. Never imports redis itself: such a
    store exists only once its module (and redis) has been imported by :func:`build_store`."""
    module = sys.modules.get(f"{__package__}.redis")
    return module is not None and isinstance(store, module.RedisStore)
