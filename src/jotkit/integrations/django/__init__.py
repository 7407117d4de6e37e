"""Django integration: a middleware, a view decorator and DRF classes over one verifier.

::

    # settings.py
    JOTKIT = {
        "JWKS_URL": "https://auth.example.com/.well-known/jwks.json",
        "ISSUER": "https://auth.example.com",
        "AUDIENCE": "orders",
    }
    MIDDLEWARE = [..., "jotkit.integrations.django.JotkitMiddleware"]  # optional

    # views.py
    from jotkit.integrations.django import require_token

    @require_token(scopes=["orders:read"])
    def orders(request):
        return JsonResponse({"sub": request.auth["sub"]})

Django REST framework classes live in :mod:`jotkit.integrations.django.drf`. Every
check is made by the shared :class:`~jotkit.integrations.TokenVerifier`, so errors
(RFC 6750 §3) are answered exactly as in the FastAPI, Starlette and Flask adapters.
Install ``jotkit[django]``.
"""

from __future__ import annotations

from jotkit.integrations.django._core import (
    JotkitMiddleware,
    bearer_error_response,
    get_claims,
    require_token,
)
from jotkit.integrations.django._settings import SETTINGS_NAME, build_verifier, get_verifier

__all__ = [
    "SETTINGS_NAME",
    "JotkitMiddleware",
    "bearer_error_response",
    "build_verifier",
    "get_claims",
    "get_verifier",
    "require_token",
]
