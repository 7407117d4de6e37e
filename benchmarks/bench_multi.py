"""Multi-instance benchmark (issue 6): two ``jotkit serve`` on PostgreSQL + Redis next to one
on SQLite, in the same run; plus revocation propagation between the two instances.

* ``GET /auth/me`` and ``POST /auth/refresh``: requests/s and p50/p99 with ``wrk`` (one wrk per
  instance, run at the same time; req/s summed, p99 = the worse of the two). Falls back to an
  httpx async load generator when wrk is not installed (Debian package ``wrk``).
* Revocation propagation: ``--revocations`` times, log in on A, make B verify (and cache) the
  access token, log out on A while polling ``/auth/me`` on B; report p50/p99 of (a) logout
  request sent on A -> first rejection on B, (b) logout response from A -> first rejection on B
  (0 when B had already rejected before A's response arrived).

    .venv/bin/python benchmarks/bench_multi.py [--duration 8] [--connections 32]
        [--revocations 1000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis redis://127.0.0.1:6379/0]

* Revocation feed (issue 14 §2): three resource servers subscribed to instance B's
  ``/oauth/revocations`` (the FastAPI and Flask example APIs and ``jotkit forward-auth``, as
  processes, none with introspection). ``--rs-logouts`` times: log in on A, make each of them
  accept (and cache) the token, log out on A and poll all three until they refuse it; report
  p50/p99/max per resource server from A's logout response (0 when it refused first) and
  from the logout request. The A -> B in-service propagation above is the peer of the run.

    --only-feed skips the load runs and the A -> B propagation (for iterating).

Appends a markdown table to ``benchmarks/results-multi.md``. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from _wrk import REFRESH_LUA, free_port, parse_wrk, wrk_command  # benchmarks/_wrk.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-multi.md"
PASSWORD = "bench-password-123"
EMAIL = "bench@example.com"


def _env(data_dir: str, database_url: str | None, redis_url: str | None,
         prefix: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(
        JOTKIT_DATA_DIR=data_dir,
        JOTKIT_ISSUER="http://jotkit.bench",
        JOTKIT_LOGIN_IP_LIMIT="1000000",
        JOTKIT_LOGIN_ACCOUNT_LIMIT="1000000",
        JOTKIT_LOGIN_PAIR_LIMIT="1000000",
        JOTKIT_ARGON2_TIME_COST="1",
        JOTKIT_ARGON2_MEMORY_COST="1024",
        JOTKIT_ARGON2_PARALLELISM="1",
        JOTKIT_ARGON2_INSECURE_TEST_COSTS="1",
        JOTKIT_LOG_LEVEL="WARNING",
    )
    if database_url:
        env["JOTKIT_DATABASE_URL"] = database_url
    if redis_url:
        env["JOTKIT_REDIS_URL"] = redis_url
        env["JOTKIT_REDIS_PREFIX"] = prefix or "jotkit:"
    return env


def _jotkit() -> str:
    candidate = Path(sys.executable).with_name("jotkit")
    return str(candidate) if candidate.exists() else "jotkit"


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [_jotkit(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("jotkit serve did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def _add_user(database_url: str) -> None:
    from jotkit.server.passwords import PasswordPolicy
    from jotkit.server.store.factory import normalize_database_url
    from jotkit.server.store.sql import SqlStore

    store = SqlStore(normalize_database_url(database_url))
    try:
        await store.start()
        hashed = PasswordPolicy(1, 1024, 1, insecure_test_costs=True).hash(PASSWORD)
        await store.users.create(uuid.uuid4().hex, EMAIL, hashed, ["user"], time.time())
    finally:
        await store.close()


# -- load ---------------------------------------------------------------------------------
def _wrk_parallel(targets: list[tuple[str, dict[str, str] | None, str | None]], duration: int,
                  connections: int) -> dict[str, float]:
    """Run one wrk per target at the same time; sum req/s, keep the worst percentiles."""
    per = max(1, connections // len(targets))
    procs = [
        subprocess.Popen(wrk_command(url, duration, per, hdr, script), stdout=subprocess.PIPE,
                         text=True)
        for url, hdr, script in targets
    ]
    results = [parse_wrk(p.communicate()[0]) for p in procs]
    return {
        "rps": sum(r["rps"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


async def _httpx_load(targets: list[tuple[str, dict[str, str] | None, list[str] | None]],
                      duration: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def worker(client: httpx.AsyncClient, url: str, hdr: dict[str, str] | None,
                     token: str | None) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            if token is None:
                r = await client.get(url, headers=hdr)
            else:
                r = await client.post(url, json={"refresh_token": token})
                if r.status_code == 200:
                    token = r.json()["refresh_token"]
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections),
                                 timeout=30) as client:
        started = time.perf_counter()
        jobs = []
        for i in range(connections):
            url, hdr, pool = targets[i % len(targets)]
            jobs.append(worker(client, url, hdr, pool[i // len(targets)] if pool else None))
        await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50": q[49], "p99": q[98], "errors": errors}


def _sessions(url: str, n: int) -> list[dict[str, str]]:
    with httpx.Client(base_url=url, timeout=60) as c:
        out = []
        for _ in range(n):
            r = c.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
            r.raise_for_status()
            out.append(r.json())
        return out


def _measure(label: str, urls: list[str], args: argparse.Namespace, tmp: str
             ) -> list[tuple[str, dict[str, float]]]:
    use_wrk = shutil.which("wrk") is not None
    access = _sessions(urls[0], 1)[0]["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    for url in urls:  # warm-up (and every instance caches the verified token)
        for _ in range(200):
            httpx.get(url + "/auth/me", headers=auth)
    rows: list[tuple[str, dict[str, float]]] = []
    if use_wrk:
        me = _wrk_parallel([(u + "/auth/me", auth, None) for u in urls], args.duration,
                           args.connections)
    else:
        me = asyncio.run(_httpx_load([(u + "/auth/me", auth, None) for u in urls],
                                     args.duration, args.connections))
    rows.append((f"{label} GET /auth/me", me))
    per = max(1, args.connections // len(urls))
    pools = [[s["refresh_token"] for s in _sessions(urls[0], per + 4)] for _ in urls]
    if use_wrk:
        targets: list[tuple[str, dict[str, str] | None, str | None]] = []
        for i, url in enumerate(urls):
            script = Path(tmp) / f"refresh-{label.replace(' ', '_')}-{i}.lua"
            script.write_text(REFRESH_LUA % ",".join(json.dumps(t) for t in pools[i]))
            targets.append((url, None, str(script)))
        ref = _wrk_parallel(targets, args.duration, args.connections)
    else:
        ref = asyncio.run(_httpx_load(
            [(u + "/auth/refresh", None, pools[i]) for i, u in enumerate(urls)],
            args.duration, args.connections))
    rows.append((f"{label} POST /auth/refresh", ref))
    return rows


async def _propagation(a: str, b: str, n: int) -> tuple[list[float], list[float]]:
    """Per revocation: (logout sent on A -> B rejects, A's response -> B rejects), in ms."""
    sent_to_reject: list[float] = []
    resp_to_reject: list[float] = []
    async with httpx.AsyncClient(base_url=a, timeout=30) as ca, httpx.AsyncClient(
        base_url=b, timeout=30
    ) as cb:
        for _ in range(n):
            r = await ca.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
            r.raise_for_status()
            token = r.json()["access_token"]
            hdr = {"Authorization": f"Bearer {token}"}
            assert (await cb.get("/auth/me", headers=hdr)).status_code == 200
            responded: list[float] = []

            async def logout(hdr: dict[str, str], responded: list[float]) -> None:
                resp = await ca.post("/auth/logout", headers=hdr)
                responded.append(time.perf_counter())
                resp.raise_for_status()

            t0 = time.perf_counter()
            task = asyncio.create_task(logout(hdr, responded))
            while True:
                rr = await cb.get("/auth/me", headers=hdr)
                if rr.status_code == 401:
                    t1 = time.perf_counter()
                    break
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError("revocation never reached B")
            await task
            sent_to_reject.append((t1 - t0) * 1000)
            resp_to_reject.append(max(0.0, (t1 - responded[0]) * 1000))
    return sent_to_reject, resp_to_reject


RS_CLIENT = ("rs-bench", "rs-bench-secret")  # JOTKIT_INTROSPECTION_CLIENTS: reads the feed


def _start_resource_servers(auth: str, tmp: str) -> tuple[list[subprocess.Popen[bytes]],
                                                          dict[str, str]]:
    """The FastAPI and Flask examples and forward-auth, subscribed to ``auth``'s feed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    feed = f"{auth}/oauth/revocations"
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    for name, script, path in (("FastAPI", "orders_api.py", "/orders"),
                               ("Flask", "flask_api.py", "/reports")):
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / script)],
            env=base | {
                "JOTKIT_RS_ISSUER": "http://jotkit.bench",
                "JOTKIT_RS_JWKS_URL": f"{auth}/.well-known/jwks.json",
                "JOTKIT_RS_PORT": str(port),
                "JOTKIT_RS_REVOCATIONS_URL": feed,
                "JOTKIT_RS_CLIENT_ID": RS_CLIENT[0],
                "JOTKIT_RS_CLIENT_SECRET": RS_CLIENT[1],
            },
            stdout=subprocess.DEVNULL, stderr=(Path(tmp) / f"{name}.log").open("wb"),
            start_new_session=True,
        ))
        urls[name] = f"http://127.0.0.1:{port}{path}"
    port = free_port()
    procs.append(subprocess.Popen(
        [_jotkit(), "forward-auth", "--jwks-url", f"{auth}/.well-known/jwks.json",
         "--issuer", "http://jotkit.bench", "--audience", "jotkit", "--revocations", feed,
         "--revocations-client-id", RS_CLIENT[0], "--port", str(port), "--log-level", "warning"],
        env=base | {"JOTKIT_REVOCATIONS_CLIENT_SECRET": RS_CLIENT[1]},
        stdout=subprocess.DEVNULL, stderr=(Path(tmp) / "forward-auth.log").open("wb"),
        start_new_session=True,
    ))
    urls["forward-auth"] = f"http://127.0.0.1:{port}/orders"
    deadline = time.monotonic() + 60
    for name, url in urls.items():
        health = url.rsplit("/", 1)[0] + "/health"
        while True:
            try:
                if name == "forward-auth":
                    ready = httpx.get(url, timeout=1).status_code == 401
                else:
                    ready = bool(httpx.get(health, timeout=1).json()["revocations_synced"])
                if ready:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start / sync with the revocation feed")
            time.sleep(0.1)
    return procs, urls


async def _feed_propagation(a: str, rs: dict[str, str], n: int
                            ) -> dict[str, tuple[list[float], list[float]]]:
    """Per logout on A and per resource server: (logout sent -> refused, A's response ->
    refused), in ms. Each resource server is polled every 2 ms until it answers 401."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in rs}
    async with httpx.AsyncClient(base_url=a, timeout=30) as ca, httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=16)
    ) as cr:
        for _ in range(n):
            r = await ca.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
            r.raise_for_status()
            hdr = {"Authorization": f"Bearer {r.json()['access_token']}"}
            for name, url in rs.items():
                got = (await cr.get(url, headers=hdr)).status_code
                if got != 200:
                    raise RuntimeError(f"{name} refused a fresh token: {got}")
            responded: list[float] = []

            async def logout(hdr: dict[str, str], responded: list[float]) -> None:
                resp = await ca.post("/auth/logout", headers=hdr)
                responded.append(time.perf_counter())
                resp.raise_for_status()

            async def refused(url: str, t0: float, hdr: dict[str, str]) -> float:
                while True:
                    if (await cr.get(url, headers=hdr)).status_code == 401:
                        return time.perf_counter()
                    if time.perf_counter() - t0 > 10:
                        raise RuntimeError(f"the revocation never reached {url}")
                    await asyncio.sleep(0.002)

            t0 = time.perf_counter()
            task = asyncio.create_task(logout(hdr, responded))
            ends = await asyncio.gather(*(refused(url, t0, hdr) for url in rs.values()))
            await task
            for name, t1 in zip(rs, ends, strict=True):
                out[name][0].append((t1 - t0) * 1000)
                out[name][1].append(max(0.0, (t1 - responded[0]) * 1000))
    return out


def _pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--revocations", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rs-logouts", type=int, default=1000)
    parser.add_argument("--only-feed", action="store_true")
    args = parser.parse_args()

    tool = (f"wrk -t1, {args.connections} connections in total" if shutil.which("wrk")
            else f"httpx async, {args.connections} connections")
    tmp = tempfile.mkdtemp(prefix="jotkit-bench-multi-")
    db = f"jotkit_bench_{secrets.token_hex(4)}"
    prefix = f"jotkit:bench:{secrets.token_hex(4)}:"
    admin = args.postgres.rsplit("/", 1)[0]
    pg_url = f"{admin}/{db}"

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(args.postgres)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{db}"'))
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, dict[str, float]]] = []
    sent: list[float] = []
    resp: list[float] = []
    feed: dict[str, tuple[list[float], list[float]]] = {}
    try:
        sqlite_dir = str(Path(tmp) / "sqlite")
        asyncio.run(_add_user(pg_url))
        if not args.only_feed:
            asyncio.run(_add_user(f"sqlite:///{sqlite_dir}/jotkit.db"))
            single, single_url = _start(_env(sqlite_dir, None, None, None))
            procs.append(single)
            rows += _measure("1 instance, SQLite:", [single_url], args, tmp)
            _stop(single)
        pg_env = _env(str(Path(tmp) / "pg"), pg_url, args.redis, prefix)
        pg_env["JOTKIT_INTROSPECTION_CLIENTS"] = ":".join(RS_CLIENT)
        a, a_url = _start(pg_env)
        b, b_url = _start(pg_env)
        procs += [a, b]
        if not args.only_feed:
            rows += _measure("2 instances, PostgreSQL + Redis:", [a_url, b_url], args, tmp)
            sent, resp = asyncio.run(_propagation(a_url, b_url, args.revocations))
        rs_procs, rs_urls = _start_resource_servers(b_url, tmp)
        procs += rs_procs
        feed = asyncio.run(_feed_propagation(a_url, rs_urls, args.rs_logouts))
    finally:
        for proc in procs:
            _stop(proc)
        asyncio.run(admin_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{db}' AND pid <> pg_backend_pid()"))
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{db}"'))
        client: Any = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()[0]
    lines = [
        "",
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} — {tool}, {args.duration} s per run",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared by the instances, "
        f"PostgreSQL, Redis and the load generator; Python {platform.python_version()}; "
        f"uvicorn 1 worker per instance; ES256. Load average at the end: {load:.1f}.",
        "",
        "| setup / endpoint | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{int(r['errors'])} |")
    if sent:
        lines += [
            "",
            f"Revocation propagation A -> B over {len(sent)} logouts (B polls `/auth/me`):",
            "",
            "| measured from | p50 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|",
            f"| logout request sent on A | {_pct(sent, 50):.2f} | {_pct(sent, 99):.2f} | "
            f"{max(sent):.2f} |",
            f"| logout response from A | {_pct(resp, 50):.2f} | {_pct(resp, 99):.2f} | "
            f"{max(resp):.2f} |",
        ]
    count = len(next(iter(feed.values()))[0]) if feed else 0
    lines += [
        "",
        f"Revocation feed: logout on A -> refusal at resource servers subscribed to B's "
        f"`/oauth/revocations` (no introspection), over {count} logouts; each polled every "
        "2 ms. Load average at the end of the run above.",
        "",
        "| resource server | from logout response: p50 ms | p99 ms | max ms "
        "| from logout request: p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (from_sent, from_resp) in feed.items():
        lines.append(
            f"| {name} | {_pct(from_resp, 50):.2f} | {_pct(from_resp, 99):.2f} | "
            f"{max(from_resp):.2f} | {_pct(from_sent, 50):.2f} | {_pct(from_sent, 99):.2f} |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Multi-instance benchmark (benchmarks/bench_multi.py)\n")
    with RESULTS.open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
