"""Prometheus metrics on a per-app :class:`CollectorRegistry` (no global registry).

Under ``jotkit serve --workers N`` every worker writes its counters and gauges to files in
one directory (prometheus_client's multiprocess mode, :data:`MULTIPROCESS_ENV`), and
``/metrics`` on any worker answers for all of them: counters summed over the workers (those
that have exited included, so totals never go back), gauges one series per live worker
(``pid`` label). Values computed on demand (:meth:`Metrics.function_gauge`) are the answering
worker's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROCESS_ENV", "Metrics"]

#: prometheus_client's own variable: the directory of the workers' metric files. It must be
#: set before prometheus_client is first imported in a worker (``jotkit serve --workers N``
#: sets it in the parent, whose workers are fresh interpreters).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _FunctionGauges(Collector):
    """Gauges whose value is read when scraped (open streams, a backlog): per process."""

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in self.gauges.items():
            yield GaugeMetricFamily(name, documentation, value=read())


class Metrics:
    """The service's counters; one instance per app.

    ``multiprocess_dir`` (by default :data:`MULTIPROCESS_ENV` from the environment) makes
    :meth:`render` answer for every process writing there (see the module doc)."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir or os.environ.get(MULTIPROCESS_ENV) or None
        self._functions = _FunctionGauges()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self._functions)
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
            multiprocess_mode="liveall",
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

    def function_gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read by calling ``read`` at each scrape (this process's value)."""
        self._functions.gauges[name] = (documentation, read)

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4), for every worker in multiprocess mode."""
        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        registry.register(self._functions)
        return bytes(generate_latest(registry))

    def close(self) -> None:
        """This process stops: drop its live gauges from the shared files (multiprocess)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
