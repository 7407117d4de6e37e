"""``settings.JOTKIT`` → one :class:`~jotkit.integrations.TokenVerifier` per settings value.

Each key of ``settings.JOTKIT`` is the upper-case name of a ``TokenVerifier`` keyword
(``ISSUER`` → ``issuer=``), except the few that describe where the keys come from
(``JWKS_URL``, ``JWKS_*``), ``INTROSPECTION`` (a dict for :class:`Introspection`),
``COOKIE_MODE`` and ``VERIFIER``. A key this module does not know is refused with
:class:`~django.core.exceptions.ImproperlyConfigured`, so a typo never silently
weakens verification.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from jotkit.integrations._verifier import DEFAULT_COOKIE_NAME, Introspection, TokenVerifier

__all__ = ["SETTINGS_NAME", "build_verifier", "get_verifier", "middleware_required"]

SETTINGS_NAME = "JOTKIT"

# settings key -> TokenVerifier keyword, passed through as given
_PASS_THROUGH: dict[str, str] = {
    "ISSUER": "issuer",
    "AUDIENCE": "audience",
    "ALGORITHMS": "algorithms",
    "TYP": "typ",
    "LEEWAY": "leeway",
    "REQUIRE": "require",
    "SCOPES": "scopes",
    "ROLES": "roles",
    "REALM": "realm",
    "CACHE_SIZE": "cache_size",
    "CACHE_TTL": "cache_ttl",
    # the service's revocation feed (docs/resource-servers.md, "The revocation feed")
    "REVOCATIONS": "revocations",
    "REVOCATIONS_FAIL_OPEN": "revocations_fail_open",
    "REVOCATIONS_ALLOW_INSECURE_HTTP": "revocations_allow_insecure_http",
}
# settings key -> JWKSClient keyword
_JWKS: dict[str, str] = {
    "JWKS_COOLDOWN": "min_refetch_interval",
    "JWKS_MAX_AGE": "max_age",
    "JWKS_TIMEOUT": "timeout",
    "JWKS_ALLOW_INSECURE_HTTP": "allow_insecure_http",
}
# INTROSPECTION sub-key -> Introspection field
_INTROSPECTION: dict[str, str] = {
    "URL": "url",
    "CLIENT_ID": "client_id",
    "CLIENT_SECRET": "client_secret",
    "CACHE_TTL": "cache_ttl",
    "TIMEOUT": "timeout",
    "FAIL_OPEN": "fail_open",
    "ALLOW_INSECURE_HTTP": "allow_insecure_http",
}
_OWN = frozenset({"JWKS_URL", "INTROSPECTION", "COOKIE_MODE", "COOKIE_NAME", "VERIFIER",
                  "REQUIRED", "REVOCATIONS_AUTH"})
_KNOWN = frozenset(_PASS_THROUGH) | frozenset(_JWKS) | _OWN


def _improper(message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"settings.{SETTINGS_NAME}: {message}")


def _config() -> Mapping[str, Any]:
    value = getattr(settings, SETTINGS_NAME, None)
    if value is None:
        raise _improper("is not set; give at least JWKS_URL, ISSUER and AUDIENCE")
    if not isinstance(value, Mapping):
        raise _improper(f"must be a dict, not {type(value).__name__}")
    return value


def _introspection(value: Any) -> Introspection:
    if isinstance(value, Introspection):
        return value
    if not isinstance(value, Mapping):
        raise _improper("INTROSPECTION must be a dict (URL, CLIENT_ID, CLIENT_SECRET...)")
    unknown = sorted(set(value) - set(_INTROSPECTION))
    if unknown:
        raise _improper(f"unknown INTROSPECTION keys {unknown}; known: {sorted(_INTROSPECTION)}")
    missing = [k for k in ("URL", "CLIENT_ID", "CLIENT_SECRET") if not value.get(k)]
    if missing:
        raise _improper(f"INTROSPECTION needs {', '.join(missing)}")
    try:
        return Introspection(**{_INTROSPECTION[k]: v for k, v in value.items()})
    except (TypeError, ValueError) as exc:
        raise _improper(f"INTROSPECTION: {exc}") from None


def _verifier_from_setting(value: Any) -> TokenVerifier:
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise _improper(f"VERIFIER: {exc}") from None
    if callable(value) and not isinstance(value, TokenVerifier):
        value = value()
    if not isinstance(value, TokenVerifier):
        raise _improper("VERIFIER must be a TokenVerifier, a factory or its dotted path")
    return value


_LISTS = ("ALGORITHMS", "REQUIRE", "SCOPES", "ROLES")


def _check_lists(config: Mapping[str, Any]) -> None:
    for name in _LISTS:
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _improper(f"{name} must be a list of strings, not {value!r}")


def _kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TokenVerifier`` keywords for ``config`` (everything but the key)."""
    _check_lists(config)
    kwargs = {_PASS_THROUGH[k]: v for k, v in config.items() if k in _PASS_THROUGH}
    auth = config.get("REVOCATIONS_AUTH")
    if auth is not None:
        if not (isinstance(auth, list | tuple) and len(auth) == 2
                and all(isinstance(part, str) and part for part in auth)):
            raise _improper("REVOCATIONS_AUTH must be a (client_id, client_secret) pair")
        kwargs["revocations_auth"] = (auth[0], auth[1])
    cookie = config.get("COOKIE_NAME")
    if cookie is None and config.get("COOKIE_MODE"):
        cookie = DEFAULT_COOKIE_NAME
    if cookie is not None:
        kwargs["cookie_name"] = cookie
    if config.get("INTROSPECTION") is not None:
        kwargs["introspection"] = _introspection(config["INTROSPECTION"])
    return kwargs


def build_verifier(config: Mapping[str, Any]) -> TokenVerifier:
    """Build the :class:`TokenVerifier` a ``JOTKIT`` settings dict describes.

    Either ``VERIFIER`` (a ``TokenVerifier``, a zero-argument factory, or the dotted path
    of either), or ``JWKS_URL`` with ``ISSUER`` and ``AUDIENCE`` (RFC 9068 §4: a resource
    server checks both) and any other known key.
    """
    unknown = sorted(set(config) - _KNOWN)
    if unknown:
        raise _improper(f"unknown keys {unknown}; known: {sorted(_KNOWN)}")
    if "VERIFIER" in config:
        others = sorted(set(config) - {"VERIFIER", "REQUIRED"})
        if others:
            raise _improper(f"VERIFIER excludes the other verifier keys {others}")
        return _verifier_from_setting(config["VERIFIER"])
    missing = [k for k in ("JWKS_URL", "ISSUER", "AUDIENCE") if not config.get(k)]
    if missing:
        raise _improper(f"{', '.join(missing)} required (or VERIFIER)")
    from jotkit.jwks_client import JWKSClient  # needs httpx, part of jotkit[django]

    _check_lists(config)
    jwks_options = {_JWKS[k]: v for k, v in config.items() if k in _JWKS}
    if "ALGORITHMS" in config:
        jwks_options["algorithms"] = config["ALGORITHMS"]
    try:
        jwks = JWKSClient(config["JWKS_URL"], **jwks_options)
        return TokenVerifier(jwks, **_kwargs(config))
    except (TypeError, ValueError) as exc:
        raise _improper(str(exc)) from None


@dataclass(frozen=True, slots=True)
class _Built:
    source: Any  # the settings.JOTKIT object this verifier was built from
    verifier: TokenVerifier


class _VerifierCache:
    """The verifier of the current ``settings.JOTKIT`` value, rebuilt when it changes.

    Keyed on the identity of the settings object: ``override_settings(JOTKIT=...)`` in
    tests gets its own verifier, and a process keeps one JWKS cache and one token cache.
    """

    def __init__(self, build: Callable[[Mapping[str, Any]], TokenVerifier]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._built: _Built | None = None

    def get(self) -> TokenVerifier:
        config = _config()
        built = self._built
        if built is not None and built.source is config:
            return built.verifier
        with self._lock:
            built = self._built
            if built is None or built.source is not config:
                built = _Built(config, self._build(config))
                self._built = built
            return built.verifier


_cache = _VerifierCache(build_verifier)


def get_verifier() -> TokenVerifier:
    """The process's :class:`TokenVerifier` for ``settings.JOTKIT`` (built on first use).

    Rebuilt when ``settings.JOTKIT`` is replaced (``override_settings``); a dict mutated
    in place is not noticed.
    """
    return _cache.get()


def middleware_required() -> bool:
    """``JOTKIT["REQUIRED"]``: the middleware refuses requests that carry no token."""
    return bool(_config().get("REQUIRED", False))

