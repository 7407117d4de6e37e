"""Tell "a backend is down" apart from a bug, so the service answers 503 instead of 500.

A dropped or refused PostgreSQL connection, a database that does not accept connections, a
pool timeout or an unreachable Redis are transient: the client should retry (HTTP 503
``temporarily_unavailable`` with ``Retry-After``). Anything else stays a 500.
"""

from __future__ import annotations

import asyncio
import sys

import sqlalchemy.exc as sa_exc

__all__ = ["is_unavailable"]

# SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57 operator
# intervention (admin shutdown, pg_terminate_backend, crash shutdown, cannot connect now);
# 55000 is also raised for "database is not currently accepting connections".
_TRANSIENT_CLASSES = ("08", "53", "57")
_TRANSIENT_STATES = {"55000", "55006", "40001", "40P01"}


def _sqlstate(exc: BaseException) -> str | None:
    for name in ("sqlstate", "pgcode"):
        value = getattr(exc, name, None)
        if isinstance(value, str) and len(value) == 5:
            return value
    return None


def _redis_errors() -> tuple[type[BaseException], ...]:
    """redis-py's connection and timeout errors, without importing redis: when it was never
    imported (no ``JOTKIT_REDIS_URL``, or the ``[redis]`` extra is absent) none can occur."""
    module = sys.modules.get("redis.exceptions")
    if module is None:
        return ()
    return (module.ConnectionError, module.TimeoutError)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) means a backend is unreachable or overloaded."""
    redis_errors = _redis_errors()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis_errors):
            return True
        if isinstance(current, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        if isinstance(current, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (OSError, asyncio.TimeoutError)):
            return True
        state = _sqlstate(current)
        if state is not None and (
            state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES
        ):
            return True
        if type(current).__module__.startswith("asyncpg") and "Connection" in type(
            current
        ).__name__:
            return True
        orig = getattr(current, "orig", None)
        nxt = orig if isinstance(orig, BaseException) else None
        current = nxt or current.__cause__ or current.__context__
    return False
