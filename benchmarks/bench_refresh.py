"""Refresh rotation against its floor (issue 10 §1): req/s, server CPU per refresh, p50/p99.

In one run, on free ports, each as uvicorn with one worker:

* jotkit ``POST /auth/refresh`` on SQLite (its default store) and on PostgreSQL;
* the stdlib-``sqlite3`` floor and the asyncpg floor of ``_refresh_floor.py`` (the same five
  statements in one transaction, on databases made by jotkit's own migrations).

Each target gets sessions seeded through jotkit's store (``create_family``: no argon2 in the
setup) and is loaded with ``wrk`` and a Lua script that feeds every request a distinct, unspent
token (each response's successor goes back in the pool). Rounds are interleaved; the table
gives every round and the summary the medians. Then logins/s at the default argon2id cost on
the jotkit SQLite server, and an in-process profile of jotkit's refresh (cProfile over 2,000
refreshes through the ASGI app, with the hand-offs to database threads and the event-loop
iterations counted) are written under "Logins" and "Profile".

    .venv/bin/python benchmarks/bench_refresh.py [--duration 8] [--connections 32] [--rounds 2]

Writes ``benchmarks/results-refresh.md`` (replaced on every run). Not a test: nothing asserts
timings. Target: jotkit >= 0.7x the floor by req/s and by server CPU per refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _servers import cpu_seconds, pg_admin, pg_dsn  # benchmarks/_servers.py
from _wrk import REFRESH_LUA, free_port, parse_wrk, wrk_command  # benchmarks/_wrk.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-refresh.md"
EMAIL = "bench@example.com"
PASSWORD = "bench-password-123"


# -- databases ---------------------------------------------------------------------------
def _settings_env(data_dir: str, database_url: str | None) -> dict[str, str]:
    env = {"JOTKIT_DATA_DIR": data_dir, "JOTKIT_LOG_LEVEL": "WARNING",
           "JOTKIT_LOGIN_IP_LIMIT": "100000", "JOTKIT_LOGIN_ACCOUNT_LIMIT": "100000",
           "JOTKIT_LOGIN_PAIR_LIMIT": "100000"}
    if database_url:
        env["JOTKIT_DATABASE_URL"] = database_url
        env["JOTKIT_ISSUER"] = "http://127.0.0.1"
    return env


def _prepare(data_dir: str, database_url: str | None, sessions: int) -> list[str]:
    """Migrate jotkit's database, add the user and ``sessions`` families; their tokens."""
    from jotkit.server import Settings, SystemClock
    from jotkit.server.audit_log import AuditLog
    from jotkit.server.metrics import Metrics
    from jotkit.server.sessions import AuthService, hash_refresh_token
    from jotkit.server.store.base import FamilyRecord
    from jotkit.server.store.sql import SqlStore

    async def run() -> list[str]:
        settings = Settings.from_env(_settings_env(data_dir, database_url))
        clock, metrics = SystemClock(), Metrics()
        store = SqlStore(settings.effective_database_url)
        svc = AuthService(settings, store, clock, metrics, AuditLog(clock, metrics))
        await store.start()
        user = await svc.add_user(EMAIL, PASSWORD)
        tokens = []
        now = time.time()
        for _ in range(sessions):
            token = secrets.token_urlsafe(32)
            family = FamilyRecord(
                id=secrets.token_urlsafe(16), user_id=user.id, created_at=now, last_used_at=now,
                idle_expires_at=now + settings.refresh_idle_ttl,
                absolute_expires_at=now + settings.refresh_absolute_ttl,
                user_agent="bench", client_ip="127.0.0.1")
            await store.sessions.create_family(family, hash_refresh_token(token))
            tokens.append(token)
        await store.close()
        return tokens

    return asyncio.run(run())


# -- servers -----------------------------------------------------------------------------
def _gc_stats_path(data_dir: str) -> Path:
    return Path(data_dir) / "gc-stats.json"


def _watch_gc(path: Path) -> None:
    """Count the server's full (generation 2) collections and their pauses into ``path``:
    the event loop stands still while one runs, so they show in p99."""
    import gc

    state = {"start": 0.0, "count": 0, "total": 0.0, "max": 0.0}

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            state["start"] = time.perf_counter()
            return
        pause = time.perf_counter() - state["start"]
        state["count"] += 1
        state["total"] += pause
        state["max"] = max(state["max"], pause)
        # The run's directory may be gone already: the server is being torn down.
        with contextlib.suppress(OSError):
            path.write_text(json.dumps(state))

    gc.callbacks.append(callback)


def _gc_stats(data_dir: str) -> dict[str, float]:
    try:
        return dict(json.loads(_gc_stats_path(data_dir).read_text()))
    except (OSError, ValueError):
        return {"count": 0, "total": 0.0, "max": 0.0}


def _serve(kind: str, port: int, data_dir: str, database_url: str | None) -> None:
    import uvicorn

    _watch_gc(_gc_stats_path(data_dir))

    if kind == "floor-sqlite":
        from _refresh_floor import sqlite_app

        app: Any = sqlite_app(str(Path(data_dir) / "floor.db"))
    elif kind == "floor-pg":
        from _refresh_floor import pg_app

        app = pg_app(database_url or "")
    else:
        from jotkit.server import Settings, create_app
        from jotkit.server.serving import uvicorn_options

        env = {**_settings_env(data_dir, database_url), "JOTKIT_PORT": str(port)}
        settings = Settings.from_env(env)
        uvicorn.run(create_app(settings), **uvicorn_options(settings, workers=1,
                                                             log_level="warning"))
        return
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning",
                access_log=False)


def _start(
    kind: str, data_dir: str, database_url: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--data-dir", data_dir]
    if database_url:
        cmd += ["--database-url", database_url]
    env = {**os.environ, "JOTKIT_PORT": str(port)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _load(pid: int, url: str, tokens: list[str], duration: int, connections: int,
          script_dir: str, data_dir: str | None = None) -> dict[str, float]:
    """One wrk run over ``tokens`` (each used once, successors reused); CPU per refresh and,
    with the server's ``data_dir``, its full collections during the run."""
    script = Path(script_dir) / f"refresh-{pid}-{time.monotonic_ns()}.lua"
    script.write_text(REFRESH_LUA % ",".join(json.dumps(t) for t in tokens))
    gc_before = _gc_stats(data_dir) if data_dir else None
    before = cpu_seconds(pid)
    out = subprocess.run(wrk_command(url, duration, connections, script=str(script)),
                         capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before
    result = parse_wrk(out)
    if data_dir and gc_before is not None:
        gc_after = _gc_stats(data_dir)
        count = gc_after["count"] - gc_before["count"]
        result["gc_count"] = count
        result["gc_mean_ms"] = (
            (gc_after["total"] - gc_before["total"]) / count * 1e3 if count else 0.0
        )
    total = result["rps"] * duration
    result["cpu_us"] = used / total * 1e6 if total else float("nan")
    result["load"] = os.getloadavg()[0]
    return result


# -- logins --------------------------------------------------------------------------------
#: A wrk Lua script: correct logins back to back (argon2id at the service's default cost).
LOGIN_LUA = """
local body = '{"email":"%s","password":"%s"}'
request = function()
  return wrk.format("POST", "/auth/login", {["Content-Type"] = "application/json"}, body)
end
"""


def _logins(pid: int, url: str, duration: int, script_dir: str) -> dict[str, Any]:
    """Logins/s at the default argon2id cost on a running jotkit server (2xx only), with as
    many connections as twice the argon2 pool (so the pool never idles and never sheds)."""
    from jotkit.server import Settings

    settings = Settings.from_env({})
    workers = settings.effective_argon2_workers
    script = Path(script_dir) / f"login-{pid}.lua"
    script.write_text(LOGIN_LUA % (EMAIL, PASSWORD))
    before = cpu_seconds(pid)
    out = subprocess.run(wrk_command(url, duration, 2 * workers, script=str(script)),
                         capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before
    result: dict[str, Any] = dict(parse_wrk(out))
    total = result["rps"] * duration
    ok = max(0.0, total - result["errors"])
    result.update(
        logins_per_s=ok / duration, cpu_ms=used / ok * 1e3 if ok else float("nan"),
        connections=2 * workers, workers=workers, load=os.getloadavg()[0],
        cost=(f"argon2id t={settings.argon2_time_cost}, m={settings.argon2_memory_cost // 1024} "
              f"MiB, p={settings.argon2_parallelism}"),
    )
    return result


# -- profile -----------------------------------------------------------------------------
def _profile(data_dir: str, tokens: list[str], count: int = 2000) -> dict[str, Any]:
    """cProfile of ``count`` refreshes through jotkit's ASGI app on SQLite (sequential), with
    the aiosqlite thread hops and event-loop iterations per refresh."""
    import aiosqlite.core

    from jotkit.server import Settings, create_app
    from jotkit.server.store import sql as sql_store

    app = create_app(Settings.from_env(_settings_env(data_dir, None)))
    counts = {"hops": 0, "loop": 0, "rotation": 0}
    original_execute = aiosqlite.core.Connection._execute
    original_run = sql_store._SqliteThread.run

    async def counted_execute(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts["hops"] += 1
        return await original_execute(self, fn, *args, **kwargs)

    async def counted_run(self, fn, *args):  # type: ignore[no-untyped-def]
        counts["rotation"] += 1
        return await original_run(self, fn, *args)

    aiosqlite.core.Connection._execute = counted_execute  # type: ignore[method-assign]
    sql_store._SqliteThread.run = counted_run  # type: ignore[method-assign]
    base = asyncio.base_events.BaseEventLoop
    original_once = base._run_once  # type: ignore[attr-defined]

    def counted_once(self):  # type: ignore[no-untyped-def]
        counts["loop"] += 1
        return original_once(self)

    base._run_once = counted_once  # type: ignore[attr-defined]

    async def call(token: str) -> str:
        body = json.dumps({"refresh_token": token}).encode()
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/auth/refresh",
                 "raw_path": b"/auth/refresh", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"x"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
        chunks: list[bytes] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        return str(json.loads(b"".join(chunks))["refresh_token"])

    async def run() -> dict[str, Any]:
        async with app.router.lifespan_context(app):
            chain = list(tokens)
            for i in range(200):  # warm-up
                chain[i % len(chain)] = await call(chain[i % len(chain)])
            counts["hops"] = counts["loop"] = counts["rotation"] = 0
            # Timer: the main thread's CPU (thread_time), so waiting in epoll costs nothing
            # and the SQLite work on aiosqlite's thread is reported apart, not smeared in.
            prof = cProfile.Profile(time.thread_time)
            t0 = time.process_time()
            prof.enable()
            for i in range(count):
                chain[i % len(chain)] = await call(chain[i % len(chain)])
            prof.disable()
            cpu = time.process_time() - t0
            hops, loops, rotation = counts["hops"], counts["loop"], counts["rotation"]
            # the same refreshes without the profiler: the unprofiled CPU per refresh
            t1, m1 = time.process_time(), time.thread_time()
            for i in range(count):
                chain[i % len(chain)] = await call(chain[i % len(chain)])
            plain, main = time.process_time() - t1, time.thread_time() - m1
        return {"prof": prof, "cpu_us": cpu / count * 1e6, "plain_us": plain / count * 1e6,
                "main_us": main / count * 1e6, "hops": hops / count, "loops": loops / count,
                "rotation_hops": rotation / count}

    try:
        return asyncio.run(run())
    finally:
        aiosqlite.core.Connection._execute = original_execute  # type: ignore[method-assign]
        sql_store._SqliteThread.run = original_run  # type: ignore[method-assign]
        base._run_once = original_once  # type: ignore[attr-defined]


def _top(prof: cProfile.Profile, count: int, key: str, limit: int) -> list[str]:
    """Rows ``| function | % | µs per refresh |`` sorted by ``key`` (tottime or cumtime)."""
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        value = tt if key == "tottime" else ct
        if key == "cumtime" and ("bench_refresh" in path or "asyncio" in path or path == "~"):
            continue  # the event loop and the driver wrap everything: no information
        short = path.split("site-packages/")[-1].split("/src/")[-1]
        rows.append((value, f"`{short}:{line}({name})`", nc / count))
    rows.sort(reverse=True)
    return [f"| {label} | {v / total:.1%} | {v / count * 1e6:.0f} | {calls:.1f} |"
            for v, label, calls in rows[:limit]]


_LAYERS = (
    ("ES256 signature (cryptography)", ("cryptography", "ECPrivateKey")),
    ("jotkit JOSE core (encode, claims, base64url)", ("jotkit/jwt", "jotkit/jws", "jotkit/claims",
                                                     "jotkit/_", "jotkit/keys")),
    ("SQLAlchemy (statement building, compile cache, result rows, greenlet bridge)",
     ("sqlalchemy", "greenlet")),
    ("aiosqlite hand-offs (queue, futures, thread wake-ups)", ("aiosqlite", "SimpleQueue",
                                                              "_thread.lock")),
    ("asyncio event loop (epoll, callbacks, self-pipe)", ("asyncio", "selectors", "epoll",
                                                          "_socket", "_contextvars")),
    ("FastAPI / Starlette / pydantic (routing, middleware, validation, JSON)",
     ("fastapi", "starlette", "pydantic", "/json/")),
    ("jotkit service (routes, sessions, store, audit, middleware)", ("jotkit/",)),
)


def _layers(prof: cProfile.Profile, count: int) -> list[str]:
    """Own time summed by layer: robust where cumulative times of coroutines are not."""
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    sums: dict[str, float] = {}
    for (path, _line, name), (_cc, _nc, tt, _ct, _c) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{path} {name}"
        layer = next((label for label, keys in _LAYERS if any(k in where for k in keys)),
                     "builtins and the rest (isinstance, dict, len, ...: callers above)")
        sums[layer] = sums.get(layer, 0.0) + tt
    rows = sorted(sums.items(), key=lambda kv: -kv[1])
    return [f"| {label} | {v / total:.1%} | {v / count * 1e6:.0f} |" for label, v in rows]


def _layer_of(where: str) -> str:
    if "sqlite3" in where or "aiosqlite" in where:
        return "SQLite and aiosqlite's thread"
    return next((label for label, keys in _LAYERS if any(k in where for k in keys)),
                "other (stdlib, uvicorn, httptools)")


def _py_spy(spy: str, pid: int, url: str, tokens: list[str], duration: int, connections: int,
            script_dir: str) -> dict[str, Any] | None:
    """Sample the server with py-spy during one load run; shares by innermost frame."""
    out = Path(script_dir) / "py-spy.txt"
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "250",
           "--format", "raw", "--output", str(out), "--nonblocking", "--gil"]
    recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load = _load(pid, url, tokens, duration, connections, script_dir)
    _, err = recorder.communicate(timeout=duration + 60)
    if recorder.returncode != 0 or not out.exists():
        print(f"py-spy failed: {err.decode(errors='replace')[-300:]}", file=sys.stderr)
        return None
    layers: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        leaf = stack.rsplit(";", 1)[-1] or "(no Python frame)"
        total += n
        layers[_layer_of(leaf)] = layers.get(_layer_of(leaf), 0) + n
        short = leaf.split("site-packages/")[-1].replace("/root/.pyenv/versions/", "")
        leaves[short] = leaves.get(short, 0) + n
    if not total:
        return None
    top = sorted(leaves.items(), key=lambda kv: -kv[1])[:20]
    return {"total": total, "layers": sorted(layers.items(), key=lambda kv: -kv[1]),
            "leaves": top, "load": load}


# -- main --------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile-count", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--serve", choices=["service", "floor-sqlite", "floor-pg"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.data_dir, args.database_url)
        return
    if shutil.which("wrk") is None:
        sys.exit("bench_refresh needs wrk (apt-get install wrk)")

    conns = args.connections
    per_run = conns + 8
    # every round's runs get their own tokens (a wrk run may leave a few chains mid-flight)
    sessions = per_run * (args.rounds + 1) + 8  # a py-spy run, and 8 for the warm-up
    spy = shutil.which("py-spy") or shutil.which(str(Path(sys.executable).parent / "py-spy"))
    sampled: dict[str, Any] | None = None
    logins: dict[str, Any] | None = None
    tmp = tempfile.mkdtemp(prefix="jotkit-refresh-")
    dirs = {name: str(Path(tmp) / name) for name in ("svc", "floor", "prof")}
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    pg_names = [f"jotkit_refresh_svc_{suffix}", f"jotkit_refresh_floor_{suffix}"]
    use_pg = not args.no_postgres
    procs: list[subprocess.Popen[bytes]] = []
    targets: list[tuple[str, str, str, list[str], subprocess.Popen[bytes]]] = []
    try:
        tokens: dict[str, list[str]] = {}
        tokens["jotkit SQLite"] = _prepare(dirs["svc"], None, sessions)
        # The floor's database: a copy of one that jotkit's migrations made (checkpointed).
        floor_tokens = _prepare(dirs["floor"], None, sessions)
        from jotkit.server import Settings

        src = Settings.from_env(_settings_env(dirs["floor"], None)).effective_database_url
        src_path = src.split("///", 1)[1]
        shutil.copyfile(src_path, Path(dirs["floor"]) / "floor.db")
        tokens["floor sqlite3"] = floor_tokens
        prof_tokens = _prepare(dirs["prof"], None, 64)
        pg_urls: dict[str, str] = {}
        if use_pg:
            for name in pg_names:
                pg_admin(f'CREATE DATABASE "{name}"')
            pg_urls["svc"] = pg_dsn(pg_names[0]).replace("postgresql://", "postgresql+asyncpg://")
            pg_urls["floor"] = pg_dsn(pg_names[1])
            tokens["jotkit PostgreSQL"] = _prepare(dirs["svc"] + "-pg", pg_urls["svc"], sessions)
            tokens["floor asyncpg"] = _prepare(
                dirs["floor"] + "-pg",
                pg_urls["floor"].replace("postgresql://", "postgresql+asyncpg://"), sessions)

        plan = [("jotkit SQLite", "service", dirs["svc"], None),
                ("floor sqlite3", "floor-sqlite", dirs["floor"], None)]
        if use_pg:
            plan += [("jotkit PostgreSQL", "service", dirs["svc"] + "-pg", pg_urls["svc"]),
                     ("floor asyncpg", "floor-pg", dirs["floor"] + "-pg", pg_urls["floor"])]
        data_dirs = {label: ddir for label, _kind, ddir, _db in plan}
        for label, kind, ddir, db in plan:
            proc, url = _start(kind, ddir, db)
            procs.append(proc)
            targets.append((label, kind, url, tokens[label], proc))

        for _label, _kind, url, toks, proc in targets:  # warm-up: connections, caches
            _load(proc.pid, url, toks[-8:], 2, 4, tmp)
        results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in targets}
        for rnd in range(args.rounds):
            for label, _kind, url, toks, proc in targets:
                pool = toks[rnd * per_run:(rnd + 1) * per_run]
                results[label].append(
                    _load(proc.pid, url, pool, args.duration, conns, tmp, data_dirs[label]))
                r = results[label][-1]
                print(f"round {rnd + 1} {label}: {r['rps']:.0f} req/s, {r['cpu_us']:.0f} µs "
                      f"CPU/refresh, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
                      f"non-2xx {int(r['errors'])}, full GCs {r['gc_count']:.0f} "
                      f"({r['gc_mean_ms']:.0f} ms each), load {r['load']:.2f}", flush=True)
        # logins/s next to the argon2 cost (issue 10 §1), on the jotkit SQLite server
        label, _kind, url, _toks, proc = targets[0]
        logins = _logins(proc.pid, url, args.duration, tmp)
        print(f"logins on {label}: {logins['logins_per_s']:.1f}/s ({logins['cost']}, "
              f"{logins['workers']} argon2 workers), load {logins['load']:.2f}", flush=True)
        if spy:  # py-spy samples the jotkit SQLite server under the same load
            label, _kind, url, toks, proc = targets[0]
            pool = toks[args.rounds * per_run:(args.rounds + 1) * per_run]
            sampled = _py_spy(spy, proc.pid, url, pool, args.duration, conns, tmp)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if use_pg:
            for name in pg_names:
                try:
                    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception as exc:
                    print(f"could not drop {name}: {exc}", file=sys.stderr)
        if sys.exc_info()[0] is not None:  # failing: the profile will not run
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        profile = _profile(dirs["prof"], prof_tokens, args.profile_count)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write(args, results, profile, sampled, logins)


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _write(args: argparse.Namespace, results: dict[str, list[dict[str, float]]],
           profile: dict[str, Any], sampled: dict[str, Any] | None,
           logins: dict[str, Any] | None) -> None:
    load = os.getloadavg()
    lines = [
        "# Refresh rotation against its floor (benchmarks/bench_refresh.py, issue 10 §1)",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}: wrk -t1 -c{args.connections}, "
        f"{args.duration} s per run, {args.rounds} interleaved rounds; {platform.machine()}, "
        f"{os.cpu_count()} cores (shared with other jobs), Python {platform.python_version()}; "
        "uvicorn, 1 worker each; ES256. Every request spends a distinct unspent token.",
        "",
        f"Load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min). "
        "req/s and latency move with the machine's load; server CPU per refresh much less.",
        "",
        "Full GCs: the server's generation-2 collections during the run and their mean pause "
        "(the event loop stands still meanwhile), from a `gc.callbacks` hook in each server.",
        "",
        "| target | round | req/s | server CPU µs/refresh | p50 ms | p99 ms | non-2xx | "
        "full GCs | ms each | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rows in results.items():
        for i, r in enumerate(rows):
            lines.append(f"| {label} | {i + 1} | {r['rps']:.0f} | {r['cpu_us']:.0f} | "
                         f"{r['p50']:.2f} | {r['p99']:.2f} | {int(r['errors'])} | "
                         f"{r['gc_count']:.0f} | {r['gc_mean_ms']:.0f} | {r['load']:.2f} |")
    lines += ["", "Medians over the rounds:", "",
              "| target | req/s | server CPU µs/refresh | p50 ms | p99 ms |",
              "|---|---:|---:|---:|---:|"]
    for label, rows in results.items():
        lines.append(f"| {label} | {_median(rows, 'rps'):.0f} | {_median(rows, 'cpu_us'):.0f} | "
                     f"{_median(rows, 'p50'):.2f} | {_median(rows, 'p99'):.2f} |")
    lines += ["", "Ratios jotkit / floor (target >= 0.70 for both; CPU ratio = floor CPU / "
              "jotkit CPU, so higher is better):", ""]
    for svc, floor in (("jotkit SQLite", "floor sqlite3"),
                       ("jotkit PostgreSQL", "floor asyncpg")):
        if svc in results and floor in results:
            rps = _median(results[svc], "rps") / _median(results[floor], "rps")
            cpu = _median(results[floor], "cpu_us") / _median(results[svc], "cpu_us")
            verdict = "met" if min(rps, cpu) >= 0.7 else "MISSED"
            lines.append(f"- {svc} vs {floor}: req/s **{rps:.2f}x**, CPU per refresh "
                         f"**{cpu:.2f}x** ({verdict})")
    if logins:
        lines += [
            "",
            "## Logins",
            "",
            f"Login is argon2-bound by design: jotkit SQLite, `POST /auth/login` with a correct "
            f"password, wrk -t1 -c{logins['connections']}, {args.duration} s, at the default "
            f"cost ({logins['cost']}; {logins['workers']} argon2 workers): "
            f"**{logins['logins_per_s']:.1f} logins/s** "
            f"({logins['logins_per_s'] / (os.cpu_count() or 1):.1f} per core), "
            f"{logins['cpu_ms']:.0f} ms server CPU per login, p50 {logins['p50']:.0f} ms, "
            f"p99 {logins['p99']:.0f} ms, non-2xx {int(logins['errors'])}, load "
            f"{logins['load']:.2f}. Keycloak publishes 15 logins/s per vCPU with its lighter "
            "default hash.",
        ]
    prof = profile["prof"]
    n = args.profile_count
    lines += [
        "",
        "## Profile",
        "",
        f"jotkit `POST /auth/refresh` on SQLite, {n} sequential refreshes through the ASGI app "
        "in-process (no sockets, no HTTP parsing), cProfile. Process CPU per refresh: "
        f"{profile['plain_us']:.0f} µs without the profiler, of which {profile['main_us']:.0f} µs "
        "on the event-loop thread and the rest on the database threads (the rotation's own "
        "sqlite3 thread: SQLite itself; aiosqlite's for everything else); "
        f"{profile['cpu_us']:.0f} µs with the profiler on. The tables profile the "
        "event-loop thread only (timer: its CPU time), so cProfile's own overhead inflates "
        "Python-heavy code: read the shares, not the absolute times. Coroutines count one call "
        "per resumption.",
        "",
        "- hand-offs to a database thread per refresh: to the rotation's sqlite3 thread "
        f"**{profile['rotation_hops']:.2f}**, to aiosqlite's thread **{profile['hops']:.2f}**",
        f"- event-loop iterations per refresh: **{profile['loops']:.1f}**",
        "",
        "Own time by layer:",
        "",
        "| layer | % of profiled CPU | µs/refresh (profiled) |",
        "|---|---:|---:|",
        *_layers(prof, n),
        "",
        "Top functions by own time (tottime):",
        "",
        "| function | % of profiled CPU | µs/refresh | calls/refresh |",
        "|---|---:|---:|---:|",
        *_top(prof, n, "tottime", 25),
        "",
        "Top functions by cumulative time (includes callees). cProfile counts a coroutine "
        "once per resumption and nested coroutine frames overlap, so the shares of the async "
        "frames (middleware, routing, handlers) are upper bounds and can pass 100 %; the "
        "synchronous ones (SQLAlchemy statement building and cache keys) are exact.",
        "",
        "| function | % of profiled CPU | µs/refresh | calls/refresh |",
        "|---|---:|---:|---:|",
        *_top(prof, n, "cumtime", 40),
        "",
    ]
    if sampled:
        total = sampled["total"]
        lines += [
            "### Under load: py-spy on the jotkit SQLite server",
            "",
            f"`py-spy record --format raw` at 250 Hz over one more {args.duration} s wrk run "
            f"({sampled['load']['rps']:.0f} req/s, {sampled['load']['cpu_us']:.0f} µs CPU per "
            f"refresh), {total} samples of the thread holding the GIL (`--gil`: Python CPU; "
            "SQLite's own work runs with the GIL released on the database threads and is "
            "not in here). uvicorn runs uvloop, whose loop is C: its work shows as "
            "`Runner.run`. Share of samples by the innermost frame's layer, then the "
            "innermost functions:",
            "",
            "| layer (innermost frame) | % of samples |",
            "|---|---:|",
            *[f"| {k} | {v / total:.1%} |" for k, v in sampled["layers"]],
            "",
            "| innermost function | % of samples |",
            "|---|---:|",
            *[f"| `{k}` | {v / total:.1%} |" for k, v in sampled["leaves"]],
            "",
        ]
    notes = ROOT / "benchmarks" / "refresh-candidates.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
