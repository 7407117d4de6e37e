"""One worker against two (issue 10 §3): ``jotkit serve --workers N`` for ``GET /auth/me`` and
``POST /auth/refresh``, on SQLite and on PostgreSQL + Redis, in one run.

Each configuration is a real ``jotkit serve --workers N`` process tree on a free port, seeded
through jotkit's own store (one user, refresh families made with ``create_family``: no argon2
in the set-up). ``wrk`` loads it: ``/auth/me`` with one access token, ``/auth/refresh`` with a
Lua script that spends a distinct unspent token per request. Server CPU is the whole process
tree's (parent and workers). Rounds are interleaved; the summary gives medians.

    .venv/bin/python benchmarks/bench_workers.py [--duration 8] [--connections 32] [--rounds 2]

Writes ``benchmarks/results-workers.md``. This machine has 2 cores and wrk itself needs one,
so read the 2-worker gain as a lower bound of what a larger machine gets.
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
from pathlib import Path

import httpx
from _servers import cpu_seconds, pg_admin, pg_dsn  # benchmarks/_servers.py
from _wrk import REFRESH_LUA, free_port, parse_wrk, wrk_command  # benchmarks/_wrk.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-workers.md"
REDIS = os.environ.get("JOTKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL, PASSWORD = "bench@example.com", "bench-password-123"


def _env(data_dir: Path, database_url: str | None, redis_prefix: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(JOTKIT_DATA_DIR=str(data_dir), JOTKIT_LOG_LEVEL="WARNING",
               JOTKIT_LOGIN_IP_LIMIT="100000", JOTKIT_LOGIN_PAIR_LIMIT="100000",
               JOTKIT_LOGIN_ACCOUNT_LIMIT="100000")
    if database_url:
        env.update(JOTKIT_DATABASE_URL=database_url, JOTKIT_ISSUER="http://127.0.0.1")
    if redis_prefix:
        env.update(JOTKIT_REDIS_URL=REDIS, JOTKIT_REDIS_PREFIX=redis_prefix)
    return env


def _seed(env: dict[str, str], sessions: int) -> list[str]:
    """Migrate, add the user and ``sessions`` refresh families; return their tokens."""
    from jotkit.server import Settings, SystemClock
    from jotkit.server.audit_log import AuditLog
    from jotkit.server.metrics import Metrics
    from jotkit.server.sessions import AuthService, hash_refresh_token
    from jotkit.server.store.base import FamilyRecord
    from jotkit.server.store.sql import SqlStore

    async def run() -> list[str]:
        settings = Settings.from_env(env)
        clock, metrics = SystemClock(), Metrics()
        store = SqlStore(settings.effective_database_url.replace(
            "postgresql://", "postgresql+asyncpg://"))
        svc = AuthService(settings, store, clock, metrics, AuditLog(clock, metrics))
        await store.start()
        user = await svc.add_user(EMAIL, PASSWORD)
        now, tokens = time.time(), []
        for _ in range(sessions):
            token = secrets.token_urlsafe(32)
            await store.sessions.create_family(FamilyRecord(
                id=secrets.token_urlsafe(16), user_id=user.id, created_at=now, last_used_at=now,
                idle_expires_at=now + settings.refresh_idle_ttl,
                absolute_expires_at=now + settings.refresh_absolute_ttl,
                user_agent="bench", client_ip="127.0.0.1"), hash_refresh_token(token))
            tokens.append(token)
        await store.close()
        svc.close()
        return tokens

    return asyncio.run(run())


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # a worker that has exited
            continue
    return total


class Service:
    def __init__(self, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("jotkit")), "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError("jotkit serve exited") from None
            time.sleep(0.1)
        time.sleep(1.0 if workers > 1 else 0.1)  # every worker up, not only the first
        self.pids = _tree(self.proc.pid)
        assert len(self.pids) >= workers, self.pids

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def _wrk(svc: Service, path: str, duration: int, conns: int, *, token: str | None = None,
         script: Path | None = None) -> dict[str, float]:
    before = _cpu(svc.pids)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    out = subprocess.run(
        wrk_command(svc.url + path, duration, conns, headers=headers,
                    script=str(script) if script else None),
        capture_output=True, text=True, check=True).stdout
    used = _cpu(svc.pids) - before
    result = parse_wrk(out)
    total = result["rps"] * duration
    result["cpu_us"] = used / total * 1e6 if total else float("nan")
    result["load"] = os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_workers needs wrk (apt-get install wrk)")
    import asyncpg  # noqa: F401  (the bench extra)

    per_run = args.connections + 8
    sessions = per_run * args.rounds + 8
    backends = ["SQLite"] + ([] if args.no_postgres else ["PostgreSQL+Redis"])
    tmp = Path(tempfile.mkdtemp(prefix="jotkit-workers-"))
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    dbs: list[str] = []
    services: dict[tuple[str, int], tuple[Service, list[str], str]] = {}
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    try:
        for backend in backends:
            for workers in (1, 2):
                data = tmp / f"{backend}-{workers}"
                if backend == "SQLite":
                    env = _env(data, None, None)
                else:
                    name = f"jotkit_workers_{workers}_{suffix}"
                    pg_admin(f'CREATE DATABASE "{name}"')
                    dbs.append(name)
                    env = _env(data, pg_dsn(name),
                               f"jotkit:bench:{suffix}:{workers}:")
                tokens = _seed(env, sessions)
                svc = Service(workers, env)
                r = httpx.post(svc.url + "/auth/login", json={"email": EMAIL, "password": PASSWORD},
                               timeout=30)
                r.raise_for_status()
                services[(backend, workers)] = (svc, tokens, r.json()["access_token"])
        for svc, _tokens, access in services.values():  # warm-up
            _wrk(svc, "/auth/me", 2, 4, token=access)
        for rnd in range(args.rounds):
            for (backend, workers), (svc, tokens, access) in services.items():
                row = _wrk(svc, "/auth/me", args.duration, args.connections, token=access)
                results.setdefault((backend, workers, "GET /auth/me"), []).append(row)
                _report(rnd, backend, workers, "GET /auth/me", row)
                script = tmp / f"refresh-{backend}-{workers}-{rnd}.lua"
                pool = tokens[rnd * per_run:(rnd + 1) * per_run]
                script.write_text(REFRESH_LUA % ",".join(json.dumps(t) for t in pool))
                row = _wrk(svc, "/auth/refresh", args.duration, args.connections, script=script)
                results.setdefault((backend, workers, "POST /auth/refresh"), []).append(row)
                _report(rnd, backend, workers, "POST /auth/refresh", row)
    finally:
        for svc, _tokens, _access in services.values():
            svc.stop()
        for name in dbs:
            try:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:
                print(f"could not drop {name}: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    _write(args, results)


def _report(rnd: int, backend: str, workers: int, what: str, r: dict[str, float]) -> None:
    print(f"round {rnd + 1} {backend} x{workers} {what}: {r['rps']:.0f} req/s, "
          f"{r['cpu_us']:.0f} µs CPU/req, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
          f"non-2xx {int(r['errors'])}, load {r['load']:.2f}", flush=True)


def _write(args: argparse.Namespace,
           results: dict[tuple[str, int, str], list[dict[str, float]]]) -> None:
    med = {key: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
           for key, rows in results.items()}
    load = os.getloadavg()
    lines = [
        "# One worker against two (benchmarks/bench_workers.py, issue 10 §3)", "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}: `jotkit serve --workers N`, wrk -t1 "
        f"-c{args.connections}, {args.duration} s per run, {args.rounds} interleaved rounds; "
        f"{platform.machine()}, {os.cpu_count()} cores shared with wrk and other jobs, Python "
        f"{platform.python_version()}; ES256. Server CPU is the whole process tree's.", "",
        f"Load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", "",
        "| backend | endpoint | workers | req/s | CPU µs/req | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = sorted(med.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1]))
    for (backend, workers, what), m in order:
        lines.append(f"| {backend} | {what} | {workers} | {m['rps']:.0f} | {m['cpu_us']:.0f} | "
                     f"{m['p50']:.2f} | {m['p99']:.2f} | {m['errors']:.0f} |")
    lines += ["", "2 workers / 1 worker (req/s, medians):", ""]
    for backend, _w, what in sorted({(b, 1, w) for b, _n, w in med}):
        one, two = med.get((backend, 1, what)), med.get((backend, 2, what))
        if one and two:
            lines.append(f"- {backend} {what}: **{two['rps'] / one['rps']:.2f}x**")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
