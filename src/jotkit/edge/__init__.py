"""At the edge of a deployment: ``jotkit forward-auth``, the verifier behind a reverse proxy.

Install ``jotkit[forward-auth]``. :func:`load_config` reads the flags and a TOML file into a
:class:`ForwardAuthConfig`; :class:`ForwardAuthApp` is the ASGI app; :func:`serve` runs it
under uvicorn with the service's HTTP limits. See docs/gateways.md.
"""

from __future__ import annotations

from typing import Any

from ._config import (
    ForwardAuthConfig,
    ForwardAuthConfigError,
    PathRule,
    load_config,
    normalize_origin,
    normalize_path,
)

__all__ = [
    "ForwardAuthConfig",
    "ForwardAuthConfigError",
    "PathRule",
    "load_config",
    "normalize_origin",
    "normalize_path",
    "serve",
    "uvicorn_options",
]

#: A request head larger than this is refused by the HTTP protocol (400) before the app runs.
#: It is above nginx's default request-head limit (4 x 8 KiB) plus the headers it adds.
MAX_HEADER_BYTES = 65536


def uvicorn_options(host: str, port: int, log_level: str = "info") -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments of forward-auth (the benchmark serves its bare
    endpoint with the same): the hardened httptools protocol of ``jotkit serve`` with a
    64 KiB head limit, able to send a prepared response head (:mod:`._protocol`), no
    WebSocket upgrades, no access log, lifespan on."""
    from jotkit.server.serving import http_limits

    from ._protocol import edge_httptools

    limits = http_limits(max_header_bytes=MAX_HEADER_BYTES)
    limits["http"] = edge_httptools(MAX_HEADER_BYTES)
    return {
        "host": host,
        "port": port,
        "log_level": log_level.lower(),
        "access_log": False,
        "ws": "none",
        "lifespan": "on",
        **limits,
    }


def serve(
    config: ForwardAuthConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 9091,
    metrics_port: int | None = None,
    log_level: str = "info",
) -> None:
    """Run forward-auth under uvicorn until interrupted (blocks).

    Uses the hardened httptools protocol of ``jotkit serve`` (bounded request head, read
    deadlines), no WebSocket upgrades and no uvicorn access log (the app logs its
    decisions as JSON lines). ``metrics_port`` serves Prometheus metrics on its own
    listener, never on the auth port, where every path is an auth check.
    """
    import logging

    import uvicorn

    from jotkit.server.audit_log import JsonLineFormatter

    from .forward_auth import ForwardAuthApp

    app = ForwardAuthApp(config)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("jotkit.edge")
    logger.handlers[:] = [handler]
    logger.setLevel(log_level.upper())
    logger.propagate = False
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=host, registry=app.registry)
    uvicorn.run(app, **uvicorn_options(host, port, log_level))
