"""The jotkit auth service (``jotkit serve``): FastAPI + SQLAlchemy async + Alembic.

Build one with :func:`create_app` from :class:`Settings`; see docs/service.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clock import Clock, FrozenClock, SystemClock
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["Clock", "FrozenClock", "Settings", "SettingsError", "SystemClock", "create_app"]


def __getattr__(name: str) -> Any:
    """Import the FastAPI app factory on first use (the CLI starts faster without it)."""
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'jotkit.server' has no attribute {name!r}")
