"""How ``jotkit serve`` runs the app under uvicorn: one place for the HTTP-level limits.

uvicorn's defaults suit a trusted network, not the open internet:

* its httptools protocol buffers a request head of any size (one 32 MiB header line kept
  the event loop busy for seconds, stalling every other client);
* it has no read timeout: ``timeout_keep_alive`` runs only between requests and is cancelled
  by the first byte of the next one, so a client that sends half a request and idles
  (slowloris) holds its connection for ever.

:func:`hardened_httptools` subclasses uvicorn's own httptools protocol (the fast one that
``--http auto`` picks) with three limits: a request head that is still incomplete after
``max_header_bytes`` is answered 400 and the connection closed (uvicorn's own parser-error
path); the head must be complete within ``header_timeout`` of its first byte (or of the
connection); the body within ``body_timeout`` of the head. Past a deadline the connection is
closed. The app itself answers a complete head over the limit with 431 (``_Edge``).

uvicorn's h11 protocol has a head limit (``h11_max_incomplete_event_size``) but no deadline
either, and served ``/auth/me`` at about half the rate of httptools here, so it is not used.
``Server: uvicorn`` is not sent, and uvicorn's own ``X-Forwarded-For`` handling (which trusts
127.0.0.1 by default) is off: the app trusts exactly ``JOTKIT_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import asyncio
import copyreg
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Settings

__all__ = [
    "STREAM_STOP",
    "HardenedHttpTools",
    "hardened_httptools",
    "http_limits",
    "uvicorn_options",
]

#: Request-state key of an ``asyncio.Event`` set when the server shuts down (see
#: ``_LimitedHttpTools.shutdown``): streaming responses end when it is set.
STREAM_STOP = "jotkit_stream_stop"


class _ProtocolClass(type):
    """The metaclass of the limited protocols. ``jotkit serve --workers N`` hands uvicorn's
    configuration, protocol class included, to spawned worker processes by pickling it; a class
    made by :func:`hardened_httptools` has no importable name, so it pickles as the call that
    makes it (see the ``copyreg`` registration below)."""

    max_head: int
    header_timeout: float
    body_timeout: float


def _rebuild(cls: _ProtocolClass) -> tuple[Any, tuple[int, float, float]]:
    return hardened_httptools, (cls.max_head, cls.header_timeout, cls.body_timeout)


copyreg.pickle(_ProtocolClass, _rebuild)


class _LimitedHttpTools(HttpToolsProtocol, metaclass=_ProtocolClass):
    """uvicorn's httptools protocol with a bounded request head and read deadlines."""

    max_head: int = 32768
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for (the rest of) a request head
        self._in_body = False  # head done, body still arriving
        self._head_bytes = 0
        self._boundary = False  # a head or a message ended inside the current chunk
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_phase: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the head deadline as soon as the client connects."""
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm("head")

    def on_headers_complete(self) -> None:
        """The head is complete: its byte count and deadline end, the body's begins."""
        self._in_head, self._in_body, self._boundary = False, True, True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The body is complete; the next bytes start a new head."""
        self._in_head, self._in_body, self._boundary = True, False, True
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn; refuse a head that outgrows the limit; move the deadline."""
        self._boundary = False
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm()
            return
        if self._in_head and not self._boundary:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head:
                self._refuse_head()
                return
        self._track()

    def on_response_complete(self) -> None:
        """After a response uvicorn's keep-alive timer guards the idle connection."""
        super().on_response_complete()
        self._track()

    def shutdown(self) -> None:
        """Graceful shutdown: besides uvicorn's own steps, end a long-lived response that
        asked for it (the revocation feed's event stream puts an ``asyncio.Event`` in its
        request state under ``STREAM_STOP``), so the server does not wait on it for ever."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            state = cycle.scope.get("state")
            stop = state.get(STREAM_STOP) if isinstance(state, dict) else None
            if isinstance(stop, asyncio.Event):
                stop.set()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _refuse_head(self) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier request is still being answered
        else:
            self.send_400_response("Request header fields too large.")

    def _track(self) -> None:
        if self.transport.is_closing():
            self._disarm()
        elif self._in_body:
            self._arm("body")
        elif self.timeout_keep_alive_task is not None:
            self._disarm()  # idle between requests: uvicorn's keep-alive timer applies
        elif self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._arm("head")  # (part of) a request head has arrived
        else:
            self._disarm()  # the app is answering

    def _arm(self, phase: str) -> None:
        if self._deadline_phase == phase:
            return  # a deadline runs from the start of its phase; data does not extend it
        self._disarm()
        seconds = self.header_timeout if phase == "head" else self.body_timeout
        self._deadline_phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._deadline_phase = None

    def _expired(self) -> None:
        phase, self._deadline, self._deadline_phase = self._deadline_phase, None, None
        if phase == "body" and self.flow.read_paused:
            self._arm("body")  # the app, not the client, is slow to read the body
            return
        self.logger.debug("closing a connection whose request did not arrive in time")
        self.transport.close()


@functools.lru_cache(maxsize=16)
def hardened_httptools(
    max_head: int, header_timeout: float, body_timeout: float
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class with a head-size limit and read deadlines (one class
    per set of limits; it survives pickling into a worker process)."""
    return _ProtocolClass(  # type: ignore[return-value]  # a subclass of _LimitedHttpTools
        "JotkitHttpToolsProtocol",
        (_LimitedHttpTools,),
        {"max_head": max_head, "header_timeout": header_timeout, "body_timeout": body_timeout},
    )


#: The protocol with the default limits, for the uvicorn command line:
#: ``uvicorn --http jotkit.server.serving:HardenedHttpTools ...``.
HardenedHttpTools = hardened_httptools(32768, 10.0, 30.0)


def http_limits(
    *,
    max_header_bytes: int = 32768,
    header_timeout: float = 10.0,
    body_timeout: float = 30.0,
    keep_alive_timeout: int = 5,
) -> dict[str, Any]:
    """uvicorn keyword arguments that bound what one client can hold: the size of a request
    head, the time to send it and its body, idle keep-alive, no ``Server`` header and no
    uvicorn-side ``X-Forwarded-For`` trust. Any uvicorn-served ASGI app can use them
    (``uvicorn.run(app, **http_limits())``, as examples/orders_api.py does)."""
    return {
        "http": hardened_httptools(max_header_bytes, header_timeout, body_timeout),
        "timeout_keep_alive": keep_alive_timeout,
        "server_header": False,
        "proxy_headers": False,
    }


def uvicorn_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` as ``jotkit serve`` uses
    them (the test harness and the service benchmark use them too)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        **http_limits(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keep_alive_timeout=settings.keep_alive_timeout,
        ),
    }
    options.update(overrides)
    return options
