"""ASGI entry point for process managers::

    uvicorn --factory jotkit.server.asgi:app --http jotkit.server.serving:HardenedHttpTools \
        --no-proxy-headers --no-server-header

(the three options give it the HTTP limits of ``jotkit serve``: see docs/deployment.md).

Each call builds one service from ``JOTKIT_*`` variables (and ``$JOTKIT_CONFIG``), so uvicorn's
``--workers N`` (or gunicorn with uvicorn workers) runs N independent instances; on PostgreSQL
+ Redis they share all state (see docs/deployment.md).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from .app import create_app
from .audit_log import configure_logging
from .settings import Settings

__all__ = ["app", "worker_app"]


def app() -> FastAPI:
    """A new service configured from the environment."""
    return create_app(Settings.from_env())


def worker_app() -> FastAPI:
    """One worker of ``jotkit serve --workers N`` (:mod:`.workers`): the parent's settings,
    and no demo banner (the parent printed it once)."""
    from .workers import SETTINGS_ENV

    settings = Settings.from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level)
    return create_app(settings, demo_user=False)
