"""What one entry of the service's bounded in-memory tables costs (issue 10 §5, the soak).

In one process, no HTTP: an :class:`~jotkit.server.sessions.AuthService` on a temporary
SQLite store rotates a refresh token ``--tokens`` times (each rotation signs an ES256 access
token and caches it verified, as ``POST /auth/refresh`` does), then deny-lists ``--tokens``
jtis as logouts do. ``tracemalloc`` measures the Python heap before and after each step;
the bytes per entry times ``JOTKIT_TOKEN_CACHE_SIZE`` (and times the revocations of one
``JOTKIT_ACCESS_TTL``) is the memory those tables settle at (docs/service.md, memory).

    .venv/bin/python benchmarks/soak_memory.py [--tokens 2000]

Prints the figures; writes nothing. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import tempfile
import tracemalloc

from jotkit.server import Settings, SystemClock
from jotkit.server.audit_log import AuditLog
from jotkit.server.metrics import Metrics
from jotkit.server.sessions import AuthService, ClientInfo
from jotkit.server.store.sql import SqlStore

PASSWORD = "soak-password-123"


def _heap(before: tracemalloc.Snapshot) -> int:
    gc.collect()
    after = tracemalloc.take_snapshot()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


async def _measure(tokens: int) -> None:
    env = {"JOTKIT_DATA_DIR": tempfile.mkdtemp(prefix="jotkit-soak-memory-"),
           "JOTKIT_TOKEN_CACHE_SIZE": str(tokens + 100)}  # nothing evicted while measuring
    default = Settings.from_env({}).token_cache_size
    settings = Settings.from_env(env)
    clock, metrics = SystemClock(), Metrics()
    store = SqlStore(settings.effective_database_url)
    svc = AuthService(settings, store, clock, metrics, AuditLog(clock, metrics))
    await svc.start()
    try:
        await svc.add_user("soak@example.com", PASSWORD)
        who = ClientInfo("127.0.0.1", "python-httpx/0.28")
        issued = await svc.login("soak@example.com", PASSWORD, who)
        for _ in range(50):  # warm the store's statement caches and the connections
            issued = await svc.refresh(issued.refresh_token, who)
        cached = len(svc._verified)
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        for _ in range(tokens):
            issued = await svc.refresh(issued.refresh_token, who)
        grown, added = _heap(before), len(svc._verified) - cached
        print(f"verified-token cache: {added} entries, {grown / added:.0f} bytes each "
              f"(access token of {len(issued.access_token)} characters); full at the default "
              f"JOTKIT_TOKEN_CACHE_SIZE={default}: {grown / added * default / 1e6:.1f} MB")
        exp = clock.now() + settings.access_ttl
        before = tracemalloc.take_snapshot()
        for i in range(tokens):  # a jti as the service makes them; each its own exp float
            svc.revocations.deny([(secrets.token_urlsafe(16), exp + i)])
        grown = _heap(before)
        print(f"deny-list: {tokens} entries, {grown / tokens:.0f} bytes each (kept until the "
              f"token expires, JOTKIT_ACCESS_TTL={settings.access_ttl:g} s)")
        tracemalloc.stop()
    finally:
        await store.close()
        svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(_measure(args.tokens))


if __name__ == "__main__":
    main()
