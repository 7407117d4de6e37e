"""Subscribe to the issuer's revocation feed and refuse revoked tokens locally.

``jotkit serve`` publishes every revocation at ``GET /oauth/revocations`` as Server-Sent
Events (HTML Living Standard §9.2): deny-listed ``jti`` values and users' revoked-before
times. A :class:`RevocationSubscriber` keeps one connection open in a background thread and
applies each event to a :class:`DenySet`, so :class:`~jotkit.integrations.TokenVerifier`
refuses a logged-out token on the next request with no network call of its own.

The parts are split the sans-IO way: :class:`SseParser` turns lines into events and
:class:`DenySet` turns events into state and answers "is this token revoked?"; both are
plain objects over data. :class:`RevocationSubscriber` is the thin shell that owns the
``httpx.Client`` connection, the reconnects (with ``Last-Event-ID``, so nothing is missed
across a disconnect or a restart of the service) and the health figures.

While the feed is unreachable the deny-set is stale. ``fail_open=True`` (the default) keeps
accepting tokens that are not known to be revoked: a revoked token then lives at most until
its ``exp``; every such acceptance is counted (:attr:`RevocationStatus.unsynced_accepts`)
and the outage is logged once on ``jotkit.integrations``. ``fail_open=False`` refuses every
token with 503 until the feed is back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jotkit.jwks_client import _check_url

if TYPE_CHECKING:
    import httpx

__all__ = ["DenySet", "RevocationStatus", "RevocationSubscriber", "SseEvent", "SseParser"]

_log = logging.getLogger("jotkit.integrations")

#: The server sends a comment line at least this often; a connection silent for
#: ``_READ_TIMEOUT`` seconds is taken for dead and replaced.
_READ_TIMEOUT = 15.0
_MAX_LINE = 1 << 20  # an event's data line never gets near this: a larger one is junk
_BACKOFF_MIN, _BACKOFF_MAX = 0.05, 2.0


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event (HTML Living Standard §9.2.6): ``event`` type, ``data``, ``id``
    (the last event id seen on the stream, or None when none was sent yet)."""

    event: str
    data: str
    id: str | None


@dataclass(slots=True)
class SseParser:
    """The ``text/event-stream`` line parser of HTML Living Standard §9.2.6 (the fields
    ``event``, ``data``, ``id`` and ``retry``; comments and other fields are ignored)."""

    last_id: str | None = None
    retry: float | None = None  # seconds, from a ``retry:`` field
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SseEvent | None:
        """Take one line (without its line ending); return the event a blank line
        dispatches, if any."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000.0
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class DenySet:
    """The local copy of the feed: revoked ``jti`` values (until their ``exp``) and per-user
    revoked-before times. Written by one thread, read by any: every read is one dict lookup
    and a reset swaps whole dicts, so readers take no lock."""

    def __init__(self) -> None:
        self.denied: dict[str, float] = {}  # jti -> exp
        self.markers: dict[str, tuple[float, float]] = {}  # sub -> (revoked before, until)
        self.cursor: str | None = None  # the id of the last event applied
        self.version = 0  # bumped by every change (callers' memos compare it)
        self.synced = False  # the feed said ``ready`` on the current connection

    def reason(self, claims: Mapping[str, Any]) -> str | None:
        """``"revoked"`` when the token's ``jti`` is deny-listed or its ``iat`` predates its
        subject's revoked-before time (a missing ``iat`` then counts as before); else None."""
        jti = claims.get("jti")
        if isinstance(jti, str) and jti in self.denied:
            return "revoked"
        sub = claims.get("sub")
        marker = self.markers.get(sub) if isinstance(sub, str) else None
        if marker is not None:
            iat = _number(claims.get("iat"))
            if iat is None or iat < marker[0]:
                return "revoked"
        return None

    def apply(self, event: SseEvent, now: float) -> None:
        """Apply one feed event: ``revocations`` adds entries, ``reset`` drops everything,
        ``ready`` marks the set current. Malformed entries are skipped."""
        if event.event == "reset":
            self.denied, self.markers = {}, {}
            self.cursor = None
            self.version += 1
            return
        if event.event == "ready":
            self.synced = True
            self.cursor = event.id
            return
        if event.event != "revocations":
            return
        try:
            doc = json.loads(event.data)
        except (ValueError, RecursionError):
            return
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            return
        for entry in entries:
            if isinstance(entry, dict):
                self._add(entry)
        self.cursor = event.id
        self.version += 1

    def _add(self, entry: dict[str, Any]) -> None:
        exp = _number(entry.get("exp"))
        if exp is None:
            return
        jti, sub = entry.get("jti"), entry.get("sub")
        if isinstance(jti, str):
            self.denied[jti] = max(exp, self.denied.get(jti, exp))
        elif isinstance(sub, str):
            before = _number(entry.get("before"))
            if before is None:
                return
            old = self.markers.get(sub)
            if old is not None:
                before, exp = max(before, old[0]), max(exp, old[1])
            self.markers[sub] = (before, exp)

    def prune(self, now: float) -> None:
        """Forget entries whose tokens have all expired (a minute's margin for leeway)."""
        horizon = now - 60.0
        self.denied = {j: e for j, e in self.denied.items() if e > horizon}
        self.markers = {s: m for s, m in self.markers.items() if m[1] > horizon}


@dataclass(frozen=True, slots=True)
class RevocationStatus:
    """Health of a subscription: ``synced`` (connected and caught up), ``sync_age``
    (seconds since the feed last confirmed the set was current; None before the first
    time), counts of ``denied`` jti values and user ``markers``, the ``cursor``,
    ``disconnects`` and ``unsynced_accepts`` (tokens accepted while not synced, fail open)."""

    synced: bool
    sync_age: float | None
    denied: int
    markers: int
    cursor: str | None
    disconnects: int
    unsynced_accepts: int


class RevocationSubscriber:
    """Keep a :class:`DenySet` current from a revocation feed URL (a background thread).

    ``auth`` is ``(client_id, client_secret)``, sent with HTTP Basic (RFC 6749 §2.3.1);
    ``client`` is an ``httpx.Client`` to use instead of an own one (its auth, TLS and proxy
    settings apply; it is not closed here). Only ``https`` URLs are accepted, except on
    loopback or with ``allow_insecure_http=True``: the request carries the client secret.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        client: httpx.Client | None = None,
        fail_open: bool = True,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Validate the arguments; :meth:`start` opens the subscription."""
        _check_url(url, allow_insecure_http)
        if auth is not None and (len(auth) != 2 or not all(isinstance(a, str) for a in auth)):
            raise TypeError("revocations_auth must be a (client_id, client_secret) pair")
        self.url = url
        self.fail_open = fail_open
        self.deny_set = DenySet()
        self._auth = auth
        self._client = client
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._last_ok: float | None = None  # monotonic time the feed last confirmed currency
        self._ready = threading.Event()
        self._outage_logged = False
        self._caught_up = 0  # connections that reached ``ready``
        self.disconnects = 0
        self.unsynced_accepts = 0

    # -------------------------------------------------------------- lifecycle
    def start(self) -> RevocationSubscriber:
        """Start the background thread (idempotent); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="jotkit-revocations", daemon=True
            )
            self._thread.start()
        return self

    def wait_synced(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for the first catch-up; True once synced."""
        return self._ready.wait(timeout)

    def close(self) -> None:
        """Stop the thread and drop the connection."""
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception as exc:  # another thread's stream: best effort
                _log.debug("closing the revocation feed: %s", exc)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    # ------------------------------------------------------------- decisions
    def check(self, claims: Mapping[str, Any]) -> str | None:
        """``"revoked"``, ``"unavailable"`` (not synced and failing closed) or None."""
        deny = self.deny_set
        reason = deny.reason(claims)
        if reason is not None:
            return reason
        if deny.synced:
            return None
        if not self.fail_open:
            return "unavailable"
        self.unsynced_accepts += 1
        if not self._outage_logged:
            self._outage_logged = True
            _log.warning(
                "revocation feed %s is not synced: accepting tokens without revocation checks "
                "until it is (fail open; each token still expires at its exp)", self.url,
            )
        return None

    def status(self) -> RevocationStatus:
        """The subscription's health figures (see :class:`RevocationStatus`)."""
        deny = self.deny_set
        last = self._last_ok
        age = None if last is None else max(0.0, time.monotonic() - last)
        return RevocationStatus(
            synced=deny.synced,
            sync_age=age,
            denied=len(deny.denied),
            markers=len(deny.markers),
            cursor=deny.cursor,
            disconnects=self.disconnects,
            unsynced_accepts=self.unsynced_accepts,
        )

    # ------------------------------------------------------------ the shell
    def _run(self) -> None:
        import httpx

        own = self._client is None
        client = self._client or httpx.Client(trust_env=False, follow_redirects=False)
        backoff = _BACKOFF_MIN
        try:
            while not self._stop.is_set():
                caught_up = self._caught_up
                try:
                    self._listen(client)
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    self._lost(f"{type(exc).__name__}: {exc}")
                except Exception as exc:  # never let the subscription die
                    self._lost(f"unexpected {type(exc).__name__}: {exc}")
                else:
                    self._lost("the server closed the stream")
                if self._caught_up != caught_up:  # this connection worked: retry at once
                    backoff = _BACKOFF_MIN
                if self._stop.wait(backoff):
                    break
                backoff = min(_BACKOFF_MAX, backoff * 2)
        finally:
            if own:
                client.close()

    def _lost(self, why: str) -> None:
        deny = self.deny_set
        if deny.synced:
            self.disconnects += 1
            level = logging.DEBUG if self._stop.is_set() else logging.WARNING
            _log.log(level, "revocation feed %s disconnected: %s", self.url, why)
        else:
            _log.debug("revocation feed %s unavailable: %s", self.url, why)
        deny.synced = False

    def _listen(self, client: httpx.Client) -> None:
        import httpx

        deny = self.deny_set
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if deny.cursor is not None:
            headers["Last-Event-ID"] = deny.cursor
        timeout = httpx.Timeout(5.0, read=_READ_TIMEOUT)
        with client.stream(
            "GET", self.url, headers=headers, auth=self._auth, timeout=timeout
        ) as response:
            self._response = response
            try:
                if response.status_code == 400:
                    deny.cursor = None  # a cursor the server does not take: start over
                if response.status_code != 200:
                    raise httpx.HTTPStatusError(
                        f"HTTP {response.status_code}", request=response.request,
                        response=response,
                    )
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    raise ValueError(f"not an event stream: {kind!r}")
                self._consume(response)
            finally:
                self._response = None

    def _consume(self, response: httpx.Response) -> None:
        deny = self.deny_set
        parser = SseParser(last_id=deny.cursor)
        pruned = time.monotonic()
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if len(line) > _MAX_LINE:
                raise ValueError("an event-stream line is too long")
            if deny.synced:
                self._last_ok = time.monotonic()  # data or heartbeat: the stream is alive
            event = parser.feed(line)
            if event is None:
                continue
            deny.apply(event, self._clock())
            if event.event == "ready":
                self._caught_up += 1
                self._last_ok = time.monotonic()
                self._outage_logged = False
                if not self._ready.is_set():
                    self._ready.set()
                else:
                    _log.info("revocation feed %s caught up", self.url)
            if time.monotonic() - pruned > 60.0:
                pruned = time.monotonic()
                deny.prune(self._clock())
