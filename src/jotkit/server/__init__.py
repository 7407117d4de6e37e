"""The jotkit auth service (``jotkit serve``): FastAPI + SQLAlchemy async + Alembic.

Build one with :func:`create_app` from :class:`Settings`; see docs/service.md.
"""

from __future__ import annotations

from .app import create_app
from .clock import Clock, FrozenClock, SystemClock
from .settings import Settings, SettingsError

__all__ = ["Clock", "FrozenClock", "Settings", "SettingsError", "SystemClock", "create_app"]
