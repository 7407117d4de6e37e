"""How ``jotkit serve`` runs the app under uvicorn: one place for the HTTP-level limits.

uvicorn's defaults suit a trusted network, not the open internet:

* ``--http auto`` picks httptools, which accepts header blocks of any size (a 32 MiB header
  line kept one core busy for seconds). h11 refuses a request whose head exceeds
  ``h11_max_incomplete_event_size`` as soon as its receive buffer passes it (uvicorn then
  answers 400 and closes the connection), so the service runs on h11 with
  :attr:`Settings.max_header_bytes`.
* uvicorn has no read timeout: ``timeout_keep_alive`` runs only between requests and is
  cancelled by the first byte of the next one, so a client that sends half a request and
  then idles (slowloris) holds its connection for ever. :func:`hardened_h11` adds two
  deadlines to uvicorn's own h11 protocol: the request head must be complete within
  :attr:`Settings.header_timeout` of its first byte (or of the connection), and the body
  within :attr:`Settings.body_timeout` of the head. Past a deadline the connection is closed.
* ``Server: uvicorn`` is not sent, and uvicorn's own ``X-Forwarded-For`` handling (which
  trusts 127.0.0.1 by default) is off: the app trusts exactly ``JOTKIT_TRUSTED_PROXIES``
  (see :func:`jotkit.server.app.create_app`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import Settings

__all__ = ["hardened_h11", "http_limits", "uvicorn_options"]


class _DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head and one for the body."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_phase: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the head deadline as soon as the client connects."""
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm("head")

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn, then move the deadline to the phase the request is in."""
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        """After a response uvicorn's keep-alive timer guards the idle connection."""
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _track(self) -> None:
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.timeout_keep_alive_task is not None:
                self._disarm()  # idle between requests: uvicorn's keep-alive timer applies
            else:
                self._arm("head")  # (part of) a request head has arrived
        elif state is h11.SEND_BODY:
            self._arm("body")
        else:
            self._disarm()

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
        self._deadline = None
        if self._deadline_phase == "body" and self.flow.read_paused:
            # The app, not the client, is slow to read the body: wait for it.
            self._deadline_phase = None
            self._arm("body")
            return
        self._deadline_phase = None
        self.logger.debug("closing a connection whose request did not arrive in time")
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def hardened_h11(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with read deadlines for the request head and body."""
    return type(
        "JotkitH11Protocol",
        (_DeadlineH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


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
        "http": hardened_h11(header_timeout, body_timeout),
        "h11_max_incomplete_event_size": max_header_bytes,
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
