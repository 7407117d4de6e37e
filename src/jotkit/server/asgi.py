"""ASGI entry point for process managers::

    uvicorn --factory jotkit.server.asgi:app --http jotkit.server.serving:HardenedHttpTools \
        --no-proxy-headers --no-server-header

(the three options give it the HTTP limits of ``jotkit serve``: see docs/deployment.md).

Each call builds one service from ``JOTKIT_*`` variables (and ``$JOTKIT_CONFIG``), so uvicorn's
``--workers N`` (or gunicorn with uvicorn workers) runs N independent instances; on PostgreSQL
+ Redis they share all state (see docs/deployment.md).
"""

from __future__ import annotations

from fastapi import FastAPI

from .app import create_app
from .settings import Settings

__all__ = ["app"]


def app() -> FastAPI:
    """A new service configured from the environment."""
    return create_app(Settings.from_env())
