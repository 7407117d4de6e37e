"""Django in the test process: settings configured once, each "app" as settings overrides.

Django keeps one settings object per process, so a test app is the ``urlpatterns`` and
settings it needs, applied with ``override_settings`` around each request; no project
on disk is required.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

BASE_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]


def configure() -> None:
    """Configure Django for this process (idempotent)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="jotkit-tests-not-secret",
            ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
            INSTALLED_APPS=BASE_APPS,
            DATABASES={},
            MIDDLEWARE=[],
            ROOT_URLCONF=__name__,
            USE_TZ=True,
            LOGGING_CONFIG=None,
        )
        django.setup()


urlpatterns: list[Any] = []  # the default URLconf: tests override ROOT_URLCONF


@dataclass
class DjangoApp:
    """An app's URLconf and settings, applied for the duration of each request."""

    urlpatterns: list[Any]
    settings: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def active(self) -> Iterator[None]:
        from types import ModuleType

        from django.test import override_settings

        apps = self.settings.get("INSTALLED_APPS", BASE_APPS)
        assert set(apps) <= set(BASE_APPS), apps  # the app registry is per process
        overrides = {k: v for k, v in self.settings.items() if k != "INSTALLED_APPS"}
        urlconf = ModuleType("jotkit_test_urls")  # hashable, unlike a namespace or a list
        urlconf.urlpatterns = self.urlpatterns  # type: ignore[attr-defined]
        overrides["ROOT_URLCONF"] = urlconf
        with override_settings(**overrides):
            yield
