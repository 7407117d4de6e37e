"""``jotkit serve --workers N``: several uvicorn worker processes on one machine.

uvicorn's supervisor binds the listening socket once and spawns N workers that accept on it
(it also restarts a worker that dies). Each worker is a complete service with its own caches,
argon2 pool and metrics; they agree through the database (and Redis when configured):

* **start-up, once**: the parent migrates the database, creates the first signing keys and, in
  demo mode, the demo user and its banner, before any worker starts. (The first key is also
  created atomically, :meth:`~.store.base.KeyStore.add_first`, for instances started apart.)
* **settings**: the parent resolves them (environment, ``--config``, command-line options) and
  hands them to the workers as JSON in their environment (:data:`SETTINGS_ENV`), so every
  worker runs with exactly the same settings.
* **revocations**: with Redis, the pub/sub bus reaches every worker within milliseconds. Without
  it the database journal is the only channel, so each worker re-reads it at least every
  :data:`MAX_SYNC_INTERVAL` seconds: a logout on one worker is enforced by all within that.
* **throttling and refresh rotation** live in the shared database (or Redis): a counter or a
  spent refresh token is the same for every worker.
* **argon2**: unless ``JOTKIT_ARGON2_WORKERS`` is set, the core count is split between the
  workers, so a login flood still hashes at most about one password per core.
* **metrics**: the workers write their counters to files in one directory (a temporary one the
  parent creates and removes, unless ``PROMETHEUS_MULTIPROC_DIR`` names one), so ``/metrics``
  on any worker answers for all of them (:mod:`.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

from .settings import Settings

__all__ = ["MAX_SYNC_INTERVAL", "SETTINGS_ENV", "serve_workers", "worker_settings"]

#: The environment variable that carries the parent's settings (JSON) to each worker.
SETTINGS_ENV = "JOTKIT__WORKER_SETTINGS"
#: Without Redis a worker re-reads the revocation journal at least this often (seconds).
MAX_SYNC_INTERVAL = 0.25


def worker_settings(settings: Settings) -> Settings:
    """The settings every worker of ``settings.workers`` runs with (see the module doc)."""
    changes: dict[str, object] = {}
    if settings.argon2_workers is None:
        changes["argon2_workers"] = max(1, (os.cpu_count() or 1) // settings.workers)
    if not settings.redis_url and settings.revocation_sync_interval > MAX_SYNC_INTERVAL:
        changes["revocation_sync_interval"] = MAX_SYNC_INTERVAL
    return settings.replace(**changes) if changes else settings


async def _prepare(settings: Settings) -> None:
    """Run the service's start-up once (migrations, first keys, demo user and banner)."""
    from .app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass


def serve_workers(settings: Settings) -> None:
    """Prepare the database once, then run ``settings.workers`` uvicorn workers until stopped."""
    import uvicorn

    from .metrics import MULTIPROCESS_ENV
    from .serving import uvicorn_options

    asyncio.run(_prepare(settings))
    os.environ[SETTINGS_ENV] = worker_settings(settings).to_json()
    with contextlib.ExitStack() as stack:
        if not os.environ.get(MULTIPROCESS_ENV):  # the workers' metric files, fresh per run
            os.environ[MULTIPROCESS_ENV] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="jotkit-metrics-")
            )
            stack.callback(os.environ.pop, MULTIPROCESS_ENV, None)
        uvicorn.run(
            "jotkit.server.asgi:worker_app",
            factory=True,
            **uvicorn_options(settings, workers=settings.workers),
        )
