"""Two real ``jotkit serve`` processes share PostgreSQL and Redis behind no load balancer but
the test itself: logout propagation, concurrent refresh across instances, key rotation."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

import jotkit

from .util import (
    PASSWORD,
    ServiceProcess,
    add_user,
    bearer,
    two_instances,
)

pytestmark = [
    pytest.mark.xdist_group("backend-processes"),  # server processes: not two modules at once
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
]

PROPAGATION_BOUND = 1.0  # the target: a logout on A is honoured by B within 1 s


@dataclass
class Cluster:
    database_url: str
    env: dict[str, str]
    a: ServiceProcess
    b: ServiceProcess

    def user(self) -> str:
        email = f"{secrets.token_hex(5)}@example.com"
        asyncio.run(add_user(self.database_url, email))
        return email


@pytest.fixture(scope="module")
def cluster(
    postgres_url: str, redis_url: str, pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    with two_instances(postgres_url, redis_url, pg_template, tmp, "m") as pair:
        yield Cluster(pair.url, pair.env, pair.a, pair.b)


def _login(base: str, email: str, agent: str = "tests") -> dict[str, str]:
    r = httpx.post(
        base + "/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": agent},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def _wait_rejected(client: httpx.Client, token: str, bound: float) -> float:
    """Poll ``/auth/me`` until the token is rejected as revoked; return the delay."""
    start = time.perf_counter()
    while True:
        r = client.get("/auth/me", headers=bearer(token))
        elapsed = time.perf_counter() - start
        if r.status_code == 401:
            assert r.json()["reason"] == "revoked"
            return elapsed
        assert r.status_code == 200, r.text
        if elapsed > bound:
            pytest.fail(f"instance B still accepts the token {elapsed:.3f} s after the logout")
        time.sleep(0.002)


def test_login_a_refresh_b_logout_a_rejected_on_b(cluster: Cluster) -> None:
    email = cluster.user()
    delays = []
    with httpx.Client(base_url=cluster.a.url, timeout=10) as a, httpx.Client(
        base_url=cluster.b.url, timeout=10
    ) as b:
        for _round in range(5):
            tokens = _login(cluster.a.url, email)
            r = b.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert r.status_code == 200, r.text
            fresh = r.json()
            # both instances accept the token B issued (stateless verification, shared keys)
            assert b.get("/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
            assert a.get("/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
            # the old refresh token is spent for both instances
            again = a.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert again.status_code in (400, 409)
            # logout on A; B must reject within the bound (it has the token in its cache)
            out = a.post("/auth/logout", headers=bearer(fresh["access_token"]))
            assert out.status_code == 200, out.text
            delays.append(_wait_rejected(b, fresh["access_token"], PROPAGATION_BOUND))
            # the session is gone everywhere
            r = b.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
            assert r.status_code == 400
    delays.sort()
    print(f"\npropagation A->B: median {delays[len(delays) // 2] * 1000:.1f} ms, "
          f"max {delays[-1] * 1000:.1f} ms")


def test_concurrent_refresh_across_instances(cluster: Cluster) -> None:
    """100 concurrent refreshes of one token over both instances: exactly one wins, and the
    reuse is detected (the family is revoked, the winner's tokens die too)."""
    email = cluster.user()
    tokens = _login(cluster.a.url, email)

    async def race() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            async def one(i: int) -> httpx.Response:
                base = cluster.a.url if i % 2 else cluster.b.url
                return await client.post(
                    base + "/auth/refresh",
                    json={"refresh_token": tokens["refresh_token"]},
                    headers={"User-Agent": f"device-{i}"},  # 100 different clients
                )

            return list(await asyncio.gather(*(one(i) for i in range(100))))

    responses = asyncio.run(race())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 400}, statuses
    # exactly one rotation happened: the family holds the original token (spent once) and
    # exactly one successor, whichever instance won
    rows = asyncio.run(_family_tokens(cluster.database_url, tokens["refresh_token"]))
    assert len(rows) == 2, rows
    assert sum(1 for r in rows if r["spent_at"] is not None) == 1
    assert rows[0]["revoke_reason"] == "reuse"  # ... and the reuse was detected
    descriptions = [r.json()["error_description"] for r in responses if r.status_code == 400]
    assert any("reuse" in d.lower() for d in descriptions), descriptions
    # Exactly one request succeeds. RFC 9700 §4.14.2: reuse kills the whole family, the
    # winner's tokens included (its access token was recorded inside the rotation).
    assert statuses.count(200) == 1, statuses
    assert statuses.count(400) == 99, statuses
    winners = [r.json() for r in responses if r.status_code == 200]
    for won in winners:
        for base in (cluster.a.url, cluster.b.url):
            r = httpx.post(base + "/auth/refresh", json={"refresh_token": won["refresh_token"]})
            assert r.status_code == 400
            with httpx.Client(base_url=base, timeout=10) as c:
                _wait_rejected(c, won["access_token"], PROPAGATION_BOUND)
    print(f"\n100 concurrent refreshes: {statuses.count(200)} x 200, {statuses.count(400)} x 400")


async def _family_tokens(database_url: str, refresh_token: str) -> list[dict[str, object]]:
    import sqlalchemy as sa

    from jotkit.server.sessions import hash_refresh_token
    from jotkit.server.store.sql import SqlStore
    from jotkit.server.store.tables import refresh_families, refresh_tokens

    store = SqlStore(database_url)
    try:
        found = await store.sessions.find_refresh(hash_refresh_token(refresh_token))
        assert found is not None
        family_id = found[1].id
        async with store.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(refresh_tokens.c.spent_at, refresh_families.c.revoke_reason)
                .join(refresh_families, refresh_tokens.c.family_id == refresh_families.c.id)
                .where(refresh_tokens.c.family_id == family_id)
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await store.close()


def test_concurrent_refresh_same_client(cluster: Cluster) -> None:
    """The same client firing 100 refreshes of one token at both instances (a retry storm):
    exactly one succeeds, the rest are benign retries (409) and the session survives."""
    email = cluster.user()
    tokens = _login(cluster.a.url, email, agent="one-device")

    async def race() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits,
                                     headers={"User-Agent": "one-device"}) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            (cluster.a.url if i % 2 else cluster.b.url) + "/auth/refresh",
                            json={"refresh_token": tokens["refresh_token"]},
                        )
                        for i in range(100)
                    )
                )
            )

    statuses = [r.status_code for r in asyncio.run(race())]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == 99, statuses
    rows = asyncio.run(_family_tokens(cluster.database_url, tokens["refresh_token"]))
    assert len(rows) == 2 and rows[0]["revoke_reason"] is None


def test_key_rotation_on_a_is_published_by_b(cluster: Cluster) -> None:
    before = httpx.get(cluster.b.url + "/.well-known/jwks.json").json()
    kids_before = {k["kid"] for k in before["keys"]}
    from typer.testing import CliRunner

    from jotkit.cli import build_app

    done = CliRunner().invoke(build_app(), ["keys", "rotate", "--delay", "0"], env=cluster.env)
    assert done.exit_code == 0, done.output
    deadline = time.monotonic() + 5
    while True:
        kids = {k["kid"] for k in httpx.get(cluster.b.url + "/.well-known/jwks.json").json()["keys"]}
        if kids - kids_before:
            break
        assert time.monotonic() < deadline, "B never published the new key"
        time.sleep(0.01)
    new_kid = (kids - kids_before).pop()
    assert kids_before <= kids  # the old key stays published while its tokens live
    # A signs with the new key; B verifies it
    email = cluster.user()
    deadline = time.monotonic() + 5
    while True:
        tokens = _login(cluster.a.url, email)
        kid = jotkit.decode_unverified(tokens["access_token"])[0]["kid"]
        if kid == new_kid:
            break
        assert time.monotonic() < deadline, "A never signed with the new key"
        time.sleep(0.05)
    r = httpx.get(cluster.b.url + "/auth/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200, r.text


def test_instances_report_health(cluster: Cluster) -> None:
    for proc in (cluster.a, cluster.b):
        r = httpx.get(proc.url + "/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"


def test_uvicorn_workers(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The documented ``uvicorn --factory jotkit.server.asgi:app --workers 2``: two worker
    processes behind one port, sharing state with the cluster."""
    import os
    import signal
    import sys

    from .util import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("workers") / "uvicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "jotkit.server.asgi:app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
             "--log-level", "warning"],
            env=cluster.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        email = cluster.user()
        tokens = _login(base, email)
        with httpx.Client(base_url=base, timeout=10) as c:
            # new connections each time, so both workers see the token
            for _ in range(10):
                r = httpx.get(base + "/auth/me", headers=bearer(tokens["access_token"]))
                assert r.status_code == 200
            # a logout on the cluster's instance A reaches every worker within the bound
            assert httpx.post(cluster.a.url + "/auth/logout",
                              headers=bearer(tokens["access_token"])).status_code == 200
            _wait_rejected(c, tokens["access_token"], PROPAGATION_BOUND)
            time.sleep(PROPAGATION_BOUND)
            for _ in range(10):
                r = httpx.get(base + "/auth/me", headers=bearer(tokens["access_token"]))
                assert r.status_code == 401 and r.json()["reason"] == "revoked"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def test_keys_revoke_on_the_cli_is_honoured_by_both_instances_at_once(cluster: Cluster) -> None:
    """``jotkit keys revoke KID`` (a leaked key): both running instances drop the key from
    their JWKS and refuse every token it signed, cached ones included, within the propagation
    bound (the key store announces the change on the Redis bus); new tokens come from the
    replacement key and pass on both."""
    from typer.testing import CliRunner

    from jotkit.cli import build_app

    email = cluster.user()
    leaked = _login(cluster.a.url, email)
    kid = jotkit.decode_unverified(leaked["access_token"])[0]["kid"]
    with httpx.Client(base_url=cluster.a.url, timeout=10) as a, httpx.Client(
        base_url=cluster.b.url, timeout=10
    ) as b:
        for c in (a, b):  # verified and cached on both instances
            assert c.get("/auth/me", headers=bearer(leaked["access_token"])).status_code == 200
        done = CliRunner().invoke(build_app(), ["keys", "revoke", "--", kid], env=cluster.env)
        assert done.exit_code == 0, done.output
        for c in (a, b):
            _wait_rejected(c, leaked["access_token"], PROPAGATION_BOUND)
            kids = {k["kid"] for k in c.get("/.well-known/jwks.json").json()["keys"]}
            assert kid not in kids
        fresh = _login(cluster.b.url, email)
        new_kid = jotkit.decode_unverified(fresh["access_token"])[0]["kid"]
        assert new_kid != kid
        for c in (a, b):
            assert c.get("/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
