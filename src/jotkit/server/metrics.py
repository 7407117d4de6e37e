"""Prometheus metrics on a per-app :class:`CollectorRegistry` (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """The service's counters; one instance per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "jotkit_http_requests",
            "HTTP responses by status class.",
            ["status"],
            registry=self.registry,
        )
        self.auth_events = Counter(
            "jotkit_auth_events",
            "Audit events (login_ok, login_failed, refresh, reuse_detected, logout, ...).",
            ["event"],
            registry=self.registry,
        )
        self.token_rejections = Counter(
            "jotkit_token_rejections",
            "Rejected access tokens by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.token_cache = Counter(
            "jotkit_token_cache",
            "Verified-token cache lookups.",
            ["result"],
            registry=self.registry,
        )
        self.denylist_size = Gauge(
            "jotkit_denylist_entries",
            "Deny-listed access tokens held in the in-process cache.",
            registry=self.registry,
        )
        self.login_shed = Counter(
            "jotkit_login_shed",
            "Logins refused with 503 because the argon2 pool and its queue were full.",
            registry=self.registry,
        )
        self.backchannel_logout = Counter(
            "jotkit_backchannel_logout",
            "Back-channel logout token deliveries by result (delivered, retry, failed).",
            ["result"],
            registry=self.registry,
        )
        self._status_children = {
            cls: self.http_requests.labels(status=cls) for cls in ("2xx", "3xx", "4xx", "5xx")
        }
        self.cache_hit = self.token_cache.labels(result="hit")
        self.cache_miss = self.token_cache.labels(result="miss")

    def count_status(self, status: int) -> None:
        """Count one response by status class."""
        child = self._status_children.get(f"{status // 100}xx")
        if child is not None:
            child.inc()

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4)."""
        return bytes(generate_latest(self.registry))
