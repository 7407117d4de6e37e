"""A login flood must not starve token checks (issue 10 §2): argon2 runs on a bounded pool
(``JOTKIT_ARGON2_WORKERS``) with a bounded queue (``JOTKIT_ARGON2_QUEUE``); beyond it logins are
shed with 503 ``temporarily_unavailable`` + ``Retry-After``, counted in ``/metrics``, and a shed
attempt gives its login-throttle reservation back. Real HTTP on every backend."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jotkit.server import FrozenClock
from jotkit.server.audit_log import AUDIT_LOGGER
from jotkit.server.sessions import AuthService
from server.harness import METRICS_TOKEN, PASSWORD, START, Server, make_settings

pytestmark = [pytest.mark.postgres]

OWNER = "owner@example.com"
WORKERS, QUEUE = 1, 2
FLOOD = 7  # logins sent at once: WORKERS + QUEUE admitted, the rest shed
SHED_DELAY = 0.2  # a shed answer is held this long (JOTKIT_LOGIN_SHED_DELAY, 1 s by default)


@pytest.fixture
def flood_server(backend_settings: dict[str, Any], tmp_path: Path) -> Iterator[Server]:
    """One argon2 worker, a queue of two; the address limit is the flood + 1: every flood
    login passes the throttle, and only a flood whose shed attempts were given back leaves
    room for as many logins again as were shed."""
    settings = make_settings(
        tmp_path / "data",
        **backend_settings,
        argon2_workers=WORKERS,
        argon2_queue=QUEUE,
        login_ip_limit=FLOOD + 1,
        login_pair_limit=FLOOD + 5,
        login_shed_delay=SHED_DELAY,
    )
    srv = Server(settings, FrozenClock(START)).start()
    try:
        yield srv
    finally:
        srv.stop()


class GatedVerify:
    """Test hook around ``svc.passwords.verify``: every password check blocks until the gate
    opens (a hash as slow as the test wants, without sleeps), and the most checks running at
    once is recorded."""

    def __init__(self, svc: AuthService) -> None:
        self.gate = threading.Event()
        self.running = 0
        self.most_running = 0
        self.calls = 0
        self._lock = threading.Lock()
        self._inner = svc.passwords.verify
        svc.passwords.verify = self  # type: ignore[method-assign]

    def __call__(self, stored: str | None, password: str) -> tuple[bool, bool]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if not self.gate.wait(timeout=60):  # never hang the suite
                raise RuntimeError("gate never opened")
            return self._inner(stored, password)
        finally:
            with self._lock:
                self.running -= 1


class ReservationBarrier:
    """Test hook around ``svc.throttle.reserve``: no reservation returns before ``n`` have been
    made, so every login passes the early pool check (the pool is still empty) and the sheds
    happen after the throttle reservation, the path that must give it back."""

    def __init__(self, svc: AuthService, n: int) -> None:
        self.n = n
        self.made = 0
        self.all_made = asyncio.Event()
        self._inner = svc.throttle.reserve
        svc.throttle.reserve = self  # type: ignore[method-assign]

    async def __call__(self, email: str, client_ip: str, now: float) -> Any:
        attempt = await self._inner(email, client_ip, now)
        self.made += 1
        if self.made >= self.n:
            self.all_made.set()
        await asyncio.wait_for(self.all_made.wait(), timeout=60)
        return attempt


async def _flood(srv: Server, hook: GatedVerify, n: int) -> list[httpx.Response]:
    """Send ``n`` correct logins at once; open the gate only after every login the pool
    cannot admit has been answered (while the gate is shut, nothing else can finish)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
        body = {"email": OWNER, "password": PASSWORD}
        pending = {asyncio.create_task(client.post("/auth/login", json=body)) for _ in range(n)}
        early: list[httpx.Response] = []
        try:
            while len(early) < n - (WORKERS + QUEUE):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                early += [t.result() for t in done]
        finally:
            hook.gate.set()
        late = [await t for t in pending]
    assert all(r.status_code == 503 for r in early), [r.status_code for r in early]
    return early + late


def _shed_total(srv: Server) -> float:
    text = httpx.get(
        f"{srv.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    line = next(ln for ln in text.splitlines() if ln.startswith("jotkit_login_shed_total "))
    return float(line.split()[1])


def test_login_flood_is_shed_not_queued_without_bound(flood_server: Server) -> None:
    """7 concurrent correct logins with 1 worker and a queue of 2: exactly 3 get 200 and 4 get
    503 temporarily_unavailable with Retry-After, nothing else; no more than one hash runs at
    once; the sheds are counted in /metrics."""
    srv = flood_server
    srv.add_user(OWNER)
    hook = GatedVerify(srv.service)
    responses = asyncio.run(_flood(srv, hook, FLOOD))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (WORKERS + QUEUE) + [503] * (FLOOD - WORKERS - QUEUE)
    for r in responses:
        if r.status_code == 503:
            assert r.json()["error"] == "temporarily_unavailable"
            assert int(r.headers["Retry-After"]) >= 1
        else:
            assert r.json()["access_token"]
    assert hook.calls == WORKERS + QUEUE
    assert hook.most_running <= WORKERS
    assert _shed_total(srv) == FLOOD - WORKERS - QUEUE


def test_login_flood_shed_attempts_do_not_consume_the_login_throttle(
    flood_server: Server,
) -> None:
    """The address limit is 8 and 7 logins were sent, 4 of them shed: only the 3 admitted ones
    count, so 5 more logins still work and the 6th is refused (before the fix the shed ones
    kept their reservations and the second login after the flood got 429)."""
    srv = flood_server
    srv.add_user(OWNER)
    hook = GatedVerify(srv.service)
    ReservationBarrier(srv.service, FLOOD)
    asyncio.run(_flood(srv, hook, FLOOD))
    assert _shed_total(srv) == FLOOD - WORKERS - QUEUE
    body = {"email": OWNER, "password": PASSWORD}
    with srv.client() as client:
        after = [client.post("/auth/login", json=body).status_code for _ in range(6)]
    assert after == [200] * 5 + [429]  # the limit itself still holds


def test_login_flood_with_unknown_emails_goes_through_the_same_pool(
    flood_server: Server,
) -> None:
    """Unknown emails burn the dummy hash on the same bounded pool: same admission, same
    shedding (timing and capacity do not tell whether an email exists)."""
    srv = flood_server
    hook = GatedVerify(srv.service)

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=FLOOD, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
            pending = {
                asyncio.create_task(
                    client.post(
                        "/auth/login",
                        json={"email": f"nobody{i}@example.com", "password": PASSWORD},
                    )
                )
                for i in range(FLOOD)
            }
            early: list[httpx.Response] = []
            try:
                while len(early) < FLOOD - WORKERS - QUEUE:
                    done, pending = await asyncio.wait(
                        pending, return_when=asyncio.FIRST_COMPLETED
                    )
                    early += [t.result() for t in done]
            finally:
                hook.gate.set()
            return early + [await t for t in pending]

    statuses = sorted(r.status_code for r in asyncio.run(flood()))
    assert statuses == [401] * (WORKERS + QUEUE) + [503] * (FLOOD - WORKERS - QUEUE)
    assert hook.calls == WORKERS + QUEUE
    assert hook.most_running <= WORKERS


def test_login_flood_sheds_before_routing_and_audits_sheds_in_summary(
    flood_server: Server,
) -> None:
    """While the pool and queue are full, a login is answered 503 before the route runs: a
    body the route would refuse (not JSON) gets the shed answer too, with the security
    headers and Retry-After, and counts in /metrics. The audit log gets one ``login_shed``
    line per second, not one per shed (a flood must not flood the log)."""
    srv = flood_server
    srv.add_user(OWNER)
    hook = GatedVerify(srv.service)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    audit_logger = logging.getLogger(AUDIT_LOGGER)
    handler, level = Collect(), audit_logger.level
    audit_logger.addHandler(handler)
    audit_logger.setLevel(logging.INFO)

    async def fill_then_shed() -> tuple[list[httpx.Response], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=WORKERS + QUEUE + 1)
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
            body = {"email": OWNER, "password": PASSWORD}
            admitted = [
                asyncio.create_task(client.post("/auth/login", json=body))
                for _ in range(WORKERS + QUEUE)
            ]
            try:
                while srv.service.hash_pool.in_flight < WORKERS + QUEUE:
                    await asyncio.sleep(0.01)
                shed = []
                for _ in range(4):  # 4 x 0.2 s: within one audit interval
                    started = time.monotonic()
                    shed.append(
                        await client.post(
                            "/auth/login",
                            content=b"\x00not json",
                            headers={"Content-Type": "application/json"},
                        )
                    )
                    assert time.monotonic() - started >= SHED_DELAY  # held, then answered
            finally:
                hook.gate.set()
            return shed, [await t for t in admitted]

    try:
        shed, admitted = asyncio.run(fill_then_shed())
    finally:
        audit_logger.removeHandler(handler)
        audit_logger.setLevel(level)
    assert [r.status_code for r in admitted] == [200] * (WORKERS + QUEUE)
    for r in shed:
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "temporarily_unavailable"
        assert r.headers["Retry-After"] == "1"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "no-store"
    assert _shed_total(srv) == 4
    events = [json.loads(line) for line in lines if '"login_shed"' in line]
    assert len(events) == 1, events  # four sheds within one second: one summary line
    assert events[0]["count"] == 1 and events[0]["ip"] == "127.0.0.1"


def test_login_flood_held_answers_are_bounded(backend_settings: dict[str, Any], tmp_path: Path) -> None:
    """Holding shed answers must not become a way to pin memory: with room for one held
    answer, a second concurrent shed is answered at once (both 503)."""
    settings = make_settings(
        tmp_path / "data",
        **backend_settings,
        argon2_workers=1,
        argon2_queue=0,
        login_shed_delay=3.0,
        login_shed_held=1,
    )
    srv = Server(settings, FrozenClock(START)).start()
    try:
        srv.add_user(OWNER)
        hook = GatedVerify(srv.service)
        body = {"email": OWNER, "password": PASSWORD}

        async def run() -> list[tuple[int, float]]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
                admitted = asyncio.create_task(client.post("/auth/login", json=body))
                try:
                    while not srv.service.hash_pool.full:
                        await asyncio.sleep(0.01)

                    async def timed() -> tuple[int, float]:
                        started = time.monotonic()
                        r = await client.post("/auth/login", json=body)
                        return r.status_code, time.monotonic() - started

                    held = asyncio.create_task(timed())
                    while _held(srv) < 1:
                        await asyncio.sleep(0.01)
                    at_once = await timed()
                    return [await held, at_once]
                finally:
                    hook.gate.set()
                    assert (await admitted).status_code == 200

        (held_status, held_for), (once_status, once_for) = asyncio.run(run())
    finally:
        srv.stop()
    assert held_status == once_status == 503
    assert held_for >= 3.0
    assert once_for < 2.0  # not held: the one slot was taken


def _held(srv: Server) -> int:
    """Shed answers the server is holding now (the middleware's counter)."""
    app = srv.app.middleware_stack
    while not hasattr(app, "held"):
        app = app.app
    return int(app.held)
