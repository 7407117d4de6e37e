"""Structured audit events: one JSON object per log line, plus a Prometheus counter."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .clock import Clock
from .metrics import Metrics

__all__ = ["AUDIT_LOGGER", "AuditLog", "JsonLineFormatter", "configure_logging"]

AUDIT_LOGGER = "jotkit.server.audit"


class JsonLineFormatter(logging.Formatter):
    """Render records whose message is already JSON as is; wrap others in JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object per line."""
        message = record.getMessage()
        if message.startswith("{") and message.endswith("}"):
            return message
        return json.dumps(
            {"level": record.levelname.lower(), "logger": record.name, "message": message},
            separators=(",", ":"),
        )


class AuditLog:
    """Emits ``{"ts", "event", ...}`` lines on the ``jotkit.audit`` logger."""

    def __init__(
        self, clock: Clock, metrics: Metrics, logger: logging.Logger | None = None
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self.logger = logger or logging.getLogger(AUDIT_LOGGER)

    def event(self, event: str, **fields: Any) -> None:
        """Record one audit event (``login_ok``, ``token_rejected``, ...)."""
        self._metrics.auth_events.labels(event=event).inc()
        if event == "token_rejected":
            self._metrics.token_rejections.labels(reason=str(fields.get("reason"))).inc()
        if not self.logger.isEnabledFor(logging.INFO):
            return
        payload = {"ts": round(self._clock.now(), 3), "event": event}
        payload.update({k: v for k, v in fields.items() if v is not None})
        self.logger.info(json.dumps(payload, separators=(",", ":"), default=str))


def configure_logging(level: str) -> None:
    """Send the audit log and the service log to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    for name in (AUDIT_LOGGER, "jotkit.server"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
