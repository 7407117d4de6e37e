"""``jotkit serve --workers 2`` (issue 10 §3): several worker processes behind one port stay
coherent on SQLite and on PostgreSQL + Redis. Every response names its worker
(``JOTKIT_EXPOSE_WORKER_PID=1`` -> ``X-Jotkit-Worker: <pid>``), and each test holds one
keep-alive connection per worker, so it knows which process answered each request."""

from __future__ import annotations

import asyncio
import http.client
import json
import pickle
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jotkit.server.settings import Settings, SettingsError

from .util import (
    PASSWORD,
    ServiceProcess,
    add_user,
    create_database,
    drop_database,
    drop_redis_prefix,
    pg_url_for,
    service_env,
)

PROPAGATION_BOUND = 1.0  # issue 10 §3: a logout on one worker is enforced by all within 1 s
METRICS_TOKEN = "metrics-" + "m" * 24


class Worker:
    """One persistent HTTP connection, pinned to whichever worker accepted it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.pid = self.request("GET", "/healthz")[2]

    def request(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, dict[str, object], str]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=payload, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        pid = r.getheader("X-Jotkit-Worker")
        assert pid is not None, "X-Jotkit-Worker is missing"
        data = json.loads(raw) if raw and "json" in r.getheader("Content-Type", "") else {}
        return r.status, data, pid

    def call(self, method: str, path: str, body: object = None, token: str | None = None
             ) -> tuple[int, dict[str, object]]:
        status, data, pid = self.request(method, path, body, token)
        assert pid == self.pid, "a keep-alive connection moved to another worker"
        return status, data

    def close(self) -> None:
        self.conn.close()


@dataclass
class Pool:
    service: ServiceProcess
    database_url: str  # SQLAlchemy async URL, for add_user

    def two_workers(self) -> tuple[Worker, Worker]:
        """One connection to each of two different workers."""
        seen: dict[str, Worker] = {}
        spare: list[Worker] = []
        # A worker still starting up (spawned, importing, opening its pools) accepts no
        # connection yet: keep trying for a while instead of a fixed number of connects.
        deadline = time.monotonic() + 60
        tries = 0
        while len(seen) < 2 and time.monotonic() < deadline:
            tries += 1
            w = Worker(self.service.port)
            if w.pid in seen:
                spare.append(w)  # keep it open so that the next connect lands elsewhere
                if len(spare) >= 50:  # do not hoard connections while the other starts
                    for old in spare:
                        old.close()
                    spare.clear()
                    time.sleep(0.2)
            else:
                seen[w.pid] = w
        for w in spare:
            w.close()
        assert len(seen) == 2, f"only workers {sorted(seen)} answered {tries} connections"
        a, b = seen.values()
        return a, b

    def user(self) -> str:
        email = f"{secrets.token_hex(5)}@example.com"
        asyncio.run(add_user(self.database_url, email))
        return email


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """``jotkit serve --workers 2`` on an empty database (the parent migrates it and creates
    the first keys), with the pair throttle at 3 failures."""
    tmp = tmp_path_factory.mktemp("workers")
    cleanup = []
    if request.param == "sqlite":
        path = tmp / "jotkit.db"
        plain, async_url = f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}"
        env = service_env(plain, None, None, tmp)
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        redis_url = request.getfixturevalue("redis_url")
        name = f"jotkit_w_{secrets.token_hex(6)}"
        prefix = f"jotkit:test:{secrets.token_hex(6)}:"
        create_database(postgres_url, name)  # empty: no schema, no keys
        cleanup += [lambda: drop_database(postgres_url, name),
                    lambda: drop_redis_prefix(redis_url, prefix)]
        async_url = pg_url_for(postgres_url, name)
        plain = async_url.replace("postgresql+asyncpg://", "postgresql://")
        env = service_env(plain, redis_url, prefix, tmp)
    env.update(
        JOTKIT_EXPOSE_WORKER_PID="1",
        JOTKIT_REVOCATION_SYNC_INTERVAL="2",  # the default: the workers must tighten it
        JOTKIT_LOGIN_PAIR_LIMIT="3",
        JOTKIT_REUSE_GRACE="0",
        JOTKIT_METRICS_TOKEN=METRICS_TOKEN,
    )
    service = ServiceProcess(env, tmp / "serve.log", args=("--workers", "2"))
    try:
        service.start(wait=True)
        yield Pool(service, async_url)
    finally:
        service.stop()
        for step in cleanup:
            step()


def _login(w: Worker, email: str, password: str = PASSWORD) -> tuple[int, dict[str, object]]:
    return w.call("POST", "/auth/login", {"email": email, "password": password})


def _refused_within(w: Worker, token: str, bound: float) -> float:
    start = time.perf_counter()
    while True:
        status, body = w.call("GET", "/auth/me", token=token)
        elapsed = time.perf_counter() - start
        if status == 401:
            assert body["reason"] == "revoked", body
            return elapsed
        assert status == 200, body
        if elapsed > bound:
            pytest.fail(f"worker {w.pid} still accepts the token {elapsed:.3f} s after logout")
        time.sleep(0.005)


pytestmark = [pytest.mark.xdist_group("backend-processes"), pytest.mark.slow]


def test_logout_on_one_worker_is_refused_by_the_other_within_1s(pool: Pool) -> None:
    email = pool.user()
    a, b = pool.two_workers()
    try:
        delays = []
        for _round in range(5):
            status, tokens = _login(a, email)
            assert status == 200, tokens
            access = str(tokens["access_token"])
            assert b.call("GET", "/auth/me", token=access)[0] == 200  # shared keys
            assert a.call("POST", "/auth/logout", token=access)[0] == 200
            delays.append(_refused_within(b, access, PROPAGATION_BOUND))
        print(f"\nworkers {a.pid}->{b.pid}: logout refused after max {max(delays) * 1000:.0f} ms")
    finally:
        a.close()
        b.close()


def _scrape(w: Worker) -> dict[str, float]:
    """``/metrics`` as answered by ``w``'s worker: series -> value."""
    w.conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    r = w.conn.getresponse()
    text = r.read().decode()
    assert r.status == 200, text
    assert r.getheader("X-Jotkit-Worker") == w.pid
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def test_metrics_on_any_worker_count_the_requests_of_every_worker(pool: Pool) -> None:
    """A scrape reaches one worker; it must still count what the others answered (counters
    summed through prometheus_client's multiprocess files) and show each live worker's gauges
    under its ``pid``. Before, each worker showed only its own counters."""
    a, b = pool.two_workers()
    ok = 'jotkit_http_requests_total{status="2xx"}'
    try:
        before = _scrape(a)[ok]
        for _ in range(5):
            assert a.call("GET", "/healthz")[0] == 200
        for _ in range(9):
            assert b.call("GET", "/healthz")[0] == 200
        seen_by_a, seen_by_b = _scrape(a), _scrape(b)
        assert seen_by_a[ok] - before >= 5 + 9 + 1  # b's answers too (and a's first scrape)
        assert seen_by_b[ok] >= seen_by_a[ok]
        for series in (seen_by_a, seen_by_b):
            for pid in (a.pid, b.pid):
                assert f'jotkit_denylist_entries{{pid="{pid}"}}' in series
    finally:
        a.close()
        b.close()


def test_workers_started_on_an_empty_database_publish_one_key_ring(pool: Pool) -> None:
    """The first signing keys are created once, not once per worker (a race on start-up)."""
    a, b = pool.two_workers()
    try:
        status_a, jwks_a = a.call("GET", "/.well-known/jwks.json")
        status_b, jwks_b = b.call("GET", "/.well-known/jwks.json")
        assert status_a == status_b == 200
        assert jwks_a == jwks_b
        algs = sorted(str(k["alg"]) for k in jwks_a["keys"])  # type: ignore[attr-defined]
        assert algs == ["ES256", "RS256"], algs  # access tokens + ID tokens, one key each
    finally:
        a.close()
        b.close()


def test_refresh_reuse_on_another_worker_revokes_the_family(pool: Pool) -> None:
    """A stolen refresh token replayed through a different worker after the legitimate
    rotation is reuse (RFC 9700 §4.14.2): the grace state lives in the shared store."""
    email = pool.user()
    a, b = pool.two_workers()
    try:
        _status, tokens = _login(a, email)
        status, rotated = a.call("POST", "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert status == 200, rotated
        status, body = b.call("POST", "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert status == 400 and "reuse" in str(body["error_description"]).lower(), body
        status, body = a.call("POST", "/auth/refresh", {"refresh_token": rotated["refresh_token"]})
        assert status == 400, body  # the whole family died, on every worker
        _refused_within(a, str(rotated["access_token"]), PROPAGATION_BOUND)
    finally:
        a.close()
        b.close()


def test_password_guessing_spread_over_workers_hits_one_shared_limit(pool: Pool) -> None:
    """Alternating workers does not multiply an attacker's guesses: the counters are shared."""
    email = pool.user()
    a, b = pool.two_workers()
    try:
        statuses = [_login((a, b)[i % 2], email, "wrong password!")[0] for i in range(5)]
        assert statuses[:3] == [401, 401, 401], statuses
        assert statuses[3:] == [429, 429], statuses
        assert _login(b, email)[0] == 429  # even the right password waits out the lockout
    finally:
        a.close()
        b.close()


# -- units -----------------------------------------------------------------------------------
def test_settings_survive_the_trip_to_a_worker_process() -> None:
    settings = Settings(
        data_dir=Path("/tmp/x"),
        database_url="postgresql://u:p@db/j",
        issuer="https://auth.example",
        introspection_clients=(("rs", "s3cret-value"),),
        trusted_proxies=("10.0.0.0/8",),
        access_ttl=60.0,
        argon2_workers=2,
        workers=3,
        demo=True,
    )
    assert Settings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize(
    "text", ['{"no_such_setting": 1}', "[]", "not json", '{"introspection_clients": [1]}']
)
def test_worker_settings_json_is_validated(text: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_json(text)


def test_worker_settings_bound_propagation_and_split_the_argon2_pool() -> None:
    from jotkit.server.workers import MAX_SYNC_INTERVAL, worker_settings

    s = worker_settings(Settings(workers=2, revocation_sync_interval=2.0))
    assert s.revocation_sync_interval == MAX_SYNC_INTERVAL <= PROPAGATION_BOUND
    assert s.argon2_workers is not None and s.argon2_workers >= 1
    with_redis = worker_settings(Settings(workers=2, redis_url="redis://h", argon2_workers=4))
    assert with_redis.revocation_sync_interval == 2.0  # pub/sub carries revocations
    assert with_redis.argon2_workers == 4  # an explicit setting wins


def test_limited_protocol_class_pickles_to_a_worker_with_its_limits() -> None:
    from jotkit.server.serving import hardened_httptools

    cls = hardened_httptools(8192, 2.5, 7.0)
    copy = pickle.loads(pickle.dumps(cls))
    assert (copy.max_head, copy.header_timeout, copy.body_timeout) == (8192, 2.5, 7.0)


async def _race_for_the_first_key(url: str) -> None:
    """Eight instances start at once on an empty ring: one first key, not eight."""
    from jotkit.server.keyring import KeyRing
    from jotkit.server.store.sql import SqlStore

    stores = [SqlStore(url) for _ in range(8)]
    try:
        await stores[0].start()
        rings = [KeyRing(s.keys, issuer="i", audience="a", access_ttl=60, retire_margin=1)
                 for s in stores]
        created = await asyncio.gather(*(r.ensure_key("ES256", time.time()) for r in rings))
        assert sum(c is not None for c in created) == 1
        assert len(await stores[0].keys.list()) == 1
    finally:
        for s in stores:
            await s.close()


@pytest.mark.anyio
async def test_instances_racing_on_an_empty_sqlite_ring_create_one_first_key(
    tmp_path: Path,
) -> None:
    await _race_for_the_first_key(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")


@pytest.mark.anyio
@pytest.mark.postgres
async def test_instances_racing_on_an_empty_postgres_ring_create_one_first_key(
    pg_db: str,
) -> None:
    await _race_for_the_first_key(pg_db)
