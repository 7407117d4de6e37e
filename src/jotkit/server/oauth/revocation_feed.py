"""``GET /oauth/revocations``: the revocation feed that resource servers subscribe to.

A resource server that verifies tokens on its own (through the JWKS) learns here, within
moments, every revocation the service makes: the ``jti`` of each access token a logout,
a refresh-token reuse (RFC 9700 §4.14.2), an RFC 7009 revocation or a withdrawn grant
deny-lists, and each user's revoked-before time (logout-all, ``jotkit users disable``).
A session (``sid``) is revoked by deny-listing every access token of its refresh family,
which the store returns atomically with the revocation, so the feed needs no ``sid`` rows.

**Who may read it.** The caller authenticates as an OAuth client, as at the introspection
endpoint (RFC 6749 §2.3.1): one of ``JOTKIT_INTROSPECTION_CLIENTS`` (resource servers that
may already introspect every token), or a registered confidential client holding the
``revocations:read`` scope (``jotkit clients add rs --grant client_credentials --scope
revocations:read``). Others get 401 ``invalid_client`` or 403 ``insufficient_scope``.

**Delivery: Server-Sent Events** (HTML Living Standard §9.2, ``text/event-stream``):

* ``event: revocations`` with ``id:`` = the cursor and ``data: {"entries": [...]}``, each
  entry ``{"jti", "exp"}`` or ``{"sub", "before", "exp"}`` (refuse the user's tokens with
  ``iat < before``; the entry matters until ``exp``);
* ``event: ready`` once the backlog after the cursor has been sent (the reader is current);
* ``event: reset`` when the cursor does not come from this journal (a replaced database):
  the reader must drop what it holds; the whole live state follows;
* a comment line every ``heartbeat`` seconds, so a reader notices a dead connection.

A reader reconnects with ``Last-Event-ID`` (the last ``id:`` it saw) and gets what it
missed: the cursor is the journal's ``seq`` (:mod:`jotkit.server.store.feed`), which is
durable, so nothing is lost across a restart of the service. A malformed ``Last-Event-ID``
is 400 ``invalid_request``. Rows are pruned only once their tokens have expired, so an old
cursor loses nothing a reader needs.

One :class:`FeedHub` per app polls the journal's high-water mark every ``poll_interval``
seconds while someone listens (one or two index reads) and wakes the streams, which then
read the new rows from their own cursors. With Redis, the revocation bus also wakes them on
each pub/sub message (any instance's revocation), so they need not wait for the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from ..deps import service
from ..errors import ServiceError
from ..routes.oauth import authenticate_client
from ..serving import STREAM_STOP
from ..sessions import AuthService
from ..store.feed import FeedEntry, SqlRevocationFeed

__all__ = ["FEED_SCOPE", "FeedHub", "format_event", "parse_cursor", "router"]

#: The scope a registered client needs to read the feed.
FEED_SCOPE = "revocations:read"
_CURSOR = re.compile(r"[0-9]{1,18}")
_PAGE = 1000  # journal rows per read and entries per event
_log = logging.getLogger("jotkit.server")


def parse_cursor(value: str | None) -> int:
    """The cursor of a ``Last-Event-ID`` header (0 when absent); 400 ``invalid_request``
    for anything but the decimal sequence number this feed sends as ``id:``."""
    if value is None:
        return 0
    text = value.strip()
    if not _CURSOR.fullmatch(text):
        raise ServiceError(
            "invalid_request",
            "Last-Event-ID must be an id this feed sent (a decimal sequence number).",
        )
    return int(text)


def format_event(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One Server-Sent Event (HTML Living Standard §9.2.6): ``id``, ``event``, ``data``."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


def _entry(entry: FeedEntry) -> dict[str, Any]:
    if entry.kind == "jti":
        return {"jti": entry.value, "exp": entry.exp}
    return {"sub": entry.value, "before": entry.at, "exp": entry.exp}


class FeedHub:
    """Wakes every open feed stream of one app when the journal changes.

    One polling task runs while at least one stream is open; it compares the journal's
    high-water mark (:meth:`SqlRevocationFeed.high_water`) every ``poll_interval`` seconds.
    """

    def __init__(
        self,
        svc: AuthService,
        *,
        poll_interval: float = 0.05,
        heartbeat: float = 5.0,
    ) -> None:
        self.svc = svc
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat
        self.streams = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        svc.metrics.function_gauge(
            "jotkit_revocation_feed_streams",
            "Open revocation feed streams (/oauth/revocations).",
            lambda: float(self.streams),
        )

    @property
    def feed(self) -> SqlRevocationFeed:
        """The journal reader of the service's store."""
        return self.svc.store.feed

    @property
    def changed(self) -> asyncio.Event:
        """An event set at the next change of the journal (take it before reading)."""
        return self._event

    def wake(self) -> None:
        """Wake every stream to read the journal (the poller does this on a change; the
        Redis revocation bus on every message, which arrives after the journal commit)."""
        old, self._event = self._event, asyncio.Event()
        old.set()

    def open(self) -> None:
        """A stream starts: make sure the poller runs."""
        self.streams += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="jotkit-revocation-feed")

    def close_stream(self) -> None:
        """A stream ended (the poller stops once none is left)."""
        self.streams -= 1

    async def aclose(self) -> None:
        """Stop polling (app shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        last: tuple[int, int] | None = None
        while self.streams > 0:
            mark: tuple[int, int] | None
            try:
                mark = await self.feed.high_water()
            except Exception as exc:  # database hiccup: streams keep their cursors
                if last is not None:
                    _log.warning("revocation feed: journal unreadable: %s", exc)
                mark = last = None
            if mark != last:
                last = mark
                self.wake()
            await asyncio.sleep(self.poll_interval)


class _Stream:
    """One reader's position: its cursor and, where ``seq`` may commit out of order, the
    recently sent ``seq`` values (so the re-read window is not sent twice)."""

    def __init__(self, feed: SqlRevocationFeed, cursor: int) -> None:
        self.feed = feed
        self.cursor = cursor
        self.lookback = feed.lookback
        self.sent: set[int] = set()

    async def drain(self, now: float) -> list[FeedEntry]:
        """Every live row after the cursor not sent yet, in ``seq`` order."""
        out: list[FeedEntry] = []
        after = max(0, self.cursor - self.lookback)
        while True:
            rows = await self.feed.read(after, now, limit=_PAGE)
            out.extend(r for r in rows if r.seq not in self.sent)
            if len(rows) < _PAGE:
                break
            after = rows[-1].seq
        if out:
            self.cursor = max(self.cursor, out[-1].seq, max(r.seq for r in out))
        if self.lookback:
            floor = self.cursor - self.lookback
            self.sent = {s for s in self.sent if s > floor}
            self.sent.update(r.seq for r in out if r.seq > floor)
        return out

    def events(self, entries: list[FeedEntry]) -> list[bytes]:
        """``revocations`` events of at most ``_PAGE`` entries; ``id`` is the cursor once
        the last of them is sent (earlier ones carry their own last ``seq``)."""
        out: list[bytes] = []
        for start in range(0, len(entries), _PAGE):
            chunk = entries[start : start + _PAGE]
            last = start + _PAGE >= len(entries)
            event_id = self.cursor if last else max(r.seq for r in chunk)
            out.append(format_event("revocations", {"entries": [_entry(e) for e in chunk]},
                                    event_id))
        return out


async def _events(
    hub: FeedHub, stream: _Stream, reset: bool, stop: asyncio.Event
) -> AsyncIterator[bytes]:
    clock = hub.svc.clock
    hub.open()
    try:
        yield b"retry: 1000\n\n"  # reconnect after one second (HTML §9.2.6)
        if reset:
            yield format_event("reset", {"reason": "unknown_cursor"})
        changed = hub.changed
        entries = await stream.drain(clock.now())
        for chunk in stream.events(entries):
            yield chunk
        yield format_event("ready", {"cursor": stream.cursor}, stream.cursor)
        while not stop.is_set():
            waiter = asyncio.ensure_future(changed.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {waiter, stopper}, timeout=hub.heartbeat,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
                stopper.cancel()
            if stop.is_set():
                break
            if not done:
                yield b": keep-alive\n\n"
                continue
            changed = hub.changed
            entries = await stream.drain(clock.now())
            for chunk in stream.events(entries):
                yield chunk
    finally:
        hub.close_stream()


async def _feed_reader(request: Request, client_id: Annotated[str, Depends(authenticate_client)]
                       ) -> str:  # fmt: skip
    """The authenticated client, if it may read the feed (403 ``insufficient_scope``)."""
    client = request.state.oauth_client
    if client is not None and (client.auth_method == "none" or FEED_SCOPE not in client.scopes):
        raise ServiceError(
            "insufficient_scope",
            f"This client may not read the revocation feed (it needs the {FEED_SCOPE} scope).",
        )
    return client_id


router = APIRouter(prefix="/oauth", tags=["oauth"])


@router.get(
    "/revocations",
    summary="Revocation feed for resource servers (Server-Sent Events)",
    openapi_extra={"security": [{"clientBasic": []}]},
    response_class=StreamingResponse,
    responses={
        200: {"description": "A text/event-stream of revocations", "content": {
            "text/event-stream": {"schema": {"type": "string"}}}},
        400: {"description": "Malformed Last-Event-ID"},
        401: {"description": "Client authentication failed"},
        403: {"description": "The client may not read the feed"},
    },
)
async def revocation_feed(
    request: Request,
    _client: Annotated[str, Depends(_feed_reader)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Stream revoked ``jti`` values and users' revoked-before times from the cursor in
    ``Last-Event-ID`` (everything still relevant when absent); see the module docstring."""
    cursor = parse_cursor(last_event_id)
    svc = service(request)
    hub: FeedHub = request.app.state.revocation_feed
    reset = cursor > 0 and cursor > await hub.feed.sequence_top()
    stream = _Stream(hub.feed, 0 if reset else cursor)
    stop = asyncio.Event()
    setattr(request.state, STREAM_STOP, stop)  # set by a graceful server shutdown
    svc.audit.event("revocation_feed_opened", client_id=_client, cursor=cursor)
    return StreamingResponse(
        _events(hub, stream, reset, stop),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
