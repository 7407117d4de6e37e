"""forward-auth's HTTP protocol: ``jotkit serve``'s hardened httptools protocol that can also
write a response head prepared once, for answers that repeat.

uvicorn checks and lower-cases every response header of every response (RFC 9110 §5.1,
§5.5), about 8,000 instructions per header here: for forward-auth's five identity headers
that was most of the gap to a bare endpoint. An answer forward-auth reuses (an allow
decision, see :mod:`jotkit.edge.forward_auth`) is the same bytes each time, so its head is
checked and encoded once, into a :class:`PreparedHead`, and sent with the ASGI start message
under the key :data:`PREPARED_HEAD`. This protocol writes those bytes after the status line
and the server's own headers (``Date``); any other ASGI server ignores the unknown key and
sends ``headers`` as usual, so the message stays a valid ``http.response.start``. The
prepared path is taken only for a plain keep-alive answer (not ``HEAD``, no access log,
the transport writable); every other case goes through uvicorn unchanged.

The bare endpoint of ``make bench-forward-auth`` runs on this same protocol.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Generator, Mapping
from typing import Any, cast

from uvicorn.protocols.http import httptools_impl as _httptools_impl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from jotkit.server.serving import hardened_httptools

from ._head import PREPARED_HEAD, PreparedHead, prepare_head

__all__ = ["PREPARED_HEAD", "PreparedHead", "edge_httptools", "prepare_head"]

# the server's default headers (Date, once a second: a new list each time) and their
# encoding, checked like a prepared head's
_defaults: list[Any] = [None, b""]


def _encoded_defaults(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    if headers is _defaults[0]:
        return cast(bytes, _defaults[1])
    try:
        block = prepare_head(200, [(b"content-length", b"0"), *headers]).block
    except ValueError:
        return None  # not ours to judge: uvicorn's own path handles it
    encoded = block.partition(b"\r\n")[2]
    _defaults[:] = [headers, encoded]
    return encoded


class _Done:
    """An awaitable that is already complete (reusable, no coroutine frame)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, None]:
        return cast(Generator[Any, Any, None], iter(()))  # ends at once: the result is None


_DONE = _Done()


class _PreparedCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing a :class:`PreparedHead` when given one."""

    def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
        """ASGI ``send``: uvicorn's own, except for a start message with a prepared head,
        written at once. A plain function returning the awaitable (uvicorn's coroutine, or
        :data:`_DONE`): no extra coroutine frame per message."""
        head = cast(Mapping[str, Any], message).get(PREPARED_HEAD)
        if (
            head is None
            or self.response_started
            or self.disconnected
            or self.flow.write_paused
            or not self.keep_alive
            or self.access_log
            or self.scope["method"] == "HEAD"
            or type(head) is not PreparedHead
        ):
            return cast(Awaitable[None], super().send(message))
        defaults = _encoded_defaults(self.default_headers)
        if defaults is None:
            return cast(Awaitable[None], super().send(message))
        self.response_started = True
        self.waiting_for_100_continue = False
        self.expected_content_length = head.content_length
        self.chunked_encoding = False
        self.transport.write(head.status_line + defaults + head.block + b"\r\n")
        return _DONE


@functools.lru_cache(maxsize=4)
def edge_httptools(max_head: int, header_timeout: float = 10.0,
                   body_timeout: float = 30.0) -> type[Any]:
    """The hardened httptools protocol class (:func:`jotkit.server.serving.hardened_httptools`)
    whose responses may carry a :class:`PreparedHead`."""
    base: Any = hardened_httptools(max_head, header_timeout, body_timeout)

    class JotkitEdgeHttpToolsProtocol(base):  # type: ignore[misc]
        def on_headers_complete(self) -> None:
            # uvicorn makes the request's cycle from its module's RequestResponseCycle: ours
            # while this call runs (one event loop thread; any other uvicorn server in the
            # process getting one would see no difference without a prepared head)
            setattr(_httptools_impl, "RequestResponseCycle", _PreparedCycle)  # noqa: B010
            try:
                super().on_headers_complete()
            finally:
                setattr(_httptools_impl, "RequestResponseCycle", RequestResponseCycle)  # noqa: B010

    return JotkitEdgeHttpToolsProtocol
