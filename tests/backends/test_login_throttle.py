"""Login throttling on every backend (SQLite, PostgreSQL, PostgreSQL + Redis): attempts are
reserved atomically before the password check (issue 9.2), and the per-(account, address)
limit, backoff and account ceiling of docs/service.md (issue 9.10, OWASP ASVS 2.2.1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jotkit.server import FrozenClock
from jotkit.server.audit_log import AuditLog
from jotkit.server.errors import ServiceError
from jotkit.server.metrics import Metrics
from jotkit.server.sessions import AuthService, ClientInfo
from jotkit.server.store.factory import build_store
from server.harness import (  # tests/server/harness.py (tests/ is on sys.path under pytest)
    START,
    Server,
    make_settings,
)

from .util import PASSWORD

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

OWNER = "owner@example.com"


class CountingVerify:
    """Wraps ``svc.passwords.verify`` and counts the password checks (argon2 runs)."""

    def __init__(self, svc: AuthService) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        self._inner = svc.passwords.verify
        svc.passwords.verify = self  # type: ignore[method-assign]

    def __call__(self, stored: str | None, password: str) -> tuple[bool, bool]:
        with self._lock:
            self.calls += 1
        return self._inner(stored, password)


@pytest.fixture
async def make_service(
    backend_settings: dict[str, Any], tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_service(**settings)`` -> a started AuthService on the backend under test,
    with a frozen clock (``svc.clock``)."""
    started: list[AuthService] = []

    async def make(**overrides: Any) -> AuthService:
        settings = make_settings(tmp_path / "data", **backend_settings, **overrides)
        clock = FrozenClock(START)
        metrics = Metrics()
        svc = AuthService(
            settings, build_store(settings, clock.now), clock, metrics, AuditLog(clock, metrics)
        )
        await svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        await svc.store.close()


@pytest.fixture
def http_server(backend_settings: dict[str, Any], tmp_path: Path) -> Iterator[Server]:
    """The service over real HTTP (uvicorn in a thread) on the backend under test."""
    settings = make_settings(tmp_path / "data", **backend_settings)
    srv = Server(settings, FrozenClock(START)).start()
    try:
        yield srv
    finally:
        srv.stop()


async def _login(svc: AuthService, ip: str, password: str = "wrong-password") -> str:
    """``"ok"``, ``"invalid_credentials"`` or ``"rate_limited:<Retry-After>"``."""
    try:
        await svc.login(OWNER, password, ClientInfo(ip, "tests"))
    except ServiceError as exc:
        if exc.code == "rate_limited":
            return f"rate_limited:{exc.headers['Retry-After']}"
        return exc.code
    return "ok"


def _retry_after(outcome: str) -> int:
    kind, _, seconds = outcome.partition(":")
    assert kind == "rate_limited", outcome
    return int(seconds)


# -- 9.2: the throttle cannot be raced --------------------------------------------------------
def test_parallel_wrong_passwords_from_one_address_cannot_outrun_the_throttle(
    http_server: Server,
) -> None:
    """30 concurrent wrong-password logins over real HTTP from one address: at most the
    (account, address) limit reach argon2; the rest get 429 with Retry-After."""
    srv = http_server
    srv.add_user(OWNER)
    counter = CountingVerify(srv.service)
    limit = srv.settings.login_pair_limit

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=30, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
            body = {"email": OWNER, "password": "wrong-password"}
            return list(
                await asyncio.gather(*(client.post("/auth/login", json=body) for _ in range(30)))
            )

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert counter.calls <= limit
    assert statuses.count(401) == counter.calls
    assert statuses.count(429) == 30 - counter.calls
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"] == "rate_limited"
            assert 1 <= int(r.headers["Retry-After"]) <= srv.settings.login_pair_window


async def test_parallel_wrong_passwords_from_30_addresses_stop_at_the_account_ceiling(
    make_service: Callable[..., Any],
) -> None:
    """30 concurrent wrong-password logins for one account from 30 addresses: at most the
    account ceiling reach argon2, also when two instances share the store."""
    first = await make_service(login_account_limit=5)
    second = await make_service(login_account_limit=5)
    await first.add_user(OWNER, PASSWORD)
    counters = [CountingVerify(first), CountingVerify(second)]
    outcomes = await asyncio.gather(
        *(_login(first if i % 2 else second, f"203.0.113.{i}") for i in range(30))
    )
    checked = sum(c.calls for c in counters)
    assert checked <= 5
    assert outcomes.count("invalid_credentials") == checked
    assert sum(o.startswith("rate_limited:") for o in outcomes) == 30 - checked
    assert all(1 <= _retry_after(o) <= 3600 for o in outcomes if o.startswith("rate_limited"))


# -- 9.10: lockout scheme -------------------------------------------------------------------
async def test_strangers_wrong_passwords_do_not_lock_the_owner_out(
    make_service: Callable[..., Any],
) -> None:
    """A stranger's failures from other addresses (enough to hit their own limits) leave the
    owner's login from a fresh address working."""
    svc = await make_service()
    await svc.add_user(OWNER, PASSWORD)
    for ip in ("198.51.100.1", "198.51.100.2"):
        outcomes = [await _login(svc, ip) for _ in range(svc.settings.login_pair_limit + 1)]
        assert outcomes[:-1] == ["invalid_credentials"] * svc.settings.login_pair_limit
        assert outcomes[-1].startswith("rate_limited:")
    assert await _login(svc, "192.0.2.7", PASSWORD) == "ok"


async def test_pair_limit_locks_only_that_account_from_that_address(
    make_service: Callable[..., Any],
) -> None:
    svc = await make_service(login_pair_limit=3, login_pair_window=120)
    await svc.add_user(OWNER, PASSWORD)
    await svc.add_user("other@example.com", PASSWORD)
    attacker = "198.51.100.9"
    assert [await _login(svc, attacker) for _ in range(3)] == ["invalid_credentials"] * 3
    locked = await _login(svc, attacker, PASSWORD)  # even the right password
    assert 1 <= _retry_after(locked) <= 120
    # another account from the same address, and the same account elsewhere, still work
    await svc.login("other@example.com", PASSWORD, ClientInfo(attacker, "tests"))
    assert await _login(svc, "192.0.2.1", PASSWORD) == "ok"
    svc.clock.advance(121)
    assert await _login(svc, attacker, PASSWORD) == "ok"


async def test_distributed_guessing_hits_the_account_ceiling(
    make_service: Callable[..., Any],
) -> None:
    svc = await make_service(login_account_limit=8, login_account_window=600)
    await svc.add_user(OWNER, PASSWORD)
    outcomes = [await _login(svc, f"198.51.100.{i}") for i in range(8)]
    assert outcomes == ["invalid_credentials"] * 8
    refused = await _login(svc, "192.0.2.1", PASSWORD)  # the ceiling applies to everyone
    assert 1 <= _retry_after(refused) <= 600
    svc.clock.advance(601)
    assert await _login(svc, "192.0.2.1", PASSWORD) == "ok"


async def test_repeated_lockouts_from_one_address_back_off_exponentially(
    make_service: Callable[..., Any],
) -> None:
    """Each lockout of an (account, address) pair doubles its window, up to the maximum."""
    svc = await make_service(
        login_pair_limit=2, login_pair_window=60, login_backoff_max=200, login_account_limit=1000
    )
    await svc.add_user(OWNER, PASSWORD)
    attacker = "198.51.100.20"
    waits = []
    for _ in range(4):
        assert [await _login(svc, attacker) for _ in range(2)] == ["invalid_credentials"] * 2
        wait = _retry_after(await _login(svc, attacker))
        waits.append(wait)
        svc.clock.advance(wait - 1)
        assert (await _login(svc, attacker)).startswith("rate_limited:")  # not yet
        svc.clock.advance(1)
    assert waits == [60, 120, 200, 200]


async def test_success_clears_that_address_and_gives_back_its_ceiling_slot(
    make_service: Callable[..., Any],
) -> None:
    """A successful login resets the (account, address) failures and lockout memory, and
    takes its own reservation back from the account ceiling (which keeps the failures)."""
    svc = await make_service(
        login_pair_limit=2, login_pair_window=60, login_backoff_max=1000, login_account_limit=7
    )
    await svc.add_user(OWNER, PASSWORD)
    home = "192.0.2.50"
    for expected_wait in (60, 120):  # two lockouts: the second one is already doubled
        assert [await _login(svc, home) for _ in range(2)] == ["invalid_credentials"] * 2
        assert _retry_after(await _login(svc, home, PASSWORD)) == expected_wait
        svc.clock.advance(expected_wait)
    assert await _login(svc, home, PASSWORD) == "ok"  # 4 failures on the ceiling so far
    # The lockout memory is gone: the next lockout lasts the base window again, not 240 s.
    assert [await _login(svc, home) for _ in range(2)] == ["invalid_credentials"] * 2
    assert _retry_after(await _login(svc, home)) == 60
    # 6 failures on the ceiling of 7 (the success was given back): one more fits, then 429.
    assert await _login(svc, "192.0.2.51") == "invalid_credentials"
    assert (await _login(svc, "192.0.2.52", PASSWORD)).startswith("rate_limited:")


async def test_rate_limiter_release_takes_back_one_hit(store: Any) -> None:
    rl = store.rate_limits
    t0 = 1_800_000_000.0
    assert (await rl.hit("k", 60, t0))[0] == 1
    assert (await rl.hit("k", 60, t0))[0] == 2
    await rl.release("k", 60, t0 + 1)
    assert (await rl.peek("k", 60, t0 + 1))[0] == 1
    await rl.release("k", 60, t0 + 1)
    await rl.release("k", 60, t0 + 1)  # never below zero
    assert (await rl.peek("k", 60, t0 + 1))[0] == 0
    await rl.release("gone", 60, t0)  # unknown key: nothing to do
    # a grown window keeps the counter: the same start, counted against the longer window
    assert (await rl.hit("g", 60, t0))[0] == 1
    count, reset = await rl.hit("g", 240, t0 + 100)
    assert (count, reset) == (2, 140.0)


async def test_sprayed_emails_do_not_grow_the_throttle_counters_forever(
    make_service: Callable[..., Any], backend: str
) -> None:
    """Every email and address tried leaves counters; the periodic purge deletes those whose
    windows are over (SQL), Redis expires them by TTL."""
    svc = await make_service()
    for i in range(20):
        with pytest.raises(ServiceError):
            await svc.login(f"nobody{i}@example.com", "guess-1234", ClientInfo("198.51.100.1", "t"))
    assert await svc.throttle.purge(svc.clock.now()) == 0  # all still relevant
    svc.clock.advance(svc.throttle.longest_window + 1)
    purged = await svc.purge()
    if backend == "postgres+redis":
        assert purged == 0
    else:
        assert purged >= 41  # 20 x (pair, account) + the address
        assert await svc.throttle.purge(svc.clock.now()) == 0
